"""The monitoring report: one self-contained HTML page per pipeline (plotly.js inlined once, no
CDN) from the tables ``lakeforge monitor`` writes, aggregates only (never a scored row):

- drift per column and window against the training reference (a heat map of PSI, the cells the
  column's test found drifting marked), and the share of drifting columns with its threshold;
- the score's distribution in each recent window beside the reference's (from the bins kept in
  ``<pipeline>_profile_metrics`` and ``<pipeline>_monitor_reference``);
- realised and estimated (label-free) performance per window with the training value and the
  alert threshold (``<pipeline>_performance_metrics``);
- the alerts, the open ones (confirmed, not answered by a retrain) first.

The tables are read without a JVM (the dashboard's deltalake reader, lakeforge.serving.
dashboard_data); the page uses the dashboard's sections, table and page template. A view whose
table does not exist yet says what to run instead.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from lakeforge.core.config import PipelineConfig
from lakeforge.core.errors import InputDataError
from lakeforge.core.settings import Settings
from lakeforge.monitoring.job import table_names
from lakeforge.monitoring.metrics import TABLE_ROW, summary_from_profile
from lakeforge.monitoring.performance import METRICS
from lakeforge.monitoring.reference import reference_table
from lakeforge.monitoring.statistics import NumericHist
from lakeforge.monitoring.windows import granularity
from lakeforge.serving import dashboard_data as data
from lakeforge.serving import dashboard_figures as figures
from lakeforge.serving.dashboard import plotly_js
from lakeforge.serving.dashboard_html import PAGE, Section

COLOURS = {
    "share": figures.COLOURS["drift"],  # indigo: the share of drifting columns
    "threshold": "#dc2626",  # red dashes: an alert threshold
    "reference": "#94a3b8",  # slate bars: the training reference's score distribution
    "latest": figures.COLOURS["score"],  # teal: the latest window's score distribution
    "realised": figures.COLOURS["performance"],  # dark teal: realised metric
    "estimated": "#d97706",  # amber dashes: the label-free estimate
    "training": "#7c3aed",  # violet dots: the metric at training
}
HEATMAP_SCALE = [[0.0, "#f8fafc"], [0.2, "#c7d2fe"], [0.5, "#818cf8"], [1.0, "#312e81"]]
PSI_CAP = 0.5  # the heat map's colour saturates here (PSI above 0.25 is already a large shift)
SCORE_BINS = 20
SCORE_WINDOWS = 6  # the score distributions of the latest windows drawn
WIDE = "<style>#drift, #alerts { grid-column: 1 / -1; }</style>"  # the heat map and the alerts: full width
DRIFT_COLUMNS = ("window_start", "granularity", "model_name", "model_version", "column_name", "test", "statistic",
                 "threshold", "drifted", "verdict", "psi", "rows", "drift_share")
PERFORMANCE_COLUMNS = ("window_start", "granularity", "model_name", "model_version", "metric", "realised", "estimated",
                       "training", "rows", "labelled_rows", "breach")
ALERT_COLUMNS = ("pipeline", "alert_type", "window_start", "model_name", "model_version", "status", "breaches", "of_last",
                 "detail", "created_at")
BIN_COLUMNS = ("window_start", "granularity", "model_name", "model_version", "column_name", "data_type", "count",
               "num_nulls", "bin_edges", "bin_counts", "bin_sums", "sumsq", "min", "max", "exact")


@dataclass
class ReportData:
    """What the page shows; None: the table does not exist yet."""

    drift: list[dict] | None = None  # BASELINE rows of the configured granularity
    scores: list[dict] | None = None  # the score's profile rows (its bins) per window
    reference: dict | None = None  # the score's reference row of the latest window's model version
    performance: list[dict] | None = None
    alerts: list[dict] | None = None
    tables: dict[str, str] = field(default_factory=dict)


def _read(settings: Settings, name: str, columns, filters: list) -> list[dict] | None:
    table = data.read_rows(settings, name, list(columns), filters)
    return None if table is None else table.to_pylist()


def report_data(settings: Settings, pipeline: PipelineConfig) -> ReportData:
    """The monitoring tables' rows the report needs (a few rows per window and column)."""
    names = table_names(pipeline)
    g = granularity(pipeline.monitoring.granularity_days)
    found = ReportData(tables={k: settings.table(v) for k, v in names.items()})
    found.drift = _read(settings, names["drift"], DRIFT_COLUMNS,
                        [("drift_type", "=", "BASELINE"), ("granularity", "=", g)])
    found.scores = _read(settings, names["profile"], BIN_COLUMNS, [("column_name", "=", "score"), ("granularity", "=", g)])
    found.performance = _read(settings, names["performance"], PERFORMANCE_COLUMNS, [("granularity", "=", g)])
    found.alerts = _read(settings, names["alerts"], ALERT_COLUMNS, [("pipeline", "=", pipeline.name)])
    if found.scores:
        latest = max(found.scores, key=lambda r: r["window_start"])
        refs = _read(settings, reference_table(pipeline),
                     ("model_name", "model_version", "edges", "counts", "sums", "nulls", "sumsq", "min", "max", "exact"),
                     [("column_name", "=", "score"), ("model_name", "=", latest["model_name"]),
                      ("model_version", "=", latest["model_version"])])
        found.reference = refs[0] if refs else None
    return found


