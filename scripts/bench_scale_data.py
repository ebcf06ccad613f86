"""The generated data of scripts/bench_scale.py: ROWS rows of 22 columns written once as CSV files
(Spark, in a child process of its own), and the pipeline YAML that loads them.

    .venv/bin/python scripts/bench_scale_data.py --rows 1000000 --folder /tmp/lakeforge-scale-data/rows_1000000

Columns: ``key`` (the row's id), ``event_ts`` (timestamp), ``signup_date`` (date), ten numbers
(``num0``-``num7`` doubles of several shapes, three with missing values; ``cnt0``, ``cnt1``
integers), five low-cardinality categories (``cat0``-``cat4``: 3 to 50 levels, one with missing
values), three high-cardinality ones (``hc0``-``hc2``: 2,000, 5,000 and 10,000 skewed levels) and
the binary label ``y`` (a logistic model of num0, num1, num2, num7, cat0, cat2 and hc0: real signal).
1 % of the records are bad: half have an unparsable number in ``num3``, half an unparsable date
in ``signup_date``; ingest must quarantine exactly those. ``_meta.json`` holds the counts.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

NUMERIC = ["num0", "num1", "num2", "num3", "num4", "num5", "num6", "num7", "cnt0", "cnt1"]
CATEGORICAL = ["cat0", "cat1", "cat2", "cat3", "cat4", "hc0", "hc1", "hc2"]
LOW_LEVELS = [3, 5, 10, 20, 50]
HIGH_LEVELS = [2_000, 5_000, 10_000]
SCHEMA = ("key STRING, event_ts TIMESTAMP, signup_date DATE, "
          + ", ".join(f"{c} DOUBLE" for c in NUMERIC[:8]) + ", cnt0 INT, cnt1 INT, "
          + ", ".join(f"{c} STRING" for c in CATEGORICAL) + ", y INT")
ROWS_PER_FILE = 2_500_000


def frame(spark, rows: int):
    """The rows as strings (as a CSV holds them), ``bad`` marking the 1 % bad records."""
    from pyspark.sql import functions as F

    parts = max(2, math.ceil(rows / ROWS_PER_FILE))
    n = F.col("id")
    df = spark.range(0, rows, numPartitions=parts)

    def missing(col, share: float, seed: int):
        return F.when(F.rand(seed) < share, F.lit(None)).otherwise(col)

    num = {"num0": missing(F.randn(1), 0.05, 101), "num1": missing(F.exp(F.randn(2)) * 100, 0.03, 102),
           "num2": F.rand(3), "num3": F.randn(4) * 10 + 50, "num4": F.floor(-F.log(F.rand(5) + 1e-9) * 3),
           "num5": missing(F.rand(6) * 1000, 0.02, 106), "num6": F.randn(7), "num7": F.randn(8)}
    cols = {"key": F.concat(F.lit("k"), n.cast("string")),
            "event_ts": F.timestamp_seconds(F.lit(1767225600) + (n * 37) % 31_536_000),
            "signup_date": F.date_add(F.lit("2015-01-01").cast("date"), (F.abs(F.xxhash64(n, F.lit(9))) % 3650).cast("int")),
            **num,
            "cnt0": (F.abs(F.xxhash64(n, F.lit(10))) % 100).cast("int"),
            "cnt1": (F.abs(F.xxhash64(n, F.lit(11))) % 10).cast("int")}
    for i, levels in enumerate(LOW_LEVELS):
        level = F.concat(F.lit(f"c{i}_"), F.floor(F.rand(20 + i) * levels).cast("string"))
        cols[f"cat{i}"] = missing(level, 0.04, 120) if i == 3 else level
    for i, levels in enumerate(HIGH_LEVELS):  # skewed: low level numbers are frequent
        cols[f"hc{i}"] = F.concat(F.lit(f"h{i}_"), F.floor(F.pow(F.rand(30 + i), 2) * levels).cast("string"))
    base = df.select("id", *[c.alias(k) for k, c in cols.items()]).withColumn("num7", F.col("num7") * 0.6 + F.coalesce("num0", F.lit(0.0)) * 0.8)
    z = (0.9 * F.coalesce("num0", F.lit(0.0)) + 0.35 * F.log1p(F.coalesce("num1", F.lit(100.0))) - 1.2 * F.col("num2")
         + 0.3 * F.col("num7") + F.when(F.col("cat0") == "c0_0", 0.8).otherwise(-0.3)
         + (F.abs(F.xxhash64("cat2")) % 5 - 2) * 0.25 + (F.abs(F.xxhash64("hc0")) % 7 - 3) * 0.2 - 1.6)
    labelled = base.withColumn("y", (F.rand(40) < 1 / (1 + F.exp(-z))).cast("int"))
    bad = F.rand(50)
    return (labelled.withColumn("bad", F.when(bad < 0.005, 1).when(bad < 0.01, 2).otherwise(0))
            .withColumn("num3", F.when(F.col("bad") == 1, F.concat(F.lit("n/a-"), n.cast("string"))).otherwise(F.col("num3").cast("string")))
            .withColumn("signup_date", F.when(F.col("bad") == 2, F.lit("not-a-date")).otherwise(F.col("signup_date").cast("string")))
            .withColumn("event_ts", F.date_format("event_ts", "yyyy-MM-dd HH:mm:ss")))


def generate(rows: int, folder: Path) -> dict:
    """Write the CSV files and _meta.json into ``folder`` (skipped when _meta.json is there)."""
    meta_file = folder / "_meta.json"
    if meta_file.exists():
        return json.loads(meta_file.read_text())
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = (SparkSession.builder.master("local[*]").appName("bench-scale-data").config("spark.driver.memory", "2g")
             .config("spark.ui.enabled", "false").config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.driver.host", "127.0.0.1").getOrCreate())
    t0 = time.perf_counter()
    df = frame(spark, rows)
    columns = [c for c in df.columns if c not in ("id", "bad")]
    df.select(*columns).write.mode("overwrite").option("header", True).csv(str(folder / "csv"))
    written = time.perf_counter() - t0
    counts = df.agg(F.sum((F.col("bad") > 0).cast("long")).alias("bad"), F.avg("y").alias("positive_share")).first()
    spark.stop()
    meta = {"rows": rows, "bad_rows": int(counts["bad"]), "good_rows": rows - int(counts["bad"]),
            "positive_share": round(float(counts["positive_share"]), 4), "columns": columns,
            "files": len(list((folder / "csv").glob("part-*.csv"))),
            "bytes": sum(p.stat().st_size for p in (folder / "csv").glob("part-*.csv")),
            "generate_s": round(written, 1)}
    meta_file.write_text(json.dumps(meta, indent=1))
    return meta


def pipeline(data: Path, train_minutes: float | None) -> dict:
    """The pipeline of the benchmark: the CSV folder -> bronze (bad records quarantined) -> logistic
    regression and boosted trees -> predictions of the same rows -> monitoring."""
    model = {"registered_name": "bench_scale", "task": "binary",
             "algorithms": {"logistic_regression": {"regParam": [0.01]}, "gbt": {"maxIter": [20], "maxDepth": [5]}},
             "search": "train_validation_split", "metric": "roc_auc", "test_fraction": 0.2, "seed": 42}
    if train_minutes:
        model["max_minutes"] = train_minutes
    return {"name": "bench_scale",
            "source": {"format": "csv", "path": str(data / "csv"), "options": {"header": True},
                       "schema": SCHEMA, "on_bad_records": "quarantine",
                       "checks": [{"type": "not_null", "column": "key"}]},
            "key": "key", "target": "y", "positive_class": "1",
            "tables": {"bronze": "bronze_scale", "predictions": "predictions_scale", "leaderboard": "leaderboard_scale"},
            "ingest": {"mode": "overwrite"},
            "features": {"numeric": NUMERIC, "categorical": CATEGORICAL},
            "model": model, "monitoring": {}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--folder", required=True, help="where the CSV files and _meta.json go")
    args = p.parse_args()
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    print(json.dumps(generate(args.rows, folder)))


if __name__ == "__main__":
    main()
