"""Batch scoring: a Delta table + the registered champion -> the predictions Delta table.

The model is resolved once (alias -> version) before any data is read; every written row
records that name and version. Scoring is ``PipelineModel.transform`` (JVM only, no Python
UDF). The predictions table is partitioned by ``run_date`` and each run replaces only its own
date's partition in one atomic commit, so reruns never duplicate rows and history is kept.

This module reads and writes; the steps are in lakeforge.scoring.transforms.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from lakeforge.core import tracking
from lakeforge.core.config import PipelineConfig
from lakeforge.core.settings import Settings
from lakeforge.core.errors import InputDataError
from lakeforge.core.io import WriteResult, latest_version, read_version, write_table
from lakeforge.core.runs import last_scored_version
from lakeforge.scoring.transforms import changed_since, check_signature, with_predictions


@dataclass(frozen=True)
class ScoreResult:
    model: tracking.ModelRef
    input_table: str
    input_version: int
    write: WriteResult
    incremental_base: int | None = None  # the input version the changes were taken against


def load_model(ref: tracking.ModelRef) -> PipelineModel:
    return tracking.load_spark_model(ref)


def model_inputs(ref: tracking.ModelRef) -> list[str] | None:
    """The input column names of the model's MLflow signature (none without one)."""
    from mlflow.models import get_model_info

    info = get_model_info(ref.uri)
    if info.signature is not None and info.signature.inputs is not None:
        return list(info.signature.inputs.input_names())
    return None


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
    input_table = settings.table(pipeline.scoring_input)
    if not spark.catalog.tableExists(input_table):
        raise InputDataError(f"input table {input_table} does not exist; run 'lakeforge ingest {pipeline.file}' first")
    version = latest_version(spark, input_table)
    df = read_version(spark, input_table, version)
    check_signature(df, model_inputs(ref), ref, input_table, [pipeline.key, *pipeline.scoring.passthrough])
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
