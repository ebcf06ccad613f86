"""Train: bronze Delta table (a pinned version) -> CrossValidated logistic regression -> MLflow.

The preprocessing is fitted once on the training split and its output (label + feature vector)
cached; CrossValidator then searches the estimator's grid on that cached frame, so no fold refits
the preprocessing. The registered model is one PipelineModel: preprocessing stages + the best
estimator. (Within the training split, imputation medians and scaling factors are computed on
all folds together; the held-out test split never touches them.)
"""

from __future__ import annotations

import datetime as dt
import json
import time
import warnings
from dataclasses import dataclass, field

from pyspark.ml import PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from lakeforge import tracking
from lakeforge.config import LOGREG_GRID_PARAMS, PipelineConfig, Settings
from lakeforge.errors import InputDataError
from lakeforge.features import FEATURES_COL, preprocessing_pipeline, resolve_roles, with_label
from lakeforge.io import latest_version, read_version, require_columns, write_table

LABEL_COL = "label"
SPLIT_BUCKETS = 10_000


@dataclass
class TrainResult:
    model: tracking.ModelRef
    mlflow_run_id: str
    table: str
    table_version: int
    rows_train: int
    rows_test: int
    test_metrics: dict[str, float]
    leaderboard: list[dict]
    timings: dict[str, float] = field(default_factory=dict)


def split_by_key(key: str, test_fraction: float, seed: int):
    """Deterministic train/test split from a hash of the key: the same rows land in the same
    split on every run, whatever the partitioning. Returns (is_test column expression)."""
    bucket = F.pmod(F.xxhash64(F.col(key).cast("string"), F.lit(seed)), F.lit(SPLIT_BUCKETS))
    return bucket < F.lit(int(round(test_fraction * SPLIT_BUCKETS)))


def binary_metrics(predictions: DataFrame, label_col: str = LABEL_COL) -> dict[str, float]:
    """ROC-AUC, PR-AUC, accuracy, precision, recall and F1 of the positive class."""
    evaluator = BinaryClassificationEvaluator(labelCol=label_col, rawPredictionCol="rawPrediction")
    roc = evaluator.setMetricName("areaUnderROC").evaluate(predictions)
    pr = evaluator.setMetricName("areaUnderPR").evaluate(predictions)
    label, pred = F.col(label_col), F.col("prediction")
    c = predictions.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(((label == 1) & (pred == 1)).cast("long")).alias("tp"),
        F.sum(((label == 0) & (pred == 1)).cast("long")).alias("fp"),
        F.sum(((label == 1) & (pred == 0)).cast("long")).alias("fn"),
        F.sum(((label == 0) & (pred == 0)).cast("long")).alias("tn"),
    ).first()
    tp, fp, fn, tn, n = (c["tp"] or 0), (c["fp"] or 0), (c["fn"] or 0), (c["tn"] or 0), c["n"]
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "roc_auc": roc,
        "pr_auc": pr,
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": float(tp), "fp": float(fp), "fn": float(fn), "tn": float(tn),
    }


def param_grid(lr: LogisticRegression, grid: dict[str, list]) -> list[dict]:
    builder = ParamGridBuilder()
    for name, values in grid.items():
        cast = LOGREG_GRID_PARAMS[name]
        builder = builder.addGrid(lr.getParam(name), [cast(v) for v in values])
    return builder.build()


