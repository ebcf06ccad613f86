"""Scheduled-run plumbing: a per-(job, pipeline) lock and the ``job_runs`` record table."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.core.frames import local_frame
from lakeforge.core.settings import Settings
from lakeforge.core.errors import LakeforgeError

JOB_RUNS_TABLE = "job_runs"
JOB_RUNS_SCHEMA = (
    "run_id string, job string, pipeline string, run_date date, status string, "
    "started_at timestamp, finished_at timestamp, duration_s double, rows_in long, rows_out long, "
    "model_name string, model_version string, host string, message string, "
    "input_table string, input_version long"
)


class JobLockedError(LakeforgeError):
    """Another run of the same job and pipeline holds the lock."""


def lock_dir(settings: Settings) -> Path:
    """Locks live next to the warehouse when it is a local folder, else under ~/.lakeforge."""
    warehouse = settings.warehouse
    base = Path(warehouse) if "://" not in warehouse else Path.home() / ".lakeforge"
    return base / "_locks"


@contextlib.contextmanager
def job_lock(settings: Settings, job: str, pipeline: str) -> Iterator[Path]:
    """Hold an exclusive lock for (job, pipeline) while the body runs.

    The lock is an ``flock`` on a file: the operating system releases it when the process ends,
    however it ends (kill -9 included), so a crashed run never leaves it stuck. It guards runs on
    one machine (the driver host), which is where scheduled jobs are started.
    """
    folder = lock_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job}-{pipeline}.lock"
    handle = open(path, "a+")  # noqa: SIM115 - held for the duration of the body
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown process"
            raise JobLockedError(
                f"another '{job}' run of pipeline {pipeline} is still running ({holder}); "
                f"refusing to start. The lock ({path}) is released when that process ends."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {dt.datetime.now():%Y-%m-%d %H:%M:%S}")
        handle.flush()
        yield path
    finally:
        handle.close()


@dataclass
class RunRecord:
    run_id: str
    job: str
    pipeline: str
    run_date: dt.date
    started_at: dt.datetime = field(default_factory=dt.datetime.now)
    status: str = "running"
    rows_in: int | None = None
    rows_out: int | None = None
    model_name: str | None = None
    model_version: str | None = None
    message: str | None = None
    input_table: str | None = None
    input_version: int | None = None

    def finish(self, status: str, message: str | None = None) -> dict:
        finished = dt.datetime.now()
        self.status = status
        self.message = message
        return {
            "run_id": self.run_id, "job": self.job, "pipeline": self.pipeline, "run_date": self.run_date,
            "status": status, "started_at": self.started_at, "finished_at": finished,
            "duration_s": (finished - self.started_at).total_seconds(),
            "rows_in": self.rows_in, "rows_out": self.rows_out,
            "model_name": self.model_name, "model_version": self.model_version,
            "host": socket.gethostname(), "message": message,
            "input_table": self.input_table, "input_version": self.input_version,
        }


def record_run(spark: SparkSession, settings: Settings, row: dict) -> None:
    """Append one run record to ``job_runs`` (one row per attempt: retries are history too)."""
    df = local_frame(spark, [row], JOB_RUNS_SCHEMA)
    df.write.format("delta").mode("append").option("mergeSchema", "true").saveAsTable(settings.table(JOB_RUNS_TABLE))


def last_scored_version(spark: SparkSession, settings: Settings, pipeline: str, input_table: str, before: dt.date) -> int | None:
    """The input version scored by the last successful score run of a date before ``before``."""
    table = settings.table(JOB_RUNS_TABLE)
    if not spark.catalog.tableExists(table) or "input_version" not in spark.table(table).columns:
        return None
    row = (
        spark.table(table)
        .where("job = 'score' AND status = 'succeeded' AND input_version IS NOT NULL")
        .where((F.col("pipeline") == pipeline) & (F.col("input_table") == input_table) & (F.col("run_date") < F.lit(before)))
        .orderBy(F.col("run_date").desc(), F.col("finished_at").desc())
        .select("input_version")
        .first()
    )
    return None if row is None else int(row[0])
