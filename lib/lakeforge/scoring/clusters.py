"""Scoring a clustering model: each row's cluster (and, for a Gaussian mixture, its membership
probabilities) with the key, the passthrough columns and the model's name and version. A pure
step: lakeforge.scoring.job writes the result to the predictions table like any other."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.core import tracking


def with_clusters(model: PipelineModel, key: str, ref: tracking.ModelRef, run_date: dt.date,
                  passthrough: list[str] = ()) -> Callable[[DataFrame], DataFrame]:
    """key, passthrough, ``cluster`` (int), ``score`` (the probability of that cluster for a
    Gaussian mixture, else null), ``probabilities`` (array per cluster; null but for a Gaussian
    mixture), model name and version, scored_at, run_date."""

    def transform(df: DataFrame) -> DataFrame:
        renamed = {c: f"__pass_{i}" for i, c in enumerate(passthrough)}
        scored = model.transform(df.select("*", *(F.col(c).alias(a) for c, a in renamed.items())))
        if "probability" in scored.columns:
            probs = vector_to_array(F.col("probability"))
            score = F.element_at(probs, F.col("prediction").cast("int") + 1)
        else:
            probs, score = F.lit(None).cast("array<double>"), F.lit(None).cast("double")
        return scored.select(
            F.col(key), *(F.col(a).alias(c) for c, a in renamed.items()),
            F.col("prediction").cast("int").alias("cluster"), score.alias("score"), probs.alias("probabilities"),
            F.lit(ref.name).alias("model_name"), F.lit(ref.version).alias("model_version"),
            F.current_timestamp().alias("scored_at"), F.lit(run_date).cast("date").alias("run_date"))

    return transform
