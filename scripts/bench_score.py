"""Benchmark: lakeforge's exactly-once Delta scoring vs plain Spark, side by side in one run.

    .venv/bin/python scripts/bench_score.py [--rows 1000000,10000000] [--runs 3] [--out docs/bench_score.json]

For each size it builds a Delta table of generated customers (Telco rows replicated with new
keys, all 21 columns), trains the champion once (small grid), then alternates, ``--runs`` times:

- plain:     PipelineModel.load(...) + model.transform(df).select(<the same 7 output columns>)
             .write.parquet(...)
- lakeforge: lakeforge.scoring.job.score(...) — alias resolution, signature check, model load from
             MLflow, transform, replaceWhere of the run date's partition in the Delta table.

It reports medians (wall seconds, rows/s), the ratio lakeforge/plain, and the driver JVM's
peak resident memory during each variant (VmHWM, reset before each run), the heap the JVM still
holds after a full GC, and the Python driver's peak RSS. In local mode the driver JVM also hosts
the executors, so its RSS grows with task memory (up to --driver-memory); the heap retained after
GC and the Python RSS show what the driver itself keeps. Everything runs in a temporary warehouse.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from benchlib import jvm_peak_rss_mb, jvm_peak_rss_reset, python_peak_rss_mb, start  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="1000000,10000000", help="comma-separated input sizes (default: 1M and 10M)")
    p.add_argument("--runs", type=int, default=3, help="runs per variant and size (median reported)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--driver-memory", default="4g")
    return p.parse_args()


def jvm_heap_after_gc_mb(spark) -> float:
    """Heap the driver JVM still holds after a full GC: what a run leaves behind on the driver."""
    jvm = spark._jvm  # noqa: SLF001
    jvm.java.lang.System.gc()
    rt = jvm.java.lang.Runtime.getRuntime()
    return (rt.totalMemory() - rt.freeMemory()) / 2**20


def main() -> int:
    args = parse_args()
    sizes = [int(s) for s in args.rows.split(",")]
    from conftest import write_pipeline
    from pyspark.ml import PipelineModel
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    from lakeforge.core.config import load_pipeline
    from lakeforge.ingest.job import ingest
    from lakeforge.scoring.job import score
    from lakeforge.training.job import train

    work, settings, spark, jvm_pid = start("lakeforge-bench-", args.driver_memory)
    pipe = load_pipeline(write_pipeline(work, **{"model.algorithms": {"logistic_regression": {"regParam": [0.01]}}, "model.folds": 2}))
    print(f"warehouse {work}; training the champion on Telco ...", flush=True)
    ingest(spark, settings, pipe, "bench", dt.date(2026, 1, 1))
    trained = train(spark, settings, pipe, "bench", dt.date(2026, 1, 1))
    model_dir = work / "plain_model"
    import mlflow.spark

    mlflow.spark.load_model(trained.model.uri).write().overwrite().save(str(model_dir))
    telco = spark.table(settings.table(pipe.tables.bronze)).drop("_ingested_at", "_source", "_run_id", "_run_date")
    # 7,043 rows: numbering them in one partition is cheap
    telco = telco.withColumn("_i", F.row_number().over(Window.orderBy("customerID")) - 1).cache()
    n_telco = telco.count()

    results = []
    for rows in sizes:
        table = f"bench_input_{rows}"
        print(f"generating {rows:,} rows -> {table} ...", flush=True)
        gen = (
            spark.range(rows).withColumn("_i", F.col("id") % n_telco)
            .join(F.broadcast(telco), "_i")
            .withColumn("customerID", F.concat_ws("-", "customerID", F.col("id").cast("string")))
            .drop("_i", "id")
        )
        gen.write.format("delta").mode("overwrite").saveAsTable(settings.table(table))
        cfg = pipe.model_copy(update={
            "tables": pipe.tables.model_copy(update={"predictions": f"bench_predictions_{rows}"}),
            "scoring": pipe.scoring.model_copy(update={"input_table": table}),
        })
        timings: dict[str, list[float]] = {"plain": [], "lakeforge": []}
        peaks: dict[str, list[float]] = {"plain": [], "lakeforge": []}
        retained: dict[str, list[float]] = {"plain": [], "lakeforge": []}
        for run in range(args.runs):
            for variant in ("plain", "lakeforge"):
                jvm_peak_rss_reset(jvm_pid)
                t0 = time.perf_counter()
                if variant == "plain":
                    model = PipelineModel.load(str(model_dir))
                    # the same output columns as lakeforge's predictions table, as plain Parquet
                    (model.transform(spark.table(settings.table(table)))
                     .select("customerID", vector_to_array("probability")[1].alias("score"),
                             F.col("prediction").cast("int").alias("predicted_label"),
                             F.lit("telco_churn").alias("model_name"), F.lit("1").alias("model_version"),
                             F.current_timestamp().alias("scored_at"), F.lit(dt.date(2026, 1, 2)).alias("run_date"))
                     .write.mode("overwrite").parquet(str(work / f"plain_{rows}")))
                else:
                    res = score(spark, settings, cfg, dt.date(2026, 1, 2))
                    assert res.write.rows_written == rows, res
                secs = time.perf_counter() - t0
                timings[variant].append(secs)
                peaks[variant].append(jvm_peak_rss_mb(jvm_pid))
                retained[variant].append(jvm_heap_after_gc_mb(spark))
                print(f"  {rows:>11,} rows  run {run + 1}  {variant:<9} {secs:7.1f} s  JVM peak RSS {peaks[variant][-1]:6.0f} MB"
                      f"  JVM heap after GC {retained[variant][-1]:5.0f} MB  Python peak RSS {python_peak_rss_mb():4.0f} MB", flush=True)
        med = {k: statistics.median(v) for k, v in timings.items()}
        out_rows = spark.table(settings.table(f"bench_predictions_{rows}")).count()
        assert out_rows == rows, (out_rows, rows)  # exactly once, after all reruns of the date
        results.append({
            "rows": rows,
            "plain_s": med["plain"], "lakeforge_s": med["lakeforge"], "ratio": med["lakeforge"] / med["plain"],
            "plain_rows_per_s": rows / med["plain"], "lakeforge_rows_per_s": rows / med["lakeforge"],
            "plain_jvm_peak_rss_mb": max(peaks["plain"]), "lakeforge_jvm_peak_rss_mb": max(peaks["lakeforge"]),
            "plain_jvm_heap_after_gc_mb": max(retained["plain"]), "lakeforge_jvm_heap_after_gc_mb": max(retained["lakeforge"]),
            "python_driver_peak_rss_mb": python_peak_rss_mb(),
            "runs": args.runs, "all_s": timings,
        })
        r = results[-1]
        print(f"{rows:,} rows: plain {r['plain_s']:.1f} s, lakeforge {r['lakeforge_s']:.1f} s, ratio {r['ratio']:.3f}; "
              f"JVM heap after GC plain {r['plain_jvm_heap_after_gc_mb']:.0f} MB, lakeforge {r['lakeforge_jvm_heap_after_gc_mb']:.0f} MB; "
              f"Python peak RSS {r['python_driver_peak_rss_mb']:.0f} MB", flush=True)
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
               "spark": spark.version, "driver_memory": args.driver_memory}
    report = {"machine": machine, "results": results}
    print(json.dumps(report, indent=2, default=str))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
