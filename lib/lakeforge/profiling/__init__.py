"""Looking at data before modelling: problem framing (frame -> the problem card) and the EDA profile (profile)."""
