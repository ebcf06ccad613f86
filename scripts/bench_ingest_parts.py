"""Where lakeforge's CSV -> bronze ingest spends its time beyond plain Spark (issue 3).

    .venv/bin/python scripts/bench_ingest_parts.py [--rows 5000000] [--runs 3] [--out docs/bench_ingest_parts.json]

The same generated CSV as scripts/bench_ingest.py (20 columns, one bad record in 100,000). Each
variant adds ONE thing to the one before it, up to lakeforge's own load job, then the whole
``lakeforge.ingest.job.ingest``:

  1 plain Parquet                 spark.read.schema(S).csv(...).write.parquet(...)  (the comparator)
  2 plain Delta, no statistics    the same rows to a new Delta table with data skipping off
  3 + statistics on the key       min/max/nulls for ``id`` (lakeforge keeps them for key lookups)
  4 + corrupt-record column       PERMISSIVE parse keeping the text of a bad record, bad rows filtered out
  5 + _source                     the file of every row (input_file_name())
  6 + Observation                 count of records read + the bad records, on the scan
  7 + the other metadata          _ingested_at, _run_id, _run_date (= lakeforge's load job)
  8 lakeforge ingest()            7 + reading the header, the table's snapshot, the commit's
                                  version, the quarantine table, the ingest_runs record

Variants alternate within each round (after one warm-up round). Besides wall time it reports the
driver JVM's CPU seconds (user + system; in local mode the JVM runs the tasks too): on 2 cores
a wall-time difference of 1 s is within the noise, a CPU-time difference is steadier.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import time
from pathlib import Path

from benchlib import start  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=5_000_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--csv", default=None, help="reuse a CSV folder written by an earlier run (same --rows)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--driver-memory", default="4g")
    return p.parse_args()


def jvm_cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main() -> int:
    args = parse_args()
    import bench_ingest
    from delta.tables import DeltaTable
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    from lakeforge.core.config import PipelineConfig
    from lakeforge.ingest.job import ingest

    work, settings, spark, jvm_pid = start("lakeforge-bench-parts-", args.driver_memory)
    cols = bench_ingest.columns(20)
    ddl = ", ".join(f"{n} {t}" for n, t in cols)
    names = [n for n, _ in cols]
    csv = Path(args.csv) if args.csv else work / "input_csv"
    if not args.csv:
        bench_ingest.generate(spark, csv, args.rows, cols, 100_000)
    files = sorted(str(p) for p in csv.glob("*.csv"))
    pipeline = PipelineConfig.model_validate(
        {"name": "bench_parts", "source": {"format": "csv", "path": str(csv), "options": {"header": True}, "schema": ddl},
         "key": "id", "target": "id", "tables": {"bronze": "bronze_parts", "predictions": "pred_parts"},
         "model": {"registered_name": "bench"}})

    def fresh(name: str) -> str:
        path = work / name
        shutil.rmtree(path, ignore_errors=True)
        return str(path)

    def delta(df, name: str, stats: str | None) -> None:
        path = fresh(name)
        builder = DeltaTable.create(spark).location(path).addColumns(df.schema)
        builder = (builder.property("delta.dataSkippingStatsColumns", stats) if stats
                   else builder.property("delta.dataSkippingNumIndexedCols", "0"))
        builder.execute()
        df.write.format("delta").mode("append").save(path)

    def plain_scan():
        return spark.read.schema(ddl).option("header", True).csv(files)

    def scan(with_file: bool):
        df = (spark.read.schema(ddl + ", _corrupt_record STRING").option("header", True).option("mode", "PERMISSIVE")
              .option("columnNameOfCorruptRecord", "_corrupt_record").option("enforceSchema", "false").csv(files))
        return df.select("*", F.input_file_name().alias("_source")) if with_file else df

    def observed(df, seq=[0]):  # noqa: B006 - a counter for unique Observation names
        seq[0] += 1
        obs = Observation(f"parts_{seq[0]}")
        bad = F.col("_corrupt_record").isNotNull()
        return df.observe(obs, F.count(F.lit(1)).alias("n"),
                          F.collect_list(F.when(bad, F.struct("_corrupt_record", "_source"))).alias("bad")), obs

    def v5(observe: bool, meta: bool):
        df, obs = observed(scan(True)) if observe else (scan(True), None)
        extra = ([F.current_timestamp().alias("_ingested_at"), F.lit("run-20260101-0001").alias("_run_id"),
                  F.lit(dt.date(2026, 1, 1)).alias("_run_date")] if meta else [])
        delta(df.where("_corrupt_record IS NULL").select(*names, "_source", *extra), "v", "id,_run_id" if meta else "id")
        if obs is not None:
            assert obs.get["n"] == args.rows

    runs_done = [0]

    def lakeforge():
        runs_done[0] += 1
        [res] = ingest(spark, settings, pipeline, f"parts-{runs_done[0]}", dt.date(2026, 1, 1))
        assert res.counts_add_up and res.rows_read == args.rows

    variants = {
        "1 plain Parquet": lambda: plain_scan().write.parquet(fresh("p")),
        "2 plain Delta, no statistics": lambda: delta(plain_scan(), "d", None),
        "3 + statistics on the key": lambda: delta(plain_scan(), "d", "id"),
        "4 + corrupt-record column": lambda: delta(scan(False).where("_corrupt_record IS NULL").select(*names), "c", "id"),
        "5 + _source": lambda: v5(False, False),
        "6 + Observation": lambda: v5(True, False),
        "7 + the other metadata": lambda: v5(True, True),
        "8 lakeforge ingest()": lakeforge,
    }
    for f in variants.values():  # warm-up: JIT, page cache, the bronze table exists
        f()
    results: dict[str, list[tuple[float, float]]] = {n: [] for n in variants}
    for r in range(args.runs):
        for name, f in variants.items():
            c0, t0 = jvm_cpu_seconds(jvm_pid), time.perf_counter()
            f()
            wall, cpu = time.perf_counter() - t0, jvm_cpu_seconds(jvm_pid) - c0
            results[name].append((wall, cpu))
            print(f"round {r + 1} {name:30s} wall {wall:6.2f} s  JVM CPU {cpu:6.2f} s", flush=True)

    base_wall = statistics.median(w for w, _ in results["1 plain Parquet"])
    base_cpu = statistics.median(c for _, c in results["1 plain Parquet"])
    table = {}
    for name, v in results.items():
        wall, cpu = statistics.median(w for w, _ in v), statistics.median(c for _, c in v)
        table[name] = {"wall_median_s": round(wall, 2), "jvm_cpu_median_s": round(cpu, 2),
                       "wall_ratio": round(wall / base_wall, 3), "cpu_ratio": round(cpu / base_cpu, 3),
                       "runs": [[round(w, 2), round(c, 2)] for w, c in v]}
        print(f"{name:30s} wall {wall:6.2f} s ({wall / base_wall:4.2f}x)  JVM CPU {cpu:6.2f} s ({cpu / base_cpu:4.2f}x)")
    report = {"date": dt.date.today().isoformat(), "rows": args.rows, "columns": len(cols), "runs": args.runs,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "variants": table}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
