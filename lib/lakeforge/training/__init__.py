"""Model training: target, split, search, choice, registration with a promotion gate, report; job.py runs them."""
