"""The learning target: the task and class labels (from the config, else inferred from the
target's type and values), the primary metric and the algorithms that apply, and the numeric
``label`` column training learns from (class index; 1.0 = the positive class of a binary
target)."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, NumericType

from lakeforge.core.columns import LABEL_COL
from lakeforge.core.config import PipelineConfig
from lakeforge.core.errors import InputDataError
from lakeforge.core.tasks import METRICS
from lakeforge.profiling.frame import MAX_CLASSES, as_text, default_positive, infer_task
from lakeforge.training import algorithms as models


@dataclass
class Target:
    task: str
    labels: list[str]  # classification: class names by label index
    positive_class: str | None = None  # binary


def infer_target(raw: DataFrame, pipeline: PipelineConfig, table: str) -> Target:
    """The task and class labels from the config, else from the target's type and values."""
    target = pipeline.target
    dtype = raw.schema[target].dataType
    values = [r[0] for r in raw.select(target).where(F.col(target).isNotNull()).distinct().limit(MAX_CLASSES + 1).collect()]
    if not values:
        raise InputDataError(f"{table}: target {target!r} has no non-null value; nothing to learn")
    if len(values) == 1:
        raise InputDataError(f"{table}: target {target!r} is constant ({values[0]!r} in every row); nothing to learn")
    task = pipeline.model.task
    numeric = isinstance(dtype, NumericType)
    if task == "auto":
        try:
            task, _ = infer_task(values, numeric, len(values))
        except InputDataError as exc:
            raise InputDataError(f"{table}: {target!r}: {exc}; or set model.task") from None
    if task == "regression":
        if not numeric:
            sample = ", ".join(repr(v) for v in values[:3])
            raise InputDataError(
                f"{table}: model.task is regression but target {target!r} is {dtype.simpleString()} "
                f"(values like {sample}); regression needs a numeric target (or use task binary / multiclass)"
            )
        return Target("regression", [])
    names = sorted(as_text(v) for v in values)
    if task == "binary":
        return _binary_target(raw, pipeline, table, names)
    if len(values) > MAX_CLASSES:
        raise InputDataError(f"{table}: target {target!r} has more than {MAX_CLASSES} classes")
    return Target("multiclass", names)


def _binary_target(raw: DataFrame, pipeline: PipelineConfig, table: str, names: list[str]) -> Target:
    """A binary target: the configured positive class, else a yes-word or the minority class."""
    target = pipeline.target
    if len(names) > 2 and pipeline.positive_class is None:
        raise InputDataError(
            f"{table}: target {target!r} has more than 2 values ({', '.join(names[:5])}...); "
            "for a binary task set positive_class (the rest is negative) or use task multiclass"
        )
    positive = as_text(pipeline.positive_class) if pipeline.positive_class is not None else default_positive(
        names, lambda: {as_text(r[0]): r[1] for r in raw.groupBy(target).count().collect() if r[0] is not None})
    if positive not in names:
        raise InputDataError(
            f"{table}: target {target!r} has no row equal to positive_class {positive!r} "
            f"(values: {', '.join(names[:10])}); check target and positive_class in {pipeline.file}"
        )
    return Target("binary", ["not " + positive, positive], positive)


def default_metric(task: str) -> str:
    return {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}[task]


def label_column(raw: DataFrame, target_col: str, target: Target) -> DataFrame:
    """Rows with a non-null target and a double ``label`` (class index, 1.0 = positive)."""
    df = raw.where(F.col(target_col).isNotNull())
    if target.task == "regression":
        return df.withColumn(LABEL_COL, F.col(target_col).cast("double"))
    text = _text_expr(raw, target_col)
    if target.task == "binary":
        return df.withColumn(LABEL_COL, F.when(text == F.lit(target.positive_class), 1.0).otherwise(0.0))
    mapping = F.create_map(*[x for i, name in enumerate(target.labels) for x in (F.lit(name), F.lit(float(i)))])
    return df.withColumn(LABEL_COL, mapping[text])


def _text_expr(raw: DataFrame, col: str):
    dtype = raw.schema[col].dataType
    c = F.col(col)
    if isinstance(dtype, BooleanType):
        return F.lower(c.cast("string"))
    if isinstance(dtype, NumericType):
        # 1.0 -> "1", as as_text does
        return F.when(c == F.floor(c), c.cast("long").cast("string")).otherwise(c.cast("string"))
    return c.cast("string")


def metric_and_algorithms(pipeline: PipelineConfig, task: str) -> tuple[str, dict]:
    """The primary metric and the algorithms to search for ``task``: the configured ones (checked
    against the task) or the task's defaults."""
    cfg = pipeline.model
    metric = cfg.metric or default_metric(task)
    if metric not in METRICS[task]:
        raise InputDataError(
            f"{pipeline.file}: model.metric {metric!r} does not apply to a {task} target; "
            f"use one of {', '.join(METRICS[task])}"
        )
    algorithms = cfg.algorithms if cfg.algorithms is not None else models.default_algorithms(task)
    for name in algorithms:
        if task not in models.ALGORITHMS[name].tasks:
            raise InputDataError(
                f"{pipeline.file}: model.algorithms.{name} does not do {task}; "
                f"for {task} use {', '.join(a for a, al in models.ALGORITHMS.items() if task in al.tasks)}"
            )
    return metric, algorithms
