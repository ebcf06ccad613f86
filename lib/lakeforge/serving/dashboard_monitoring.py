"""The dashboard's monitoring section: drift and performance over time and the alerts, from the
tables ``lakeforge monitor`` writes (``<pipeline>_drift_metrics``, ``<pipeline>_performance_metrics``,
``<pipeline>_alerts``). Shown only when they exist: before monitoring has run the section says so
in one line.

The drift table has one row per window, column and comparison (``drift_type`` BASELINE against
the training reference, CONSECUTIVE against the previous window), the ``:table`` row carrying the
share of drifting columns. The performance table is read in either shape: long (a ``metric`` and
a ``value`` column) or wide (one numeric column per metric).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

import pyarrow as pa

from lakeforge.core.config import PipelineConfig
from lakeforge.core.settings import Settings
from lakeforge.serving import dashboard_data as data
from lakeforge.serving import dashboard_figures as figures
from lakeforge.serving.dashboard_html import Section

TABLE_ROW = ":table"  # lakeforge.monitoring.metrics' whole-window row
DATE_COLUMNS = ("window_start", "run_date")
MAX_COLUMNS_PLOTTED = 8


def monitoring_tables(pipeline: PipelineConfig) -> dict[str, str]:
    n = pipeline.name
    return {"drift": f"{n}_drift_metrics", "performance": f"{n}_performance_metrics", "alerts": f"{n}_alerts"}


def _rows(settings: Settings, name: str) -> list[dict] | None:
    table = data.open_table(settings, name)
    if table is None:
        return None
    schema = data.arrow_schema(table)
    heavy = {f.name for f in schema if pa.types.is_nested(f.type)}  # bins, categories: not needed here
    rows = table.to_pyarrow_table(columns=[c for c in schema.names if c not in heavy])
    return rows.to_pylist()


def _date_of(row: dict) -> dt.date | None:
    return next((row[c] for c in DATE_COLUMNS if row.get(c) is not None), None)


def _main_granularity(rows: list[dict]) -> list[dict]:
    """The rows of the granularity with the most windows (a daily and a weekly series would mix)."""
    counts = Counter(r.get("granularity") for r in rows)
    if len(counts) <= 1:
        return rows
    chosen = counts.most_common(1)[0][0]
    return [r for r in rows if r.get("granularity") == chosen]


def drift_series(rows: list[dict]) -> tuple[dict, dict, list[dict]]:
    """(share of drifting columns per window, one statistic series per column, the latest
    window's column rows). BASELINE comparisons when there are any."""
    rows = _main_granularity(rows)
    kinds = {r.get("drift_type") for r in rows}
    if "BASELINE" in kinds:
        rows = [r for r in rows if r.get("drift_type") == "BASELINE"]
    share: dict[dt.date, float] = {}
    per_column: dict[str, dict[dt.date, float]] = defaultdict(dict)
    drifted: dict[dt.date, list[bool]] = defaultdict(list)
    for r in rows:
        day = _date_of(r)
        if day is None:
            continue
        if r.get("column_name") == TABLE_ROW:
            if r.get("drift_share") is not None:
                share[day] = r["drift_share"]
            continue
        value = r.get("psi") if r.get("psi") is not None else r.get("statistic")
        if value is not None:
            per_column[r.get("column_name") or "?"][day] = value
        if r.get("drifted") is not None:
            drifted[day].append(bool(r["drifted"]))
    for day, flags in drifted.items():
        share.setdefault(day, sum(flags) / len(flags))
    days = sorted({_date_of(r) for r in rows if _date_of(r) is not None})
    latest = [r for r in rows if days and _date_of(r) == days[-1] and r.get("column_name") != TABLE_ROW]
    top = sorted(per_column, key=lambda c: -max(per_column[c].values()))[:MAX_COLUMNS_PLOTTED]
    series = {c: (sorted(per_column[c]), [per_column[c][d] for d in sorted(per_column[c])]) for c in top}
    return dict(sorted(share.items())), series, latest


def performance_series(rows: list[dict]) -> dict[str, tuple[list, list]]:
    """One series per metric over the windows. Long tables: a ``metric`` column with a ``value``
    or with one number per kind (``realised``, ``estimated``, ``training``: "roc_auc realised"...);
    wide tables: one series per numeric column."""
    rows = _main_granularity(rows)
    found: dict[str, dict[dt.date, float]] = defaultdict(dict)
    for r in rows:
        day = _date_of(r)
        if day is None:
            continue
        metric = r.get("metric")
        for k, v in r.items():
            if not isinstance(v, float) or k == "threshold":
                continue
            name = k if metric is None else str(metric) if k == "value" else f"{metric} {k}"
            found[name][day] = v
    return {m: (sorted(v), [v[d] for d in sorted(v)]) for m, v in sorted(found.items()) if v}


def monitoring_section(settings: Settings, pipeline: PipelineConfig) -> Section:
    s = Section("monitoring", "Monitoring: drift and performance")
    names = monitoring_tables(pipeline)
    drift = _rows(settings, names["drift"])
    perf = _rows(settings, names["performance"])
    alerts = _rows(settings, names["alerts"])
    if drift is None and perf is None and alerts is None:
        s.note("No monitoring yet: 'lakeforge monitor' writes drift, performance and alerts over time.")
        return s
    if drift:
        share, series, latest = drift_series(drift)
        n_drift = sum(1 for r in latest if r.get("drifted"))
        s.summary(f"Drift: <b class=\"windows\">{len(share)}</b> window(s); latest: {n_drift} of {len(latest)} "
                  f"column(s) drifting.")
        if share:
            s.figure(figures.lines_figure("Share of drifting columns per window",
                                          {"drift share": (list(share), list(share.values()))}, "share", "drift"))
        if series:
            s.figure(figures.lines_figure("Drift statistic per column (PSI where computed)", series, "statistic",
                                          "drift"))
        s.table(sorted(latest, key=lambda r: (not r.get("drifted"), str(r.get("column_name")))),
                {"column_name": "column", "test": "test", "statistic": "statistic", "threshold": "threshold",
                 "psi": "PSI", "verdict": "verdict"}, limit=25)
    if perf:
        series = performance_series(perf)
        s.summary(f"Performance: {len(series)} metric(s) over {len({_date_of(r) for r in perf})} window(s).")
        if series:
            s.figure(figures.lines_figure("Performance per window", series, "value", "performance"))
    if alerts is not None:
        s.parts.append("<h3>Alerts</h3>")
        if not alerts:
            s.note("No alerts.")
        ordered = sorted(alerts, key=lambda r: str(r.get("created_at") or ""), reverse=True)
        s.table(ordered, {k: k.replace("_", " ") for k in ("created_at", "alert_type", "window_start", "model_version",
                                                          "status", "breaches", "of_last", "detail") if alerts and k in alerts[0]},
                limit=20)
    return s

