"""Scoring's pure steps: DataFrame in, DataFrame out (or a check that raises, or values in,
a message out), no table reads or writes. lakeforge.scoring.job reads the input, calls these
and writes the predictions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.core import tracking
from lakeforge.core.columns import METADATA_COLUMNS
from lakeforge.core.errors import InputDataError
from lakeforge.core.sql import q
from lakeforge.training.evaluation import positive_score


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


def check_signature(df: DataFrame, model_inputs: list[str] | None, ref: tracking.ModelRef, table: str,
                    keep: list[str]) -> None:
    """Fail before any write when the input lacks a column the model was trained on
    (``model_inputs``: its signature's input names, none without a signature) or one the
    predictions keep (the key and the passthrough columns). Extra columns are ignored."""
    wanted = [*keep, *(model_inputs or [])]
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise InputDataError(
            f"input table {table} lacks column(s) {missing} that model {ref.name} version "
            f"{ref.version} needs; nothing was written"
        )


MAX_NULL_RISE = 0.5  # a share of nulls this much above training's is not chance
MIN_ROWS_FOR_NULL_CHECK = 20  # with fewer rows to score, null shares say little


def input_null_counts(df: DataFrame, columns: list[str]) -> tuple[int, dict[str, int]]:
    """ONE aggregation over ``df``: its rows and, per column, the rows where it is null (or NaN,
    for a float column)."""
    types = dict(df.dtypes)

    def missing(c: str):
        col = F.col(q(c))
        return col.isNull() | F.isnan(col) if types[c] in ("double", "float") else col.isNull()

    row = df.agg(F.count(F.lit(1)).alias("rows"), *[F.count_if(missing(c)).alias(f"n{i}") for i, c in enumerate(columns)]).first()
    return int(row["rows"]), {c: int(row[f"n{i}"]) for i, c in enumerate(columns)}


def null_input_problem(rows: int, nulls: dict[str, int], training: dict[str, float] | None,
                       max_rise: float = MAX_NULL_RISE, min_rows: int = MIN_ROWS_FOR_NULL_CHECK) -> str | None:
    """What is wrong with the model's input columns in the rows to score, in words (None: nothing).

    ``nulls``: input column -> null rows among ``rows``; ``training``: input column -> the share of
    training rows where it was missing (None, or a column absent: not known). A column is a
    problem when it is null in every row and training's share is not known, or when its null
    share is more than ``max_rise`` above training's. Fewer than ``min_rows`` rows: no verdict."""
    if rows < min_rows:
        return None
    known = training or {}
    everywhere, rose = [], []
    for c, n in nulls.items():
        share, before = n / rows, known.get(c)
        if (before is None and n == rows) or (before is not None and share - before > max_rise + 1e-9):
            (everywhere if n == rows else rose).append((c, before))
    if not everywhere and not rose:
        return None
    parts = []
    if everywhere:
        parts.append(f"model input column(s) null in all {rows:,} rows to score: " + ", ".join(
            c if before is None else f"{c} (training: {before:.1%})" for c, before in everywhere))
    if rose:
        parts.append("null far more often than in training: " + ", ".join(
            f"{c} {nulls[c] / rows:.1%} of {rows:,} rows (training: {before:.1%})" for c, before in rose))
    return "; ".join(parts)
