"""Feature engineering as Spark ML stages: the feature plan, the preprocessing Pipeline, fit-time SQL stages
and feature selection. Everything here ends up inside the fitted PipelineModel."""
