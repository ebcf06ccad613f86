"""The same pipeline against a real `mlflow server` process on 127.0.0.1 (SQLite backend,
proxied artifact store): runs, the registry, aliases and model artifacts go through HTTP.

`lakeforge run` runs in this process (lakeforge.app.cli.main) with the test session's Spark and
warehouse and an overlay naming the server: the subject is the MLflow client talking to the
server, not the console script (tests/test_pipeline_e2e.py runs that)."""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import free_port, telco_slice, write_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflowserver")
    port = free_port()
    mlflow_exe = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(mlflow_exe), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'server.db'}", "--artifacts-destination", str(folder / "server-artifacts")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        # without MLflow 3's job runner (eight huey consumer processes for GenAI jobs; lakeforge starts none)
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.time() < deadline, "mlflow server did not answer /health"
            time.sleep(0.5)
        yield folder, url
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a loaded machine: the server's workers still stopping
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)


def test_train_register_and_score_through_an_mlflow_server(spark, settings, overlay, server, capsys):
    from lakeforge.app.cli import main
    from lakeforge.core import tracking

    folder, url = server
    project = folder / "project"
    project.mkdir()
    data = yaml.safe_load(overlay.read_text())  # the session's warehouse and Spark; MLflow on the server
    data["mlflow"] = {"tracking_uri": url, "artifact_root": str(project / "artifacts")}
    data["reports_dir"] = str(project / "reports")
    server_overlay = project / "overlay.yaml"
    server_overlay.write_text(yaml.safe_dump(data))
    pipeline = write_pipeline(project, **{
        "source.path": str(telco_slice(project, 1000)),  # the first 1,000 customers: the subject is the server
        "tables.bronze": "mlf_bronze", "tables.predictions": "mlf_predictions", "tables.leaderboard": "mlf_leaderboard",
        "model.algorithms": {"logistic_regression": {"regParam": [0.01]}, "random_forest": {"numTrees": [10], "maxDepth": [4]}},
        "model.folds": 2})
    try:
        code = main(["--conf", str(server_overlay), "run", str(pipeline), "--run-date", "2026-07-01"])
    finally:
        tracking.configure(settings)  # the session's own store again, for the tests after this one
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    assert "1000 predictions" in captured.err
    assert spark.table("lakeforge.mlf_predictions").count() == 1000

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    champion = client.get_model_version_by_alias("telco_churn", "champion")
    assert str(champion.version) == "1" and champion.tags["lakeforge.task"] == "binary"
    run = client.get_run(champion.run_id)
    assert run.data.metrics["test_roc_auc"] > 0.8
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # stored by the server, not locally
    children = client.search_runs([run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert len(children) == 2
    # the model's files went through the server into its artifact store
    stored = list((folder / "server-artifacts").rglob("MLmodel"))
    assert stored, "no model in the server's artifact store"
    assert not (folder / "project" / "artifacts").exists() or not list((folder / "project" / "artifacts").rglob("MLmodel"))
