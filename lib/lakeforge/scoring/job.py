"""Batch scoring: a Delta table + the registered champion -> the predictions Delta table.

The model is resolved once (alias -> version) before any data is read; every written row
records that name and version. The input is its latest version unless that holds rows of a load
whose error checks failed: then the last version that passed (lakeforge.ingest.gate;
``allow_failed_checks`` overrides). Scoring refuses (``scoring.on_null_inputs: fail``) or
warns when a model input column is null in every row to score, or far more often than in the
training rows (their shares are a tag of the model version: lakeforge.training.input_nulls). Scoring is ``PipelineModel.transform`` (JVM only, no Python
UDF). The predictions table is partitioned by ``run_date`` and each run replaces only its own
date's partition in one atomic commit, so reruns never duplicate rows and history is kept.

This module reads and writes; the steps are in lakeforge.scoring.transforms.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession

from lakeforge.core import tracking
from lakeforge.core.config import PipelineConfig
from lakeforge.core.settings import Settings
from lakeforge.core.errors import InputDataError
from lakeforge.core.io import WriteResult, read_version, write_table
from lakeforge.core.runs import last_scored_version
from lakeforge.ingest.job import checked_version
from lakeforge.scoring.clusters import with_clusters
from lakeforge.scoring.recommendations import write_recommendations
from lakeforge.scoring.transforms import (
    changed_since,
    check_signature,
    input_null_counts,
    null_input_problem,
    with_predictions,
)
from lakeforge.training.input_nulls import NULL_SHARES_TAG, from_tag


@dataclass(frozen=True)
class ScoreResult:
    model: tracking.ModelRef
    input_table: str
    input_version: int
    write: WriteResult
    incremental_base: int | None = None  # the input version the changes were taken against
    notes: tuple[str, ...] = ()  # lines to show: the version read instead of the latest, a null-input warning


def load_model(ref: tracking.ModelRef) -> PipelineModel:
    return tracking.load_spark_model(ref)


def model_inputs(ref: tracking.ModelRef) -> list[str] | None:
    """The input column names of the model's MLflow signature (none without one)."""
    from mlflow.models import get_model_info

    info = get_model_info(ref.uri)
    if info.signature is not None and info.signature.inputs is not None:
        return list(info.signature.inputs.input_names())
    return None


def training_null_shares(ref: tracking.ModelRef) -> dict[str, float] | None:
    """The training rows' null share per input column (the version's tag; none before it existed)."""
    try:
        mv = tracking.MlflowClient().get_model_version(ref.name, ref.version)
    except MlflowException:
        return None
    return from_tag(mv.tags.get(NULL_SHARES_TAG))


def score(
    spark: SparkSession,
    settings: Settings,
    pipeline: PipelineConfig,
    run_date: dt.date,
    model_version: str | None = None,
    model: tracking.ModelRef | None = None,
    full: bool = False,
    allow_failed_checks: bool = False,
) -> ScoreResult:
    """Score the input table into the predictions table for ``run_date``.

    ``model``: an already resolved version (a backfill resolves the alias once for all dates);
    otherwise ``model_version`` or the configured alias is resolved now. With
    ``scoring.mode: incremental`` (and not ``full``), only rows new or changed since the input
    version scored for an earlier date are scored. ``allow_failed_checks``: score the latest
    input version even when it holds rows that failed error checks.
    """
    tracking.configure(settings)
    ref = model or tracking.resolve_model(pipeline.model.registered_name, pipeline.scoring.model_alias, model_version)
    input_table = settings.table(pipeline.scoring_input)
    if not spark.catalog.tableExists(input_table):
        raise InputDataError(f"input table {input_table} does not exist; run 'lakeforge ingest {pipeline.file}' first")
    choice = checked_version(spark, settings, input_table, "scoring", allow_failed_checks)
    version, notes = choice.version, [choice.note] if choice.note else []
    df = read_version(spark, input_table, version)
    inputs = model_inputs(ref)
    check_signature(df, inputs, ref, input_table, [pipeline.key, *pipeline.scoring.passthrough])
    base = None
    if pipeline.scoring.mode == "incremental" and not full:
        base = last_scored_version(spark, settings, pipeline.name, input_table, run_date)
        if base is not None:
            df = df.transform(changed_since(read_version(spark, input_table, base), pipeline.key))
    if inputs:
        notes += _null_inputs(df, inputs, ref, f"input table {input_table} version {version}", pipeline.scoring.on_null_inputs)
    fitted = load_model(ref)
    task = tracking.model_task(ref)
    if task == "recommendation":  # two tables: lakeforge.scoring.recommendations
        result, line = write_recommendations(settings, pipeline, df, fitted, ref, run_date)
        return ScoreResult(ref, input_table, version, result, base, (*notes, line))
    if task == "clustering":
        predictions = df.transform(with_clusters(fitted, pipeline.key, ref, run_date, pipeline.scoring.passthrough))
    else:
        predictions = df.transform(with_predictions(fitted, pipeline.key, ref, run_date, pipeline.scoring.passthrough, task))
    result = write_table(
        predictions, settings.table(pipeline.tables.predictions), partition_col="run_date", partition_value=run_date,
        stats_columns=[pipeline.key, "score"],
    )
    return ScoreResult(ref, input_table, version, result, base, tuple(notes))


def _null_inputs(df: DataFrame, inputs: list[str], ref: tracking.ModelRef, what: str, on_null_inputs: str) -> list[str]:
    """The null-input check on the rows to score (one aggregation): raises with ``fail``; with
    ``warn`` returns the warning line."""
    rows, nulls = input_null_counts(df, inputs)
    problem = null_input_problem(rows, nulls, training_null_shares(ref))
    if problem is None:
        return []
    said = f"{what}: {problem} (model {ref.name} version {ref.version}; a renamed or missing source column?)"
    if on_null_inputs == "fail":
        raise InputDataError(f"{said}; nothing was written (scoring.on_null_inputs: warn scores anyway)")
    return [f"warning: {said}; scored anyway (scoring.on_null_inputs: warn)"]
