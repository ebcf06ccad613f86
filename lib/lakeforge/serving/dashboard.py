"""The dashboard: one HTML page with interactive Plotly figures (plotly.js bundled inline once, no
CDN) of a pipeline's last training, model registry history, predictions per run date, job runs,
data-quality results and, once monitoring has written them, drift and performance over time.

``mount_dashboard(app, settings, pipeline)`` adds ``GET /`` (the page) and ``GET /dashboard.json``
(the same aggregates as JSON) to a FastAPI app: ``lakeforge serve`` mounts it beside the API,
``lakeforge dashboard`` serves it alone. Every request reads the tables again (without a JVM:
lakeforge.serving.dashboard_data), so the page is as fresh as the last job. A section whose
tables do not exist yet says what to run instead of failing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import html
import importlib
import threading
import time
from collections.abc import Callable

from plotly.offline import get_plotlyjs

from lakeforge.core.config import PipelineConfig
from lakeforge.core.settings import Settings
from lakeforge.serving import dashboard_data as data
from lakeforge.serving import dashboard_figures as figures
from lakeforge.serving.dashboard_html import PAGE, Section
from lakeforge.serving.dashboard_monitoring import monitoring_section


def training_section(settings: Settings, pipeline: PipelineConfig) -> Section:
    s = Section("leaderboard", "Last training: leaderboard")
    board = data.last_leaderboard(settings, pipeline)
    if board is None:
        s.note("No training yet: the leaderboard appears after 'lakeforge train' "
               + ("" if pipeline.tables.leaderboard else "(set tables.leaderboard in the pipeline to keep it)"))
        return s
    best = board.best
    if best is not None:
        s.summary(f"Training of <b>{board.run_date}</b>: best <b>{html.escape(best['algorithm'])}</b> "
                  f"with cross-validated {html.escape(board.metric)} <b class=\"best\">{best['cv_mean']:.4f}</b> "
                  f"(&plusmn; {best['cv_std'] or 0:.4f}), registered as version {html.escape(str(best['model_version']))}; "
                  f"{len(board.rows)} candidates.")
    s.figure(figures.leaderboard_figure(board))
    s.table(board.rows, {"rank": "#", "algorithm": "algorithm", "params": "params", "cv_mean": "mean", "cv_std": "std",
                         "fit_seconds": "fit s", "status": "status", "model_version": "version"}, limit=50)
    return s


def registry_section(settings: Settings, pipeline: PipelineConfig) -> Section:
    name = pipeline.model.registered_name
    s = Section("registry", f"Champion / challenger history: model {name}")
    versions, why = data.registry_history(settings, pipeline)
    if not versions:
        s.note(f"No registered version to show: {why or 'nothing trained yet'}.")
        return s
    champion = next((v for v in versions if "champion" in v.aliases), None)
    s.summary(f"{len(versions)} version(s); champion: <b>{'v' + str(champion.version) if champion else 'none'}</b>.")
    s.figure(figures.registry_figure(versions))
    rows = [{"version": f"v{v.version}", "aliases": ", ".join(v.aliases), "run_date": v.run_date, "created": v.created,
             "score": v.test_score, "promoted": v.promoted, "decision": v.decision} for v in reversed(versions)]
    metric = next((v.metric for v in versions if v.metric), "metric")
    s.table(rows, {"version": "version", "aliases": "aliases", "run_date": "run date", "score": f"test {metric}",
                   "promoted": "promoted", "decision": "promotion decision"})
    return s


def predictions_section(settings: Settings, pipeline: PipelineConfig) -> Section:
    s = Section("predictions", "Predictions per run date")
    pred = data.predictions_by_date(settings, pipeline)
    if pred is None:
        s.note(f"No predictions yet: {settings.table(pipeline.tables.predictions)} is written by 'lakeforge score'.")
        return s
    total = sum(pred.volume.values())
    last = pred.days[-1] if pred.days else None
    text = f"{html.escape(pred.table)}: <b class=\"dates\">{len(pred.volume)}</b> run dates, {total:,} rows"
    if last is not None and last.mean is not None:
        text += f"; {last.run_date}: {last.rows:,} rows, mean score {last.mean:.4f}"
        if last.positive_share is not None:
            text += f", {last.positive_share:.1%} predicted 1"
    s.summary(text + ".")
    s.figure(figures.volume_figure(pred))
    if any(d.p50 is not None for d in pred.days):
        s.figure(figures.score_figure(pred))
        s.figure(figures.histogram_figure(pred))
    rows = [{"run_date": d.run_date, "rows": d.rows, "mean": d.mean, "p10": d.p10, "p50": d.p50, "p90": d.p90,
             "positive_share": d.positive_share} for d in reversed(pred.days)]
    s.table(rows, {"run_date": "run date", "rows": "rows", "mean": "mean", "p10": "p10", "p50": "median",
                   "p90": "p90", "positive_share": "share predicted 1"}, limit=30)
    return s


def runs_section(settings: Settings, pipeline: PipelineConfig) -> Section:
    s = Section("runs", "Job runs")
    runs = data.job_runs(settings, pipeline)
    if not runs:
        s.note("No job runs recorded yet (table job_runs: every lakeforge ingest / train / score run appends one).")
        return s
    failed = [r for r in runs if r["status"] != "succeeded"]
    jobs = sorted({r["job"] for r in runs})
    s.summary(f"{len(runs)} runs ({', '.join(jobs)}), <b class=\"failed\">{len(failed)}</b> failed; "
              f"last: {html.escape(runs[0]['job'])} of {runs[0]['run_date']} {html.escape(runs[0]['status'])}.")
    s.figure(figures.runs_figure(runs))
    columns = {"started_at": "started (UTC)", "job": "job", "run_date": "run date", "status": "status",
               "seconds": "seconds", "rows_out": "rows out", "model_version": "model", "message": "message"}
    shown = [{**r, "seconds": None if r["duration_s"] is None else f"{r['duration_s']:.1f}"} for r in runs]
    failed = [r for r in shown if r["status"] != "succeeded"]
    if failed:
        s.parts.append("<h3>Failures</h3>")
        s.table(failed, columns, limit=10)
    s.parts.append("<h3>Latest runs</h3>")
    s.table(shown, columns, limit=15)
    return s


def quality_section(settings: Settings, pipeline: PipelineConfig) -> Section:
    s = Section("quality", "Data quality")
    quality = data.quality_results(settings, pipeline)
    loads = data.ingest_runs(settings, pipeline)
    if quality is None and not loads:
        s.note("No loads yet: 'lakeforge ingest' records each load (ingest_runs) and its checks (dq_results).")
        return s
    if quality is not None:
        last = quality.loads[-1]
        s.summary(f"Latest load ({last['run_date']}, {html.escape(last['table_name'] or '')}): "
                  f"<b class=\"checks\">{last['checks']}</b> checks, {last['failed_errors']} error(s) failed, "
                  f"{last['failed_warnings']} warning(s) failed.")
        s.figure(figures.quality_figure(quality))
        s.table(quality.latest, {"check_name": "check", "severity": "severity", "passed": "passed",
                                 "failing_rows": "failing rows", "total_rows": "rows", "detail": "detail"}, limit=100)
    else:
        s.note("No data-quality checks configured (source.checks): only the loads are shown.")
    if loads:
        s.parts.append("<h3>Loads</h3>")
        s.table(loads, {"started_at": "started (UTC)", "run_date": "run date", "source_name": "source",
                        "table_name": "table", "mode": "mode", "status": "status", "rows_read": "read",
                        "rows_loaded": "loaded", "rows_quarantined": "quarantined", "table_version": "version"},
                limit=10)
    return s


SECTIONS: list[Callable[[Settings, PipelineConfig], Section]] = [
    training_section, registry_section, predictions_section, runs_section, quality_section, monitoring_section]


def _safe(build: Callable[[Settings, PipelineConfig], Section], settings: Settings, pipeline: PipelineConfig) -> Section:
    """A section, or a note when its tables could not be read (the rest of the page still shows)."""
    try:
        return build(settings, pipeline)
    except Exception as exc:  # noqa: BLE001 - one unreadable table must not take the page down
        s = Section(build.__name__.removesuffix("_section"), build.__name__.removesuffix("_section").title())
        s.note(f"This section could not be read: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
        return s


@functools.cache
def plotly_js() -> str:
    """plotly.js (about 4.6 MB), read once per process."""
    return get_plotlyjs()


def render_page(settings: Settings, pipeline: PipelineConfig) -> str:
    """The whole dashboard page."""
    t0 = time.perf_counter()
    sections = [_safe(build, settings, pipeline) for build in SECTIONS]
    nav = " · ".join(f'<a href="#{s.id}">{html.escape(s.title.split(":")[0])}</a>' for s in sections if s.parts)
    took = time.perf_counter() - t0
    return PAGE.format(
        title=html.escape(f"lakeforge: {pipeline.name}"), plotly=plotly_js(), nav=nav,
        header=html.escape(f"{pipeline.name} · model {pipeline.model.registered_name} · tables in "
                           f"{settings.warehouse} ({settings.catalog.database})"),
        generated=f"{dt.datetime.now():%Y-%m-%d %H:%M:%S}, read in {took:.2f} s",
        body="".join(s.html() for s in sections if s.parts))


def page_data(settings: Settings, pipeline: PipelineConfig) -> dict:
    """The aggregates behind the page, for other dashboards (GET /dashboard.json)."""
    versions, why = data.registry_history(settings, pipeline)
    pred = data.predictions_by_date(settings, pipeline)
    board = data.last_leaderboard(settings, pipeline)
    return {
        "pipeline": pipeline.name,
        "leaderboard": None if board is None else board.__dict__,
        "registry": [v.__dict__ for v in versions], "registry_note": why,
        "predictions": None if pred is None else {"table": pred.table, "volume": {str(k): v for k, v in pred.volume.items()},
                                                  "days": [d.__dict__ for d in pred.days], "bin_edges": pred.bin_edges},
        "job_runs": data.job_runs(settings, pipeline, limit=100),
        "quality": (lambda q: None if q is None else q.__dict__)(data.quality_results(settings, pipeline)),
    }


def _warm_up() -> None:
    plotly_js()
    with contextlib.suppress(Exception):
        importlib.import_module("mlflow")


def mount_dashboard(app, settings: Settings, pipeline: PipelineConfig) -> None:
    """Add ``GET /`` (the page) and ``GET /dashboard.json`` to the FastAPI ``app``. The routes are
    plain functions: FastAPI runs them in its thread pool, off the event loop."""
    from fastapi.responses import HTMLResponse, Response

    # The first page would wait for MLflow's import (seconds) and plotly.js: done now, aside.
    threading.Thread(target=_warm_up, name="dashboard-warm-up", daemon=True).start()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard_page() -> HTMLResponse:
        return HTMLResponse(render_page(settings, pipeline))

    @app.get("/dashboard.json", include_in_schema=False)
    def dashboard_json() -> Response:
        return Response(data.to_json(page_data(settings, pipeline)), media_type="application/json")
