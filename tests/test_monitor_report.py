"""The monitoring report (lakeforge.monitoring.report): the tables written by the monitoring
library itself (a reference, three daily windows of a few hundred scored rows, labels, the
monitor run), the page rendered and opened in headless Chromium; the plots checked in the DOM
Plotly drew (one point per window, the heat map's cells) and in the screenshot's pixels.

No model is trained: the reference is summarised from generated rows and the predictions table
is written directly, so the test costs a few Spark jobs."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import write_pipeline
from html_text import section, visible_text
from lakeforge.core import tracking
from lakeforge.core.config import load_pipeline
from lakeforge.core.io import write_table
from lakeforge.core.runs import RunRecord, record_run
from lakeforge.monitoring.job import monitor
from lakeforge.monitoring.reference import compute_reference, save_reference
from lakeforge.monitoring.report import COLOURS, render_report, write_report

NAME = "monrep"
DAYS = [dt.date(2026, 4, 1), dt.date(2026, 4, 2), dt.date(2026, 4, 3)]
COLUMNS = ["tenure", "MonthlyCharges", "Contract"]


def _rows(rng, n: int, drift: float, start: int) -> pd.DataFrame:
    """Scored rows: the score follows the inputs; ``drift`` raises MonthlyCharges and moves
    month-to-month customers to two-year contracts."""
    charges = rng.normal(65, 25, n).clip(18, 120) * (1 + drift)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.55, 0.25, 0.2])
    contract = np.where((contract == "Month-to-month") & (rng.random(n) < drift * 2), "Two year", contract)
    tenure = rng.integers(0, 73, n).astype(float)
    logit = -1.5 + 0.02 * (charges - 65) - 0.04 * (tenure - 30) + np.where(contract == "Month-to-month", 1.2, -0.8)
    score = 1 / (1 + np.exp(-logit))
    churn = np.where(rng.random(n) < score, "Yes", "No")
    return pd.DataFrame({"customerID": [f"c{start + i}" for i in range(n)], "tenure": tenure, "MonthlyCharges": charges,
                         "Contract": contract, "score": score, "predicted_label": (score >= 0.5).astype(float),
                         "Churn": churn})


@pytest.fixture(scope="module")
def monitored(spark, settings, tmp_path_factory):
    """Reference from 800 rows; windows of 400 rows on three days, drifting on days 2 and 3
    (the 2-of-5 rule confirms an alert on day 3); labels for all three."""
    folder = tmp_path_factory.mktemp("monrep")
    pipe = load_pipeline(write_pipeline(folder, name=NAME, **{
        "tables": {"bronze": f"bronze_{NAME}", "predictions": f"predictions_{NAME}"}, "model.registered_name": NAME,
        "scoring.input_table": f"inputs_{NAME}",
        "monitoring": {"min_rows": 200, "columns": [*COLUMNS, "score"], "actuals": {"table": f"actuals_{NAME}"}}}))
    tracking.configure(settings)
    rng = np.random.default_rng(11)
    ref = _rows(rng, 800, 0.0, 0)
    reference = compute_reference(spark.createDataFrame(ref.drop(columns="Churn")), [*COLUMNS, "score", "predicted_label"],
                                  pipe.monitoring.bins, pipe.monitoring.max_points)
    save_reference(spark, settings, pipe, tracking.ModelRef(NAME, "1"), reference)
    batches = pd.concat([_rows(rng, 400, drift, 1000 * (i + 1)).assign(run_date=day)
                         for i, (day, drift) in enumerate(zip(DAYS, [0.0, 0.3, 0.35]))])
    inputs = settings.table(f"inputs_{NAME}")  # one input version holds every day's rows (keys differ)
    written = write_table(spark.createDataFrame(batches[["customerID", *COLUMNS]]), inputs)
    preds = batches[["customerID", "score", "predicted_label", "run_date"]].assign(model_name=NAME, model_version="1")
    write_table(spark.createDataFrame(preds), settings.table(f"predictions_{NAME}"))
    for i, day in enumerate(DAYS):
        record = RunRecord(f"rep{i}", "score", NAME, day, input_table=inputs, input_version=written.version)
        record_run(spark, settings, record.finish("succeeded"))
    labels = batches[["customerID", "Churn", "run_date"]].rename(columns={"run_date": "label_date"})
    write_table(spark.createDataFrame(labels), settings.table(f"actuals_{NAME}"))
    result = monitor(spark, settings, pipe, DAYS)
    return pipe, result


def test_the_monitor_run_behind_the_report(monitored):
    _, result = monitored
    assert [w.key.start for w in result.windows] == DAYS
    assert [w.dataset[0] for w in result.windows] == [False, True, True]
    assert [a.alert_type for a in result.alerts] == ["drift"] and result.alerts[0].window_start == DAYS[2]
    assert {r["window_start"] for r in result.performance} == set(DAYS)


def test_page_summarises_the_tables(monitored, settings):
    pipe, result = monitored
    page = render_report(settings, pipe)
    assert page.count("* plotly.js v") == 1 and not re.search(r"<(script|link)[^>]+(src|href)=", page)
    drift = visible_text(section(page, "drift"))
    drifting = sorted(r.column for r in result.windows[-1].baseline if r.drifted)
    assert f"3 window(s); latest {DAYS[2]}" in drift and f"{len(drifting)} of 4 column(s) drifting" in drift
    assert "MonthlyCharges" in drifting
    alerts = visible_text(section(page, "alerts"))
    assert "1 open alert(s)" in alerts and result.alerts[0].detail in alerts
    perf = visible_text(section(page, "performance"))
    roc = next(r for r in result.performance if r["window_start"] == DAYS[2] and r["metric"] == "roc_auc")
    assert f"Window {DAYS[2]}" in perf and f"{roc['realised']:.4f}" in perf and f"{roc['estimated']:.4f}" in perf


def _chromium(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is missing: run scripts/system_packages.sh (scripts/test.sh does)"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1400,2000", "--virtual-time-budget=15000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def _pixels_near(img: np.ndarray, colour: str, tolerance: int = 8) -> int:
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(img[:, :, :3].astype(int) - rgb).max(axis=2) <= tolerance).sum())


def test_plots_have_data_in_headless_chromium(monitored, settings, tmp_path):
    import matplotlib.image

    pipe, _ = monitored
    path = write_report(settings, pipe, tmp_path / "monitor.html")
    dom = _chromium(["--dump-dom", path.as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    drift, scores, perf = (section(dom.stdout, s) for s in ("drift", "scores", "performance"))
    assert len(re.findall(r'class="hm"', drift)) == 1 and "data:image/png;base64," in drift  # the heat map drawn
    assert drift.count("✕") >= 2  # drifting cells marked (days 2 and 3)
    assert len(re.findall(r'class="point"', drift)) == len(DAYS)  # the share line: one marker per window
    assert len(re.findall(r'class="point"', scores)) >= 20 + 20  # the reference's 20 bars, the latest window's markers
    assert len(re.findall(r'class="point"', perf)) >= 2 * len(DAYS)  # realised and estimated per window
    shot = tmp_path / "report.png"
    proc = _chromium([f"--screenshot={shot}", path.as_uri()], tmp_path)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    img = (matplotlib.image.imread(shot) * 255).round().astype(np.uint8)
    painted = {k: _pixels_near(img, COLOURS[k]) for k in ("share", "reference", "latest", "realised", "estimated")}
    assert all(n > 40 for n in painted.values()), painted


def test_command_writes_the_page_and_a_project_without_monitoring_gets_notes(monitored, settings, tmp_path):
    from lakeforge.app.cli_monitor_report import monitor_report_cmd
    from lakeforge.app.runner import Context

    pipe, _ = monitored
    out = tmp_path / "r.html"
    result = CliRunner().invoke(monitor_report_cmd, [str(pipe.file), "--out", str(out)],
                                obj=Context(None, [], False, settings))
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 3_000_000 and str(out) in result.output
    other = load_pipeline(write_pipeline(tmp_path / "p", name="monrep_nothing"))
    text = visible_text(render_report(settings, other))
    for note in ("No drift metrics yet", "No score profile yet", "No performance metrics yet", "No alerts table yet"):
        assert note in text