def train(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, run_id: str, run_date: dt.date) -> TrainResult:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    table = settings.table(pipeline.tables.bronze)
    if not spark.catalog.tableExists(table):
        raise InputDataError(f"table {table} does not exist; run 'lakeforge ingest {pipeline.file}' first")
    version = latest_version(spark, table)
    raw = read_version(spark, table, version)
    require_columns(raw, [pipeline.key, pipeline.target], f"table {table}")
    roles = resolve_roles(raw, pipeline.features, pipeline.key, pipeline.target)
    require_columns(raw, roles.columns, f"table {table} (features in {pipeline.file})")
    if not roles.columns:
        raise InputDataError(f"{pipeline.file}: no feature columns; list features.numeric / features.categorical")

    data = raw.transform(with_label(pipeline.target, pipeline.positive_class)).withColumn(
        "_is_test", split_by_key(pipeline.key, pipeline.model.test_fraction, pipeline.model.seed)
    ).cache()
    counts = {(r["_is_test"], r[LABEL_COL]): r["count"] for r in data.groupBy("_is_test", LABEL_COL).count().collect()}
    _check_classes(counts, pipeline, table)
    rows_train = sum(v for (is_test, _), v in counts.items() if not is_test)
    rows_test = sum(v for (is_test, _), v in counts.items() if is_test)
    if rows_train < pipeline.model.folds * 2:
        raise InputDataError(f"{table}: only {rows_train} training rows for {pipeline.model.folds} folds")
    train_df = data.where(~F.col("_is_test"))
    test_df = data.where(F.col("_is_test"))
    timings["read_split"] = time.perf_counter() - t0

    t = time.perf_counter()
    prep_model = preprocessing_pipeline(roles, pipeline.preprocessing).fit(train_df)
    train_features = prep_model.transform(train_df).select(LABEL_COL, FEATURES_COL).cache()
    train_features.count()
    timings["preprocess_fit"] = time.perf_counter() - t

    t = time.perf_counter()
    lr = LogisticRegression(featuresCol=FEATURES_COL, labelCol=LABEL_COL, maxIter=pipeline.model.max_iter)
    grid = param_grid(lr, pipeline.model.grid)
    evaluator = BinaryClassificationEvaluator(labelCol=LABEL_COL, metricName=pipeline.model.metric)
    parallelism = pipeline.model.parallelism or max(1, min(len(grid), spark.sparkContext.defaultParallelism))
    cv = CrossValidator(
        estimator=lr, estimatorParamMaps=grid, evaluator=evaluator, numFolds=pipeline.model.folds,
        seed=pipeline.model.seed, parallelism=parallelism, collectSubModels=False,
    )
    cv_model = cv.fit(train_features)
    timings["cross_validate"] = time.perf_counter() - t
    model = PipelineModel(stages=[*prep_model.stages, cv_model.bestModel])

    t = time.perf_counter()
    test_pred = model.transform(test_df).select(LABEL_COL, "rawPrediction", "prediction").cache()
    metrics = binary_metrics(test_pred)
    test_pred.unpersist()
    train_features.unpersist()
    data.unpersist()
    timings["evaluate"] = time.perf_counter() - t

    best = max(range(len(grid)), key=lambda i: cv_model.avgMetrics[i])
    leaderboard = [
        {
            "rank": 0,
            "algorithm": pipeline.model.algorithm,
            "params": json.dumps({p.name: v for p, v in pm.items()}, sort_keys=True),
            f"cv_{pipeline.model.metric}_mean": float(cv_model.avgMetrics[i]),
            f"cv_{pipeline.model.metric}_std": float(cv_model.stdMetrics[i]),
            "is_best": i == best,
        }
        for i, pm in enumerate(grid)
    ]
    leaderboard.sort(key=lambda r: -r[f"cv_{pipeline.model.metric}_mean"])
    for rank, row in enumerate(leaderboard, 1):
        row["rank"] = rank

    t = time.perf_counter()
    ref, mlflow_run_id = _log_and_register(
        spark, settings, pipeline, model, raw.select(*roles.columns), cv_model, grid, best, metrics,
        leaderboard, table, version, run_id, run_date, rows_train, rows_test,
    )
    timings["mlflow_log_register"] = time.perf_counter() - t
    for row in leaderboard:
        row["model_version"] = ref.version if row["is_best"] else None

    if pipeline.tables.leaderboard:
        _write_leaderboard(spark, settings.table(pipeline.tables.leaderboard), leaderboard, pipeline, run_id, run_date, mlflow_run_id)
    return TrainResult(ref, mlflow_run_id, table, version, rows_train, rows_test, metrics, leaderboard, timings)


