"""Shared set-up of the benchmark scripts: a throwaway warehouse and Spark session built by
lakeforge's own factory, and the driver JVM's memory readings."""

from __future__ import annotations

import os
import resource
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def start(prefix: str, driver_memory: str):
    """(work folder, settings, spark, driver JVM pid) with every store under a temp folder."""
    os.environ.setdefault("LAKEFORGE_HOME", str(ROOT))
    from conftest import write_overlay

    from lakeforge.core.settings import load_settings
    from lakeforge.core.spark import get_spark

    work = Path(tempfile.mkdtemp(prefix=prefix))
    overlay = write_overlay(work, master="local[*]", shuffle_partitions=8, driver_memory=driver_memory)
    settings = load_settings(overlays=[overlay], conf_dir=ROOT / "conf")
    spark = get_spark(settings)
    return work, settings, spark, spark._jvm.java.lang.ProcessHandle.current().pid()  # noqa: SLF001


def jvm_peak_rss_reset(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as f:  # "5" resets the peak RSS (VmHWM)
        f.write("5")


def jvm_peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def python_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
