"""Train: a pinned version of the bronze Delta table -> a model search over MLlib algorithms ->
the winner registered in MLflow as ``challenger``, promoted to ``champion`` when it beats it.

This module reads the table, calls the steps and writes the Delta sinks (leaderboard, feature
ranking, gold feature table). It reads the latest bronze version unless that holds rows of a
load whose error checks failed: then the last version that passed (lakeforge.ingest.gate;
``allow_failed_checks`` overrides). The steps, in order:

1. lakeforge.training.target: the task (binary / multiclass / regression) from the config or
   inferred from the target, its class labels and metric, and the numeric label column.
2. lakeforge.training.split: the held-out test split is a hash of the key (each class keeps
   about the test fraction, recorded as ``test_share_per_class``) or, with ``model.split.by:
   time``, the latest rows by a timestamp column; the search's folds are a hash of the key, so
   every algorithm sees the SAME folds.
3. Preprocessing (lakeforge.features) is fitted ONCE on the training split; its output
   (label, feature vector, fold number, weight) is cached (lakeforge.training.feature_cache:
   MEMORY_AND_DISK, sparse vectors kept sparse, its size logged). Preprocessing that reads the label
   (target encoding, univariate or model-based feature selection) is instead refitted inside
   each fold. What it did (rows without a target, dropped columns and why, values coerced to
   null, the feature ranking) is printed and logged (PreprocessingReport); the ranking and the
   gold feature table (``tables.features``) are written to Delta.
4. lakeforge.training.search: every (fold, candidate) fit — candidate = algorithm x grid point
   — goes to one thread pool, ``parallelism`` at a time; ``search: train_validation_split``
   uses one split instead of k folds; ``halving: true`` fits every candidate on the first fold
   and only the best third and the best of each algorithm on the others.
5. lakeforge.training.choose: the winner by the primary metric (best mean or the
   one-standard-error rule) is refitted on the whole training split (with the search's total
   penalty: see refit_penalty()); for binary targets its decision threshold is chosen on the
   pooled validation predictions (max F1, or a target precision / recall) and stored in the
   model.
6. lakeforge.training.register: the PipelineModel (preprocessing + model [+ label names]) is
   evaluated on the test split, logged with a signature and input example, registered, and
   given alias ``challenger``; it becomes ``champion`` only if it beats the current champion on
   the same test rows by ``model.promotion_margin`` (the first version becomes champion
   directly). The version's tag ``lakeforge.input_null_shares`` keeps the training rows' null
   share per input column, for scoring's check (lakeforge.training.input_nulls).

A zero-config search (no ``model.algorithms``) of a large binary or regression table boosts its
trees (XGBoost) with early stopping (lakeforge.training.algorithms.sized_defaults); the
leaderboard records the rounds each fold kept.

A ``model.max_minutes`` budget (from the start of training): after it no new algorithm starts
(started ones finish their folds; the first always runs); the leaderboard lists the rest as
skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.ml import PipelineModel
from pyspark.ml.feature import IndexToString
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from lakeforge.core.columns import FEATURES_COL, FOLD_COL, LABEL_COL, WEIGHT_COL
from lakeforge.core.config import PipelineConfig
from lakeforge.core.frames import local_frame
from lakeforge.core.settings import Settings
from lakeforge.core.errors import InputDataError
from lakeforge.core.io import plan_bytes, require_columns, write_table
from lakeforge.features.dedupe import deduplicate
from lakeforge.features.pipeline import is_supervised, preprocessing_pipeline
from lakeforge.features.plan import FeaturePlan, plan_features, resolve_roles
from lakeforge.features.slots import feature_table
from lakeforge.features.stages import fit_for_training
from lakeforge.features.statistics import feature_statistics
from lakeforge.training import evaluation
from lakeforge.training.feature_cache import cache_features, fit_parallelism, refit_in_fold, rows_level
from lakeforge.training.algorithms import Estimators, sized_defaults
from lakeforge.training.early_stopping import rounds_used
from lakeforge.core.tasks import UNSUPERVISED
from lakeforge.training.unsupervised import train_task
from lakeforge.training.choose import choose_threshold, leaderboard, rank, refit_penalty, select, set_threshold
from lakeforge.training.importances import feature_importances
from lakeforge.training.input_nulls import tag_null_shares
from lakeforge.monitoring.reference import reference_from_training
from lakeforge.training.sample import sample_rows
from lakeforge.training.register import Lineage, Registration, Trained, TrainResult, log_and_register
from lakeforge.training.task_register import read_input
from lakeforge.training.search import Candidate, SearchSpec, candidates, fold_frames, search
from lakeforge.training.split import check_counts, record_counts, split_counts, split_rows, with_class_weights
from lakeforge.training.target import Target, infer_target, label_column, metric_and_algorithms


@dataclass
class _Data:
    """The bronze version read, its target, and the split: what every later step works on."""

    table: str
    version: int
    raw: DataFrame  # the rows training reads (a sample: model.max_train_rows; deduplicated: preprocessing.deduplicate), cached
    everything: DataFrame  # all rows of the version (deduplicated alike), for the gold feature table
    plan: FeaturePlan
    target: Target
    metric: str
    algorithms: dict
    train_df: DataFrame
    test_df: DataFrame
    split_info: dict
    rows_train: int
    rows_test: int
    weight: str | None  # WEIGHT_COL with model.class_weights


@dataclass
class _Features:
    """The preprocessing fitted on the training split and its cached output."""

    prep_model: PipelineModel
    train_features: DataFrame  # label, feature vector, fold (and weight): cached (refitted in folds: from the refit on)
    num_features: int
    fold_data: Callable | None  # fold k -> (training, validation, vector size), refitted in the fold


def train(
    spark: SparkSession,
    settings: Settings,
    pipeline: PipelineConfig,
    run_id: str,
    run_date: dt.date,
    progress: Callable[[str], None] | None = None,
    allow_failed_checks: bool = False,
) -> TrainResult:
    if pipeline.model.task in UNSUPERVISED:  # no target: lakeforge.training.unsupervised
        return train_task(spark, settings, pipeline, run_id, run_date, progress, allow_failed_checks)
    say = progress or (lambda _msg: None)
    cfg = pipeline.model
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    d = _read_and_split(spark, settings, pipeline, allow_failed_checks, say)
    timings["read_split"] = time.perf_counter() - t0
    _announce(pipeline, d, say)

    t = time.perf_counter()
    feats = _preprocess(pipeline, d, say)
    timings["preprocess_fit"] = time.perf_counter() - t
    if feats.fold_data:
        say("preprocessing reads the label: refitted inside each fold")

    task, metric = d.target.task, d.metric
    num_classes = len(d.target.labels) if task != "regression" else 0
    estimators = Estimators(task, d.weight, cfg.seed, cfg.max_iter, num_classes)
    deadline = t0 + cfg.max_minutes * 60 if cfg.max_minutes else None
    found, timings["search"] = _search(spark, pipeline, d, feats, estimators, deadline, say)

    ranked = rank(found, task, metric)
    best, best.selected_by = select(ranked, task, metric, cfg.selection, cfg.n_folds)
    say(f"selected: {best.label} ({best.selected_by})")

    t = time.perf_counter()
    model, fitted, refit_params, threshold = _refit(pipeline, d, feats, estimators, best, say)
    timings["refit_best"] = time.perf_counter() - t

    t = time.perf_counter()
    test_eval = evaluation.evaluate(task, model.transform(d.test_df), LABEL_COL, d.target.labels)
    timings["evaluate"] = time.perf_counter() - t
    say(f"best: {best.label}; test {metric} {test_eval.metrics[metric]:.4f}")

    board = leaderboard(found, ranked, best, task, metric)
    trained = Trained(model, d.raw.select(*d.plan.inputs), d.target, metric, found, best, refit_params, threshold,
                      test_eval, d.test_df, board, feature_importances(fitted, feats.prep_model, d.train_df),
                      d.split_info, timings, prep_report=d.plan.report)
    lineage = Lineage(d.table, d.version, run_id, run_date)
    t = time.perf_counter()
    reg = _register(spark, settings, pipeline, d, lineage, trained)
    timings["mlflow_log_register"] = time.perf_counter() - t
    feats.train_features.unpersist()
    d.raw.unpersist()  # the cache under data, train_df and test_df
    seconds = _write_sinks(spark, settings, pipeline, d, feats, board, lineage, reg)
    if seconds is not None:
        timings["feature_table"] = seconds
    return TrainResult(reg.model, reg.mlflow_run_id, d.table, d.version, d.rows_train, d.rows_test, task, metric,
                       test_eval.metrics, board, reg.promoted, reg.decision, reg.champion_version, threshold, timings,
                       reg.report, preprocessing=d.plan.report.to_dict())


def _announce(pipeline: PipelineConfig, d: _Data, say: Callable[[str], None]) -> None:
    say(f"{d.target.task} target {pipeline.target!r}: {d.rows_train:,} training rows, {d.rows_test:,} test rows; "
        f"metric {d.metric}")
    for line in d.plan.report.lines():
        say(f"preprocessing: {line}")


def _register(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, d: _Data, lineage: Lineage,
              trained: Trained):
    """Log and register the model with what later stages read from the version, before it gets an
    alias: the training rows' null shares (scoring) and the monitoring reference (lakeforge monitor,
    from the test rows)."""
    def equip(ref) -> None:  # before any alias points at the version
        tag_null_shares(ref, d.plan)
        reference_from_training(spark, settings, pipeline, ref, trained.model, d.test_df, d.plan.inputs)

    return log_and_register(settings, pipeline, lineage, trained, equip)


def _read_and_split(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, allow_failed_checks: bool,
                    say: Callable[[str], None]) -> _Data:
    """Read the bronze version the data-quality gate allows, plan the features, infer the target,
    split and profile."""
    cfg = pipeline.model
    table, version, raw = read_input(spark, settings, pipeline, allow_failed_checks, say)
    require_columns(raw, [pipeline.key, pipeline.target], f"table {table}")
    roles = resolve_roles(raw, pipeline.features, pipeline.key, pipeline.target)
    require_columns(raw, roles.columns, f"table {table} (features in {pipeline.file})")
    f = pipeline.features
    if not roles.columns and not f.derived and not f.dates and not f.text_length and not f.text_tfidf:
        raise InputDataError(f"{pipeline.file}: no feature columns; list features.numeric / features.categorical")
    where = f"table {table} ({pipeline.file})"
    plan = plan_features(raw, pipeline.features, pipeline.preprocessing, pipeline.key, pipeline.target, where)
    table_bytes, everything = plan_bytes(raw), raw
    raw, sampled = sample_rows(raw, pipeline.key, cfg.max_train_rows, cfg.seed, table_bytes)
    if sampled.sampled:  # by a hash of the key: all rows of a key in or out, so deduplicating after is the same
        say(f"training on a {sampled.fraction:.1%} sample of the {sampled.rows:,} rows: {sampled.why}")
        table_bytes = table_bytes and int(table_bytes * sampled.fraction)
    duplicates = None
    if pipeline.preprocessing.deduplicate != "none":  # training rows only: scoring scores every row
        before = raw.count()
        raw = raw.transform(deduplicate(pipeline.preprocessing.deduplicate, pipeline.key))
        duplicates = before - raw.count()
        everything = everything.transform(deduplicate(pipeline.preprocessing.deduplicate, pipeline.key))
    # The rows read (after sampling and deduplicating) are cached once: the target's checks, the
    # split, the feature statistics and the preprocessing fits read them again and again (one scan
    # of the table instead of one per count).
    level, where_kept = rows_level(spark, table_bytes)
    if not level.useMemory:
        say(f"training rows: {where_kept}")
    raw = raw.persist(level)
    try:
        missing_target = raw.where(F.col(pipeline.target).isNull()).count()
        target = infer_target(raw, pipeline, table)
        metric, algorithms = metric_and_algorithms(pipeline, target.task)
        data, split_info = split_rows(label_column(raw, pipeline.target, target), cfg, pipeline.key, target.task, table)
        counts = split_counts(data, target.task)
        check_counts(counts, target, pipeline, table, cfg.n_folds)
    except Exception:
        raw.unpersist()
        raise
    rows_train, rows_test = record_counts(split_info, counts, target)
    if sampled.sampled:
        split_info["sample"] = sampled.record()
    weight = None
    if cfg.class_weights and target.task != "regression":
        weight = WEIGHT_COL
        data = with_class_weights(data, counts, rows_train)
    plan = feature_statistics(plan, data, where, train=~F.col("_is_test"))
    plan.report.rows_missing_target, plan.report.duplicates_removed = missing_target, duplicates
    return _Data(table, version, raw, everything, plan, target, metric, algorithms, data.where(~F.col("_is_test")),
                 data.where(F.col("_is_test")), split_info, rows_train, rows_test, weight)


def _preprocess(pipeline: PipelineConfig, d: _Data, say: Callable[[str], None]) -> _Features:
    """Fit the preprocessing on the training split and cache its output (lakeforge.training.
    feature_cache: MEMORY_AND_DISK, its size said); when it reads the label, also how to refit it
    inside each fold."""
    task = d.target.task
    classes = [float(i) for i in range(len(d.target.labels))] if task == "multiclass" else None

    def prep_pipeline(ranking=None):
        return preprocessing_pipeline(d.plan, selection=pipeline.selection, task=task, classes=classes,
                                      seed=pipeline.model.seed, ranking=ranking)

    # the rows the learner trains on: out-of-fold target means (lakeforge.features.cross_fit)
    prep_model, fitted_rows = fit_for_training(prep_pipeline(d.plan.report.ranking), d.train_df)
    keep = [LABEL_COL, FEATURES_COL, FOLD_COL] + ([WEIGHT_COL] if d.weight else [])
    # Target encoding and supervised selection read the label: they are refitted inside every
    # fold, so no validation label leaks into the features it is scored on. The search then reads
    # only the folds' own cached rows, and the whole split's rows are cached for the refit of the
    # winner, after the folds' caches are gone (both at once ran a 4 GB local driver out of heap
    # at 10M rows).
    fold_data = None
    if is_supervised(d.plan, pipeline.selection):
        def fold_data(k: int):
            return refit_in_fold(prep_pipeline(), d.train_df, keep, k, say)
        train_features = fitted_rows.select(*keep)
    else:
        train_features = cache_features(fitted_rows.select(*keep), "training features", say)
    num_features = train_features.select(FEATURES_COL).first()[0].size
    say(f"feature vector: {num_features:,} slots")
    return _Features(prep_model, train_features, num_features, fold_data)


def _search(spark: SparkSession, pipeline: PipelineConfig, d: _Data, feats: _Features, estimators: Estimators,
            deadline: float | None, say: Callable[[str], None]) -> tuple[list[Candidate], float]:
    """Every candidate fitted and scored on every fold: (the candidates, the search's seconds)."""
    cfg, task = pipeline.model, d.target.task
    # zero-config: the default grids for this many rows (GBT stops early on large tables)
    algorithms = d.algorithms if cfg.algorithms is not None else sized_defaults(d.algorithms, task, d.rows_train)
    for name in ("gbt", "xgboost"):
        if shares := [v for v in (algorithms.get(name) or {}).get("validationFraction", []) if v > 0]:
            say(f"{name}: early stopping on a held-out {max(shares):.0%} of each fit's rows ({d.rows_train:,} training rows)")
    found = candidates(algorithms, task)
    t = time.perf_counter()
    folds = fold_frames(feats.train_features, cfg.n_folds, feats.num_features, feats.fold_data)
    parallelism = cfg.parallelism or max(1, min(4, spark.sparkContext.defaultParallelism * 2))
    if not cfg.parallelism:  # as many at once as the memory holds
        parallelism, why = fit_parallelism([f[0] for f in folds] if feats.fold_data else [feats.train_features], parallelism)
        if why:
            say(f"search: {why}")
    say(f"search: {len(found)} candidates from {len(d.algorithms)} algorithm(s), {cfg.search_label}, "
        f"parallelism {parallelism}")
    search(SearchSpec(
        found, folds, task, estimators,
        evaluate=lambda predictions: evaluation.evaluate(task, predictions, LABEL_COL, d.target.labels),
        parallelism=parallelism, deadline=deadline, say=say, halving_metric=d.metric if cfg.halving else None))
    if feats.fold_data is not None:
        for train_k, valid_k, _ in folds:
            train_k.unpersist()
            valid_k.unpersist()
    return found, time.perf_counter() - t


def _refit(pipeline: PipelineConfig, d: _Data, feats: _Features, estimators: Estimators, best: Candidate,
           say: Callable[[str], None]) -> tuple[PipelineModel, object, dict, float | None]:
    """The winner refitted on the whole training split, with its threshold, as one PipelineModel
    with the preprocessing (and, for multiclass, the class names): (model, fitted estimator's
    model, the refit's params, threshold)."""
    cfg, task = pipeline.model, d.target.task
    est = estimators.build(best.algorithm, feats.num_features)
    refit_params = refit_penalty(best.params, cfg.search, cfg.n_folds, cfg.train_ratio)
    if refit_params != best.params:
        say(f"refit on all {d.rows_train:,} training rows with regParam {refit_params['regParam']:.6g} "
            f"(the search's {best.params['regParam']:.6g} x {refit_params['regParam'] / best.params['regParam']:.4g}: "
            "the same total penalty on more rows)")
    if feats.fold_data is not None:  # not cached during the search (_preprocess)
        cache_features(feats.train_features, "training features", say)
    fitted = est.fit(feats.train_features, estimators.param_map(est, refit_params, feats.num_features))
    if (rounds := rounds_used(fitted)) is not None:  # the model's numTrees; its maxIter is the cap
        say(f"refit: early stopping kept {rounds} of at most {fitted.getMaxIter()} boosting rounds")
    threshold = None
    if task == "binary":
        threshold = choose_threshold(best, cfg)
        set_threshold(fitted, threshold)
    stages = [*feats.prep_model.stages, fitted]
    if task == "multiclass":
        stages.append(IndexToString(inputCol="prediction", outputCol="predicted_class", labels=d.target.labels))
    return PipelineModel(stages=stages), fitted, refit_params, threshold


def _write_sinks(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, d: _Data, feats: _Features,
                 board: list[dict], lineage: Lineage, reg: Registration) -> float | None:
    """The leaderboard (its rows get ``model_version``: the registered version on the winner's
    row), the feature ranking and the gold feature table; returns the seconds the feature table
    took (none when there is no ``tables.features``)."""
    mlflow_run_id = reg.mlflow_run_id
    for row in board:
        row["model_version"] = reg.model.version if row["is_best"] else None
    if pipeline.tables.leaderboard:
        _write_leaderboard(spark, settings.table(pipeline.tables.leaderboard), board, lineage.run_id, lineage.run_date,
                           mlflow_run_id, d.metric)
    if d.plan.report.ranking:
        _write_ranking(spark, settings.table(pipeline.feature_ranking_table),
                       d.plan.report.ranking, pipeline.name, lineage.run_id, lineage.run_date, mlflow_run_id)
    if not pipeline.tables.features:
        return None
    t = time.perf_counter()  # the gold feature table: replaced each run (one Delta version per run)
    write_table(feature_table(feats.prep_model, d.everything, pipeline.key), settings.table(pipeline.tables.features))
    return time.perf_counter() - t


def _write_leaderboard(spark, table, leaderboard, run_id, run_date, mlflow_run_id, metric) -> None:
    rows = [
        Row(
            run_date=run_date, run_id=run_id, mlflow_run_id=mlflow_run_id, rank=r["rank"], algorithm=r["algorithm"],
            params=r["params"], status=r["status"], metric=metric, cv_mean=r["cv_mean"], cv_std=r["cv_std"],
            metrics=json.dumps({**{k[3:]: v for k, v in r.items() if k.startswith("cv_") and k not in ("cv_mean", "cv_std")},
                                **({"rounds_used": r["rounds_used"]} if r.get("rounds_used") else {})}),
            fit_seconds=float(r["fit_seconds"]), is_best=r["is_best"], model_version=r["model_version"],
        )
        for r in leaderboard
    ]
    schema = (
        "run_date date, run_id string, mlflow_run_id string, rank int, algorithm string, params string, status string, "
        "metric string, cv_mean double, cv_std double, metrics string, fit_seconds double, is_best boolean, model_version string"
    )
    write_table(local_frame(spark, rows, schema), table, partition_col="run_date", partition_value=run_date,
                merge_schema=True)


def _write_ranking(spark, table, ranking, pipeline_name, run_id, run_date, mlflow_run_id) -> None:
    rows = [
        Row(run_date=run_date, run_id=run_id, mlflow_run_id=mlflow_run_id, pipeline=pipeline_name, step=int(r["step"]),
            method=r["method"], rank=int(r["rank"]), feature=r["feature"], source_column=r["column"],
            score=None if r["score"] is None else float(r["score"]),
            p_value=None if r.get("p_value") is None else float(r["p_value"]), kept=bool(r["kept"]),
            selected=bool(r.get("selected")), note=r.get("note"))
        for r in ranking
    ]
    schema = ("run_date date, run_id string, mlflow_run_id string, pipeline string, step int, method string, rank int, "
              "feature string, source_column string, score double, p_value double, kept boolean, selected boolean, note string")
    write_table(local_frame(spark, rows, schema), table, partition_col="run_date", partition_value=run_date)