def _styled(title: str, y_title: str, x_title: str | None = None) -> go.Figure:
    """An empty figure in the dashboard's style (template, title, height, margins, legend)."""
    fig = figures.lines_figure(title, {}, y_title, "drift")
    fig.update_xaxes(title=x_title)
    return fig


def _day(d: dt.date) -> str:
    return d.isoformat()


def drift_heatmap(rows: list[dict]) -> go.Figure:
    """PSI per column (rows, the most drifted first) and window (columns); the cells whose test
    found drift are marked with a cross; the hover names the test, its statistic and threshold."""
    cells = [r for r in rows if r["column_name"] != TABLE_ROW]
    days = sorted({r["window_start"] for r in cells})
    by = {(r["column_name"], r["window_start"]): r for r in cells}
    worst = {}
    for r in cells:
        worst[r["column_name"]] = max(worst.get(r["column_name"], -1.0), r["psi"] if r["psi"] is not None else -1.0)
    columns = sorted(worst, key=lambda c: (-worst[c], c))
    z, marks, hover = [], [], []
    for c in columns:
        line = [by.get((c, d)) for d in days]
        z.append([None if r is None or r["psi"] is None else min(r["psi"], PSI_CAP) for r in line])
        marks.append(["✕" if r is not None and r["drifted"] else "" for r in line])
        hover.append([_cell_hover(r) for r in line])
    fig = _styled(f"Drift per column and window: PSI against the training reference ({len(columns)} columns)",
                  "column")
    fig.add_trace(go.Heatmap(x=[_day(d) for d in days], y=columns, z=z, text=marks, texttemplate="%{text}",
                             customdata=hover, hovertemplate="%{y} %{x}<br>%{customdata}<extra></extra>",
                             colorscale=HEATMAP_SCALE, zmin=0, zmax=PSI_CAP, xgap=2, ygap=2,
                             colorbar={"title": "PSI", "thickness": 12}))
    fig.update_xaxes(type="category")
    fig.update_yaxes(autorange="reversed", automargin=True, title=None)
    fig.update_layout(height=max(figures.HEIGHT, 110 + 24 * len(columns)), showlegend=False)
    return fig


def _cell_hover(r: dict | None) -> str:
    if r is None:
        return "not monitored"
    stat = "-" if r["statistic"] is None else f"{r['statistic']:.4g}"
    psi = "-" if r["psi"] is None else f"{r['psi']:.4f}"
    return f"{r['verdict']}: {r['test']} {stat} (threshold {r['threshold']}), PSI {psi}, {r['rows']:,} rows"


def share_figure(rows: list[dict], share: float) -> go.Figure:
    """The share of drifting columns per window (the ``:table`` rows) and the dataset threshold."""
    table = sorted((r for r in rows if r["column_name"] == TABLE_ROW and r["drift_share"] is not None),
                   key=lambda r: r["window_start"])
    x = [_day(r["window_start"]) for r in table]
    fig = figures.lines_figure("Share of drifting columns per window",
                               {"drifting share": (x, [r["drift_share"] for r in table])}, "share", "drift")
    fig.add_hline(y=share, line={"color": COLOURS["threshold"], "dash": "dash", "width": 2},
                  annotation_text=f"dataset drift at {share:.0%}", annotation_position="top left")
    fig.update_xaxes(type="category", title=None)  # the ticks are the windows' first days
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    return fig


def _hist(summary: NumericHist, grid: np.ndarray) -> np.ndarray:
    """Shares of the rows in the ``grid``'s equal-width bins, each stored bin's rows at its mean."""
    means, counts = summary.atoms()
    shares = np.histogram(np.clip(means, grid[0], grid[-1]), bins=grid, weights=counts)[0]
    return shares / max(counts.sum(), 1)


def reference_summary(row: dict) -> NumericHist:
    return NumericHist(np.array(row["edges"], dtype=float), np.array(row["counts"], dtype=np.int64),
                       np.array(row["sums"], dtype=float), int(row["nulls"] or 0), float(row["sumsq"] or 0.0),
                       row["min"], row["max"], bool(row["exact"]))


