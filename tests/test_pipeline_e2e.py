"""The whole slice as a user runs it, in separate processes: `lakeforge run` of the shipped Telco
pipeline, then `lakeforge sql` from another process reads the predictions by table name (one
process answers every query: its prompt reads the statements from stdin); a scoring run of the
same run date killed mid-way and rerun: the date's predictions are whole at every moment and
never doubled; `lakeforge monitor` killed between its profile and drift commits and rerun: each
window's rows once; then the same metastore database served by Apache Derby's network server
(scripts/metastore.sh): a scoring run while it is down fails in one line, and the Spark Thrift
Server (`lakeforge sql-server`) answers beeline over JDBC while the retry writes that date.

The run is the shipped pipeline with a three-candidate grid, one small point of each of its
algorithms, on 2 folds (the shipped grid's 7 candidates on 3 folds are the demo's,
`scripts/demo.sh`; the search itself, every algorithm on the same folds, reproducibility and the
champion/challenger gate are tested in process by test_training.py). One project serves every
test here: a `lakeforge run` costs about 80 CPU-seconds, a third of what this file uses."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F

from conftest import ROOT, TELCO_PIPELINE, free_port, run_lakeforge, write_overlay, write_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RUN_DATE = "2026-11-24"
NEXT_DATE = "2026-11-25"
SMALL_GRID = {"logistic_regression": {"regParam": [0.01], "elasticNetParam": [0.0]},
              "random_forest": {"numTrees": [20], "maxDepth": [5]},
              "gbt": {"maxIter": [10], "maxDepth": [3]}}


@pytest.fixture(scope="module")
def project(spark, tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e")
    overlay = write_overlay(folder)
    small = write_pipeline(folder / "first", **{"model.algorithms": SMALL_GRID, "model.folds": 2})  # same name, tables and data
    first = run_lakeforge("--conf", str(overlay), "run", str(small), "--run-date", RUN_DATE)
    assert first.returncode == 0, first.stderr[-3000:]
    board = _leaderboard(spark, folder).collect()  # one candidate per algorithm
    return folder, overlay, [first], board, small


class Metastore:
    """The project's metastore database served by Apache Derby's network server
    (scripts/metastore.sh), and an overlay that names the server."""

    def __init__(self, folder: Path, overlay: Path):
        self.port = free_port()
        self.env = {**os.environ, "LAKEFORGE_METASTORE_PORT": str(self.port), "LAKEFORGE_METASTORE_DIR": str(folder / "ms")}
        data = yaml.safe_load(overlay.read_text())
        data["catalog"].update(metastore="derby-server", metastore_port=self.port)
        self.overlay = folder / "overlay-shared.yaml"
        self.overlay.write_text(yaml.safe_dump(data))

    def _script(self, action: str) -> None:
        done = subprocess.run(["bash", str(ROOT / "scripts" / "metastore.sh"), action], env=self.env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        self._script("stop")


@pytest.fixture(scope="module")
def shared_catalog(project):
    """The project's metastore database, served by Apache Derby's network server from here on
    (stopped at the end)."""
    folder, overlay, *_ = project
    metastore = Metastore(folder, overlay)
    metastore.start()
    try:
        yield metastore
    finally:
        metastore.stop()


def _leaderboard(spark, folder):
    return spark.read.format("delta").load(str(folder / "warehouse" / "lakeforge.db" / "leaderboard_telco"))


QUERIES = (
    "SELECT count(*) AS n, count(DISTINCT customerID) AS keys FROM lakeforge.predictions_telco",
    "SELECT run_date, model_name, model_version, min(score) >= 0 AND max(score) <= 1 AS ok, "
    "sum(predicted_label) > 0 AS some_churn FROM lakeforge.predictions_telco GROUP BY ALL",
    "SELECT count(*), sum(CAST(is_best AS INT)) FROM lakeforge.leaderboard_telco",
)


def _sql(overlay, *queries) -> list[list[list[str]]]:
    """The data cells of each query's table, from one `lakeforge sql` process (its prompt)."""
    proc = run_lakeforge("--conf", str(overlay), "sql", stdin="".join(f"{q};\n" for q in queries))
    assert proc.returncode == 0, proc.stderr
    assert "error:" not in proc.stderr, proc.stderr  # the prompt prints a failed statement's error and goes on
    tables = [_cells(part) for part in re.split(r"^.*┏.*$", proc.stdout, flags=re.MULTILINE)[1:]]
    assert len(tables) == len(queries), proc.stdout
    return tables


def _cells(stdout):
    """Data cells of rich's table output."""
    return [[c.strip() for c in line.strip("│").split("│")] for line in stdout.splitlines() if line.startswith("│")]


@pytest.fixture(scope="module")
def queried(project):
    """Every query of the tests below, answered by name by one `lakeforge sql` process."""
    _, overlay, *_ = project
    return dict(zip(QUERIES, _sql(overlay, *QUERIES)))


