"""The monitoring reference: at training time, for every model input column, the score and the
predicted label, the summaries later windows are compared with (lakeforge.monitoring.statistics),
stored in Delta table ``<pipeline>_monitor_reference`` keyed by model version and logged to the
model version's MLflow run as ``monitoring/reference.json``.

The reference rows are the held-out test split scored by the registered model (the scores of
rows the model was fitted on would be over-confident, and every later window would look drifted).
Two aggregations over those rows (cached): quantile edges and distinct counts, then the binned
summary (lakeforge.monitoring.aggregates).
"""

from __future__ import annotations

import datetime as dt
import json
import sys

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.core import tracking
from lakeforge.core.config import PipelineConfig
from lakeforge.core.errors import InputDataError
from lakeforge.core.frames import local_frame
from lakeforge.core.io import write_table
from lakeforge.core.settings import Settings
from lakeforge.monitoring.aggregates import ColumnSpec, edge_pass, summarise
from lakeforge.monitoring.statistics import CategoryCounts, NumericHist
from lakeforge.scoring.transforms import with_predictions

SCORE_COLUMNS = ("score", "predicted_label")
NUMERIC_TYPES = ("double", "float", "int", "bigint", "smallint", "tinyint", "decimal")
REFERENCE_SCHEMA = (
    "model_name string, model_version string, column_name string, numeric boolean, exact boolean, "
    "edges array<double>, counts array<bigint>, sums array<double>, categories map<string,bigint>, "
    "nulls bigint, sumsq double, min double, max double, rows bigint, created_at timestamp"
)


def reference_table(pipeline: PipelineConfig) -> str:
    return f"{pipeline.name}_monitor_reference"


def is_numeric(dtype: str) -> bool:
    return dtype.startswith(NUMERIC_TYPES)


def compute_reference(df: DataFrame, columns: list[str], bins: int, max_points: int) -> dict:
    """{column: NumericHist | CategoryCounts} of ``df`` (two aggregations)."""
    types = dict(df.dtypes)
    numeric = [c for c in columns if is_numeric(types[c])]
    edges = edge_pass(df, numeric, bins, max_points)
    specs = [ColumnSpec(c, True, edges[c][0], exact=edges[c][1], points=edges[c][1]) if c in edges
             else ColumnSpec(c, False) for c in columns]
    found = summarise(df, specs).get(None, {})
    return {c: found.get(c) or (CategoryCounts() if c not in edges else
                                NumericHist(np.array([]), np.zeros(1, dtype=np.int64), np.zeros(1))) for c in columns}


def window_specs(reference: dict) -> list[ColumnSpec]:
    """How windows are summarised so that they line up with the reference's bins."""
    return [ColumnSpec(c, True, tuple(float(e) for e in s.edges), exact=s.exact) if isinstance(s, NumericHist)
            else ColumnSpec(c, False) for c, s in reference.items()]


def reference_from_training(spark: SparkSession, settings: Settings, pipeline: PipelineConfig,
                            ref: tracking.ModelRef, model: PipelineModel, test_df: DataFrame,
                            inputs: list[str]) -> dict | None:
    """Training's one call: score the held-out rows, summarise inputs and score, store and log them.
    A failure here does not fail training: one warning line, and monitor says the reference is missing."""
    try:
        return _reference_from_training(spark, settings, pipeline, ref, model, test_df, inputs)
    except Exception as exc:  # noqa: BLE001 - monitoring must not break training
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"warning: monitoring reference of {ref.name} version {ref.version} not stored: "
              f"{type(exc).__name__}: {first}", file=sys.stderr)
        return None


def _reference_from_training(spark: SparkSession, settings: Settings, pipeline: PipelineConfig,
                             ref: tracking.ModelRef, model: PipelineModel, test_df: DataFrame,
                             inputs: list[str]) -> dict | None:
    task = tracking.model_task(ref)
    if task not in ("binary", "multiclass", "regression"):
        return None
    scored = test_df.transform(with_predictions(model, pipeline.key, ref, dt.date.today(), list(inputs), task)).cache()
    try:
        columns = [*inputs, *[c for c in SCORE_COLUMNS if c in scored.columns]]
        cfg = pipeline.monitoring
        reference = compute_reference(scored, columns, cfg.bins, cfg.max_points)
    finally:
        scored.unpersist()
    save_reference(spark, settings, pipeline, ref, reference)
    return reference


def save_reference(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, ref: tracking.ModelRef,
                   reference: dict) -> None:
    """Replace the rows of this model version in the reference table; log the JSON to MLflow."""
    now = dt.datetime.now()
    rows = [_row(ref, c, s, now) for c, s in reference.items()]
    df = local_frame(spark, rows, REFERENCE_SCHEMA)
    write_table(df, settings.table(reference_table(pipeline)),
                replace_where=f"model_name = '{ref.name}' AND model_version = '{ref.version}'")
    try:
        run_id = tracking.MlflowClient().get_model_version(ref.name, ref.version).run_id
        payload = [{k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in r.items()} for r in rows]
        tracking.MlflowClient().log_text(run_id, json.dumps(payload), "monitoring/reference.json")
    except Exception:  # noqa: BLE001 - the Delta table is the reference; MLflow holds a copy
        pass


def _row(ref: tracking.ModelRef, column: str, s, now: dt.datetime) -> dict:
    base = {"model_name": ref.name, "model_version": str(ref.version), "column_name": column, "created_at": now,
            "nulls": int(s.nulls), "rows": int(s.n)}
    if isinstance(s, CategoryCounts):
        return {**base, "numeric": False, "exact": False, "edges": None, "counts": None, "sums": None,
                "categories": {k: int(v) for k, v in s.counts.items()}, "sumsq": None, "min": None, "max": None}
    return {**base, "numeric": True, "exact": bool(s.exact), "edges": [float(e) for e in s.edges],
            "counts": [int(c) for c in s.counts], "sums": [float(v) for v in s.sums], "categories": None,
            "sumsq": float(s.sumsq), "min": s.minimum, "max": s.maximum}


def load_reference(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, name: str, version: str) -> dict:
    """{column: summary} of one model version; a clear error when training stored none."""
    table = settings.table(reference_table(pipeline))
    rows = []
    if spark.catalog.tableExists(table):
        rows = (spark.table(table).where((F.col("model_name") == name) & (F.col("model_version") == str(version)))
                .collect())
    if not rows:
        raise InputDataError(
            f"no monitoring reference for model {name} version {version} in {table}; it is written by "
            f"'lakeforge train' (retrain, or score with a version trained since monitoring existed)")
    out = {}
    for r in rows:
        if r["numeric"]:
            out[r["column_name"]] = NumericHist(np.array(r["edges"], dtype=float), np.array(r["counts"], dtype=np.int64),
                                                np.array(r["sums"], dtype=float), int(r["nulls"]), float(r["sumsq"]),
                                                r["min"], r["max"], bool(r["exact"]))
        else:
            out[r["column_name"]] = CategoryCounts(dict(r["categories"] or {}), int(r["nulls"]))
    return out