def score_figure(windows: list[dict], reference: dict | None) -> go.Figure:
    """The reference's score distribution (bars) and the latest windows' (lines, the latest bold),
    on ``SCORE_BINS`` equal-width bins (0..1 for probabilities)."""
    recent = sorted(windows, key=lambda r: r["window_start"])[-SCORE_WINDOWS:]
    summaries = [(r["window_start"], summary_from_profile(r)) for r in recent]
    ref = reference_summary(reference) if reference else None
    every = [s for _, s in summaries] + ([ref] if ref else [])
    lo = min((s.minimum for s in every if s.minimum is not None), default=0.0)
    hi = max((s.maximum for s in every if s.maximum is not None), default=1.0)
    lo, hi = (0.0, 1.0) if lo >= 0 and hi <= 1 else (lo, hi if hi > lo else lo + 1)
    grid = np.linspace(lo, hi, SCORE_BINS + 1)
    mids = ((grid[:-1] + grid[1:]) / 2).tolist()
    fig = _styled("Score distribution: the latest windows against the training reference", "share of rows", "score")
    if ref is not None and ref.n:
        fig.add_trace(go.Bar(x=mids, y=_hist(ref, grid).tolist(), name=f"reference ({ref.n:,} rows)",
                             marker={"color": COLOURS["reference"], "line": {"width": 0}}, width=(hi - lo) / SCORE_BINS))
    for i, (start, s) in enumerate(summaries):
        latest = i == len(summaries) - 1
        if not s.n:
            continue
        fig.add_trace(go.Scatter(x=mids, y=_hist(s, grid).tolist(), mode="lines+markers" if latest else "lines",
                                 name=f"{_day(start)} ({s.n:,})", opacity=1.0 if latest else 0.45,
                                 line={"width": 3.5 if latest else 1.5, **({"color": COLOURS["latest"]} if latest else {})},
                                 marker={"size": 7, "color": COLOURS["latest"]}))
    fig.update_yaxes(tickformat=".0%")
    fig.update_layout(bargap=0.05)
    return fig


def primary_metric(pipeline: PipelineConfig) -> str:
    return pipeline.model.metric if pipeline.model.metric in METRICS else "roc_auc"


def performance_figure(rows: list[dict], metric: str, drop: float) -> go.Figure:
    """One metric per window: realised (from the labels), estimated (from the scores), the value
    at training and the alert threshold (training - ``drop``); breaching windows ringed red."""
    mine = sorted((r for r in rows if r["metric"] == metric), key=lambda r: r["window_start"])
    x = [_day(r["window_start"]) for r in mine]
    fig = _styled(f"{metric} per window: realised and estimated", metric)
    fig.add_trace(go.Scatter(x=x, y=[r["estimated"] for r in mine], mode="lines+markers", name="estimated (no labels)",
                             line={"color": COLOURS["estimated"], "width": 2, "dash": "dash"}, marker={"size": 8}))
    fig.add_trace(go.Scatter(x=x, y=[r["realised"] for r in mine], mode="lines+markers", name="realised (labels)",
                             line={"color": COLOURS["realised"], "width": 3}, marker={"size": 10}))
    training = next((r["training"] for r in reversed(mine) if r["training"] is not None), None)
    if training is not None:
        fig.add_trace(go.Scatter(x=x, y=[training] * len(x), mode="lines", name=f"training {training:.3f}",
                                 line={"color": COLOURS["training"], "width": 2, "dash": "dot"}))
        fig.add_trace(go.Scatter(x=x, y=[training - drop] * len(x), mode="lines", name=f"alert below {training - drop:.3f}",
                                 line={"color": COLOURS["threshold"], "width": 2, "dash": "dash"}))
    breach = [r for r in mine if r["breach"]]
    if breach:
        fig.add_trace(go.Scatter(x=[_day(r["window_start"]) for r in breach],
                                 y=[r["realised"] if r["realised"] is not None else r["estimated"] for r in breach],
                                 mode="markers", name="breach", marker={"size": 18, "color": "rgba(0,0,0,0)",
                                                                        "line": {"color": COLOURS["threshold"], "width": 3}}))
    fig.update_xaxes(type="category")
    return fig


def open_alerts(alerts: list[dict]) -> list[dict]:
    """Confirmed drift / performance alerts not answered by a retrain, the latest first."""
    return sorted((a for a in alerts if a.get("status") == "confirmed"), key=lambda a: a.get("created_at") or dt.datetime.min,
                  reverse=True)