def _predictions(spark, folder):
    """The project's predictions table, read by path with the test session."""
    return spark.read.format("delta").load(str(folder / "warehouse" / "lakeforge.db" / "predictions_telco"))


def test_the_run_succeeds_and_reports_roc_auc(project):
    _, _, runs, *_ = project
    for proc in runs:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr
    auc = float(re.search(r"Held-out test \(\d+ rows\): ROC-AUC (\d\.\d+)", runs[0].stdout).group(1))
    # scikit-learn's logistic regression reaches about 0.84 on this data
    assert auc >= 0.83
    assert "lakeforge.predictions_telco" in runs[0].stdout


def test_predictions_are_queryable_by_name_and_not_doubled(queried):
    assert queried[QUERIES[0]] == [["7043", "7043"]]
    assert queried[QUERIES[1]] == [[RUN_DATE, "telco_churn", "1", "true", "true"]]


def test_registry_has_champion_with_provenance(project):
    folder, *_ = project
    from mlflow import MlflowClient

    uri = f"sqlite:///{folder / 'mlflow.db'}"  # this project's store, whatever an earlier test configured
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("telco_churn", "champion")
    assert str(champion.version) == "1"
    run = client.get_run(champion.run_id)
    assert run.data.tags["data.table"] == "lakeforge.bronze_telco"
    assert run.data.tags["data.table_version"] == "1"  # bronze: 0 = the table created empty, 1 = the load
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", run.data.tags["git_commit"])
    assert run.data.metrics["test_roc_auc"] >= 0.83
    assert {"test_pr_auc", "test_accuracy", "test_f1"} <= set(run.data.metrics)
    assert run.data.params["best.algorithm"] in {"logistic_regression", "random_forest", "gbt"}


def test_bronze_and_leaderboard_tables_are_registered(project, queried):
    _, overlay, _, first_board, _ = project
    assert len(first_board) == len(SMALL_GRID) and sum(r.is_best for r in first_board) == 1
    hive_leftovers = set(Path(tempfile.gettempdir()).glob("*_resources"))
    proc = run_lakeforge("--conf", str(overlay), "tables")
    assert proc.returncode == 0, proc.stderr
    # Hive's client left an empty <uuid>_resources folder in the temp folder per command before
    assert set(Path(tempfile.gettempdir()).glob("*_resources")) <= hive_leftovers
    for name in ("bronze_telco", "predictions_telco", "leaderboard_telco"):
        assert f"lakeforge.{name}" in proc.stdout
    assert queried[QUERIES[2]] == [[str(len(SMALL_GRID)), "1"]]


def test_killed_score_run_leaves_the_table_whole_and_a_rerun_completes_it(spark, project):
    """kill -9 a scoring run of the run date already scored, mid-way: the date's predictions are
    the old ones or the new ones, all 7,043 either way, never half and never both; the rerun for
    the same date leaves exactly one row per key. (The table is read by path with the test
    session: its name was read from another process above.)"""
    folder, overlay, *_ = project
    date = RUN_DATE
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

    assert _predictions(spark, folder).where(f"run_date = DATE'{date}'").count() == 7043  # the old rows or the new
    rerun = run_lakeforge("--conf", str(overlay), "score", str(TELCO_PIPELINE), "--run-date", date)
    assert rerun.returncode == 0, rerun.stderr
    rows = _predictions(spark, folder).where(f"run_date = DATE'{date}'").agg(
        F.count("*").alias("n"), F.countDistinct("customerID").alias("keys")).collect()
    assert [(r.n, r.keys) for r in rows] == [(7043, 7043)]


def test_monitor_killed_between_its_writes_then_rerun_leaves_each_window_once(spark, project):
    """kill -9 `lakeforge monitor` the moment its profile rows are committed (the drift rows'
    commit comes next): the scheduler's retry of the same date leaves each (window, column) once
    in the profile table and once per comparison in the drift table, and records a success."""
    folder, overlay, *_ = project
    db = folder / "warehouse" / "lakeforge.db"
    profile_data = db / "telco_churn_profile_metrics" / "_delta_log" / "00000000000000000001.json"  # 0: created empty
    args = ["--conf", str(overlay), "monitor", str(TELCO_PIPELINE), "--run-date", RUN_DATE]
    proc = subprocess.Popen([str(Path(sys.executable).with_name("lakeforge")), *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "LAKEFORGE_HOME": str(ROOT)})
    deadline = time.time() + 300
    while not profile_data.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    output = proc.communicate(timeout=30)[0]
    assert proc.returncode == -signal.SIGKILL, output[-3000:]
    time.sleep(1)  # the JVM notices its parent is gone and releases the metastore

    def rows(table: str, *key: str) -> dict[tuple, int]:
        path = db / table
        if not (path / "_delta_log").exists():
            return {}
        return {tuple(r[:-1]): r[-1] for r in spark.read.format("delta").load(str(path)).groupBy(*key).count().collect()}

    profile = rows("telco_churn_profile_metrics", "window_start", "column_name")
    assert profile and set(profile.values()) == {1}  # committed whole before the kill
    rerun = run_lakeforge(*args)
    assert rerun.returncode in (0, 3), rerun.stderr[-3000:]  # 3: a drift alert, not a failure
    again = rows("telco_churn_profile_metrics", "window_start", "column_name")
    drift = rows("telco_churn_drift_metrics", "window_start", "drift_type", "column_name")
    assert again.keys() == profile.keys() and set(again.values()) == {1}
    assert set(drift.values()) == {1}
    assert {c for (_, kind, c) in drift if kind == "BASELINE"} == {c for (_, c) in profile}  # every column compared once
    runs = spark.read.format("delta").load(str(db / "job_runs")).where(
        f"job = 'monitor' AND run_date = DATE'{RUN_DATE}' AND status = 'succeeded'").count()
    assert runs == 1


