"""SQL access over JDBC: a shared metastore server, the Spark Thrift Server, beeline, and a
scoring job writing while the server runs."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_lakeforge, telco_slice, write_overlay, write_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROWS = 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, seconds: int = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {seconds}s")


@pytest.fixture(scope="module")
def shared_project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sqlserver")
    ms_port = _free_port()
    env = {**os.environ, "LAKEFORGE_METASTORE_PORT": str(ms_port), "LAKEFORGE_METASTORE_DIR": str(folder / "ms")}
    script = str(ROOT / "scripts" / "metastore.sh")
    started = subprocess.run(["bash", script, "start"], env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    try:
        overlay = write_overlay(folder)
        data = yaml.safe_load(overlay.read_text())
        data["catalog"].update(metastore="derby-server", metastore_port=ms_port)
        overlay.write_text(yaml.safe_dump(data))
        # 1,000 Telco customers: the subject is the shared catalog, not the data
        pipeline = write_pipeline(folder, **{"source.path": str(telco_slice(folder, ROWS)),
                                             "model.algorithms": {"logistic_regression": {"regParam": [0.01]}}, "model.folds": 2})
        proc = run_lakeforge("--conf", str(overlay), "run", str(pipeline), "--run-date", "2026-01-01")
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield folder, overlay, pipeline
    finally:
        subprocess.run(["bash", script, "stop"], env=env, capture_output=True, text=True, timeout=60)


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


def test_thrift_server_serves_tables_while_a_scoring_job_writes(shared_project):
    folder, overlay, pipeline = shared_project
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(os.sys.executable).with_name("lakeforge")), "--conf", str(overlay), "sql-server", "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "LAKEFORGE_HOME": str(ROOT)},
    )
    try:
        _wait_for_port(port, server)
        query = "SELECT run_date, count(*) AS n FROM lakeforge.predictions_telco GROUP BY run_date ORDER BY run_date"
        assert _beeline(port, query) == ["run_date,n", f"2026-01-01,{ROWS}"]
        # a scoring job in another process while the server holds the catalog
        scored = run_lakeforge("--conf", str(overlay), "score", str(pipeline), "--run-date", "2026-01-02")
        assert scored.returncode == 0, scored.stderr[-3000:]
        assert _beeline(port, query) == ["run_date,n", f"2026-01-01,{ROWS}", f"2026-01-02,{ROWS}"]
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
