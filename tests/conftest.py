"""Shared fixtures: ONE SparkSession for the whole test run, built by lakeforge's own factory
against a temporary warehouse, metastore and MLflow store."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from lakeforge.core.settings import load_settings

# Every JVM the tests start (the session's, each `lakeforge` process, spark-submit, the Thrift
# server, the cluster's master and workers, beeline) compiles with C1 only and collects with the
# serial collector: the suite's JVMs are short-lived and work on small data, so C2 compilation
# and parallel GC threads cost more CPU than they save on 2 cores. Measured on a Telco ingest +
# train (3 candidates, 2 folds) + score in one session: JVM start 24.2 -> 11.8 CPU seconds, the
# whole run 139 -> 90 CPU seconds. The product's own JVMs keep the defaults.
# The session's JVM (one per xdist worker) lives for the whole suite: it keeps the C2 compiler
# (test_scheduling.py alone: 283 -> 256 CPU seconds of its processes, java 261 -> 234), but
# only for methods that are really hot: with the default thresholds its C2 thread alone used 77
# of the JVM's ~240 CPU-seconds in tests/test_monitor.py (per-thread /proc counters). Tier-4
# thresholds 20x the defaults: test_monitor.py 257-274 -> 212 CPU-s; test_scheduling.py +
# test_training.py 358 -> 323 CPU-s (each file alone on the quiet machine, cgroup CPU).
# The other JVMs compile with C1 only, and later (tier-3 thresholds 10x the defaults): a
# `lakeforge run` of the e2e test's pipeline 88-97 -> 79-85 CPU-s.
# They are set for pytest only (not when a benchmark script imports this module for its helpers).
_LATE_C1 = ("-XX:Tier3InvocationThreshold=2000 -XX:Tier3MinInvocationThreshold=1000 -XX:Tier3CompileThreshold=20000 "
            "-XX:Tier3BackEdgeThreshold=600000")
_LATE_C2 = ("-XX:Tier4InvocationThreshold=100000 -XX:Tier4MinInvocationThreshold=20000 -XX:Tier4CompileThreshold=120000 "
            "-XX:Tier4BackEdgeThreshold=600000")


def _class_archive() -> Path:
    """Where the suite's JVMs find their class-data sharing archive (below).

    One per venv, JDK and set of jars: the JVM maps an archive only if the class path it was made
    with is unchanged, so the name carries a hash of what would change it."""
    import pyspark

    jars = sorted((p.name, p.stat().st_size) for folder in (Path(pyspark.__file__).parent / "jars", ROOT / "jars")
                  if folder.is_dir() for p in folder.glob("*.jar"))
    java = Path(shutil.which("java") or "java").resolve()
    key = hashlib.sha1(repr((str(ROOT), pyspark.__version__, jars, str(java))).encode()).hexdigest()[:12]
    return Path(sys.prefix) / "share" / f"lakeforge-test-classes-{key}.jsa"


# Class-data sharing: each JVM's start loads, verifies and links some 20,000 classes of Spark,
# Delta, Hive and Hadoop. The first `lakeforge run` a test starts writes the classes it loaded to
# an archive (-XX:ArchiveClassesAtExit, 11-30 CPU-seconds more at its exit) and every JVM started after
# that maps them instead: a `lakeforge run` of 1,000 Telco rows 67.5 -> 53.9 CPU-s, `lakeforge
# tables` 10.8 -> 5.8 (measured one at a time on the quiet machine). JVMs started before it exists
# run as before, and a JVM whose class path differs from the archive's (the Derby server,
# beeline's extra jars) ignores it; -Xlog:cds=off keeps either case silent.
ROOT = Path(__file__).resolve().parents[1]
CLASS_ARCHIVE = _class_archive()
_QUIET_CDS = "-Xlog:cds=off -Xlog:cds+dynamic=off"
_SHARED = f"-XX:SharedArchiveFile={CLASS_ARCHIVE} {_QUIET_CDS}"
TEST_JVM_OPTIONS = f"-XX:TieredStopAtLevel=1 -XX:+UseSerialGC {_LATE_C1} {_SHARED}"
SESSION_JVM_OPTIONS = f"-XX:+UseSerialGC {_LATE_C2} {_SHARED}"


def pytest_configure(config):
    for variable in ("SPARK_SUBMIT_OPTS", "SPARK_DAEMON_JAVA_OPTS", "SPARK_BEELINE_OPTS"):
        os.environ.setdefault(variable, TEST_JVM_OPTIONS)


# The session's Spark (the in-process tests) evaluates expressions interpreted instead of compiling
# generated Java for each new query shape: on the tests' tiny tables Janino's compilation costs
# more than it saves (tests/test_monitor.py alone: 265 -> 230 CPU seconds, 172 -> 146 s). Every
# `lakeforge` process the tests start keeps the product's code generation, as users run it: one
# path, catalog.listTables (`lakeforge tables`), has no interpreted form in Spark 4.1
# (EXPRESSION_DECODING_FAILED for NewInstance of catalog.Table).
TEST_SPARK_CONF = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}

pytest_plugins = ["fixtures_servers"]  # the api_server and postgres fixtures (tests/fixtures_servers.py)
TELCO_CSV = ROOT / "data" / "telco-customer-churn" / "Telco-Customer-Churn.csv"
TELCO_PIPELINE = ROOT / "conf" / "pipelines" / "telco_churn.yaml"


def _mlflow_template() -> Path:
    """An empty MLflow SQLite store with every migration applied, made once per MLflow version:
    a new store runs MLflow's ~50 Alembic migrations (2-4 s of CPU, 12 s on a loaded machine),
    and the suite makes one per project folder. Copies of it are byte for byte what MLflow would
    create (lakeforge logs into an experiment of its own, never the default one). A new user's
    first run still creates its store (the demo, README)."""
    import mlflow
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path = Path(tempfile.gettempdir()) / f"lakeforge-test-mlflow-{mlflow.__version__}-{os.getuid()}.db"
    if not path.exists():
        part = path.with_name(f"{path.name}.{os.getpid()}.part")
        SqlAlchemyStore(f"sqlite:///{part}", str(part.parent / "lakeforge-test-mlflow-artifacts")).engine.dispose()
        os.replace(part, path)  # atomic: two xdist workers may both make one
    return path


def write_overlay(folder: Path, **extra_spark) -> Path:
    """A settings overlay that keeps every store under ``folder`` (the MLflow store starts as a
    copy of the migrated empty one)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "mlflow.db").exists():
        shutil.copyfile(_mlflow_template(), folder / "mlflow.db")
    overlay = {
        "spark": {"master": "local[2]", "shuffle_partitions": 2, "ui": False, "driver_memory": "2g",
                  **extra_spark},
        "catalog": {"warehouse_dir": str(folder / "warehouse")},
        "mlflow": {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}", "artifact_root": str(folder / "artifacts")},
        "reports_dir": str(folder / "reports"),
    }
    path = folder / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return path


