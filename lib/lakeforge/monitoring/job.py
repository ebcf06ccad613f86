"""lakeforge monitor: the run dates' scored rows -> profile and drift metrics per window (BASELINE
against the training reference, CONSECUTIVE against the previous window), confirmed alerts, and
(with ``monitoring.actuals``) realised and estimated performance.

Spark passes over the data: one small grouped count over the dates' prediction partitions (model
version and rows per date), then ONE aggregation over the scored rows joined with their inputs
(lakeforge.monitoring.aggregates) per model version; the performance adds one over the labelled
predictions. Writes replace the windows they cover (replaceWhere), so a rerun changes no counts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.core.config import PipelineConfig
from lakeforge.core.errors import InputDataError
from lakeforge.core.frames import local_frame
from lakeforge.core.io import write_table
from lakeforge.core.settings import Settings
from lakeforge.monitoring import alerts as al
from lakeforge.monitoring.aggregates import empty_like, summarise
from lakeforge.monitoring.drift import ColumnDrift, column_drift, dataset_drift
from lakeforge.monitoring.metrics import (
    DRIFT_SCHEMA, PROFILE_SCHEMA, TABLE_ROW, WindowKey, drift_rows, profile_rows, summary_from_profile)
from lakeforge.monitoring.reference import load_reference, window_specs
from lakeforge.monitoring.windows import DateBatch, date_batches, granularity, scored_rows, window_start, window_start_col


@dataclass
class WindowReport:
    key: WindowKey
    rows: int
    baseline: list[ColumnDrift]
    dataset: tuple[bool | None, float | None]
    consecutive: list[ColumnDrift] = field(default_factory=list)


@dataclass
class MonitorResult:
    windows: list[WindowReport]
    alerts: list[al.Alert]
    passes: int
    notes: list[str] = field(default_factory=list)
    performance: list[dict] = field(default_factory=list)


def table_names(pipeline: PipelineConfig) -> dict[str, str]:
    n = pipeline.name
    return {"profile": f"{n}_profile_metrics", "drift": f"{n}_drift_metrics", "performance": f"{n}_performance_metrics",
            "alerts": al.alerts_table(n)}


def monitor(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, dates: list[dt.date],
            progress: Callable[[str], None] | None = None) -> MonitorResult:
    """Monitor the run dates ``dates`` (see the module docstring); raises before any write when a
    date has no scored rows or a monitored column is unknown."""
    say = progress or (lambda _m: None)
    cfg = pipeline.monitoring
    batches = date_batches(spark, settings, pipeline, sorted(dates))
    result = MonitorResult([], [], passes=1)
    groups: dict[tuple[str, str], list[DateBatch]] = {}
    for b in batches:
        groups.setdefault((b.model_name, b.model_version), []).append(b)
        if b.input_table is None:
            result.notes.append(f"run date {b.run_date}: no score run recorded in job_runs; only the score is monitored")
    plans = _plans(spark, settings, pipeline, groups)
    if cfg.actuals is not None:  # its table, key and label type checked before any write (lazy: no job)
        from lakeforge.monitoring.performance import labelled_predictions

        labelled_predictions(spark, settings, pipeline, max(dates), max(dates))
    now = dt.datetime.now()
    profile, drift = [], []
    for name, version, group, reference in plans:
        if all(b.input_table is None for b in group):
            reference = {c: s for c, s in reference.items() if c in ("score", "predicted_label")}
        specs = window_specs(reference)
        say(f"model {name} v{version}: {len(group)} run date(s), {len(specs)} column(s), one aggregation")
        rows = scored_rows(spark, settings, pipeline, group, list(reference))
        found = summarise(rows, specs, window_start_col(F.col("run_date"), cfg.granularity_days))
        result.passes += 1
        previous = _previous_window(spark, settings, pipeline, version, min(found))
        for start in sorted(found):
            summaries = {s.name: found[start].get(s.name) or empty_like(s) for s in specs}
            key = WindowKey(start, start + dt.timedelta(days=cfg.granularity_days), granularity(cfg.granularity_days),
                            name, version)
            report = _window(key, summaries, reference, previous, cfg)
            profile += profile_rows(key, summaries, reference, now)
            drift += drift_rows(key, "BASELINE", report.baseline, report.dataset, now)
            if previous is not None:
                drift += drift_rows(key, "CONSECUTIVE", report.consecutive,
                                    dataset_drift(report.consecutive, cfg.dataset_drift_share), now, previous[0])
            previous = (start, summaries)
            result.windows.append(report)
    _write_windows(spark, settings, pipeline, result.windows, profile, drift)
    result.alerts = _drift_alerts(spark, settings, pipeline, result.windows)
    if cfg.actuals is not None:
        from lakeforge.monitoring.performance import monitor_performance

        perf = monitor_performance(spark, settings, pipeline, max(dates), say)
        result.performance, result.passes = perf.rows, result.passes + perf.passes
        result.alerts += perf.alerts
    for alert in result.alerts:
        note = al.notify(alert, cfg.alert.webhook_env)
        if note:
            result.notes.append(note)
    return result


def _plans(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, groups: dict) -> list[tuple]:
    """(model name, version, its dates, its reference restricted to the monitored columns); every
    check before the first write."""
    plans = []
    for (name, version), group in groups.items():
        reference = load_reference(spark, settings, pipeline, name, version)
        columns = pipeline.monitoring.columns or list(reference)
        unknown = [c for c in columns if c not in reference]
        if unknown:
            raise InputDataError(f"monitoring.columns {unknown} are not in the reference of model {name} version "
                                 f"{version} (it has {sorted(reference)}); fix monitoring.columns; nothing was written")
        plans.append((name, version, group, {c: reference[c] for c in columns}))
    return plans


def _window(key: WindowKey, summaries: dict, reference: dict, previous, cfg) -> WindowReport:
    baseline = [column_drift(c, reference[c], s, cfg) for c, s in summaries.items()]
    rows = max((s.n + s.nulls for s in summaries.values()), default=0)
    report = WindowReport(key, rows, baseline, dataset_drift(baseline, cfg.dataset_drift_share))
    if previous is not None:
        before = previous[1]
        report.consecutive = [column_drift(c, before[c], s, cfg) for c, s in summaries.items()
                              if c in before and _same_bins(before[c], s)]
    return report


def _same_bins(a, b) -> bool:
    if hasattr(a, "edges") != hasattr(b, "edges"):
        return False
    return not hasattr(a, "edges") or (len(a.edges) == len(b.edges) and bool((a.edges == b.edges).all()))


def _previous_window(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, version: str,
                     before: dt.date) -> tuple[dt.date, dict] | None:
    """The latest window before ``before`` of the same model version, from the profile table."""
    table = settings.table(table_names(pipeline)["profile"])
    if not spark.catalog.tableExists(table):
        return None
    g = granularity(pipeline.monitoring.granularity_days)
    rows = (spark.table(table).where((F.col("model_version") == version) & (F.col("granularity") == g)
                                      & (F.col("window_start") < F.lit(before)) & (F.col("column_name") != TABLE_ROW))
            .collect())
    if not rows:
        return None
    start = max(r["window_start"] for r in rows)
    return start, {r["column_name"]: summary_from_profile(r) for r in rows if r["window_start"] == start}


def _write_windows(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, windows: list[WindowReport],
                   profile: list[dict], drift: list[dict]) -> None:
    """Replace the windows' rows in both tables (one commit each)."""
    names = table_names(pipeline)
    g = granularity(pipeline.monitoring.granularity_days)
    starts = ", ".join(f"DATE'{w.key.start.isoformat()}'" for w in windows)
    where = f"granularity = '{g}' AND window_start IN ({starts})"
    write_table(local_frame(spark, profile, PROFILE_SCHEMA), settings.table(names["profile"]), replace_where=where)
    write_table(local_frame(spark, drift, DRIFT_SCHEMA), settings.table(names["drift"]), replace_where=where)


