"""Batch scoring: a Delta table + the registered champion -> the predictions Delta table.

The model is resolved once (alias -> version) before any data is read; every written row
records that name and version. Scoring is ``PipelineModel.transform`` (JVM only, no Python
UDF). The predictions table is partitioned by ``run_date`` and each run replaces only its own
date's partition in one atomic commit, so reruns never duplicate rows and history is kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.core import tracking
from lakeforge.core.config import PipelineConfig, Settings
from lakeforge.core.errors import InputDataError
from lakeforge.training.evaluation import positive_score
from lakeforge.core.columns import METADATA_COLUMNS
from lakeforge.core.io import WriteResult, latest_version, read_version, write_table
from lakeforge.core.runs import last_scored_version



@dataclass(frozen=True)
class ScoreResult:
    model: tracking.ModelRef
    input_table: str
    input_version: int
    write: WriteResult
    incremental_base: int | None = None  # the input version the changes were taken against


def with_predictions(
    model: PipelineModel, key: str, ref: tracking.ModelRef, run_date: dt.date, passthrough: list[str] = (),
    task: str = "binary",
) -> Callable[[DataFrame], DataFrame]:
    """Score ``df`` and keep the key, the passthrough columns, the score as a plain double, the
    predicted label and the model's name and version.

    binary:     score = P(positive), predicted_label = 0/1 by the threshold stored in the model;
    multiclass: score = the probability of the predicted class, predicted_label = its name;
    regression: score = the predicted value (no predicted_label).
    """

    def transform(df: DataFrame) -> DataFrame:
        # Passthrough columns are taken from the input as it was, before the model's stages.
        renamed = {c: f"__pass_{i}" for i, c in enumerate(passthrough)}
        scored = model.transform(df.select("*", *(F.col(c).alias(a) for c, a in renamed.items())))
        return scored.select(
            F.col(key),
            *(F.col(a).alias(c) for c, a in renamed.items()),
            *_outputs(scored, task),
            F.lit(ref.name).alias("model_name"),
            F.lit(ref.version).alias("model_version"),
            F.current_timestamp().alias("scored_at"),
            F.lit(run_date).cast("date").alias("run_date"),
        )

    return transform


def _outputs(scored: DataFrame, task: str) -> list:
    if task == "regression":
        return [F.col("prediction").cast("double").alias("score")]
    if task == "multiclass":
        prob = (F.array_max(vector_to_array(F.col("probability"))) if "probability" in scored.columns
                else F.lit(None).cast("double"))
        return [prob.alias("score"), F.col("predicted_class").alias("predicted_label")]
    return [positive_score(scored).alias("score"), F.col("prediction").cast("int").alias("predicted_label")]


def load_model(ref: tracking.ModelRef) -> PipelineModel:
    return tracking.load_spark_model(ref)


def score(
    spark: SparkSession,
    settings: Settings,
    pipeline: PipelineConfig,
    run_date: dt.date,
    model_version: str | None = None,
    model: tracking.ModelRef | None = None,
    full: bool = False,
) -> ScoreResult:
    """Score the input table into the predictions table for ``run_date``.

    ``model``: an already resolved version (a backfill resolves the alias once for all dates);
    otherwise ``model_version`` or the configured alias is resolved now. With
    ``scoring.mode: incremental`` (and not ``full``), only rows new or changed since the input
    version scored for an earlier date are scored.
    """
    tracking.configure(settings)
    ref = model or tracking.resolve_model(pipeline.model.registered_name, pipeline.scoring.model_alias, model_version)
    input_table = settings.table(pipeline.scoring.input_table or pipeline.tables.bronze)
    if not spark.catalog.tableExists(input_table):
        raise InputDataError(f"input table {input_table} does not exist; run 'lakeforge ingest {pipeline.file}' first")
    version = latest_version(spark, input_table)
    df = read_version(spark, input_table, version)
    _check_signature(df, ref, input_table, [pipeline.key, *pipeline.scoring.passthrough])
    base = None
    if pipeline.scoring.mode == "incremental" and not full:
        base = last_scored_version(spark, settings, pipeline.name, input_table, run_date)
        if base is not None:
            df = df.transform(changed_since(read_version(spark, input_table, base), pipeline.key))
    fitted = load_model(ref)
    task = tracking.model_task(ref)
    predictions = df.transform(with_predictions(fitted, pipeline.key, ref, run_date, pipeline.scoring.passthrough, task))
    result = write_table(
        predictions, settings.table(pipeline.tables.predictions), partition_col="run_date", partition_value=run_date,
        stats_columns=[pipeline.key, "score"],
    )
    return ScoreResult(ref, input_table, version, result, base)


def changed_since(base: DataFrame, key: str) -> Callable[[DataFrame], DataFrame]:
    """Keep the rows whose key is new or whose content (any column but lakeforge's ingestion
    metadata) differs from ``base``: a hash anti-join, one pass over each version."""

    def transform(df: DataFrame) -> DataFrame:
        cols = [c for c in df.columns if c not in METADATA_COLUMNS]
        missing = [c for c in cols if c not in base.columns]
        if missing:  # the schema changed: everything counts as changed
            return df
        fingerprint = F.xxhash64(*[F.col(c) for c in cols])
        seen = base.select(F.col(key), fingerprint.alias("__row_hash"))
        return df.withColumn("__row_hash", fingerprint).join(seen, [key, "__row_hash"], "left_anti").drop("__row_hash")

    return transform


def _check_signature(df: DataFrame, ref: tracking.ModelRef, table: str, keep: list[str]) -> None:
    """Fail before any write when the input lacks a column the model was trained on (or one the
    predictions keep: the key and the passthrough columns). Extra columns are ignored."""
    from mlflow.models import get_model_info

    info = get_model_info(ref.uri)
    wanted = list(keep)
    if info.signature is not None and info.signature.inputs is not None:
        wanted += list(info.signature.inputs.input_names())
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise InputDataError(
            f"input table {table} lacks column(s) {missing} that model {ref.name} version "
            f"{ref.version} needs; nothing was written"
        )
