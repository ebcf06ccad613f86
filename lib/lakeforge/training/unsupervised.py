"""Training for the tasks without a target: clustering (lakeforge.training.clustering) and
recommendation (lakeforge.training.recommend); lakeforge.training.job hands them over here."""

from __future__ import annotations

from lakeforge.training.clustering import train_clustering
from lakeforge.training.recommend import train_recommender


def train_task(spark, settings, pipeline, run_id, run_date, progress=None, allow_failed_checks=False):
    """Train ``pipeline.model.task`` (clustering or recommendation): a TrainResult."""
    trainer = train_clustering if pipeline.model.task == "clustering" else train_recommender
    return trainer(spark, settings, pipeline, run_id, run_date, progress, allow_failed_checks)
