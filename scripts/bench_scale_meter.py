"""How scripts/bench_scale.py measures one ``lakeforge`` command run in a subprocess.

- wall time of the command (JVM start included);
- peak RSS (VmHWM) of its Python process and of its driver JVM (a descendant running java),
  sampled from /proc every 0.25 s while it runs; on a standalone cluster also the peak RSS of the
  executor JVMs (CoarseGrainedExecutorBackend) that ran meanwhile;
- the driver JVM's heap from its own GC log (``-Xlog:gc``): the peak used heap (the largest
  occupancy before a collection), the largest occupancy after a collection (an upper bound of
  the live data at the worst moment) and the occupancy after the last one;
- spill: "Memory Bytes Spilled" and "Disk Bytes Spilled" of every task, summed from the Spark
  event log of the command;
- files: data files the command added under the warehouse's table folders (and their bytes).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

GC_LINE = re.compile(r"GC\(\d+\) (Pause \w+|Pause Full).*? (\d+)([KMG])->(\d+)([KMG])\((\d+)([KMG])\)")
UNIT_MB = {"K": 1 / 1024, "M": 1.0, "G": 1024.0}


def _status(pid: int) -> dict[str, str]:
    out = {}
    try:
        for line in open(f"/proc/{pid}/status"):
            k, _, v = line.partition(":")
            out[k] = v.strip()
    except OSError:
        pass
    return out


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            kids += [int(x) for x in open(f"/proc/{pid}/task/{task}/children").read().split()]
    except OSError:
        pass
    return kids


def _executor_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"CoarseGrainedExecutorBackend" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class Sampler(threading.Thread):
    """Peak RSS of the command's Python process, its driver JVM and the executors."""

    def __init__(self, pid: int, executors: bool):
        super().__init__(daemon=True)
        self.pid, self.executors, self.stop = pid, executors, threading.Event()
        self.peaks: dict[int, tuple[str, float]] = {}

    def _sample(self, pid: int, kind: str) -> None:
        hwm = _status(pid).get("VmHWM", "0 kB").split()[0]
        mb = int(hwm) / 1024
        if mb > self.peaks.get(pid, (kind, 0.0))[1]:
            self.peaks[pid] = (kind, mb)

    def run(self) -> None:
        while not self.stop.is_set():
            self._sample(self.pid, "python")
            todo = _children(self.pid)
            while todo:
                p = todo.pop()
                name = _status(p).get("Name", "")
                self._sample(p, "jvm" if name == "java" else "other")
                todo += _children(p)
            if self.executors:
                for p in _executor_pids():
                    self._sample(p, "executor")
            self.stop.wait(0.25)

    def result(self) -> dict:
        def peak(kind):
            return round(max((mb for k, mb in self.peaks.values() if k == kind), default=0.0), 1)

        out = {"python_peak_rss_mb": peak("python"), "jvm_peak_rss_mb": peak("jvm")}
        if self.executors:
            out["executor_peak_rss_mb"] = sorted(round(mb, 1) for k, mb in self.peaks.values() if k == "executor")
        return out


def gc_heap(log: Path) -> dict:
    """Peak heap, largest heap after a collection and heap after the last one, from a -Xlog:gc file."""
    before, after, full = [], [], 0
    for line in log.read_text().splitlines() if log.exists() else []:
        m = GC_LINE.search(line)
        if m:
            before.append(float(m.group(2)) * UNIT_MB[m.group(3)])
            after.append(float(m.group(4)) * UNIT_MB[m.group(5)])
            full += "Full" in m.group(1)
    return {"jvm_peak_heap_mb": round(max(before, default=0.0), 1), "jvm_max_heap_after_gc_mb": round(max(after, default=0.0), 1),
            "jvm_last_heap_after_gc_mb": round(after[-1], 1) if after else None, "gc_count": len(before), "full_gc_count": full}


def spill(events: Path) -> dict:
    """Spilled bytes (memory and disk) summed over the tasks of every event log under ``events``."""
    memory = disk = tasks = 0
    for f in (events.rglob("*") if events.exists() else []):  # Spark 4: eventlog_v2_<app>/events_<n>_<app>
        if not f.is_file() or f.name.startswith(".") or f.name.startswith("appstatus"):
            continue
        with open(f) as fh:
            for line in fh:
                if '"SparkListenerTaskEnd"' not in line:
                    continue
                metrics = json.loads(line).get("Task Metrics") or {}
                memory += metrics.get("Memory Bytes Spilled", 0)
                disk += metrics.get("Disk Bytes Spilled", 0)
                tasks += 1
    return {"spill_memory_mb": round(memory / 2**20, 1), "spill_disk_mb": round(disk / 2**20, 1), "tasks": tasks}


def data_files(warehouse: Path) -> dict[str, int]:
    """Every data file under the warehouse's table folders (metastore and Delta logs left out): path -> bytes."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(warehouse):
        dirnames[:] = [d for d in dirnames if d not in ("metastore_db", "_delta_log", "_checkpoints")]
        for name in filenames:
            if not name.startswith((".", "_")) and name != "derby.log":
                p = os.path.join(dirpath, name)
                found[p] = os.path.getsize(p)
    return found


def run_command(cmd: list[str], warehouse: Path, gc_log: Path, events: Path, executors: bool, timeout: float) -> dict:
    """Run one lakeforge command; its measurements (ok: exit code 0, or 3 for monitor's alert). Its
    whole output is kept beside its GC log (``<stage>.out``); the result has the last lines."""
    before = data_files(warehouse)
    events.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(proc.pid, executors)
    sampler.start()
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        output += f"\n[bench] killed after {timeout:.0f} s"
    wall = time.perf_counter() - t0
    gc_log.with_suffix(".out").write_text(output)  # the whole output, beside the stage's GC log
    sampler.stop.set()
    sampler.join()
    after = data_files(warehouse)
    new = {p: b for p, b in after.items() if p not in before}
    return {"exit_code": proc.returncode, "ok": proc.returncode in (0, 3), "wall_s": round(wall, 1),
            **sampler.result(), **gc_heap(gc_log), **spill(events),
            "files_written": len(new), "bytes_written_mb": round(sum(new.values()) / 2**20, 1),
            "output_tail": output.strip().splitlines()[-12:]}