def _drift_alerts(spark: SparkSession, settings: Settings, pipeline: PipelineConfig,
                  windows: list[WindowReport]) -> list[al.Alert]:
    """The M-of-N rule over the dataset-drift verdicts of the windows up to each monitored one."""
    cfg = pipeline.monitoring.alert
    names = table_names(pipeline)
    g = granularity(pipeline.monitoring.granularity_days)
    history = (spark.table(settings.table(names["drift"]))
               .where((F.col("column_name") == TABLE_ROW) & (F.col("drift_type") == "BASELINE") & (F.col("granularity") == g))
               .select("window_start", "drifted").collect())
    flags = sorted((r["window_start"], r["drifted"]) for r in history)
    found = []
    for w in windows:
        upto = [d for s, d in flags if s <= w.key.start]
        ok, count = al.confirmed(upto, cfg.breaches, cfg.of_last)
        if ok:
            drifting = [r.column for r in w.baseline if r.drifted]
            found.append(al.Alert(pipeline.name, "drift", w.key.start, w.key.model_name, w.key.model_version,
                                  "confirmed", count, cfg.of_last,
                                  f"dataset drift: {len(drifting)} column(s) drift: {', '.join(drifting[:8])}"))
    al.write_alerts(spark, settings.table(names["alerts"]), pipeline.name, "drift", [w.key.start for w in windows], found)
    return found


def latest_window(day: dt.date, pipeline: PipelineConfig) -> dt.date:
    return window_start(day, pipeline.monitoring.granularity_days)
