"""lakeforge monitor --follow: Structured Streaming over the online prediction log.

No model is trained: --follow reads only the prediction log and the monitoring reference, so the
reference is summarised from 300 generated rows (the same call training makes) and the log
records are written as ``lakeforge serve`` writes them (JSON lines, a file appears finished under
its final name), with event times in the past: one-minute windows close as soon as a later record
is read (follow_late_minutes 0), without waiting on the clock.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from pyspark.sql import functions as F

from conftest import ROOT, run_lakeforge, write_overlay, write_pipeline
from lakeforge.core import tracking
from lakeforge.core.config import load_pipeline
from lakeforge.core.errors import InputDataError
from lakeforge.core.frames import local_frame
from lakeforge.core.io import table_location, write_table
from lakeforge.monitoring.aggregates import build, summarise
from lakeforge.monitoring.follow import follow, window_groups
from lakeforge.monitoring.follow_windows import ROWS_ENTRY, VersionPlan, WindowCloser, live_tables
from lakeforge.monitoring.metrics import TABLE_ROW
from lakeforge.monitoring.reference import compute_reference, save_reference, window_specs

T0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
COLUMNS = ["x", "seg", "score", "predicted_label"]
MONITORING = {"follow_minutes": 1, "follow_late_minutes": 0, "follow_trigger_seconds": 1, "min_rows": 10}


def records(minute: int, n: int, drift: bool, seed: int) -> list[dict]:
    """``n`` log records inside minute ``minute`` after T0; from the drift on, x is 3 std higher
    and seg is always 'c' (score and label as before)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        at = T0 + dt.timedelta(minutes=minute, seconds=50 * i / n)
        out.append({"request_id": f"m{minute}-s{seed}-{i}", "record_index": 0, "customerID": f"{seed}-{i}",
                    "logged_at": at.isoformat(timespec="microseconds"), "model_name": "follow", "model_version": "1",
                    "score": float(rng.uniform()), "predicted_label": int(rng.integers(0, 2)),
                    "x": float(rng.normal() + (3.0 if drift else 0.0)),
                    "seg": "c" if drift else str(rng.choice(["a", "b", "c"]))})
    return out


@pytest.fixture(scope="module")
def reference(spark, settings):
    rng = np.random.default_rng(7)
    rows = [(float(rng.normal()), str(rng.choice(["a", "b", "c"])), float(rng.uniform()), int(rng.integers(0, 2)))
            for _ in range(300)]
    df = local_frame(spark, rows, "x double, seg string, score double, predicted_label int")
    tracking.configure(settings)  # save_reference looks the version up in MLflow (the session's store)
    return compute_reference(df, COLUMNS, 20, 10)


def pipeline_with_reference(spark, settings, reference, folder: Path, name: str, **extra):
    pipe = load_pipeline(write_pipeline(folder / name, name=name, **{"model.registered_name": "follow",
                                                                      "monitoring": MONITORING, **extra}))
    save_reference(spark, settings, pipe, tracking.ModelRef("follow", "1"), reference)
    return pipe


def log_frame(spark, minutes: dict[int, int], drift_from: int, seed: int):
    rows = [r for m, n in minutes.items() for r in records(m, n, m >= drift_from, seed + m)]
    return spark.createDataFrame(rows).withColumn("logged_at", F.to_timestamp("logged_at"))


def snapshot(spark, table: str) -> list[str]:
    """A table's rows (but their computed_at) in a canonical form, to compare two states; floats
    to 9 significant digits (Spark's sums add in no fixed order: the last bits may differ)."""
    def canonical(v):
        if isinstance(v, float):
            return float(f"{v:.9g}")
        if isinstance(v, dict):
            return {k: canonical(x) for k, x in v.items()}
        return [canonical(x) for x in v] if isinstance(v, list) else v
    rows = spark.table(table).drop("computed_at").collect()
    return sorted(json.dumps(canonical(r.asDict(recursive=True)), sort_keys=True, default=str) for r in rows)


def test_window_groups_are_the_batch_monitors_summaries(spark, reference):
    """The streaming aggregation (here on a static frame) gives, per window, the summaries the
    batch monitor's aggregation (aggregates.summarise) gives on the same rows."""
    log = log_frame(spark, {0: 40, 1: 35}, drift_from=1, seed=1)
    specs = window_specs(reference)
    plan = VersionPlan("follow", "1", reference, specs)
    groups = window_groups(log, {("follow", "1"): plan}, 1, 0).collect()
    batch = summarise(log, specs, F.unix_seconds(F.window("logged_at", "1 minute").start))
    assert sorted(batch) == sorted({r["ws"] for r in groups}) == [int(T0.timestamp()), int(T0.timestamp()) + 60]
    for ws, expected in batch.items():
        mine = [r for r in groups if r["ws"] == ws]
        assert sum(r["n"] for r in mine if r["c"] == ROWS_ENTRY) == (40 if ws == int(T0.timestamp()) else 35)
        for s in specs:
            got, want = build(s, [r for r in mine if r["c"] == s.name]), expected[s.name]
            assert (got.n, got.nulls) == (want.n, want.nulls)
            if s.numeric:
                assert got.counts.tolist() == want.counts.tolist() and np.allclose(got.sums, want.sums, atol=1e-9)
            else:
                assert got.counts == want.counts


