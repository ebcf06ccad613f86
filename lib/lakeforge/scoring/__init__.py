"""Batch scoring: pure transforms (with_predictions, changed_since, checks) and the job that writes predictions."""