def drift_section(found: ReportData, pipeline: PipelineConfig) -> Section:
    s = Section("drift", "Drift per column and window")
    if not found.drift:
        s.note(f"No drift metrics yet ({found.tables['drift']}): run 'lakeforge monitor {pipeline.file}'.")
        return s
    table = sorted((r for r in found.drift if r["column_name"] == TABLE_ROW), key=lambda r: r["window_start"])
    if table:
        last = table[-1]
        columns = [r for r in found.drift if r["window_start"] == last["window_start"] and r["column_name"] != TABLE_ROW]
        drifting = sorted(r["column_name"] for r in columns if r["drifted"])
        s.summary(f"<b class=\"windows\">{len(table)}</b> window(s); latest {last['window_start']} "
                  f"(model v{html.escape(str(last['model_version']))}, {last['rows'] or 0:,} rows): "
                  f"<b>{html.escape(last['verdict'] or '')}</b>, {len(drifting)} of {len(columns)} column(s) drifting"
                  + (f": {html.escape(', '.join(drifting[:10]))}" if drifting else "") + ".")
    s.figure(drift_heatmap(found.drift))
    s.figure(share_figure(found.drift, pipeline.monitoring.dataset_drift_share))
    return s


def scores_section(found: ReportData, pipeline: PipelineConfig) -> Section:
    s = Section("scores", "Score distribution against the reference")
    numeric = [r for r in found.scores or [] if r["data_type"] == "numeric"]
    if not numeric:
        s.note(f"No score profile yet ({found.tables['profile']}): run 'lakeforge monitor {pipeline.file}'.")
        return s
    if found.reference is None:
        s.note("The model version's reference has no score (it is stored by 'lakeforge train'): windows only.")
    s.figure(score_figure(numeric, found.reference))
    return s


def performance_section(found: ReportData, pipeline: PipelineConfig) -> Section:
    s = Section("performance", "Performance: realised and estimated")
    if not found.performance:
        s.note("No performance metrics yet: set monitoring.actuals (a table of true outcomes) and run "
               f"'lakeforge monitor {pipeline.file}'.")
        return s
    metric = primary_metric(pipeline)
    s.figure(performance_figure(found.performance, metric, pipeline.monitoring.alert.performance_drop))
    latest = max(r["window_start"] for r in found.performance)
    rows = sorted((r for r in found.performance if r["window_start"] == latest), key=lambda r: METRICS.index(r["metric"])
                  if r["metric"] in METRICS else 99)
    s.parts.append(f"<h3>Window {latest}</h3>")
    s.table(rows, {"metric": "metric", "realised": "realised", "estimated": "estimated", "training": "training",
                   "labelled_rows": "labelled rows", "rows": "rows", "breach": "breach"})
    return s


def alerts_section(found: ReportData, pipeline: PipelineConfig) -> Section:
    s = Section("alerts", "Alerts")
    if found.alerts is None:
        s.note(f"No alerts table yet ({found.tables['alerts']}): 'lakeforge monitor' writes it.")
        return s
    still = open_alerts(found.alerts)
    s.summary(f"<b class=\"open\">{len(still)}</b> open alert(s) (confirmed when {pipeline.monitoring.alert.breaches} "
              f"of the last {pipeline.monitoring.alert.of_last} windows breach, the latest too); "
              f"{len(found.alerts)} in the table.")
    columns = {k: k.replace("_", " ") for k in ("created_at", "alert_type", "window_start", "model_version", "status",
                                               "breaches", "of_last", "detail")}
    if still:
        s.parts.append("<h3>Open</h3>")
        s.table(still, columns, limit=20)
    others = sorted((a for a in found.alerts if a not in still), key=lambda a: a.get("created_at") or dt.datetime.min,
                    reverse=True)
    if others:
        s.parts.append("<h3>Answered and retrain decisions</h3>")
        s.table(others, columns, limit=20)
    return s


def render_report(settings: Settings, pipeline: PipelineConfig) -> str:
    """The whole page (the tables read once)."""
    found = report_data(settings, pipeline)
    sections = [build(found, pipeline) for build in (drift_section, scores_section, performance_section, alerts_section)]
    nav = " · ".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
    return PAGE.format(
        title=html.escape(f"lakeforge monitoring: {pipeline.name}"), plotly=plotly_js(), nav=nav,
        header=html.escape(f"model {pipeline.model.registered_name} · {granularity(pipeline.monitoring.granularity_days)} "
                           f"windows · tables {', '.join(found.tables.values())}"),
        generated=f"{dt.datetime.now():%Y-%m-%d %H:%M:%S}", body=WIDE + "".join(s.html() for s in sections))


def report_path(settings: Settings, pipeline: PipelineConfig) -> Path:
    """``<reports_dir>/<pipeline>/monitor.html``."""
    if not settings.reports_dir:
        raise InputDataError("reports_dir is not set in the settings; set it or pass --out PATH for the monitoring report")
    return settings.path(settings.reports_dir) / pipeline.name / "monitor.html"


def write_report(settings: Settings, pipeline: PipelineConfig, path: str | Path | None = None) -> Path:
    """Render the report and write it atomically (readers never see half a page); returns its path."""
    target = Path(path) if path is not None else report_path(settings, pipeline)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(render_report(settings, pipeline), encoding="utf-8")
    tmp.replace(target)
    return target
