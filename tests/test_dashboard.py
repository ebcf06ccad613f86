"""The dashboard (lakeforge.serving.dashboard): real tables written by lakeforge's own jobs on a
Telco slice (ingest, two trainings, scoring on three run dates, a failed run), the page served by
a real uvicorn server on 127.0.0.1, opened in headless Chromium; the numbers on the page checked
against the jobs' results and Spark's own aggregation of the same tables, the plots against the
screenshot's pixels.

``LAKEFORGE_DASHBOARD_SCREENSHOT=docs/img/dashboard.png`` keeps the screenshot (the README's).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import ROOT, free_port, TELCO_CSV, write_overlay, write_pipeline
from html_text import section, visible_text
from lakeforge.app import runner
from lakeforge.core.config import load_pipeline
from lakeforge.core.errors import InputDataError
from lakeforge.core.settings import load_settings
from lakeforge.serving.dashboard import render_page
from lakeforge.serving.dashboard_data import table_path
from lakeforge.serving.dashboard_figures import COLOURS

pytestmark = pytest.mark.slow
DAYS = [dt.date(2026, 5, 1), dt.date(2026, 5, 2), dt.date(2026, 5, 3)]
NAME = "dashboard_telco"
FULL_GRID = {"logistic_regression": {"regParam": [0.01, 0.1]}, "decision_tree": {"maxDepth": [3]}}


def _pipeline_file(folder: Path, csv: Path, algorithms: dict, bronze: str = f"{NAME}_bronze") -> Path:
    checks = [{"type": "not_null", "column": "customerID"}, {"type": "row_count", "min": 1000},
              {"type": "allowed_values", "column": "Churn", "values": ["Yes", "No"]},
              {"type": "range", "column": "tenure", "min": 1, "max": 72, "severity": "warn"}]  # tenure 0 exists
    return write_pipeline(folder, **{
        "name": NAME, "source.path": str(csv), "source.checks": checks, "tables.bronze": bronze,
        "tables.predictions": f"{NAME}_predictions", "tables.leaderboard": f"{NAME}_leaderboard",
        "model.registered_name": NAME, "model.search": "train_validation_split", "model.max_iter": 10,
        "model.algorithms": algorithms})


@pytest.fixture(scope="module")
def project(spark, settings, tmp_path_factory):
    """ingest + a weak training + scoring of day 1; a better training on day 2 (promoted); scoring
    of days 2 and 3; a training that fails (its bronze table does not exist)."""
    folder = tmp_path_factory.mktemp("dashboard")
    csv = folder / "telco_1000.csv"
    csv.write_text("\n".join(TELCO_CSV.read_text().splitlines()[:1001]) + "\n")
    weak = _pipeline_file(folder / "weak", csv, {"decision_tree": {"maxDepth": [2]}})
    full = _pipeline_file(folder / "full", csv, FULL_GRID)
    broken = _pipeline_file(folder / "broken", csv, FULL_GRID, bronze=f"{NAME}_missing")
    ctx = runner.Context(None, [], False, settings)
    first = runner.run_job(ctx, "run", str(weak), DAYS[:1], [
        ("ingest", runner.ingest_stage), ("train", runner.train_stage), ("score", runner.score_stage)])
    [second] = runner.run_job(ctx, "train", str(full), DAYS[1:2], [("train", runner.train_stage)])
    scores = runner.run_job(ctx, "score", str(full), DAYS[1:], [("score", runner.score_with_alias(None, True))])
    with pytest.raises(InputDataError):
        runner.run_job(ctx, "train", str(broken), DAYS[2:], [("train", runner.train_stage)])
    return {"pipeline": load_pipeline(full), "ingest": first[0], "trains": [first[1], second],
            "scores": [first[2], *scores]}



@pytest.fixture(scope="module")
def server(project, settings):
    """``lakeforge dashboard``'s app on a real uvicorn server (a thread of this process)."""
    import uvicorn

    from lakeforge.app.cli_dashboard import dashboard_app

    config = uvicorn.Config(dashboard_app(settings, project["pipeline"]), host="127.0.0.1", port=free_port(),
                            log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{config.port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def page(server) -> str:
    answer = httpx.get(server + "/", timeout=120)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    return answer.text


def test_the_page_bundles_plotly_once_and_loads_nothing_from_outside(page):
    assert page.count("* plotly.js v") == 1
    assert len(re.findall(r"Plotly\.newPlot", page)) >= 7  # leaderboard, registry, 3 predictions, runs, quality
    assert not re.search(r"<(script|link)[^>]+(src|href)=", page)
    assert len(page) > 3_000_000  # plotly.js inline


def test_leaderboard_section_holds_the_last_trainings_candidates(page, project):
    best = next(r for r in project["trains"][1].leaderboard if r["is_best"])
    text = visible_text(section(page, "leaderboard"))
    assert f"Training of {DAYS[1]}" in text and f"{best['cv_mean']:.4f}" in text
    assert f"best {best['algorithm']}" in text and f"version {project['trains'][1].model.version}" in text
    assert "3 candidates" in text and "decision_tree" in text
    assert section(page, "leaderboard").count("<tr>") == 1 + 3  # the heading and one row per candidate


def test_registry_section_shows_versions_scores_and_decisions(page, project):
    first, second = project["trains"]
    assert second.promoted and second.model.version == str(int(first.model.version) + 1)
    text = visible_text(section(page, "registry"))
    assert f"champion: v{second.model.version}" in text
    for res in (first, second):
        assert f"{res.test_metrics['roc_auc']:.4f}" in text and res.decision in text


def test_predictions_section_matches_sparks_aggregation(page, project, spark, settings):
    text = visible_text(section(page, "predictions"))
    assert "3 run dates, 3,000 rows" in text
    assert [s.write.rows_written for s in project["scores"]] == [1000, 1000, 1000]
    expected = spark.sql(
        f"SELECT run_date, count(*) n, avg(score) mean, percentile(score, 0.1) p10, percentile(score, 0.5) p50, "
        f"percentile(score, 0.9) p90, avg(predicted_label) positive FROM {settings.table(f'{NAME}_predictions')} "
        "GROUP BY run_date").collect()
    assert len(expected) == 3
    for r in expected:
        row = f"{r['run_date']} 1,000 {r['mean']:.4f} {r['p10']:.4f} {r['p50']:.4f} {r['p90']:.4f} {r['positive']:.4f}"
        assert row in text
    assert expected[0]["mean"] != pytest.approx(expected[-1]["mean"])  # day 1: the weak tree, later: the champion


def test_runs_and_quality_sections(page, project):
    runs = visible_text(section(page, "runs"))
    assert "7 runs (ingest, score, train), 1 failed" in runs and f"{NAME}_missing does not exist" in runs
    quality = visible_text(section(page, "quality"))
    checks = project["ingest"][0].checks
    assert len(checks) == 4 and [c.passed for c in checks].count(False) == 1
    assert "4 checks, 0 error(s) failed, 1 warning(s) failed" in quality and "range(tenure)" in quality
    assert "No monitoring yet" in visible_text(section(page, "monitoring"))


def _pixels_near(img: np.ndarray, colour: str, tolerance: int = 6) -> int:
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(img[:, :, :3].astype(int) - rgb).max(axis=2) <= tolerance).sum())