def _wait_for_port(port: int, proc: subprocess.Popen, seconds: int = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {seconds}s")


def _beeline(port: int, query: str) -> list[str]:
    import pyspark

    beeline = Path(pyspark.__file__).parent / "bin" / "beeline"
    proc = subprocess.run(
        [str(beeline), "-u", f"jdbc:hive2://127.0.0.1:{port}", "--silent=true", "--outputformat=csv2", "-e", query],
        capture_output=True, text=True, timeout=120, env={**os.environ, "SPARK_HOME": str(beeline.parent.parent)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # beeline prints its prompt in front of the first output line: "0: jdbc:hive2://...> run_date,n"
    lines = [line.split("> ", 1)[1] if line.startswith("0: jdbc") else line for line in proc.stdout.splitlines()]
    return [line for line in lines if line.strip()]


def test_metastore_server_down_then_thrift_server_serves_tables_while_the_retry_writes(spark, project, shared_catalog):
    """The metastore server stopped: a scoring run of the next date says so in one line (host and
    port, how to start it), exit 2, and writes nothing. Started again: `lakeforge sql-server` on
    the shared metastore (the database the runs above used embedded): beeline reads the
    predictions by name over JDBC, the scheduler's retry of the next date runs in another process
    meanwhile, and the server's next answer has that date once; the server listens on 127.0.0.1
    only."""
    folder, *_, small = project
    overlay = shared_catalog.overlay
    shared_catalog.stop()
    try:
        down = run_lakeforge("--conf", str(overlay), "score", str(small), "--run-date", NEXT_DATE)
    finally:
        shared_catalog.start()
    errors = [line for line in down.stderr.splitlines() if line.startswith("error:")]
    assert down.returncode == 2 and "Traceback" not in down.stderr, down.stderr[-3000:]
    assert errors == [f"error: cannot reach the metastore server at 127.0.0.1:{shared_catalog.port}; start it with "
                      "scripts/metastore.sh start"], down.stderr[-3000:]
    assert _predictions(spark, folder).where(f"run_date = DATE'{NEXT_DATE}'").count() == 0

    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("lakeforge")), "--conf", str(overlay), "sql-server", "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "LAKEFORGE_HOME": str(ROOT)},
    )
    try:
        _wait_for_port(port, server)
        query = "SELECT run_date, count(*) AS n FROM lakeforge.predictions_telco GROUP BY run_date ORDER BY run_date"
        assert _beeline(port, query) == ["run_date,n", f"{RUN_DATE},7043"]
        scored = run_lakeforge("--conf", str(overlay), "score", str(small), "--run-date", NEXT_DATE)
        assert scored.returncode == 0, scored.stderr[-3000:]
        assert _beeline(port, query) == ["run_date,n", f"{RUN_DATE},7043", f"{NEXT_DATE},7043"]
        keys = _predictions(spark, folder).where(f"run_date = DATE'{NEXT_DATE}'").select("customerID").distinct().count()
        assert keys == 7043
        # bound to loopback only
        ss = shutil.which("ss")  # iproute2; the check is skipped on machines without it
        listening = subprocess.run([ss, "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout if ss else ""
        for line in listening.splitlines():  # e.g. "LISTEN 0 50 [::ffff:127.0.0.1]:42641 *:*"
            local = line.split()[3]
            assert local.rsplit(":", 1)[0] in {"127.0.0.1", "[::ffff:127.0.0.1]"}, line
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def test_sql_server_refuses_the_embedded_metastore(tmp_path):
    proc = run_lakeforge("--conf", str(write_overlay(tmp_path)), "sql-server")
    assert proc.returncode == 2
    assert "needs a shared metastore" in proc.stderr and "scripts/metastore.sh start" in proc.stderr
