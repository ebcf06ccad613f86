"""The whole slice as a user runs it, in separate processes: `lakeforge run` twice for the same
run date, then `lakeforge sql` from another process reads the predictions by table name."""

import re

import pytest

from conftest import TELCO_PIPELINE, run_lakeforge, write_overlay

pytestmark = pytest.mark.slow
RUN_DATE = "2026-11-24"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e")
    overlay = write_overlay(folder)
    runs = [run_lakeforge("--conf", str(overlay), "run", str(TELCO_PIPELINE), "--run-date", RUN_DATE) for _ in range(2)]
    return folder, overlay, runs


def _sql(overlay, query):
    proc = run_lakeforge("--conf", str(overlay), "sql", query)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _cells(stdout):
    """Data cells of rich's table output."""
    return [[c.strip() for c in line.strip("│").split("│")] for line in stdout.splitlines() if line.startswith("│")]


def test_both_runs_succeed_and_report_roc_auc(project):
    _, _, runs = project
    for proc in runs:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr
    auc = float(re.search(r"Held-out test \(\d+ rows\): ROC-AUC (\d\.\d+)", runs[0].stdout).group(1))
    # scikit-learn's logistic regression reaches about 0.84 on this data
    assert auc >= 0.83
    assert "lakeforge.predictions_telco" in runs[0].stdout


def test_predictions_are_queryable_by_name_and_not_doubled(project):
    _, overlay, _ = project
    out = _sql(overlay, "SELECT count(*) AS n, count(DISTINCT customerID) AS keys FROM lakeforge.predictions_telco")
    assert _cells(out)[-1] == ["7043", "7043"]
    out = _sql(overlay, "SELECT run_date, model_name, model_version, min(score) >= 0 AND max(score) <= 1 AS ok, "
                        "sum(predicted_label) > 0 AS some_churn FROM lakeforge.predictions_telco "
                        "GROUP BY ALL")
    # the second run registered version 2, an identical model that does not beat the champion
    # (same data, config and seed), so version 1 scored again and replaced the date's partition
    assert _cells(out)[-1] == [RUN_DATE, "telco_churn", "1", "true", "true"]


def test_registry_has_champion_with_provenance(project):
    folder, _, _ = project
    from mlflow import MlflowClient

    uri = f"sqlite:///{folder / 'mlflow.db'}"  # this project's store, whatever an earlier test configured
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("telco_churn", "champion")
    challenger = client.get_model_version_by_alias("telco_churn", "challenger")
    assert (str(champion.version), str(challenger.version)) == ("1", "2")
    assert challenger.tags["lakeforge.decision"].endswith("champion v1 kept")
    # bronze versions: 0 = the table created empty, 1 = the first load, 2 = the second
    assert client.get_run(challenger.run_id).data.tags["data.table_version"] == "2"  # the second ingest
    run = client.get_run(champion.run_id)
    assert run.data.tags["data.table"] == "lakeforge.bronze_telco"
    assert run.data.tags["data.table_version"] == "1"
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", run.data.tags["git_commit"])
    assert run.data.metrics["test_roc_auc"] >= 0.83
    assert {"test_pr_auc", "test_accuracy", "test_f1"} <= set(run.data.metrics)
    assert run.data.params["best.algorithm"] in {"logistic_regression", "random_forest", "gbt"}
    assert run.data.metrics["test_roc_auc"] == client.get_run(challenger.run_id).data.metrics["test_roc_auc"]


def test_bronze_and_leaderboard_tables_are_registered(project):
    _, overlay, _ = project
    proc = run_lakeforge("--conf", str(overlay), "tables")
    assert proc.returncode == 0, proc.stderr
    for name in ("bronze_telco", "predictions_telco", "leaderboard_telco"):
        assert f"lakeforge.{name}" in proc.stdout
    out = _sql(overlay, "SELECT count(*), sum(CAST(is_best AS INT)) FROM lakeforge.leaderboard_telco")
    assert _cells(out)[-1] == ["7", "1"]  # 7 candidates for the run date, not 14


def test_killed_score_run_leaves_the_table_whole_and_a_rerun_completes_it(project):
    """kill -9 a scoring run mid-way: the predictions table is as before or fully written, never
    half; the rerun for the same date leaves exactly one row per key."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from conftest import ROOT

    _, overlay, _ = project
    date = "2026-11-25"
    exe = Path(sys.executable).with_name("lakeforge")
    proc = subprocess.Popen(
        [str(exe), "--conf", str(overlay), "score", str(TELCO_PIPELINE), "--run-date", date],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "LAKEFORGE_HOME": str(ROOT)},
    )
    for line in proc.stdout:  # wait until scoring has started, then kill the whole process group
        if line.startswith(">> score"):
            break
    time.sleep(1.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    time.sleep(1)  # let the JVM notice its parent is gone and release the metastore

    out = _sql(overlay, f"SELECT count(*) FROM lakeforge.predictions_telco WHERE run_date = DATE'{date}'")
    assert _cells(out)[-1][0] in {"0", "7043"}  # all or nothing
    rerun = run_lakeforge("--conf", str(overlay), "score", str(TELCO_PIPELINE), "--run-date", date)
    assert rerun.returncode == 0, rerun.stderr
    out = _sql(overlay, "SELECT run_date, count(*), count(DISTINCT customerID) FROM lakeforge.predictions_telco "
                        "GROUP BY run_date ORDER BY run_date")
    assert _cells(out) == [[RUN_DATE, "7043", "7043"], [date, "7043", "7043"]]