def write_pipeline(folder: Path, base: Path = TELCO_PIPELINE, **changes) -> Path:
    """A copy of ``base`` with top-level keys (or 'a.b' paths) replaced."""
    data = yaml.safe_load(base.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    data["source"]["path"] = str(ROOT / data["source"]["path"]) if not Path(data["source"]["path"]).is_absolute() else data["source"]["path"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def telco_slice(folder: Path, rows: int = 1000) -> Path:
    """The header and the first ``rows`` customers of the Telco CSV (for tests where the data's
    size is not the point; the pipeline's row_count check wants at least 1,000)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"telco_{rows}.csv"
    with open(TELCO_CSV) as f:
        path.write_text("".join(line for _, line in zip(range(rows + 1), f)))
    return path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_lakeforge(*args: str, timeout: int = 600, env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run the real console script in a new process from the project root (``stdin``: text for
    its standard input, e.g. statements for the ``lakeforge sql`` prompt)."""
    exe = Path(sys.executable).with_name("lakeforge")
    with _archiving("run" in args) as archive_env:
        full_env = {**os.environ, "LAKEFORGE_HOME": str(ROOT), **archive_env, **(env or {})}
        proc = subprocess.Popen([str(exe), *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=full_env, stdin=subprocess.PIPE if stdin is not None else None,
                                start_new_session=bool(archive_env))
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        if archive_env:  # its JVM writes the archive after the Python process exits: wait for the group
            deadline = time.time() + 120
            while time.time() < deadline:
                try:
                    os.killpg(proc.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@contextlib.contextmanager
def _archiving(candidate: bool):
    """Environment for a process whose JVM writes the class archive at its exit: for a
    ``candidate`` (a `lakeforge run`: it loads what the other commands load) while there is none
    and no other process of the suite is writing one (a lock file; one left by a killed run is
    taken over after 10 minutes). The archive appears complete under its name or not at all."""
    lock = CLASS_ARCHIVE.with_suffix(".lock")
    if not candidate or CLASS_ARCHIVE.exists() or "SPARK_SUBMIT_OPTS" not in os.environ:
        yield {}
        return
    if lock.exists() and time.time() - lock.stat().st_mtime > 600:
        lock.unlink(missing_ok=True)
    try:
        CLASS_ARCHIVE.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        yield {}
        return
    part = CLASS_ARCHIVE.with_suffix(f".{os.getpid()}.part")
    options = os.environ["SPARK_SUBMIT_OPTS"].replace(_SHARED, "")  # a JVM cannot map and write one
    try:
        yield {"SPARK_SUBMIT_OPTS": f"{options} -XX:ArchiveClassesAtExit={part} {_QUIET_CDS}"}
        if part.exists():
            os.replace(part, CLASS_ARCHIVE)
    finally:
        part.unlink(missing_ok=True)
        lock.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lakeforge-session")


@pytest.fixture(scope="session")
def overlay(store_dir) -> Path:
    return write_overlay(store_dir, conf=dict(TEST_SPARK_CONF))


@pytest.fixture(scope="session")
def settings(overlay):
    return load_settings(overlays=[overlay], conf_dir=ROOT / "conf")


@pytest.fixture(scope="session")
def spark(settings):
    from lakeforge.core.spark import get_spark

    saved = os.environ.get("SPARK_SUBMIT_OPTS")
    os.environ["SPARK_SUBMIT_OPTS"] = SESSION_JVM_OPTIONS
    try:
        session = get_spark(settings)
    finally:
        if saved is None:
            os.environ.pop("SPARK_SUBMIT_OPTS")
        else:
            os.environ["SPARK_SUBMIT_OPTS"] = saved
    yield session
    session.stop()


# The suite runs on two pytest-xdist workers with --dist loadfile (scripts/test.sh): each file
# stays on one worker (module fixtures such as the cluster and the e2e project are built once),
# and files are handed out in collection order. The longest files go first, so that the last
# ones to start are short and both workers finish close together. Order: each file's summed test
# durations in a fresh-clone run (2 workers, 2026-12-07 run 10 of docs/benchmarks.md, junit XML); files
# not listed keep their order after these.
LONGEST_FIRST = ("test_pipeline_e2e.py", "test_monitor.py", "test_cluster.py", "test_training.py", "test_monitor_follow.py",
                 "test_faults.py", "test_ingest.py", "test_quality_gate.py", "test_scheduling.py", "test_preprocessing.py",
                 "test_frame.py", "test_serve_parity.py", "test_cli.py", "test_dashboard.py", "test_models.py",
                 "test_mlflow_server.py", "test_scorer_models.py", "test_encodings.py", "test_scorer_features.py",
                 "test_serve.py", "test_profile.py", "test_stages.py", "test_monitor_report.py", "test_recommend.py",
                 "test_clustering.py", "test_transforms.py", "test_score.py", "test_search_defaults.py",
                 "test_monitor_stats.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: tests keep their order within a file


_SUITE_STARTED = time.time()


def pytest_terminal_summary(terminalreporter):
    """The suite's duration, and the whole command's when scripts/test.sh started it (set-up
    included; the 20-minute budget of CI)."""
    now = time.time()
    line = f"suite: tests {now - _SUITE_STARTED:.0f} s"
    started = os.environ.get("LAKEFORGE_TEST_STARTED")
    if started and started.isdigit():
        total = now - int(started)
        line += f"; scripts/test.sh with set-up {total:.0f} s ({total / 60:.1f} min)"
    terminalreporter.write_line(line)
