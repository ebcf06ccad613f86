"""The fault suite of issue 23, the cases the other files do not already cover: run dates at a
month end and in the future, the MLflow server down at start, a full disk under a table, kill -9
while ingest writes and while train registers (and the order of train's registry writes). Each
case ends with the exact rows per table and run date.

Covered elsewhere: kill -9 of a score run and of a batch monitor run between its two writes,
and their reruns (test_pipeline_e2e.py), of a monitor follower (test_monitor_follow.py), of an executor while training and while scoring on the
cluster (test_cluster.py); the job lock refusing a second `lakeforge` process and a killed holder releasing it
(test_scheduling.py).

Everything but the killed processes runs in this process (lakeforge.app.cli.main) with the
session's Spark and warehouse, on the first 1,000 Telco customers (one logistic regression)."""

import datetime as dt
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lakeforge.app.cli import cli, main
from lakeforge.app.runner import UsageProblem, dates

from conftest import telco_slice, write_pipeline

ROWS = 1000
FIRST = "2026-01-29"  # the fixture's `lakeforge run`
TABLES = {"tables.bronze": "f_bronze", "tables.predictions": "f_predictions", "tables.leaderboard": "f_leaderboard",
          "model.registered_name": "f_model"}


@pytest.fixture(scope="module")
def project(spark, overlay, tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    path = write_pipeline(folder, **TABLES, **{
        "source.path": str(telco_slice(folder, ROWS)),
        "model.algorithms": {"logistic_regression": {"regParam": [0.01]}}, "model.search": "train_validation_split"})
    assert main(["--conf", str(overlay), "run", str(path), "--run-date", FIRST]) == 0
    return folder, path


def _lf(overlay, capsys, *args) -> tuple[int, list[str]]:
    code = main(["--conf", str(overlay), *args])
    captured = capsys.readouterr()
    return code, (captured.out + captured.err).splitlines()


def _errors(lines) -> list[str]:
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    return [line for line in lines if line.startswith("error:")]


def _per_date(spark, table: str, key: str = "customerID") -> dict[str, tuple[int, int]]:
    """{run_date: (rows, distinct keys)} of a lakeforge table."""
    return {str(r.run_date): (r.n, r.keys) for r in spark.sql(
        f"SELECT run_date, count(*) AS n, count(DISTINCT {key}) AS keys FROM {table} GROUP BY run_date").collect()}


def _score_runs(spark, input_table: str = "lakeforge.f_bronze") -> dict[str, list[tuple]]:
    """{run_date: [(status, rows_out), ...] in order} of the score records on ``input_table``
    (job_runs is shared by the session's files: the input table tells this file's runs apart)."""
    runs: dict[str, list[tuple]] = {}
    for r in spark.sql(f"SELECT run_date, status, rows_out, input_table, message FROM lakeforge.job_runs "
                       f"WHERE job = 'score' AND (input_table = '{input_table}' OR message LIKE '%f_pred%' "
                       f"OR message LIKE '%not reachable%') ORDER BY finished_at").collect():
        runs.setdefault(str(r.run_date), []).append((r.status, r.rows_out))
    return runs


# ------------------------------------------------------------------------------------------
# Run dates: the future is refused, a backfill across a month end scores each date once
# ------------------------------------------------------------------------------------------


def test_a_run_date_in_the_future_is_refused_before_anything_starts(tmp_path):
    tomorrow = max(dt.date.today(), dt.datetime.now(dt.timezone.utc).date()) + dt.timedelta(days=1)
    with pytest.raises(UsageProblem, match=rf"run date {tomorrow} is in the future \(today is "):
        dates(tomorrow, None, None)
    with pytest.raises(UsageProblem, match=rf"run date {tomorrow} is in the future"):
        dates(None, tomorrow - dt.timedelta(days=3), tomorrow)  # a range that ends tomorrow
    assert dates(None, tomorrow - dt.timedelta(days=2), tomorrow - dt.timedelta(days=1))[-1] == tomorrow - dt.timedelta(days=1)
    pipeline = write_pipeline(tmp_path)
    for job in ("ingest", "train", "score", "run", "retrain"):
        result = CliRunner().invoke(cli, [job, str(pipeline), "--run-date", str(tomorrow)])
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert errors == [f"Error: run date {tomorrow} is in the future (today is {tomorrow - dt.timedelta(days=1)}); give "
                          f"a run date up to {tomorrow - dt.timedelta(days=1)} (--run-date, or --to for a backfill), "
                          "or fix the clock if today is wrong"], result.output
    result = CliRunner().invoke(cli, ["monitor", str(pipeline), "--from", "2026-01-01", "--to", str(tomorrow)])
    assert result.exit_code == 2 and f"run date {tomorrow} is in the future" in result.output


def test_a_backfill_across_a_month_end_scores_each_date_once(spark, overlay, project, capsys):
    _, path = project
    code, lines = _lf(overlay, capsys, "score", str(path), "--from", "2026-01-31", "--to", "2026-02-01")
    assert code == 0, "\n".join(lines)
    assert [line.strip() for line in lines if "done" in line and "run date" in line] == [
        "run date 2026-01-31 done", "run date 2026-02-01 done"]
    code, lines = _lf(overlay, capsys, "score", str(path), "--run-date", "2026-01-31")  # a scheduler's retry
    assert code == 0, "\n".join(lines)
    assert _per_date(spark, "lakeforge.f_predictions") == {
        d: (ROWS, ROWS) for d in (FIRST, "2026-01-31", "2026-02-01")}
    runs = _score_runs(spark)
    for d in (FIRST, "2026-02-01"):
        assert runs[d] == [("succeeded", ROWS)], runs
    assert runs["2026-01-31"] == [("succeeded", ROWS), ("succeeded", ROWS)]  # two attempts, one partition


# ------------------------------------------------------------------------------------------
# The MLflow server down at start
# ------------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the socket is: nothing listens there


def test_mlflow_server_down_at_start_is_one_line_and_writes_nothing(spark, settings, overlay, project, capsys):
    from lakeforge.core import tracking

    folder, path = project
    url = f"http://127.0.0.1:{_closed_port()}"
    data = yaml.safe_load(overlay.read_text())  # the session's warehouse and Spark; MLflow on a server that is down
    data["mlflow"] = {"tracking_uri": url, "artifact_root": str(folder / "artifacts-down")}
    down = folder / "mlflow_down.yaml"
    down.write_text(yaml.safe_dump(data))
    bronze_versions = spark.sql("DESCRIBE HISTORY lakeforge.f_bronze").count()
    date = "2026-02-03"
    expected = (f"error: MLflow tracking server {url} is not reachable ([Errno 111] Connection refused); start it, or "
                "point mlflow.tracking_uri (conf/base.yaml, a --env or --conf overlay) at a running server, then rerun")
    try:
        t0 = time.perf_counter()
        code, lines = _lf(down, capsys, "run", str(path), "--run-date", date)  # refused before ingest loads anything
        assert (code, _errors(lines)) == (2, [expected]), "\n".join(lines)
        code, lines = _lf(down, capsys, "score", str(path), "--run-date", date)  # refused inside the stage: recorded
        assert (code, _errors(lines)) == (2, [expected]), "\n".join(lines)
        assert time.perf_counter() - t0 < 60  # MLflow's own client retries for about four minutes
    finally:
        tracking.configure(settings)  # the session's own store again
    assert spark.sql("DESCRIBE HISTORY lakeforge.f_bronze").count() == bronze_versions  # the `run` loaded nothing
    assert date not in _per_date(spark, "lakeforge.f_predictions")
    assert spark.sql(f"SELECT count(*) FROM lakeforge.job_runs WHERE run_date = DATE'{date}' AND job IN "
                     "('ingest', 'train')").first()[0] == 0
    # the server is back (the project's own store): the rerun completes the date
    code, lines = _lf(overlay, capsys, "score", str(path), "--run-date", date)
    assert code == 0, "\n".join(lines)
    assert _per_date(spark, "lakeforge.f_predictions")[date] == (ROWS, ROWS)
    assert _score_runs(spark)[date] == [("failed", None), ("succeeded", ROWS)]


# ------------------------------------------------------------------------------------------
# A full disk under the predictions table
# ------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 20 MB tmpfs (we run as root in CI); skipped when mounting is refused."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the full-disk case (needs root): {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder) -> None:
    """Fill the file system of ``folder`` to the last byte."""
    with open(folder / "filler", "wb", buffering=0) as f:  # unbuffered: close() has nothing left to write
        block = b"\0" * (1 << 20)
        try:
            while True:
                f.write(block)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def test_a_full_disk_fails_the_write_with_one_line_and_leaves_the_table_whole(spark, overlay, project, small_disk, capsys):
    folder, _ = project
    location = small_disk / "f_predictions_disk"
    spark.sql(f"CREATE TABLE lakeforge.f_predictions_disk USING delta PARTITIONED BY (run_date) LOCATION '{location}' "
              f"AS SELECT * FROM lakeforge.f_predictions WHERE run_date = DATE'{FIRST}'")
    path = write_pipeline(folder / "disk", **{**TABLES, "tables.predictions": "f_predictions_disk"},
                          **{"source.path": str(folder / f"telco_{ROWS}.csv")})
    before = (_per_date(spark, "lakeforge.f_predictions_disk"), spark.sql("DESCRIBE HISTORY lakeforge.f_predictions_disk").count())
    assert before == ({FIRST: (ROWS, ROWS)}, 1)
    df = subprocess.run(["df", "-k", str(small_disk)], capture_output=True, text=True).stdout
    du = subprocess.run(["du", "-ak", str(small_disk)], capture_output=True, text=True).stdout
    assert int(df.splitlines()[-1].split()[3]) > 1024, df + du  # more than 1 MB free before the filler
    _fill(small_disk)
    date = "2026-02-04"
    code, lines = _lf(overlay, capsys, "score", str(path), "--run-date", date)
    assert (code, _errors(lines)) == (2, [
        f"error: writing lakeforge.f_predictions_disk: no space left on the device of file:{location}; the table is "
        "unchanged (a failed write commits nothing). Free space there (or move catalog.warehouse_dir), then rerun"]), \
        "\n".join(lines)
    (small_disk / "filler").unlink()
    assert (_per_date(spark, "lakeforge.f_predictions_disk"),
            spark.sql("DESCRIBE HISTORY lakeforge.f_predictions_disk").count()) == before
    code, lines = _lf(overlay, capsys, "score", str(path), "--run-date", date)  # space freed: the rerun completes
    assert code == 0, "\n".join(lines)
    assert _per_date(spark, "lakeforge.f_predictions_disk") == {FIRST: (ROWS, ROWS), date: (ROWS, ROWS)}
    assert _score_runs(spark)[date] == [("failed", None), ("succeeded", ROWS)]
    spark.sql("DROP TABLE lakeforge.f_predictions_disk")  # before the tmpfs goes
    shutil.rmtree(location, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# kill -9 of the driver while ingest writes, then the scheduler's retry
# ------------------------------------------------------------------------------------------


def _kill_when(args: list[str], ready) -> str:
    """Start `lakeforge *args` in its own process group; kill -9 the group (the driver and its JVM)
    as soon as ``ready()`` is true. Its output."""
    import os
    import signal
    import sys

    from conftest import ROOT

    exe = Path(sys.executable).with_name("lakeforge")
    proc = subprocess.Popen([str(exe), *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "LAKEFORGE_HOME": str(ROOT)})
    try:
        deadline = time.time() + 300
        while not ready() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode == -signal.SIGKILL, output[-3000:]
    return output


def test_ingest_killed_while_writing_then_rerun_loads_each_row_once(spark, overlay, project, tmp_path, capsys):
    """`lakeforge ingest` in a process of its own, killed once the load has created its table
    (the data's commit is what comes next); the scheduler's retry then runs in this process.
    The killed process keeps its catalog in its own warehouse (two JVMs cannot share the embedded
    metastore): its table is registered in the session's catalog by location, as it is in the
    Delta log, before the retry."""
    from conftest import write_overlay

    folder, _ = project
    own = tmp_path / "killed"
    table = own / "warehouse" / "lakeforge.db" / "f_bronze_killed"
    path = write_pipeline(own, **{**TABLES, "tables.bronze": "f_bronze_killed"},
                          **{"source.path": str(folder / f"telco_{ROWS}.csv")})
    date = "2026-02-05"
    output = _kill_when(["--conf", str(write_overlay(own)), "ingest", str(path), "--run-date", date],
                        lambda: (table / "_delta_log" / "00000000000000000000.json").exists())
    assert "loading into lakeforge.f_bronze_killed" in output, output[-3000:]
    time.sleep(1)  # the JVM notices its parent is gone
    versions = spark.sql(f"DESCRIBE HISTORY delta.`{table}`").count()
    rows = spark.read.format("delta").load(str(table)).count()
    assert (versions, rows) in ((1, 0), (2, ROWS)), (versions, rows)  # created empty, or loaded whole: never part
    spark.sql(f"CREATE TABLE lakeforge.f_bronze_killed USING delta LOCATION '{table}'")
    code, lines = _lf(overlay, capsys, "ingest", str(path), "--run-date", date)
    assert code == 0, "\n".join(lines)
    assert {str(r.d): (r.n, r.keys) for r in spark.sql(
        "SELECT _run_date AS d, count(*) AS n, count(DISTINCT customerID) AS keys FROM lakeforge.f_bronze_killed "
        "GROUP BY ALL").collect()} == {date: (ROWS, ROWS)}
    # the killed attempt recorded nothing; the retry one load and one stage run
    loads = spark.sql("SELECT status, rows_loaded FROM lakeforge.ingest_runs WHERE table_name = 'lakeforge.f_bronze_killed'")
    assert [tuple(r) for r in loads.collect()] == [("succeeded", ROWS)]
    runs = spark.sql(f"SELECT status, rows_out FROM lakeforge.job_runs WHERE job = 'ingest' AND run_date = DATE'{date}' "
                     "AND rows_out IS NOT NULL")
    assert [tuple(r) for r in runs.collect()] == [("succeeded", ROWS)]


# ------------------------------------------------------------------------------------------
# Train's registration: an alias moves only to a complete version; kill -9 while registering
# ------------------------------------------------------------------------------------------

_NEEDED_TAGS = {"lakeforge.task", "lakeforge.metric", "lakeforge.threshold", "lakeforge.input_null_shares"}


def _completeness(spark, name: str, version: str, *reference_tables: str) -> tuple[set[str], int]:
    """(the tags scoring and monitoring read that version ``version`` lacks, its rows in the
    monitoring reference tables: names, or delta.`path` for another process's warehouse)."""
    from lakeforge.core import tracking

    tags = tracking.MlflowClient().get_model_version(name, version).tags
    rows = 0
    for table in reference_tables:
        if spark.catalog.tableExists(table) if not table.startswith("delta.") else (Path(table[7:-1]) / "_delta_log").exists():
            rows += spark.sql(f"SELECT count(*) FROM {table} WHERE model_name = '{name}' AND model_version = '{version}'").first()[0]
    return _NEEDED_TAGS - set(tags), rows


def test_train_killed_while_registering_then_rerun_registers_a_complete_champion(spark, overlay, settings, project,
                                                                                  tmp_path, capsys, monkeypatch):
    """`lakeforge run` in a process of its own (its own warehouse; the session's MLflow store),
    killed as soon as its model version exists in the registry; the scheduler's retry of the
    training then runs in this process: no alias points at the killed version unless it is
    complete, the retry's version is the challenger (and the champion, unless the killed one got
    there complete), and the leaderboard holds the date's candidate once. Every state of the
    registry a kill could leave is usable: each time the retry sets an alias, the version it points
    at already has its tags (task, metric, threshold, the training rows' null shares) and its
    monitoring reference."""
    import sqlite3

    from conftest import write_overlay
    from lakeforge.core import tracking

    folder, _ = project
    own = tmp_path / "killed"
    names = {**TABLES, "tables.bronze": "f_bronze_kr", "tables.predictions": "f_predictions_kr",
             "tables.leaderboard": "f_leaderboard_kr", "model.registered_name": "f_model_kr"}
    path = write_pipeline(own, **names, **{
        "name": "f_kr", "source.path": str(folder / f"telco_{ROWS}.csv"),
        "model.algorithms": {"logistic_regression": {"regParam": [0.01]}}, "model.search": "train_validation_split"})
    hybrid = yaml.safe_load(write_overlay(own).read_text())
    hybrid["mlflow"] = yaml.safe_load(overlay.read_text())["mlflow"]  # the registry this process reads
    (own / "overlay.yaml").write_text(yaml.safe_dump(hybrid))
    registry = hybrid["mlflow"]["tracking_uri"].removeprefix("sqlite:///")

    def registered() -> bool:
        try:
            with sqlite3.connect(f"file:{registry}?mode=ro", uri=True, timeout=0.5) as db:
                return db.execute("SELECT count(*) FROM model_versions WHERE name = 'f_model_kr'").fetchone()[0] > 0
        except sqlite3.OperationalError:  # locked while the other process writes
            return False

    date = "2026-02-06"
    output = _kill_when(["--conf", str(own / "overlay.yaml"), "run", str(path), "--run-date", date], registered)
    assert "search:" in output, output[-3000:]
    client = tracking.MlflowClient()
    killed = [str(v.version) for v in client.search_model_versions("name = 'f_model_kr'")]
    assert killed == ["1"], killed
    references = ("lakeforge.f_kr_monitor_reference", f"delta.`{own / 'warehouse' / 'lakeforge.db' / 'f_kr_monitor_reference'}`")
    for alias, version in client.get_registered_model("f_model_kr").aliases.items():  # normally none yet
        missing, rows = _completeness(spark, "f_model_kr", str(version), *references)
        assert not missing and rows > 0, (alias, version, missing, rows)

    spark.sql(f"CREATE TABLE lakeforge.f_bronze_kr USING delta LOCATION '{own / 'warehouse' / 'lakeforge.db' / 'f_bronze_kr'}'")
    calls, real = [], tracking.set_alias

    def checked(name, alias, version):
        calls.append((alias, str(version), _completeness(spark, name, str(version), *references)))
        real(name, alias, version)

    monkeypatch.setattr(tracking, "set_alias", checked)
    code, lines = _lf(overlay, capsys, "train", str(path), "--run-date", date)
    assert code == 0, "\n".join(lines)
    assert [(alias, version) for alias, version, _ in calls][0] == ("challenger", "2"), calls
    for alias, version, (missing, reference_rows) in calls:
        assert not missing and reference_rows > 0, (alias, version, missing, reference_rows)
    aliases = {k: str(v) for k, v in client.get_registered_model("f_model_kr").aliases.items()}
    assert aliases["challenger"] == "2" and aliases["champion"] in ("1", "2"), aliases  # "1" only if it was complete
    for alias, version in aliases.items():
        missing, rows = _completeness(spark, "f_model_kr", version, *references)
        assert not missing and rows > 0, (alias, version, missing, rows)
    assert [tuple(r) for r in spark.sql("SELECT CAST(run_date AS STRING), count(*) FROM lakeforge.f_leaderboard_kr "
                                        "GROUP BY ALL").collect()] == [(date, 1)]
