"""Benchmark: ``lakeforge monitor`` on generated scored rows x 20 columns against a training
reference, beside one plain Spark aggregation pass over the same rows, and the same statistics
with Evidently on pandas.

    nice -n 10 .venv/bin/python scripts/bench_monitor.py [--rows 1000000,10000000] [--reference-rows 200000]
        [--evidently-python PATH --evidently-rows 1000000] [--out docs/bench_monitor.json]
        [--master spark://127.0.0.1:7077 --executor-memory 1g --executor-cores 1 --cores-max 2]

For each size in ``--rows``, in a throwaway warehouse: an input table (a key and 18 features: 10
numeric of several shapes, 8 categorical of 2 to 1,000 levels, some nulls) and a predictions
table (key, score, predicted label, one run date) with drift in 5 columns; the job_runs record
linking them; the reference summarised from ``--reference-rows`` undrifted rows (as training
stores it). Then, each timed with the driver JVM's peak RSS (VmHWM) and peak heap (the heap
pools' peak usage) reset before it, and its Spark jobs and the records their stages read taken
from Spark's status store:

- ``plain``: ONE aggregation (count, min and max of every column) over the scored rows exactly as
  monitor reads them (the predictions joined with the input version job_runs recorded);
- ``monitor``: lakeforge.monitoring.job.monitor for the run date, end to end (reads, the one
  summary aggregation, drift statistics, the four Delta writes, the alert rule).

``passes`` = records read by all stages / records of the two big tables (predictions + inputs):
1.0 is one read of the scored rows. In local mode the driver JVM also runs the tasks, so its
RSS and heap include the executors' buffers; the Python driver's peak RSS is reported too.

With ``--master spark://HOST:PORT`` (a standalone cluster on this machine, scripts/cluster.sh) the
driver JVM runs no tasks: its peak heap, its heap after a full GC and its peak RSS are the driver's
alone, and the executors' JVMs (found by the application id in their command lines) are measured
beside it (peak RSS, reset before each call). The generated tables live in the throwaway warehouse
under /tmp, which the executors on the same machine read and write.

With ``--evidently-python`` (a Python where Evidently is installed: it cannot share lakeforge's
environment, see scripts/bench_monitor_evidently.py), the size ``--evidently-rows`` is also exported
to Parquet (the same rows, the same reference) and Evidently computes the same statistics in that
process: load and compute time, its peak RSS, and each value beside lakeforge's (the differences
and why they exist are listed in docs/benchmarks.md (section "lakeforge monitor")).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchlib import ROOT, jvm_peak_rss_mb, jvm_peak_rss_reset, start  # noqa: E402
from bench_monitor_cluster import ExecutorMeter, start_on_cluster  # noqa: E402
from bench_monitor_data import CATEGORICAL, NUMERIC, generate  # noqa: E402

NAME = "bench_monitor"
DAY = dt.date(2026, 7, 1)
COMPARED = {"numeric": {"ks": "ks_pvalue", "wasserstein": "wasserstein_norm", "psi": "psi", "jensenshannon": "js_distance"},
            "categorical": {"chisquare": "chi2_pvalue", "psi": "psi", "jensenshannon": "js_distance"}}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="1000000,10000000", help="comma-separated sizes (default 1,000,000 and 10,000,000)")
    p.add_argument("--reference-rows", type=int, default=200_000, help="rows the reference is summarised from")
    p.add_argument("--partitions", type=int, default=16, help="partitions of the generated tables")
    p.add_argument("--driver-memory", default="4g")
    p.add_argument("--master", default=None, help="a standalone master URL (default: local mode, local[*])")
    p.add_argument("--executor-memory", default="1g", help="with --master: spark.executor.memory")
    p.add_argument("--executor-cores", type=int, default=1, help="with --master: spark.executor.cores")
    p.add_argument("--cores-max", type=int, default=2, help="with --master: spark.cores.max")
    p.add_argument("--evidently-python", default=None, help="a python with evidently (and pandas, pyarrow) installed")
    p.add_argument("--evidently-rows", type=int, default=1_000_000, help="the size at which Evidently runs too")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    return p.parse_args()


class StageMeter:
    """The Spark jobs of one measured call and the records their stages read, from the driver's
    status store (a job group per call)."""

    def __init__(self, spark):
        self.sc = spark.sparkContext
        self.store = self.sc._jsc.sc().statusStore()  # noqa: SLF001 - Spark's own status store (py4j)

    def run(self, group: str, fn):
        self.sc.setJobGroup(group, group)
        try:
            t0 = time.perf_counter()
            value = fn()
            seconds = time.perf_counter() - t0
        finally:
            self.sc.setLocalProperty("spark.jobGroup.id", None)
        self.sc._jsc.sc().listenerBus().waitUntilEmpty(60_000)  # noqa: SLF001 - the store has every event
        jobs = list(self.sc.statusTracker().getJobIdsForGroup(group))
        stages = sorted({s for j in jobs for s in (self.sc.statusTracker().getJobInfo(j).stageIds or [])})
        records = sum(self._input_records(s) for s in stages)
        return value, {"seconds": round(seconds, 2), "spark_jobs": len(jobs), "stages": len(stages),
                       "records_read": records}

    def _input_records(self, stage: int) -> int:
        try:
            data = self.store.lastStageAttempt(stage)
        except Exception:  # noqa: BLE001 - a stage skipped (its shuffle output reused) has no attempt
            return 0
        return int(data.inputRecords())


class HeapMeter:
    """Peak used heap of the driver JVM (the heap pools' peak usage, reset before a measurement),
    its heap after a full GC once the call returned, and with ``executors`` (on a cluster) the
    executors' peak RSS."""

    def __init__(self, spark, pid: int, executors=None):
        self.jvm, self.pid, self.executors = spark._jvm, pid, executors  # noqa: SLF001

    def _pools(self):
        pools = self.jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans()
        return [p for p in pools if str(p.getType().toString()) == "Heap memory"]

    def reset(self) -> None:
        self.jvm.java.lang.System.gc()
        for p in self._pools():
            p.resetPeakUsage()
        jvm_peak_rss_reset(self.pid)
        jvm_peak_rss_reset(os.getpid())
        if self.executors:
            self.executors.reset()

    def read(self) -> dict:
        pools = self._pools()
        out = {"jvm_peak_heap_mb": round(sum(p.getPeakUsage().getUsed() for p in pools) / 2**20, 1),
               "jvm_peak_heap_by_pool_mb": {str(p.getName()): round(p.getPeakUsage().getUsed() / 2**20, 1)
                                            for p in pools},
               "jvm_peak_rss_mb": round(jvm_peak_rss_mb(self.pid), 1),
               "python_peak_rss_mb": round(jvm_peak_rss_mb(os.getpid()), 1)}
        if self.executors:
            out.update(self.executors.read())
        self.jvm.java.lang.System.gc()
        heap = self.jvm.java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage()
        out["jvm_heap_after_gc_mb"] = round(heap.getUsed() / 2**20, 1)
        return out


def prepare(spark, settings, work: Path, rows: int, args) -> tuple:
    """The tables, the job_runs record and the stored reference; returns (pipeline, seconds)."""
    from conftest import write_pipeline
    from pyspark.sql import functions as F

    from lakeforge.core import tracking
    from lakeforge.core.config import load_pipeline
    from lakeforge.core.io import write_table
    from lakeforge.core.runs import RunRecord, record_run
    from lakeforge.monitoring.reference import compute_reference, save_reference

    pipe = load_pipeline(write_pipeline(work / f"conf{rows}", name=NAME, **{
        "tables": {"bronze": f"bronze_{NAME}", "predictions": f"predictions_{NAME}"},
        "key": "id", "model.registered_name": NAME, "scoring.input_table": f"inputs_{NAME}", "monitoring": {}}))
    t0 = time.perf_counter()
    current = generate(spark, rows, args.partitions, seed=1, drift=True)
    inputs = settings.table(f"inputs_{NAME}")
    written = write_table(current.select("id", *NUMERIC, *CATEGORICAL), inputs, overwrite_schema=True)
    preds = current.select("id", "score", "predicted_label", F.lit(NAME).alias("model_name"),
                           F.lit("1").alias("model_version"), F.lit(DAY).alias("run_date"))
    write_table(preds, settings.table(pipe.tables.predictions), overwrite_schema=True)
    record_run(spark, settings, RunRecord(f"bench{rows}", "score", NAME, DAY, input_table=inputs,
                                          input_version=written.version).finish("succeeded"))
    generated = time.perf_counter() - t0
    t1 = time.perf_counter()
    ref = generate(spark, args.reference_rows, max(2, args.partitions // 4), seed=2, drift=False).cache()
    columns = [*NUMERIC, *CATEGORICAL, "score", "predicted_label"]
    tracking.configure(settings)
    save_reference(spark, settings, pipe, tracking.ModelRef(NAME, "1"),
                   compute_reference(ref, columns, pipe.monitoring.bins, pipe.monitoring.max_points))
    ref.unpersist()
    return pipe, {"generate_and_write_s": round(generated, 1), "reference_s": round(time.perf_counter() - t1, 1)}


def plain_frame(spark, settings, pipe):
    """The scored rows exactly as monitor reads them (its batches' query is not part of the pass)."""
    from lakeforge.monitoring.windows import date_batches, scored_rows

    batches = date_batches(spark, settings, pipe, [DAY])
    return scored_rows(spark, settings, pipe, batches, [*NUMERIC, *CATEGORICAL, "score", "predicted_label"])


def plain_pass(df):
    """ONE aggregation: the row count, and count, min and max of every column."""
    from pyspark.sql import functions as F

    columns = [*NUMERIC, *CATEGORICAL, "score", "predicted_label"]
    aggs = [F.count(F.lit(1)).alias("rows")]
    for i, c in enumerate(columns):
        aggs += [F.count(c).alias(f"n{i}"), F.min(c).alias(f"lo{i}"), F.max(c).alias(f"hi{i}")]
    return df.agg(*aggs).first()


def one_size(spark, settings, pid: int, work: Path, rows: int, args) -> tuple[dict, object]:
    from lakeforge.monitoring.job import monitor

    pipe, setup = prepare(spark, settings, work, rows, args)
    meter = StageMeter(spark)
    heap = HeapMeter(spark, pid, ExecutorMeter(spark) if args.master else None)
    out = {"rows": rows, "columns": len(NUMERIC) + len(CATEGORICAL) + 2, "reference_rows": args.reference_rows, **setup}
    big = 2 * rows  # the predictions and their input rows
    frame = plain_frame(spark, settings, pipe)
    for label, fn in (("plain", lambda: plain_pass(frame)),
                      ("monitor", lambda: monitor(spark, settings, pipe, [DAY]))):
        heap.reset()
        value, m = meter.run(f"bench-{label}-{rows}", fn)
        m["passes"] = round(m["records_read"] / big, 2)
        out[label] = {**m, **heap.read()}
        if label == "monitor":
            result = value
            out[label]["monitor_counted_passes"] = value.passes
        print(f"  {rows:,} rows {label}: {out[label]}", flush=True)
    out["ratio_monitor_to_plain"] = round(out["monitor"]["seconds"] / out["plain"]["seconds"], 2)
    return out, result


def export_for_evidently(spark, settings, work: Path, rows: int, args) -> tuple[Path, Path, Path]:
    """The same current rows (the flat 20 columns) and the same reference rows as Parquet."""
    columns = [*NUMERIC, *CATEGORICAL, "score", "predicted_label"]
    cur, ref = work / "current.parquet", work / "reference.parquet"
    generate(spark, rows, args.partitions, seed=1, drift=True).select(*columns).write.mode("overwrite").parquet(str(cur))
    generate(spark, args.reference_rows, max(2, args.partitions // 4), seed=2, drift=False).select(*columns) \
        .write.mode("overwrite").parquet(str(ref))
    spec = work / "spec.json"
    spec.write_text(json.dumps({"numeric": [*NUMERIC, "score", "predicted_label"], "categorical": CATEGORICAL}))
    return ref, cur, spec


def run_evidently(python: str, ref: Path, cur: Path, spec: Path, work: Path) -> dict:
    target = work / "evidently.json"
    t0 = time.perf_counter()
    proc = subprocess.run(["nice", "-n", "10", python, str(ROOT / "scripts" / "bench_monitor_evidently.py"), str(ref),
                           str(cur), str(spec), str(target)], capture_output=True, text=True, timeout=7200)
    if proc.returncode != 0:
        raise RuntimeError(f"the Evidently run failed: {proc.stderr.strip().splitlines()[-1:]}")
    found = json.loads(target.read_text())
    found["process_wall_s"] = round(time.perf_counter() - t0, 1)
    return found


def compare(result, evidently: dict) -> dict:
    """Per statistic: the largest |lakeforge - Evidently| over the columns, and each column's pair."""
    lake = {r.column: r for r in result.windows[0].baseline}
    out: dict = {}
    for kind, methods in COMPARED.items():
        cols = [*NUMERIC, "score", "predicted_label"] if kind == "numeric" else CATEGORICAL
        for method, attr in methods.items():
            pairs = {c: (getattr(lake[c], attr), evidently["values"][c][method]) for c in cols if c in lake}
            diffs = [abs(a - b) for a, b in pairs.values() if a is not None and b is not None]
            out[f"{kind} {method}"] = {"max_abs_diff": max(diffs, default=None),
                                       "pairs": {c: [a, b] for c, (a, b) in pairs.items()}}
    return out


def main() -> None:
    args = parse_args()
    sizes = [int(s) for s in args.rows.split(",")]
    if args.master:
        work, settings, spark, pid = start_on_cluster("lakeforge-bench-monitor-", args)
    else:
        work, settings, spark, pid = start("lakeforge-bench-monitor-", args.driver_memory)
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "spark": spark.version,
                           "load_average_at_start": os.getloadavg()},
               "spark": {"master": spark.sparkContext.master, "driver_memory": args.driver_memory,
                         **({"executor_memory": args.executor_memory, "executor_cores": args.executor_cores,
                             "cores_max": args.cores_max,
                             "driver_jvm_options": getattr(args, "driver_jvm_options", None)} if args.master else {})},
               "command": " ".join([Path(sys.executable).name, *sys.argv]), "sizes": []}
    try:
        for rows in sizes:
            size, result = one_size(spark, settings, pid, work, rows, args)
            if args.evidently_python and rows == args.evidently_rows:
                ref, cur, spec = export_for_evidently(spark, settings, work, rows, args)
                ev = run_evidently(args.evidently_python, ref, cur, spec, work)
                size["evidently"] = {k: v for k, v in ev.items() if k != "values"}
                size["lakeforge_vs_evidently"] = compare(result, ev)
                print(f"  evidently: {size['evidently']}", flush=True)
            results["sizes"].append(size)
        results["load_average_at_end"] = os.getloadavg()
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(results, indent=1, default=str)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
