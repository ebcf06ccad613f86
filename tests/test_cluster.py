"""spark-submit against a real Spark standalone cluster (master + 2 workers on 127.0.0.1),
started and stopped by the test with scripts/cluster.sh."""

import csv
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, free_port, TELCO_CSV, TEST_JVM_OPTIONS, run_lakeforge, telco_slice, write_overlay, write_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]
COPIES = 6  # 6 x 7043 = 42,258 customers with distinct keys: seconds of scoring per task on 1-core executors
ROWS = 1000  # the pipeline run on the cluster: the first 1,000 Telco customers (the subject is spark-submit)



@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    env = {
        **os.environ,
        "LAKEFORGE_CLUSTER_DIR": str(folder / "run"),
        "LAKEFORGE_MASTER_PORT": str(free_port()),
        "LAKEFORGE_MASTER_UI_PORT": str(free_port()),
    }
    script = str(ROOT / "scripts" / "cluster.sh")
    started = subprocess.run(["bash", script, "start", "--workers", "2"], env=env, capture_output=True, text=True, timeout=120)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield folder, env
    finally:
        subprocess.run(["bash", script, "stop"], env=env, capture_output=True, text=True, timeout=60)


def _master_state(env) -> dict:
    url = f"http://127.0.0.1:{env['LAKEFORGE_MASTER_UI_PORT']}/json/"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def _submit(env, *args, timeout=420):
    return subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "submit.sh"), *args], env=env, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


