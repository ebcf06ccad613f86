"""The same pipeline against a real `mlflow server` process on 127.0.0.1 (SQLite backend,
proxied artifact store): runs, the registry, aliases and model artifacts go through HTTP.

`lakeforge run` runs in this process (lakeforge.app.cli.main) with the test session's Spark and
warehouse and an overlay naming the server: the subject is the MLflow client talking to the
server, not the console script (tests/test_pipeline_e2e.py runs that). Then the server stopped
while train logs its model, and started again for the rerun (issue 23's fault suite)."""

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


class Server:
    """`mlflow server` on 127.0.0.1 (SQLite backend, proxied artifact store in ``folder``); stopped
    and started again on the same port and stores."""

    def __init__(self, folder: Path):
        self.folder, self.port, self.proc = folder, free_port(), None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        mlflow_exe = Path(sys.executable).with_name("mlflow")
        self.proc = subprocess.Popen(
            [str(mlflow_exe), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}",
             "--artifacts-destination", str(self.folder / "server-artifacts")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            # without MLflow 3's job runner (eight huey consumer processes for GenAI jobs; lakeforge starts none)
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
        deadline = time.time() + 120
        while True:
            assert self.proc.poll() is None, self.proc.stdout.read()
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            assert time.time() < deadline, "mlflow server did not answer /health"
            time.sleep(0.5)

    def stop(self) -> None:
        os.killpg(self.proc.pid, 15)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a loaded machine: the server's workers still stopping
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("mlflowserver"))
    srv.start()
    try:
        yield srv
    finally:
        if srv.proc.poll() is None:
            srv.stop()


def _server_project(overlay, srv: Server, name: str, algorithms: dict, bronze: str | None = None) -> tuple[Path, Path]:
    """(an overlay with the session's warehouse and Spark and MLflow on the server, a pipeline of
    the first 1,000 customers with its own tables and model name)."""
    project = srv.folder / name
    project.mkdir()
    data = yaml.safe_load(overlay.read_text())
    data["mlflow"] = {"tracking_uri": srv.url, "artifact_root": str(project / "artifacts")}
    data["reports_dir"] = str(project / "reports")
    server_overlay = project / "overlay.yaml"
    server_overlay.write_text(yaml.safe_dump(data))
    pipeline = write_pipeline(project, **{
        "source.path": str(telco_slice(project, 1000)),  # the first 1,000 customers: the subject is the server
        "tables.bronze": bronze or f"{name}_bronze", "tables.predictions": f"{name}_predictions",
        "tables.leaderboard": f"{name}_leaderboard", "model.registered_name": name,
        "model.algorithms": algorithms, "model.folds": 2})
    return server_overlay, pipeline


def test_train_register_and_score_through_an_mlflow_server(spark, settings, overlay, server, capsys):
    from lakeforge.app.cli import main
    from lakeforge.core import tracking

    folder, url = server.folder, server.url
    server_overlay, pipeline = _server_project(overlay, server, "mlf", {
        "logistic_regression": {"regParam": [0.01]}, "random_forest": {"numTrees": [10], "maxDepth": [4]}})
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
    champion = client.get_model_version_by_alias("mlf", "champion")
    assert str(champion.version) == "1" and champion.tags["lakeforge.task"] == "binary"
    run = client.get_run(champion.run_id)
    assert run.data.metrics["test_roc_auc"] > 0.8
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # stored by the server, not locally
    children = client.search_runs([run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert len(children) == 2
    # the model's files went through the server into its artifact store
    stored = list((folder / "server-artifacts").rglob("MLmodel"))
    assert stored, "no model in the server's artifact store"
    assert not (folder / "mlf" / "artifacts").exists() or not list((folder / "mlf" / "artifacts").rglob("MLmodel"))


def test_server_gone_mid_training_is_one_line_nothing_half_registered_and_a_rerun_completes(
        spark, settings, overlay, server, capsys, monkeypatch):
    """The server stops while train logs its model (after the search, before the version exists):
    one error line naming the server, in seconds, not MLflow's minutes of retries; no version, no
    alias, no leaderboard rows for the date. Started again on the same stores, the scheduler's
    rerun registers the champion and writes the date's leaderboard once."""
    from mlflow import MlflowClient

    from lakeforge.app.cli import main
    from lakeforge.core import tracking
    from lakeforge.training import register

    server_overlay, pipeline = _server_project(overlay, server, "mlf_gone", {"logistic_regression": {"regParam": [0.01]}},
                                               bronze="mlf_bronze")  # loaded by the test above
    if not spark.catalog.tableExists("lakeforge.mlf_bronze"):  # run alone
        assert main(["--conf", str(server_overlay), "ingest", str(pipeline), "--run-date", "2026-07-02"]) == 0
    real_log_model = register.log_model

    def server_gone(*args, **kwargs):
        server.stop()
        return real_log_model(*args, **kwargs)

    monkeypatch.setattr(register, "log_model", server_gone)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")  # lakeforge's default is 3 (about 15 s); the test waits 2
    capsys.readouterr()
    try:
        started = time.perf_counter()
        code = main(["--conf", str(server_overlay), "train", str(pipeline), "--run-date", "2026-07-02"])
        seconds = time.perf_counter() - started
        lines = capsys.readouterr().err.splitlines()
        assert code == 1, lines
        assert not any("Traceback" in line for line in lines), lines
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1 and f"MLflow tracking server {server.url} stopped answering" in errors[0], lines
        assert "rerun" in errors[0] and seconds < 120, (seconds, errors)
        assert not spark.catalog.tableExists("lakeforge.mlf_gone_leaderboard")

        server.start()
        client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        assert client.search_model_versions("name = 'mlf_gone'") == []  # nothing registered
        monkeypatch.setattr(register, "log_model", real_log_model)
        assert main(["--conf", str(server_overlay), "train", str(pipeline), "--run-date", "2026-07-02"]) == 0
    finally:
        tracking.configure(settings)
    versions = client.search_model_versions("name = 'mlf_gone'")
    assert [str(v.version) for v in versions] == ["1"]
    assert {k: str(v) for k, v in client.get_registered_model("mlf_gone").aliases.items()} == {
        "champion": "1", "challenger": "1"}
    assert client.get_model_version("mlf_gone", "1").tags["lakeforge.task"] == "binary"
    assert [tuple(r) for r in spark.sql("SELECT CAST(run_date AS STRING), count(*) FROM lakeforge.mlf_gone_leaderboard "
                                        "GROUP BY ALL").collect()] == [("2026-07-02", 1)]