def _check_classes(counts: dict, pipeline: PipelineConfig, table: str) -> None:
    positives = sum(v for (_, label), v in counts.items() if label == 1.0)
    negatives = sum(v for (_, label), v in counts.items() if label == 0.0)
    if positives == 0 or negatives == 0:
        raise InputDataError(
            f"{table}: target {pipeline.target!r} has {positives} rows equal to positive_class "
            f"{pipeline.positive_class!r} and {negatives} other rows; a binary model needs both. "
            "Check target and positive_class in the pipeline config."
        )
    for split in (False, True):
        if not any(v for (is_test, _), v in counts.items() if is_test == split):
            name = "test" if split else "training"
            raise InputDataError(f"{table}: the {name} split is empty; adjust model.test_fraction")


def _log_and_register(spark, settings, pipeline, model, feature_frame, cv_model, grid, best, metrics,
                      leaderboard, table, version, run_id, run_date, rows_train, rows_test):
    import mlflow
    import mlflow.spark
    import pyspark
    from mlflow.models import infer_signature

    experiment_id = tracking.configure(settings)
    best_params = {p.name: v for p, v in grid[best].items()}
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{pipeline.name}-{run_date.isoformat()}") as run:
        mlflow.set_tags({
            "lakeforge.pipeline": pipeline.name,
            "lakeforge.run_id": run_id,
            "lakeforge.run_date": run_date.isoformat(),
            "git_commit": tracking.git_commit(settings.root),
            "config_hash": pipeline.config_hash,
            "data.table": table,
            "data.table_version": str(version),
        })
        mlflow.log_params({
            "algorithm": pipeline.model.algorithm,
            "folds": pipeline.model.folds,
            "metric": pipeline.model.metric,
            "seed": pipeline.model.seed,
            "test_fraction": pipeline.model.test_fraction,
            "grid": json.dumps(pipeline.model.grid, sort_keys=True),
            "rows_train": rows_train,
            "rows_test": rows_test,
            "data_table": table,
            "data_table_version": version,
            **{f"best.{k}": v for k, v in best_params.items()},
        })
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
        mlflow.log_metric(f"cv_{pipeline.model.metric}_mean", float(cv_model.avgMetrics[best]))
        mlflow.log_metric(f"cv_{pipeline.model.metric}_std", float(cv_model.stdMetrics[best]))
        mlflow.log_dict(pipeline.model_dump(mode="json"), "config/pipeline.json")
        mlflow.log_dict(settings.model_dump(mode="json"), "config/settings.json")
        mlflow.log_dict({"leaderboard": leaderboard}, "leaderboard.json")
        with warnings.catch_warnings():  # MLflow's hint about integer columns: not actionable here
            warnings.simplefilter("ignore")
            signature = infer_signature(feature_frame.limit(5).toPandas())
        info = mlflow.spark.log_model(
            model,
            "model",
            registered_model_name=pipeline.model.registered_name,
            signature=signature,
            # Passing requirements avoids MLflow's slow inference of them (~15 s).
            pip_requirements=[f"pyspark=={pyspark.__version__}", f"mlflow=={mlflow.__version__}"],
        )
        version_registered = str(info.registered_model_version)
    tracking.set_alias(pipeline.model.registered_name, "champion", version_registered)
    return tracking.ModelRef(pipeline.model.registered_name, version_registered, "champion"), run.info.run_id


def _write_leaderboard(spark, table, leaderboard, pipeline, run_id, run_date, mlflow_run_id) -> None:
    metric = pipeline.model.metric
    rows = [
        Row(
            run_date=run_date, run_id=run_id, mlflow_run_id=mlflow_run_id, rank=r["rank"],
            algorithm=r["algorithm"], params=r["params"], metric=metric,
            cv_mean=r[f"cv_{metric}_mean"], cv_std=r[f"cv_{metric}_std"], is_best=r["is_best"],
            model_version=r["model_version"],
        )
        for r in leaderboard
    ]
    schema = (
        "run_date date, run_id string, mlflow_run_id string, rank int, algorithm string, params string, "
        "metric string, cv_mean double, cv_std double, is_best boolean, model_version string"
    )
    write_table(spark.createDataFrame(rows, schema), table, partition_col="run_date", partition_value=run_date)
