"""scripts/bench_monitor.py against a Spark standalone master (``--master``): the session, and the
executors' JVMs measured apart from the driver's.

On a standalone cluster the driver JVM schedules and collects results but runs no tasks, so its
memory is the driver's alone; the executors are ``CoarseGrainedExecutorBackend`` JVMs started by
the workers, recognised by the application id on their command line.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from benchlib import ROOT, jvm_peak_rss_mb, jvm_peak_rss_reset


def start_on_cluster(prefix: str, args):
    """(work folder, settings, spark, driver JVM pid) with the session on ``args.master``."""
    os.environ.setdefault("LAKEFORGE_HOME", str(ROOT))
    # The executors' Python (if a stage ever needs one) is this interpreter, which has lakeforge.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from conftest import write_overlay

    from lakeforge.core.settings import load_settings
    from lakeforge.core.spark import get_spark

    work = Path(tempfile.mkdtemp(prefix=prefix))
    conf = {"spark.executor.memory": args.executor_memory, "spark.executor.cores": str(args.executor_cores),
            "spark.cores.max": str(args.cores_max)}
    overlay = write_overlay(work, master=args.master, shuffle_partitions=8, driver_memory=args.driver_memory,
                            conf=conf)
    settings = load_settings(overlays=[overlay], conf_dir=ROOT / "conf")
    spark = get_spark(settings)
    args.driver_jvm_options = [str(a) for a in spark._jvm.java.lang.management.ManagementFactory  # noqa: SLF001
                               .getRuntimeMXBean().getInputArguments()]
    return work, settings, spark, spark._jvm.java.lang.ProcessHandle.current().pid()  # noqa: SLF001


class ExecutorMeter:
    """Peak RSS (VmHWM) of the application's executor JVMs on this machine."""

    def __init__(self, spark):
        self.app_id = spark.sparkContext.applicationId

    def pids(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:  # the process ended meanwhile
                continue
            if b"org.apache.spark.executor.CoarseGrainedExecutorBackend" in cmd and self.app_id.encode() in cmd:
                found.append(int(entry.name))
        return sorted(found)

    def reset(self) -> None:
        for pid in self.pids():
            jvm_peak_rss_reset(pid)

    def read(self) -> dict:
        peaks = [round(jvm_peak_rss_mb(pid), 1) for pid in self.pids()]
        return {"executors": len(peaks), "executor_peak_rss_mb": peaks}
