"""Benchmark: lakeforge's CSV -> bronze Delta ingest vs plain Spark, side by side in one run.

    .venv/bin/python scripts/bench_ingest.py [--rows 5000000] [--cols 20] [--bad-every 100000] [--runs 3]
                                             [--out docs/bench_ingest.json]

It generates one CSV dataset (``--rows`` rows, ``--cols`` columns: an id, doubles, integers,
strings, a date and a timestamp; one record in ``--bad-every`` has a value that does not cast,
so the quarantine path is exercised), written by Spark as several part files, then alternates,
``--runs`` times, on the same files:

- plain:     spark.read.schema(S).option("header", True).csv(path).write.parquet(out)
- lakeforge: lakeforge.ingest.job.ingest(...) with the same schema in the pipeline config: typed
             casting with a reason per bad value, quarantine table, ingestion metadata
             (_ingested_at, _source, _run_id, _run_date), the N = M + Q counts, the ingest_runs
             record, atomic Delta commit (overwrite of the bronze table).

Both get the same explicit schema (with inferSchema both would pay one more pass). It reports
medians of wall seconds, rows/s, the ratio lakeforge/plain, the driver JVM's peak RSS (VmHWM,
reset before each run; in local mode it also hosts the executors) and the Python driver's peak RSS.
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

from benchlib import jvm_peak_rss_mb, jvm_peak_rss_reset, python_peak_rss_mb, start  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=5_000_000)
    p.add_argument("--cols", type=int, default=20, help="columns (at least 6)")
    p.add_argument("--bad-every", type=int, default=100_000, help="one bad value every N rows (0: none)")
    p.add_argument("--bad-value", default="bad",
                   help="the bad value (default 'bad'; a missing-value marker such as 'NA' or 'n/a' is no bad "
                        "value: those records are parsed again and load with a null)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--driver-memory", default="4g")
    return p.parse_args()


def columns(n: int) -> list[tuple[str, str]]:
    """(name, SQL type) for ``n`` columns: id, date, timestamp, then doubles / ints / strings."""
    cols = [("id", "BIGINT"), ("day", "DATE"), ("ts", "TIMESTAMP")]
    kinds = ["DOUBLE", "INT", "STRING"]
    for i in range(n - len(cols)):
        cols.append((f"c{i:02d}_{kinds[i % 3].lower()}", kinds[i % 3]))
    return cols


def generate(spark, path: Path, rows: int, cols: list[tuple[str, str]], bad_every: int, bad_value: str = "bad") -> int:
    from pyspark.sql import functions as F

    df = spark.range(rows).withColumnRenamed("id", "id")
    exprs = [F.col("id").cast("string").alias("id"),
             F.date_add(F.lit("2024-01-01").cast("date"), (F.col("id") % 365).cast("int")).cast("string").alias("day"),
             F.timestamp_seconds(F.lit(1_700_000_000) + F.col("id") * 7).cast("string").alias("ts")]
    for name, kind in cols[3:]:
        h = F.abs(F.xxhash64(F.col("id"), F.lit(name)))
        if kind == "DOUBLE":
            e = F.round((h % 1_000_000) / 997.0, 3).cast("string")
        elif kind == "INT":
            e = (h % 100_000).cast("string")
        else:
            e = F.concat(F.lit("v"), (h % 5000).cast("string"))
        if kind != "STRING" and bad_every:
            e = F.when(F.col("id") % bad_every == bad_every - 1, F.lit(bad_value)).otherwise(e)
        exprs.append(e.alias(name))
    df.select(*exprs).repartition(16).write.option("header", True).mode("overwrite").csv(str(path))
    return sum(1 for c in cols[3:] if c[1] != "STRING") and (rows // bad_every if bad_every else 0)


def main() -> int:
    args = parse_args()
    import yaml

    from lakeforge.core.config import PipelineConfig
    from lakeforge.ingest.job import ingest

    work, settings, spark, jvm_pid = start("lakeforge-bench-ingest-", args.driver_memory)
    cols = columns(args.cols)
    ddl = ", ".join(f"{n} {t}" for n, t in cols)
    csv = work / "input_csv"
    t0 = time.perf_counter()
    expected_bad = generate(spark, csv, args.rows, cols, args.bad_every, args.bad_value)
    size_mb = sum(f.stat().st_size for f in csv.glob("*.csv")) / 2**20
    print(f"generated {args.rows:,} rows x {len(cols)} columns ({size_mb:.0f} MB, 16 files) in {time.perf_counter() - t0:.1f}s; "
          f"bad records expected: {expected_bad}", flush=True)

    data = {"name": "bench_ingest", "source": {"format": "csv", "path": str(csv), "options": {"header": True}, "schema": ddl},
            "key": "id", "target": "id", "tables": {"bronze": "bronze_bench", "predictions": "pred_bench"},
            "model": {"registered_name": "bench"}}
    (work / "bench.yaml").write_text(yaml.safe_dump(data))
    pipeline = PipelineConfig.model_validate(data).model_copy(update={"file": work / "bench.yaml"})

    def plain() -> dict:
        out = work / "plain_out"
        shutil.rmtree(out, ignore_errors=True)
        spark.read.schema(ddl).option("header", True).csv(str(csv)).write.parquet(str(out))
        return {}

    def lakeforge(i: int) -> dict:
        [res] = ingest(spark, settings, pipeline, f"bench-{i}", dt.date(2026, 1, 1))
        assert res.counts_add_up, (res.rows_read, res.rows_loaded, res.rows_quarantined)
        return {"read": res.rows_read, "loaded": res.rows_loaded, "quarantined": res.rows_quarantined}

    # warm-up (JIT, file cache): one small run of each
    plain()
    lakeforge(-1)
    results: dict[str, list] = {"plain": [], "lakeforge": []}
    for i in range(args.runs):
        for variant in ("plain", "lakeforge"):
            jvm_peak_rss_reset(jvm_pid)
            t = time.perf_counter()
            extra = plain() if variant == "plain" else lakeforge(i)
            secs = time.perf_counter() - t
            results[variant].append({"seconds": secs, "jvm_peak_rss_mb": jvm_peak_rss_mb(jvm_pid), **extra})
            print(f"run {i + 1} {variant:9s} {secs:6.1f}s  {extra}", flush=True)

    summary = {}
    for variant, runs in results.items():
        secs = statistics.median(r["seconds"] for r in runs)
        summary[variant] = {"median_seconds": round(secs, 2), "rows_per_second": round(args.rows / secs),
                            "jvm_peak_rss_mb": round(max(r["jvm_peak_rss_mb"] for r in runs)),
                            "runs_seconds": [round(r["seconds"], 2) for r in runs]}
    ratio = summary["lakeforge"]["median_seconds"] / summary["plain"]["median_seconds"]
    report = {
        "date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "rows": args.rows, "columns": len(cols), "csv_mb": round(size_mb), "bad_value": args.bad_value,
        "bad_records": results["lakeforge"][0]["quarantined"],
        "plain": summary["plain"], "lakeforge": summary["lakeforge"], "ratio": round(ratio, 3),
        "python_peak_rss_mb": round(python_peak_rss_mb()),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
