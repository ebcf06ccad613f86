"""Performance per window from the true outcomes (``monitoring.actuals``: key, label, date), and
for binary models a label-free estimate from the calibrated scores (confidence-based performance
estimation, as NannyML's CBPE: a row scored s counts as s of a positive and 1 - s of a negative).

Every run recomputes the windows of the last ``performance_lookback_days`` run dates (one
aggregation over their predictions joined with the actuals), so labels that arrive late update
the windows they touch; the rows of those windows are replaced, never duplicated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.core import tracking
from lakeforge.core.config import PipelineConfig
from lakeforge.core.errors import InputDataError
from lakeforge.core.frames import local_frame
from lakeforge.core.io import write_table
from lakeforge.core.settings import Settings
from lakeforge.core.sql import q
from lakeforge.monitoring import alerts as al
from lakeforge.monitoring.windows import granularity, window_start_col

BINS = 1000
METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1")
PERFORMANCE_SCHEMA = (
    "window_start date, window_end date, granularity string, model_name string, model_version string, "
    "metric string, realised double, estimated double, training double, rows bigint, labelled_rows bigint, "
    "breach boolean, computed_at timestamp"
)
POSITIVE_TEXT = ("1", "true", "yes", "y", "t")


@dataclass
class PerformanceResult:
    rows: list[dict] = field(default_factory=list)
    alerts: list[al.Alert] = field(default_factory=list)
    passes: int = 0


def binary_metrics(pos: np.ndarray, neg: np.ndarray, tp: float, fp: float, fn: float, tn: float) -> dict[str, float]:
    """ROC-AUC from score bins ordered best to worst (ties within a bin count half), and the
    confusion-matrix metrics; the same formulas serve the realised and the estimated metrics."""
    P, N = pos.sum(), neg.sum()
    auc = float("nan")
    if P and N:
        above = np.concatenate([[0.0], np.cumsum(pos)[:-1]])
        auc = float(np.sum(neg * (above + pos / 2)) / (P * N))
    n = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"roc_auc": auc, "accuracy": (tp + tn) / n if n else float("nan"), "precision": precision,
            "recall": recall, "f1": f1}


def label_value(col: Column, dtype: str, positive, where: str) -> Column:
    """1.0 / 0.0 for the positive / other class; a label type that cannot be a class is an error."""
    if dtype == "boolean":
        return col.cast("double")
    if dtype in ("int", "bigint", "smallint", "tinyint"):
        return (col == F.lit(int(positive) if isinstance(positive, (int, bool)) else 1)).cast("double")
    if dtype == "string":
        wanted = [str(positive).lower()] if positive is not None else list(POSITIVE_TEXT)
        return F.when(col.isNull(), None).otherwise(F.lower(F.trim(col)).isin(wanted).cast("double"))
    raise InputDataError(f"{where}: the label column is {dtype}; expected the target's classes (text, boolean or "
                         f"0/1 integers); fix monitoring.actuals.label; nothing was written")


def labelled_predictions(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, since: dt.date,
                         until: dt.date) -> DataFrame:
    """The predictions of run dates since..until with their label (null when not known yet)."""
    a = pipeline.monitoring.actuals
    table = settings.table(a.table)
    where = f"monitoring.actuals: table {table}"
    if not spark.catalog.tableExists(table):
        raise InputDataError(f"{where} does not exist; create it (key, label, date) or fix monitoring.actuals.table")
    actuals = spark.table(table)
    key, label = a.key or pipeline.key, a.label or pipeline.target
    missing = [c for c in (key, label, a.date) if c not in actuals.columns]
    if missing:
        raise InputDataError(f"{where} lacks column(s) {missing} (it has {actuals.columns}); set monitoring.actuals."
                             f"key / label / date; nothing was written")
    y = label_value(F.col(q(label)), dict(actuals.dtypes)[label], pipeline.positive_class, where)
    latest = (actuals.select(F.col(q(key)).alias("__k"), y.alias("__y"), F.col(q(a.date)).alias("__d"))
              .where(F.col("__y").isNotNull())
              .groupBy("__k").agg(F.max_by("__y", "__d").alias("__y")))
    preds = (spark.table(settings.table(pipeline.tables.predictions))
             .where(F.col("run_date").between(F.lit(since), F.lit(until))))
    return preds.join(latest, preds[pipeline.key] == latest["__k"], "left").drop("__k")


def monitor_performance(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, until: dt.date,
                        say: Callable[[str], None]) -> PerformanceResult:
    """Recompute and replace the performance windows of the lookback (binary models)."""
    cfg = pipeline.monitoring
    since = until - dt.timedelta(days=cfg.performance_lookback_days - 1)
    df = labelled_predictions(spark, settings, pipeline, since, until)
    s, yhat, y = F.col("score"), F.col("predicted_label").cast("double"), F.col("__y")
    grouped = (df.groupBy(window_start_col(F.col("run_date"), cfg.granularity_days).alias("w"), "model_name",
                          "model_version", F.least(F.floor(s * BINS), F.lit(BINS - 1)).cast("int").alias("bin"))
               .agg(F.count(F.lit(1)).alias("n"), F.count(y).alias("labelled"), F.sum(y).alias("pos"),
                    F.sum(1 - y).alias("neg"), F.sum(s).alias("epos"), F.sum(1 - s).alias("eneg"),
                    *[F.sum(F.when(yhat == p, v)).alias(f"{name}") for name, p, v in (
                        ("tp", 1, y), ("fp", 1, 1 - y), ("fn", 0, y), ("tn", 0, 1 - y),
                        ("etp", 1, s), ("efp", 1, 1 - s), ("efn", 0, s), ("etn", 0, 1 - s))])
               .collect())
    result = PerformanceResult(passes=1)
    windows: dict = {}
    for r in grouped:
        windows.setdefault((r["w"], r["model_name"], r["model_version"]), []).append(r)
    now = dt.datetime.now()
    metric = pipeline.model.metric if pipeline.model.metric in METRICS else "roc_auc"
    for (start, name, version), rows in sorted(windows.items()):
        result.rows += _window_rows(start, name, version, rows, _training_metrics(name, version), now, cfg)
    history = sorted((r["window_start"], r["breach"]) for r in result.rows if r["metric"] == metric)
    for start, breach in history:
        ok, count = al.confirmed([b for s_, b in history if s_ <= start], cfg.alert.breaches, cfg.alert.of_last)
        if ok:
            row = next(r for r in result.rows if r["window_start"] == start and r["metric"] == metric)
            result.alerts.append(al.Alert(pipeline.name, "performance", start, row["model_name"], row["model_version"],
                                          "confirmed", count, cfg.alert.of_last,
                                          f"{metric} {_value(row):.4f} below training {row['training']:.4f} - "
                                          f"{cfg.alert.performance_drop}"))
    starts = sorted({r["window_start"] for r in result.rows})
    if starts:
        g = granularity(cfg.granularity_days)
        in_list = ", ".join(f"DATE'{s_.isoformat()}'" for s_ in starts)
        write_table(local_frame(spark, result.rows, PERFORMANCE_SCHEMA),
                    settings.table(f"{pipeline.name}_performance_metrics"),
                    replace_where=f"granularity = '{g}' AND window_start IN ({in_list})")
        al.write_alerts(spark, settings.table(al.alerts_table(pipeline.name)), pipeline.name, "performance", starts,
                        result.alerts)
    say(f"performance: {len(starts)} window(s) since {since} (labels joined from {pipeline.monitoring.actuals.table})")
    return result


def _value(row: dict) -> float:
    return row["realised"] if row["realised"] is not None else row["estimated"]


def _window_rows(start, name, version, rows, training: dict, now, cfg) -> list[dict]:
    rows = sorted(rows, key=lambda r: -r["bin"])

    def total(k: str) -> float:
        return float(sum(r[k] or 0 for r in rows))

    labelled = int(total("labelled"))
    realised = binary_metrics(np.array([r["pos"] or 0.0 for r in rows]), np.array([r["neg"] or 0.0 for r in rows]),
                              total("tp"), total("fp"), total("fn"), total("tn")) if labelled else {}
    estimated = binary_metrics(np.array([r["epos"] for r in rows]), np.array([r["eneg"] for r in rows]),
                               total("etp"), total("efp"), total("efn"), total("etn"))
    out = []
    for m in METRICS:
        real = realised.get(m) if labelled >= min(cfg.min_rows, 50) else None
        value = real if real is not None else estimated[m]
        base = training.get(m)
        breach = None if base is None or value != value else bool(value < base - cfg.alert.performance_drop)
        out.append({"window_start": start, "window_end": start + dt.timedelta(days=cfg.granularity_days),
                    "granularity": granularity(cfg.granularity_days), "model_name": name, "model_version": version,
                    "metric": m, "realised": None if real is None or real != real else float(real),
                    "estimated": float(estimated[m]) if estimated[m] == estimated[m] else None, "training": base,
                    "rows": int(total("n")), "labelled_rows": labelled, "breach": breach, "computed_at": now})
    return out


def _training_metrics(name: str, version: str) -> dict[str, float]:
    """The model version's test metrics as training logged them (test_<metric> of its MLflow run)."""
    try:
        client = tracking.MlflowClient()
        run = client.get_run(client.get_model_version(name, version).run_id)
    except Exception:  # noqa: BLE001 - no registry entry: no training baseline, no breach
        return {}
    return {m: float(run.data.metrics[f"test_{m}"]) for m in METRICS if f"test_{m}" in run.data.metrics}