def test_follow_in_process_on_an_ingested_table_and_a_replayed_batch(spark, settings, reference, tmp_path):
    """A source of the pipeline loads the log table (lakeforge ingest): --follow only reads it and
    closes the windows the watermark passed (not the last one); the drift from minute 2 confirms an
    alert on window 3 (2 of the last 5). Then every closed window is closed again by a new
    WindowCloser (what Spark does after a crash between a batch's writes and its commit): the
    tables stay as they were, the alert keeps its first created_at."""
    log_name = "follow_ingested_log"
    source = {"format": "json", "path": str(tmp_path / "*.jsonl"), "table": log_name, "mode": "incremental"}
    pipe = pipeline_with_reference(spark, settings, reference, tmp_path, "follow_tbl", sources={"prediction_log": source},
                                   monitoring={**MONITORING, "prediction_log": log_name})
    log = settings.table(log_name)
    write_table(log_frame(spark, {0: 12, 1: 13, 2: 14, 3: 15, 4: 1}, drift_from=2, seed=5), log, append=True)
    res = follow(spark, settings, pipe, available_now=True)
    assert [(w.key.start.minute, w.rows, w.dataset[0]) for w in res.windows] == [
        (0, 12, False), (1, 13, False), (2, 14, True), (3, 15, True)]
    assert [(a.window_start.minute, a.breaches) for a in res.alerts] == [(3, 2)]

    tables = {k: settings.table(t) for k, t in live_tables(pipe).items()}
    before = {k: snapshot(spark, t) for k, t in tables.items()}
    drift = spark.table(tables["drift"]).where(F.col("column_name") == TABLE_ROW).collect()
    assert sorted((r["window_start"].minute, r["drift_type"], r["rows"]) for r in drift) == [
        (0, "BASELINE", 12), (1, "BASELINE", 13), (1, "CONSECUTIVE", 13), (2, "BASELINE", 14), (2, "CONSECUTIVE", 14),
        (3, "BASELINE", 15), (3, "CONSECUTIVE", 15)]
    ordered = {c: reference[c] for c in sorted(reference)}  # as plan_follow orders them
    plans = {("follow", "1"): VersionPlan("follow", "1", ordered, window_specs(ordered))}
    closed = window_groups(spark.table(log), plans, 1, 0).where(F.col("ws") < int(T0.timestamp()) + 4 * 60)
    replay = WindowCloser(spark, settings, pipe, plans, lambda _line: None)
    replay(closed, 0)
    assert [(w.key.start.minute, w.rows) for w in replay.closed] == [(0, 12), (1, 13), (2, 14), (3, 15)]
    assert {k: snapshot(spark, t) for k, t in tables.items()} == before


def test_follow_refuses_bad_setups_before_anything_is_written(spark, settings, reference, tmp_path):
    """No reference; a monitored column the reference lacks; a log table that another loader
    filled (--follow would load the files again): one clear error each, no query started,
    no table or checkpoint written."""
    bare = load_pipeline(write_pipeline(tmp_path / "bare", name="follow_bare", **{"model.registered_name": "follow"}))
    with pytest.raises(InputDataError, match="no monitoring reference in lakeforge.follow_bare_monitor_reference"):
        follow(spark, settings, bare, available_now=True)
    owned = pipeline_with_reference(spark, settings, reference, tmp_path, "follow_bad")
    typo = load_pipeline(write_pipeline(tmp_path / "typo", name="follow_bad", **{
        "model.registered_name": "follow", "monitoring": {**MONITORING, "columns": ["x", "sgement"]}}))
    with pytest.raises(InputDataError, match=r"monitoring.columns \['sgement'\] are not in the reference"):
        follow(spark, settings, typo, available_now=True)
    write_table(log_frame(spark, {0: 3}, drift_from=9, seed=1), settings.table("prediction_log_follow_bad"), append=True)
    with pytest.raises(InputDataError, match="prediction_log_follow_bad already has rows that --follow did not load"):
        follow(spark, settings, owned, available_now=True)
    assert not any(spark.catalog.tableExists(settings.table(t)) for t in live_tables(owned).values())
    assert not (Path(settings.warehouse) / "_checkpoints" / "monitor_follow" / owned.name).exists()
    assert not (settings.path(settings.serving.log_dir) / owned.name).exists()


# ------------------------------------------------------------------------------------------
# The real command in a subprocess, killed with SIGKILL and restarted
# ------------------------------------------------------------------------------------------