def test_dashboard_renders_its_plots_with_data_in_headless_chromium(server, page, tmp_path):
    import matplotlib.image

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is missing: run scripts/system_packages.sh (scripts/test.sh does)"
    shot = tmp_path / "dashboard.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'chromium'}", f"--screenshot={shot}", "--window-size=1400,2600",
           "--virtual-time-budget=15000", server + "/"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    img = (matplotlib.image.imread(shot) * 255).round().astype(np.uint8)
    assert img.shape[:2] == (2600, 1400)
    # every plot's own trace colour is painted: bars by the hundred, markers by the dozen
    bars = {k: _pixels_near(img, COLOURS[k]) for k in ("leaderboard", "leaderboard_best", "volume", "checks_passed",
                                                        "checks_warned")}
    marks = {k: _pixels_near(img, COLOURS[k]) for k in ("registry", "champion", "score", "positive", "succeeded",
                                                         "failed")}
    assert all(n > 400 for n in bars.values()), bars
    assert all(n > 25 for n in marks.values()), marks
    assert _pixels_near(img, COLOURS["checks_failed"]) < 25  # no error check failed: no such bar
    kept = os.environ.get("LAKEFORGE_DASHBOARD_SCREENSHOT")
    if kept:
        Path(kept).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, kept)


def test_json_endpoint_carries_the_same_aggregates(server, project):
    data = httpx.get(server + "/dashboard.json", timeout=60).json()
    assert data["predictions"]["volume"] == {d.isoformat(): 1000 for d in DAYS}
    assert [v["version"] for v in data["registry"]] == [int(t.model.version) for t in project["trains"]]
    assert sum(r["status"] == "failed" for r in data["job_runs"]) == 1


