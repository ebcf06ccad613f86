"""Numpy versions of Spark ML stages: see lakeforge.serving.scorer.pipeline.STAGE_MODULES."""
