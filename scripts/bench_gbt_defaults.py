"""The default GBT grid point by measurement: rounds, early stopping, depth and step size on Telco
(data/telco-customer-churn, binary, ROC-AUC) and a generated regression table (R², RMSE), each
fitted once on an 80 % training split and scored on the other 20 % (a hash of the row id), with
scikit-learn's default HistGradientBoosting on the same feature vectors beside it.

A configuration is ``depth,maxIter,stepSize,validationFraction,validationTol`` (fraction 0: no
early stopping); each is built by lakeforge's own Estimators (lakeforge.training.early_stopping
for early stopping), so the rounds it kept are the model's numTrees.

    nice -n 10 .venv/bin/python scripts/bench_gbt_defaults.py --rows 20000 \\
        --configs 3,30,0.1,0,0 5,30,0.1,0,0 5,200,0.1,0.1,0 5,200,0.1,0.1,0.001

Prints a JSON line per (dataset, configuration): seconds of the fit, rounds kept, test metric,
and the load average before and after (compare only at similar loads).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
TELCO = ROOT / "data" / "telco-customer-churn" / "Telco-Customer-Churn.csv"
NUMERIC = ["tenure", "MonthlyCharges", "TotalCharges", "SeniorCitizen"]


def _session():
    from pyspark.sql import SparkSession

    return (SparkSession.builder.master("local[2]").appName("bench_gbt_defaults")
            .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
            .config("spark.driver.memory", "2g").getOrCreate())


def telco(spark):
    """(training, test, size): one-hot categories and the numbers, label Churn = Yes."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler
    from pyspark.sql import functions as F

    raw = spark.read.csv(str(TELCO), header=True, inferSchema=True)
    cats = [c for c in raw.columns if c not in NUMERIC + ["customerID", "Churn"]]
    raw = raw.withColumn("TotalCharges", F.coalesce(F.col("TotalCharges").cast("double"), F.lit(0.0)))
    raw = raw.withColumn("label", (F.col("Churn") == "Yes").cast("double"))
    test = F.pmod(F.xxhash64("customerID"), F.lit(5)) == 0
    prep = Pipeline(stages=[
        StringIndexer(inputCols=cats, outputCols=[f"{c}_i" for c in cats], handleInvalid="keep"),
        OneHotEncoder(inputCols=[f"{c}_i" for c in cats], outputCols=[f"{c}_v" for c in cats]),
        VectorAssembler(inputCols=NUMERIC + [f"{c}_v" for c in cats], outputCol="features"),
    ]).fit(raw.where(~test))
    out = prep.transform(raw).select("features", "label", test.alias("_test"))
    return _split(out)


def generated(spark, rows: int, seed: int = 5):
    """(training, test, size): 8 numbers, a non-linear target with interactions and noise."""
    from pyspark.ml.linalg import Vectors

    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (rows, 8))
    y = (3 * np.sin(x[:, 0]) + x[:, 1] ** 2 - 2 * x[:, 2] * x[:, 3] + 1.5 * (x[:, 4] > 0) + 0.5 * x[:, 5]
         + rng.normal(0, 1.0, rows))
    data = [(Vectors.dense(x[i]), float(y[i]), bool(i % 5 == 0)) for i in range(rows)]
    return _split(spark.createDataFrame(data, ["features", "label", "_test"]))


def _split(frame):
    train = frame.where("NOT _test").select("features", "label").cache()
    test = frame.where("_test").select("features", "label").cache()
    return train, test, train.first()["features"].size


def fit_one(task: str, train, test, size: int, config: str) -> dict:
    from pyspark.ml.evaluation import BinaryClassificationEvaluator, RegressionEvaluator

    from lakeforge.training.algorithms import Estimators
    from lakeforge.training.early_stopping import rounds_used

    depth, max_iter, step, fraction, tol = config.split(",")
    point = {"maxDepth": int(depth), "maxIter": int(max_iter), "stepSize": float(step)}
    if float(fraction) > 0:
        point.update(validationFraction=float(fraction), validationTol=float(tol))
    builder = Estimators(task, None, 42, None, 2 if task == "binary" else 0)
    est = builder.build("gbt", size)
    load = os.getloadavg()[0]
    t = time.perf_counter()
    model = est.fit(train, builder.param_map(est, point, size))
    secs = time.perf_counter() - t
    pred = model.transform(test)
    if task == "binary":
        metrics = {"roc_auc": BinaryClassificationEvaluator(metricName="areaUnderROC").evaluate(pred)}
    else:
        metrics = {m: RegressionEvaluator(metricName=m).evaluate(pred) for m in ("r2", "rmse")}
    return {"config": config, "seconds": round(secs, 1), "rounds": rounds_used(model) or model.getNumTrees,
            **{k: round(v, 4) for k, v in metrics.items()}, "load": [round(load, 1), round(os.getloadavg()[0], 1)]}


def sklearn_reference(task: str, train, test) -> dict:
    """scikit-learn's default HistGradientBoosting on the same vectors (small data: collected)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import mean_squared_error, r2_score, roc_auc_score

    def xy(frame):
        rows = frame.collect()
        return np.vstack([r.features.toArray() for r in rows]), np.array([r.label for r in rows])

    (xt, yt), (xs, ys) = xy(train), xy(test)
    t = time.perf_counter()
    model = (HistGradientBoostingClassifier if task == "binary" else HistGradientBoostingRegressor)(random_state=0)
    model.fit(xt, yt)
    secs = time.perf_counter() - t
    if task == "binary":
        metrics = {"roc_auc": roc_auc_score(ys, model.predict_proba(xs)[:, 1])}
    else:
        p = model.predict(xs)
        metrics = {"r2": r2_score(ys, p), "rmse": mean_squared_error(ys, p) ** 0.5}
    return {"config": "sklearn HistGradientBoosting", "seconds": round(secs, 1), "rounds": int(model.n_iter_),
            **{k: round(v, 4) for k, v in metrics.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000, help="rows of the generated regression table")
    ap.add_argument("--datasets", default="telco,generated")
    ap.add_argument("--configs", nargs="+", default=["3,30,0.1,0,0", "5,30,0.1,0,0", "5,200,0.1,0.1,0"])
    args = ap.parse_args()
    spark = _session()
    for name in args.datasets.split(","):
        task = "binary" if name == "telco" else "regression"
        train, test, size = telco(spark) if name == "telco" else generated(spark, args.rows)
        print(json.dumps({"dataset": name, "train_rows": train.count(), "test_rows": test.count(), "size": size}),
              flush=True)
        print(json.dumps({"dataset": name, **sklearn_reference(task, train, test)}), flush=True)
        for config in args.configs:
            print(json.dumps({"dataset": name, **fit_one(task, train, test, size, config)}), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
