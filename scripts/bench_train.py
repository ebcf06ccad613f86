"""Benchmark: lakeforge's model search vs scikit-learn's GridSearchCV, side by side in one run.

    .venv/bin/python scripts/bench_train.py [--datasets telco,generated] [--rows 2000000] [--halving] [--out docs/bench_train.json]
    .venv/bin/python scripts/bench_train.py --datasets clustering,als [--cluster-rows 100000] [--users 5000]

Both sides get the SAME split (lakeforge's hash split of the key), the SAME folds (lakeforge's
fold column, given to scikit-learn as a PredefinedSplit), the same algorithms and grids, and
equivalent preprocessing (median imputation + scaling of numerics, one-hot categoricals):

- telco:     logistic regression (3 regParams), random forest (50 trees, depth 6 / 10) and
             gradient-boosted trees (30 rounds, depth 3 / 5), 3 folds, ROC-AUC;
- generated: --rows rows, 10 numeric columns with NaNs and 5 categorical columns of up to
             10,000 levels, logistic regression with 3 regParams, 3 folds, ROC-AUC.

scikit-learn runs in a child process (n_jobs = the cores) so that its peak memory is its own;
lakeforge runs in this process with its embedded Spark (local[*]). Reported: wall time of the
whole training (read the data, preprocess, search, refit the winner, test metric), peak memory
(scikit-learn: the child's max RSS; lakeforge: the Spark JVM's peak RSS + this process'), and
the held-out test ROC-AUC of each winner. Spark's LogisticRegression regParam r corresponds to
scikit-learn's C = 1 / (r * n_train).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchlib import jvm_peak_rss_mb, jvm_peak_rss_reset, python_peak_rss_mb, start  # noqa: E402

TELCO_GRIDS = {
    "logistic_regression": {"regParam": [0.001, 0.01, 0.1], "elasticNetParam": [0.0]},
    "random_forest": {"numTrees": [50], "maxDepth": [6, 10]},
    "gbt": {"maxIter": [30], "maxDepth": [3, 5], "stepSize": [0.1]},
}
GENERATED_GRIDS = {"logistic_regression": {"regParam": [0.0001, 0.001, 0.01], "elasticNetParam": [0.0]}}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="telco,generated", help="comma-separated: telco, generated, clustering (vs scikit-learn KMeans), als (vs the popularity baseline)")
    p.add_argument("--rows", type=int, default=2_000_000, help="rows of the generated dataset (default 2,000,000)")
    p.add_argument("--cluster-rows", type=int, default=100_000, help="customers of the clustering row (default 100,000)")
    p.add_argument("--users", type=int, default=5_000, help="users of the als row, 25 interactions each (default 5,000)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--halving", action="store_true",
                   help="lakeforge searches with model.halving (all candidates on fold 1, the best third on the "
                        "others); scikit-learn keeps its exhaustive GridSearchCV")
    p.add_argument("--driver-memory", default="8g")
    p.add_argument("--sklearn-child", default=None, help=argparse.SUPPRESS)  # internal: the child's job file
    return p.parse_args()


# ---------------------------------------------------------------------------------------------
# scikit-learn side (child process)
# ---------------------------------------------------------------------------------------------


def sklearn_child(job_file: str) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GridSearchCV, PredefinedSplit
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    job = json.loads(Path(job_file).read_text())
    t0 = time.perf_counter()
    df = pd.read_parquet(job["data"])
    numeric, categorical = job["numeric"], job["categorical"]
    for c in numeric:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    for c in categorical:
        df[c] = df[c].astype("string").fillna("__null__")
    train, test = df[~df["_is_test"]], df[df["_is_test"]]
    n_fold_train = len(train) * (job["folds"] - 1) / job["folds"]
    prep = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric),
        ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
    ])
    grids = []
    for algo, grid in job["grids"].items():
        if algo == "logistic_regression":
            grids.append({"clf": [LogisticRegression(max_iter=100, solver="lbfgs")],
                          "clf__C": [1.0 / (r * n_fold_train) for r in grid["regParam"]]})
        elif algo == "random_forest":
            grids.append({"clf": [RandomForestClassifier(random_state=42, n_jobs=1)],
                          "clf__n_estimators": grid["numTrees"], "clf__max_depth": grid["maxDepth"]})
        elif algo == "gbt":
            grids.append({"clf": [GradientBoostingClassifier(random_state=42)], "clf__n_estimators": grid["maxIter"],
                          "clf__max_depth": grid["maxDepth"], "clf__learning_rate": grid["stepSize"]})
    search = GridSearchCV(Pipeline([("prep", prep), ("clf", LogisticRegression())]), grids, scoring="roc_auc",
                          cv=PredefinedSplit(train["_fold"].to_numpy()), n_jobs=job["n_jobs"], refit=True)
    y = (train[job["target"]].astype(str) == job["positive"]).astype(int)
    search.fit(train[numeric + categorical], y)
    proba = search.predict_proba(test[numeric + categorical])[:, 1]
    auc = roc_auc_score((test[job["target"]].astype(str) == job["positive"]).astype(int), proba)
    secs = time.perf_counter() - t0
    best = search.best_params_
    print(json.dumps({
        "seconds": secs, "test_roc_auc": float(auc), "cv_roc_auc": float(search.best_score_),
        "best": {k: (type(v).__name__ if k == "clf" else v) for k, v in best.items()},
        "candidates": int(len(search.cv_results_["params"])),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows_train": int(len(train)), "rows_test": int(len(test)), "cv_rank_1_std": float(
            search.cv_results_["std_test_score"][int(np.argmin(search.cv_results_["rank_test_score"]))]),
    }))


# ---------------------------------------------------------------------------------------------
# lakeforge side and the driver of the benchmark
# ---------------------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    if args.sklearn_child:
        sklearn_child(args.sklearn_child)
        return 0
    from conftest import write_pipeline
    from pyspark.sql import functions as F

    from lakeforge.core.config import load_pipeline
    from lakeforge.ingest.job import ingest
    from lakeforge.core.columns import FOLD_COL
    from lakeforge.training.job import train
    from lakeforge.training.split import split_rows
    from lakeforge.training.target import infer_target, label_column

    work, settings, spark, jvm_pid = start("lakeforge-bench-train-", args.driver_memory)
    cores = os.cpu_count() or 2
    day = dt.date(2026, 1, 1)
    results = []

    for dataset in args.datasets.split(","):
        if dataset in ("clustering", "als"):  # the tasks without a target: scripts/bench_tasks.py
            from bench_tasks import run as run_tasks

            results += [{"dataset": dataset, **r}
                        for r in run_tasks([dataset], spark, settings, work, args.cluster_rows, args.users, jvm_pid)]
            continue
        if dataset == "telco":
            pipe = load_pipeline(write_pipeline(work, **{"model.algorithms": TELCO_GRIDS, "model.folds": 3,
                                                         "model.halving": args.halving}))
            numeric, categorical = list(pipe.features.numeric), list(pipe.features.categorical)
            grids = TELCO_GRIDS
        else:
            src = work / "generated.parquet"
            print(f"generating {args.rows:,} rows ...", flush=True)
            generated(spark, args.rows).write.mode("overwrite").parquet(str(src))
            numeric = [f"x{i}" for i in range(10)]
            categorical = [f"c{i}" for i in range(5)]
            pipe = load_pipeline(write_pipeline(work, **{
                "name": "generated", "source": {"format": "parquet", "path": str(src), "options": {}},
                "key": "id", "target": "y", "positive_class": "1",
                "tables": {"bronze": "bronze_generated", "predictions": "predictions_generated", "leaderboard": "leaderboard_generated"},
                "features": {"numeric": numeric, "categorical": categorical},
                "model.registered_name": "generated", "model.algorithms": GENERATED_GRIDS, "model.folds": 3,
                "model.halving": args.halving,
            }))
            grids = GENERATED_GRIDS
        ingest(spark, settings, pipe, "bench", day)
        bronze = spark.table(settings.table(pipe.tables.bronze))
        # the same split and folds for scikit-learn, exported once (not timed)
        export = work / f"{dataset}_sk.parquet"
        table = settings.table(pipe.tables.bronze)
        labelled = label_column(bronze, pipe.target, infer_target(bronze, pipe, table)).cache()
        split, _ = split_rows(labelled, pipe.model, pipe.key, "binary", table)
        (split.select(pipe.key, pipe.target, *numeric, *categorical, "_is_test", F.col(FOLD_COL).alias("_fold"))
         .withColumn(pipe.target, F.col(pipe.target).cast("string"))
         .write.mode("overwrite").parquet(str(export)))
        labelled.unpersist()

        job = work / f"{dataset}_job.json"
        job.write_text(json.dumps({"data": str(export), "numeric": numeric, "categorical": categorical,
                                   "target": pipe.target, "positive": str(pipe.positive_class), "folds": pipe.model.folds,
                                   "grids": grids, "n_jobs": cores}))
        print(f"[{dataset}] scikit-learn GridSearchCV ...", flush=True)
        child = subprocess.run([sys.executable, __file__, "--sklearn-child", str(job)], capture_output=True, text=True)
        if child.returncode != 0:
            print(child.stderr[-3000:], file=sys.stderr)
            return 1
        sk = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"[{dataset}] scikit-learn: {sk['seconds']:.1f} s, test ROC-AUC {sk['test_roc_auc']:.4f}, "
              f"peak {sk['peak_rss_mb']:.0f} MB, best {sk['best']}", flush=True)

        print(f"[{dataset}] lakeforge ...", flush=True)
        jvm_peak_rss_reset(jvm_pid)
        t0 = time.perf_counter()
        res = train(spark, settings, pipe, "bench", day, progress=lambda m: print("   ", m, flush=True))
        lf_secs = time.perf_counter() - t0
        best = next(r for r in res.leaderboard if r["is_best"])
        lf = {"seconds": lf_secs, "test_roc_auc": res.test_metrics["roc_auc"], "cv_roc_auc": best["cv_mean"],
              "best": {"algorithm": best["algorithm"], **json.loads(best["params"])},
              "candidates": len(res.leaderboard), "timings": res.timings,
              "peak_rss_mb": jvm_peak_rss_mb(jvm_pid) + python_peak_rss_mb()}
        print(f"[{dataset}] lakeforge: {lf_secs:.1f} s, test ROC-AUC {lf['test_roc_auc']:.4f}, "
              f"peak {lf['peak_rss_mb']:.0f} MB (JVM + Python), best {lf['best']}", flush=True)
        results.append({"dataset": dataset, "rows": bronze.count(), "sklearn": sk, "lakeforge": lf,
                        "time_ratio_lakeforge_over_sklearn": lf_secs / sk["seconds"]})

    machine = {"cpus": cores, "platform": platform.platform(), "python": platform.python_version(),
               "spark": spark.version, "driver_memory": args.driver_memory, "lakeforge_halving": args.halving}
    import sklearn

    machine["sklearn"] = sklearn.__version__
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report = {"machine": machine, "results": results}
    print(json.dumps(report, indent=2, default=str))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    spark.stop()
    return 0


def generated(spark, rows: int):
    """10 numeric columns (5 % NaN each) and 5 categorical (10, 100, 1,000, 10,000, 10,000 levels);
    the label follows a logistic model of some of them."""
    from pyspark.sql import functions as F

    df = spark.range(rows).withColumnRenamed("id", "n")
    cols = [F.concat(F.lit("id"), F.col("n").cast("string")).alias("id")]
    for i in range(10):
        x = F.randn(100 + i)
        cols.append(F.when(F.rand(200 + i) < 0.05, F.lit(None)).otherwise(x).alias(f"x{i}"))
    for i, levels in enumerate([10, 100, 1000, 10_000, 10_000]):
        cols.append(F.concat(F.lit(f"c{i}_"), (F.abs(F.xxhash64(F.col("n"), F.lit(i))) % levels).cast("string")).alias(f"c{i}"))
    base = df.select("n", *cols)
    z = (0.8 * F.coalesce("x0", F.lit(0.0)) - 0.5 * F.coalesce("x1", F.lit(0.0)) + 0.3 * F.coalesce("x2", F.lit(0.0))
         + F.when(F.col("c0").isin("c0_1", "c0_2", "c0_3"), 0.7).otherwise(-0.2)
         + (F.abs(F.xxhash64("c2")) % 7 - 3) * 0.15 - 0.5)
    return base.withColumn("y", (F.rand(999) < 1 / (1 + F.exp(-z))).cast("int").cast("string")).drop("n")


if __name__ == "__main__":
    sys.exit(main())