def test_monitoring_tables_are_shown_once_they_exist(project, settings):
    """The drift and alerts tables in monitoring's layout (written here with deltalake): the
    section plots the drift share and the per-column statistic over the windows."""
    import pyarrow as pa
    from deltalake import write_deltalake

    windows = DAYS
    rows = []
    for i, day in enumerate(windows):
        rows += [{"window_start": day, "granularity": "1 day", "column_name": col, "drift_type": "BASELINE",
                  "test": "psi", "statistic": psi, "threshold": 0.1, "drifted": psi > 0.1, "verdict": "drift" if psi > 0.1 else "no drift",
                  "psi": psi, "drift_share": None}
                 for col, psi in (("tenure", 0.02 + 0.1 * i), ("Contract", 0.01))]
        rows.append({"window_start": day, "granularity": "1 day", "column_name": ":table", "drift_type": "BASELINE",
                     "test": None, "statistic": None, "threshold": None, "drifted": i == 2, "verdict": None, "psi": None,
                     "drift_share": 0.5 if i == 2 else 0.0})
    write_deltalake(table_path(settings, f"{NAME}_drift_metrics"), pa.Table.from_pylist(rows), mode="overwrite")
    alerts = [{"alert_type": "drift", "window_start": windows[2], "model_version": "2", "status": "confirmed",
               "breaches": 1, "of_last": 3, "detail": "tenure psi 0.22 > 0.1", "created_at": dt.datetime(2026, 5, 3, 6)}]
    write_deltalake(table_path(settings, f"{NAME}_alerts"), pa.Table.from_pylist(alerts), mode="overwrite")
    perf = [{"window_start": day, "granularity": "1 day", "model_version": "2", "metric": "roc_auc",
             "realised": 0.84 - 0.05 * i, "estimated": 0.83, "training": 0.8383, "rows": 1000, "breach": i == 2}
            for i, day in enumerate(windows)]
    write_deltalake(table_path(settings, f"{NAME}_performance_metrics"), pa.Table.from_pylist(perf), mode="overwrite")
    try:
        monitoring = section(render_page(settings, project["pipeline"]), "monitoring")
        text = visible_text(monitoring)
        assert "Drift: 3 window(s); latest: 1 of 2 column(s) drifting." in text
        assert "tenure psi 0.22 > 0.1" in text and "confirmed" in text
        assert "0.2200" in text  # the latest window's tenure PSI in the table
        assert "Performance: 3 metric(s) over 3 window(s)." in text
        assert monitoring.count("Plotly.newPlot") == 3 and '"name":"roc_auc realised"' in monitoring
    finally:
        for t in ("drift_metrics", "alerts", "performance_metrics"):
            shutil.rmtree(table_path(settings, f"{NAME}_{t}"))


def test_a_project_with_nothing_run_gets_notes_not_errors(tmp_path):
    overlay = write_overlay(tmp_path / "empty")
    (tmp_path / "empty" / "mlflow.db").unlink()  # write_overlay's copy of a migrated store: none here
    settings = load_settings(overlays=[overlay], conf_dir=ROOT / "conf")
    page = render_page(settings, load_pipeline(ROOT / "conf" / "pipelines" / "telco_churn.yaml"))
    text = visible_text(page)
    for note in ("No training yet", "No registered version to show", "No predictions yet", "No job runs recorded yet",
                 "No loads yet", "No monitoring yet"):
        assert note in text
    assert "could not be read" not in text and "Plotly.newPlot" not in page
    assert not (tmp_path / "empty" / "mlflow.db").exists()  # looking created no store


def test_dashboard_command_help_and_a_missing_pipeline_file():
    from lakeforge.app.cli import cli

    result = CliRunner().invoke(cli, ["dashboard", "--help"])
    assert result.exit_code == 0 and "--port" in result.output and "8050" in result.output
    result = CliRunner().invoke(cli, ["dashboard", "no/such/pipeline.yaml"])
    assert result.exit_code == 2 and "does not exist" in result.output
