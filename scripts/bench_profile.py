"""Benchmark: `lakeforge profile` on a generated table (default 5,000,000 rows x 30 columns).

    .venv/bin/python scripts/bench_profile.py [--rows 5000000] [--cols 30] [--out docs/bench_profile.json]

Generates the data with Spark into a Delta table of a temporary warehouse (an id key, a binary
target that depends on some features, and a mix of normal, skewed, integer, correlated and
text-number columns, categoricals of 2 to 5,000 levels and a flag; about 3 % nulls in a third of
the columns and blanks in the text numbers), then times lakeforge.profiling.job.run_profile on it with
no column roles given (lakeforge frame's detector decides them). It reports the wall time (the
whole job and the profile's own steps), the passes over the data, the driver JVM's peak resident
memory during the profile (VmHWM, reset before it; in local mode the JVM also runs the tasks), the
JVM's CPU seconds during the profile (a figure that other load on the machine does not inflate
as much as wall time) and the Python driver's peak RSS, and checks that the report and both
profile tables were written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from benchlib import jvm_peak_rss_mb, jvm_peak_rss_reset, python_peak_rss_mb, start  # noqa: E402

KINDS = ("normal", "category3", "skewed", "category20", "correlated", "text_number", "integer",
         "category200", "normal", "flag", "category5000", "skewed", "category8", "integer")


def jvm_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the driver JVM so far (it runs the tasks in local mode)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=5_000_000, help="rows to generate (default 5,000,000)")
    p.add_argument("--cols", type=int, default=30, help="columns including the key and the target (default 30)")
    p.add_argument("--partitions", type=int, default=16, help="partitions of the generated table")
    p.add_argument("--driver-memory", default="4g")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the temporary warehouse (default: deleted)")
    return p.parse_args()


def generate(spark, rows: int, cols: int, partitions: int):
    """(DataFrame, {column: kind}) with ``cols`` columns: id, target, then features by KINDS."""
    from pyspark.sql import functions as F

    df = spark.range(0, rows, 1, partitions)
    exprs = [F.concat(F.lit("c"), F.col("id").cast("string")).alias("id")]
    kinds: dict[str, str] = {}
    last_numeric = None
    for j in range(cols - 2):
        kind = KINDS[j % len(KINDS)]
        name = f"f{j:02d}_{kind}"
        seed = 100 + j
        u, z = F.rand(seed), F.randn(seed)
        if kind == "normal":
            e = z * 10 + 50
        elif kind == "skewed":
            e = F.exp(z)
        elif kind == "integer":
            e = F.floor(u * 100).cast("int")
        elif kind == "correlated":
            e = F.col(last_numeric) * 2 + F.randn(seed + 1000) * 3 if last_numeric else z
        elif kind == "text_number":
            e = F.when(u < 0.01, F.lit(" ")).otherwise(F.format_string("%.2f", F.rand(seed + 1000) * 1000))
        elif kind == "flag":
            e = u < 0.3
        else:  # categoryN: skewed level frequencies (level k with weight ~ 1/(k+1))
            levels = int(kind.removeprefix("category"))
            e = F.concat(F.lit("L"), F.floor(F.pow(F.lit(float(levels)), u) - 1).cast("int").cast("string"))
        if j % 3 == 1 and kind not in ("correlated",):
            e = F.when(F.rand(seed + 2000) < 0.03, F.lit(None)).otherwise(e)
        exprs.append(e.alias(name))
        kinds[name] = kind
        if kind in ("normal", "skewed"):
            last_numeric = name
    wide = df.select(*exprs)
    numeric = [n for n, k in kinds.items() if k == "normal"]
    cats = [n for n, k in kinds.items() if k == "category3"]
    logit = F.lit(-1.0)
    if numeric:
        logit = logit + (F.coalesce(F.col(numeric[0]), F.lit(50.0)) - 50) / 10
    if cats:
        logit = logit + F.when(F.col(cats[0]) == "L0", 1.0).otherwise(0.0)
    target = F.when(F.rand(7) < 1 / (1 + F.exp(-logit)), "yes").otherwise("no").alias("churned")
    return wide.select("*", target), kinds


def main() -> int:
    args = parse_args()
    if args.cols < 4:
        raise SystemExit("--cols must be at least 4 (key, target and two features)")
    from conftest import write_pipeline

    from lakeforge.core.config import load_pipeline
    from lakeforge.profiling.job import run_profile

    work, settings, spark, jvm_pid = start("lakeforge-bench-profile-", args.driver_memory)
    try:
        table = settings.table("bronze_bench_profile")
        print(f"warehouse {work}; generating {args.rows:,} rows x {args.cols} columns -> {table} ...", flush=True)
        t0 = time.perf_counter()
        df, kinds = generate(spark, args.rows, args.cols, args.partitions)
        df.write.format("delta").mode("overwrite").saveAsTable(table)
        gen_s = time.perf_counter() - t0
        print(f"  generated in {gen_s:.1f} s", flush=True)
        pipe = load_pipeline(write_pipeline(
            work, name="bench_profile", key="id", target="churned", positive_class="yes",
            tables={"bronze": "bronze_bench_profile", "predictions": "bench_predictions"},
            features={"numeric": [], "categorical": []},  # zero-config: lakeforge frame decides the roles
        ))
        jvm_peak_rss_reset(jvm_pid)
        cpu0 = jvm_cpu_seconds(jvm_pid)
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        res = run_profile(spark, settings, pipe, "bench",
                          progress=lambda m: print(f"  [{time.perf_counter() - t0:7.1f} s wall, "
                                                   f"{jvm_cpu_seconds(jvm_pid) - cpu0:7.1f} s JVM CPU] {m}", flush=True))
        wall = time.perf_counter() - t0
        jvm_peak = jvm_peak_rss_mb(jvm_pid)
        cpu = jvm_cpu_seconds(jvm_pid) - cpu0
        r = res.result
        assert r.rows == args.rows, (r.rows, args.rows)
        assert Path(res.report_path).is_file()
        n_cols = spark.table(settings.table("profile_columns")).where("pipeline = 'bench_profile'").count()
        assert n_cols == args.cols, (n_cols, args.cols)
        roles: dict[str, int] = {}
        for c in r.columns:
            roles[c.role] = roles.get(c.role, 0) + 1
        result = {
            "rows": args.rows, "columns": args.cols, "roles": roles, "passes": r.passes,
            "wall_s": round(wall, 1), "profile_s": r.seconds, "jvm_cpu_s": round(cpu, 1), "generate_s": round(gen_s, 1),
            "load_average_before": round(load0, 2), "load_average_after": round(os.getloadavg()[0], 2),
            "jvm_peak_rss_mb": round(jvm_peak), "python_peak_rss_mb": round(python_peak_rss_mb()),
            "report_mb": round(Path(res.report_path).stat().st_size / 2**20, 2),
            "flagged_pairs": len(r.flagged), "leakage_suspects": [x["column"] for x in r.leakage],
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                        "spark": spark.version, "driver_memory": args.driver_memory, "partitions": args.partitions},
        }
        print(f"{args.rows:,} rows x {args.cols} columns: profile job {wall:.1f} s wall ({r.passes} passes over the data; "
              f"steps {', '.join(f'{k} {v:.1f} s' for k, v in r.seconds.items())}), JVM CPU {cpu:.0f} s, JVM peak RSS {jvm_peak:.0f} MB, "
              f"Python peak RSS {result['python_peak_rss_mb']} MB, report {result['report_mb']} MB", flush=True)
        print(json.dumps(result, indent=2, default=str))
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    finally:
        spark.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