@pytest.fixture(scope="module")
def trained_on_cluster(cluster):
    """The whole Telco pipeline submitted to the cluster (1,000 customers, a small grid to keep CI
    short), with an executor killed (kill -9) as the model search starts, after the training
    features were cached on the executors: the master starts a new one and training completes.
    (folder, env, overlay, the run's output, the killed executor's pid.)"""
    folder, env = cluster
    # the executors the workers start get the suite's JVM options too (conftest.TEST_JVM_OPTIONS)
    overlay = write_overlay(folder / "project", conf={"spark.executor.extraJavaOptions": TEST_JVM_OPTIONS})
    pipeline = write_pipeline(folder / "project", **{"source.path": str(telco_slice(folder / "project", ROWS)),
                                                     "model.algorithms": {"logistic_regression": {"regParam": [0.01]}},
                                                     "model.folds": 2})
    proc = _submit(env, "run", "--env", "cluster", "--conf", str(overlay), str(pipeline), "--run-date", "2026-01-02")
    watchdog = threading.Timer(420, os.killpg, (proc.pid, signal.SIGKILL))
    watchdog.start()
    lines, killed = [], None
    try:
        for line in proc.stdout:
            lines.append(line)
            if killed is None and line.strip().startswith("search:"):  # lakeforge.training.job._search
                killed = _executor_pids(env)[0]
                os.kill(killed, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        watchdog.cancel()
    out = "".join(lines)
    assert proc.returncode == 0, out[-5000:]
    work = Path(env["LAKEFORGE_CLUSTER_DIR"]) / "work"
    app = max(work.glob("worker-*/app-*"), key=lambda p: p.stat().st_mtime).name  # the run's application
    return folder, env, overlay, out, (killed, sorted(p.name for p in work.glob(f"worker-*/{app}/*")))


def test_pipeline_runs_on_the_standalone_cluster(spark, trained_on_cluster):
    folder, env, _, out, _ = trained_on_cluster
    assert f"{ROWS} predictions (rows of lakeforge.bronze_telco version 1) by telco_churn v1" in out
    apps = _master_state(env)["completedapps"]
    assert apps and all(a["state"] == "FINISHED" for a in apps)
    assert len(_master_state(env)["workers"]) == 2
    predictions = spark.read.format("delta").load(str(folder / "project" / "warehouse" / "lakeforge.db" / "predictions_telco"))
    row = predictions.selectExpr(
        "count(*) AS n", "count(DISTINCT customerID) AS keys", "collect_set(CAST(run_date AS STRING)) AS dates",
        "min(score) AS lo", "max(score) AS hi").first()
    assert (row.n, row.keys, row.dates) == (ROWS, ROWS, ["2026-01-02"])
    assert 0.0 <= row.lo and row.hi <= 1.0


def test_training_survives_a_killed_executor(trained_on_cluster):
    """The executor killed during the search was replaced and the run went on to register and score."""
    *_, out, (killed, executors) = trained_on_cluster
    assert killed is not None, out[-3000:]
    assert "lost executor" in out.lower(), out[-3000:]  # the fault really hit the application
    assert "Registry: version 1 is the first model: champion" in out, out[-3000:]
    assert len(executors) == 3, executors  # two at the start, one started in place of the killed one


def _executor_pids(env) -> list[int]:
    workers = {int(p.read_text()) for p in (ROOT / env["LAKEFORGE_CLUSTER_DIR"]).glob("worker-*.pid")}
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    pids = []
    for line in ps.splitlines():
        pid, ppid, args = line.split(None, 2)
        if int(ppid) in workers and "CoarseGrainedExecutorBackend" in args:
            pids.append(int(pid))
    return pids


def _scanning_executor(env, table_dir: str) -> int | None:
    """The pid of an executor that has started reading a data file of ``table_dir`` (its INFO log,
    work/worker-N/<app>/<executor id>/stderr, says 'Reading File path: .../<table_dir>/part-...'),
    or None. An executor runs in its log's folder, so /proc/<pid>/cwd names it."""
    work = Path(env["LAKEFORGE_CLUSTER_DIR"]) / "work"
    needle = f"/{table_dir}/part-"
    for log in work.glob("worker-*/app-*/*/stderr"):
        with open(log, errors="replace") as f:
            if any("Reading File" in line and needle in line for line in f):
                for pid in _executor_pids(env):
                    try:
                        if Path(f"/proc/{pid}/cwd").resolve() == log.parent.resolve():
                            return pid
                    except OSError:
                        continue
    return None


def test_scoring_survives_a_killed_executor(spark, trained_on_cluster):
    """kill -9 the executor that is reading the rows to score (42,258): the job completes and the
    predictions table has exactly one row per input key."""
    folder, env, overlay, *_ = trained_on_cluster
    big = folder / "big.csv"
    with open(TELCO_CSV) as src, open(big, "w", newline="") as dst:
        rows = list(csv.reader(src))
        writer = csv.writer(dst)
        writer.writerow(rows[0])
        for i in range(COPIES):
            for r in rows[1:]:
                writer.writerow([f"{r[0]}-{i}", *r[1:]])
    pipeline = write_pipeline(
        folder / "big", **{"source.path": str(big), "tables.bronze": "bronze_big",
                           "tables.predictions": "predictions_big", "tables.leaderboard": None}
    )
    # the rows to score are loaded by a local `lakeforge ingest` (the project's own warehouse and
    # metastore; no executors to start): the cluster's part is the scoring job below
    loaded = run_lakeforge("--conf", str(overlay), "ingest", str(pipeline), "--run-date", "2026-01-03")
    assert loaded.returncode == 0, loaded.stderr[-3000:]

    proc = _submit(env, "score", "--env", "cluster", "--conf", str(overlay), str(pipeline), "--run-date", "2026-01-03")
    lines: list[str] = []
    def read():
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    killed = None
    deadline = time.time() + 180
    while time.time() < deadline and killed is None and proc.poll() is None:
        scanning = _scanning_executor(env, "bronze_big")  # the scoring job itself is running there
        if scanning is not None:
            killed = scanning
            os.kill(killed, signal.SIGKILL)
        else:
            time.sleep(0.2)
    assert killed is not None, "".join(lines)[-3000:]
    proc.wait(timeout=420)
    reader.join(timeout=10)
    out = "".join(lines)
    assert proc.returncode == 0, out[-5000:]
    assert f"{COPIES * 7043} predictions" in out, out[-3000:]
    assert "Lost executor" in out or "lost executor" in out.lower(), out[-3000:]  # the fault really hit the job
    table = spark.read.format("delta").load(str(folder / "project" / "warehouse" / "lakeforge.db" / "predictions_big"))
    row = table.selectExpr("count(*) AS n", "count(DISTINCT customerID) AS keys").first()
    assert (row.n, row.keys) == (COPIES * 7043, COPIES * 7043)