NAME = "follow_cli"
A = {0: 20, 1: 21, 2: 22, 3: 1}  # closes windows 0-2 (a record of minute 3 moves the watermark)
B = {3: 22, 4: 24, 5: 25, 6: 1}  # closes 3-5; drift from minute 4
C = {6: 25, 7: 27, 8: 3}  # closes 6-7; 8 stays open
EXPECTED = {0: 20, 1: 21, 2: 22, 3: 23, 4: 24, 5: 25, 6: 26, 7: 27}


def append_log(folder: Path, name: str, minutes: dict[int, int]) -> None:
    """One finished log file, as the server finishes one: written as .part, then renamed."""
    part = folder / f"{name}.jsonl.part"
    rows = [r for m, n in minutes.items() for r in records(m, n, m >= 4, 100 * ord(name[0]) + m)]
    part.write_text("".join(json.dumps(r) + "\n" for r in rows))
    part.rename(folder / f"{name}.jsonl")


class Follower:
    """``lakeforge monitor --follow`` in its own process group; its stdout read by a thread."""

    def __init__(self, overlay: Path, pipeline: Path, *extra: str):
        exe = Path(sys.executable).with_name("lakeforge")
        self.proc = subprocess.Popen(
            [str(exe), "--conf", str(overlay), "monitor", str(pipeline), "--follow", *extra], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            env={**os.environ, "LAKEFORGE_HOME": str(ROOT), "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def windows(self) -> list[int]:
        return [int(m.group(1)) for x in list(self.lines) if (m := re.search(r"window 2026-05-01 12:(\d\d)-", x))]

    def wait_for(self, what, timeout: float = 300) -> None:
        deadline = time.time() + timeout
        while not what(self):
            assert self.proc.poll() is None, "".join(self.lines)[-3000:]
            assert time.time() < deadline, "".join(self.lines)[-3000:]
            time.sleep(0.2)


def test_follow_closes_windows_while_running_and_a_kill_repeats_or_skips_none(spark, settings, reference, tmp_path):
    store = tmp_path / "store"
    overlay = write_overlay(store)
    data = yaml.safe_load(overlay.read_text())
    overlay.write_text(yaml.safe_dump({**data, "serving": {"log_dir": str(tmp_path / "log")}}))
    pipe = pipeline_with_reference(spark, settings, reference, tmp_path, NAME)  # the reference in the session's store
    ref_table = settings.table(f"{NAME}_monitor_reference")
    made = run_lakeforge("--conf", str(overlay), "sql", "--write",
                         f"CREATE TABLE lakeforge.{NAME}_monitor_reference USING DELTA "
                         f"LOCATION '{table_location(spark, ref_table)}'")
    assert made.returncode == 0, made.stderr
    log = tmp_path / "log" / NAME

    running = Follower(overlay, pipe.file)
    running.wait_for(lambda f: any("following" in x for x in f.lines))
    append_log(log, "a", A)  # appended while it runs
    running.wait_for(lambda f: set(f.windows()) >= {0, 1, 2})
    append_log(log, "b", B)
    running.wait_for(lambda f: 3 in f.windows() or 4 in f.windows() or 5 in f.windows())
    os.killpg(running.proc.pid, signal.SIGKILL)  # the driver and its JVM, mid-batch or just after
    running.proc.wait(30)
    assert running.proc.returncode == -signal.SIGKILL and 6 not in running.windows()
    append_log(log, "c", C)  # logged while nothing runs
    time.sleep(1)  # the JVM's metastore lock goes with it

    again = Follower(overlay, pipe.file, "--available-now")
    again.proc.wait(300)
    again.reader.join(10)
    assert again.proc.returncode == 3, "".join(again.lines)[-3000:]  # drift alerts confirmed on windows 6 and 7
    assert {6, 7} <= set(again.windows()) and 8 not in again.windows()

    def by_path(table: str):
        return spark.read.format("delta").load(str(store / "warehouse" / "lakeforge.db" / table))

    logged = by_path(f"prediction_log_{NAME}").agg(F.count("*"), F.countDistinct("request_id"), F.count("customerID"),
                                                   F.count("x")).first()
    assert list(logged) == [sum(A.values()) + sum(B.values()) + sum(C.values())] * 4  # each file once, key kept
    drift = by_path(f"{NAME}_live_drift_metrics").where(f"column_name = '{TABLE_ROW}' AND drift_type = 'BASELINE'")
    got = sorted((r["window_start"].minute, r["rows"], r["drifted"]) for r in drift.collect())
    assert got == [(m, n, m >= 4) for m, n in EXPECTED.items()]
    profile = by_path(f"{NAME}_live_profile_metrics").groupBy("window_start").agg(
        F.count("*").alias("rows"), F.max(F.when(F.col("column_name") == TABLE_ROW, F.col("rows"))).alias("n"))
    assert sorted((r["window_start"].minute, r["rows"], r["n"]) for r in profile.collect()) == [
        (m, len(COLUMNS) + 1, n) for m, n in EXPECTED.items()]
    alerts = by_path(f"{NAME}_live_alerts").collect()
    assert sorted(r["window_start"].minute for r in alerts) == [5, 6, 7]
