"""The same pipeline against a real `mlflow server` process on 127.0.0.1 (SQLite backend,
proxied artifact store): runs, the registry, aliases and model artifacts go through HTTP."""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import run_lakeforge, write_overlay, write_pipeline
from test_sql_server import _free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflowserver")
    port = _free_port()
    mlflow_exe = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(mlflow_exe), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'server.db'}", "--artifacts-destination", str(folder / "server-artifacts")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
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
        proc.wait(timeout=30)


def test_train_register_and_score_through_an_mlflow_server(server):
    folder, url = server
    overlay = write_overlay(folder / "project")
    data = yaml.safe_load(overlay.read_text())
    data["mlflow"]["tracking_uri"] = url
    overlay.write_text(yaml.safe_dump(data))
    pipeline = write_pipeline(folder / "project", **{
        "model.algorithms": {"logistic_regression": {"regParam": [0.01]}, "random_forest": {"numTrees": [10], "maxDepth": [4]}},
        "model.folds": 2})
    proc = run_lakeforge("--conf", str(overlay), "run", str(pipeline), "--run-date", "2026-07-01")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "7043 predictions" in proc.stderr

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
