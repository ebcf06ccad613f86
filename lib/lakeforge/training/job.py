"""Train: a pinned version of the bronze Delta table -> a model search over MLlib algorithms ->
the winner registered in MLflow as ``challenger``, promoted to ``champion`` when it beats it.

How the search works (CrossValidator's algorithm, shared by all algorithms):

1. The task (binary / multiclass / regression) is taken from the config or inferred from the
   target; the held-out test split is a hash of the key (each class keeps about the test
   fraction, recorded as ``test_share_per_class``) or, with ``model.split.by: time``, the latest
   rows by a timestamp column.
2. Preprocessing is fitted ONCE on the training split; its output (label, feature vector, fold
   number, weight) is cached. Folds are a hash of the key, so every algorithm sees the SAME folds.
   Preprocessing that reads the label (target encoding, univariate or model-based feature
   selection) is instead refitted inside each fold. What it did (rows without a target, dropped
   columns and why, values coerced to null, the feature ranking) is printed and logged
   (lakeforge.features.PreprocessingReport); the ranking and the gold feature table
   (``tables.features``) are written to Delta.
3. Every (fold, candidate) fit — candidate = algorithm x grid point — goes to one thread pool,
   ``parallelism`` at a time, on the fold's rows of the cached features; each fit is evaluated
   with every metric in ONE aggregation (lakeforge.evaluation). No sub-model is kept.
   ``search: train_validation_split`` uses one split instead of k folds; ``halving: true``
   fits every candidate on the first fold and only the best third and the best of each
   algorithm on the others.
4. The best candidate by the primary metric is refitted on the whole training split (with the
   search's total penalty: see refit_penalty()); for binary
   targets its decision threshold is chosen on the pooled validation predictions (max F1, or a
   target precision / recall) and stored in the model.
5. The PipelineModel (preprocessing + model [+ label names]) is evaluated on the test split,
   logged with a signature and input example, registered, and given alias ``challenger``; it
   becomes ``champion`` only if it beats the current champion on the same test rows by
   ``model.promotion_margin`` (the first version becomes champion directly).

A ``model.max_minutes`` budget (from the start of training): after it no new algorithm starts
(started ones finish their folds; the first always runs); the leaderboard lists the rest as
skipped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import re
import statistics
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.ml import PipelineModel
from pyspark.ml.feature import IndexToString
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, DecimalType, NumericType

from lakeforge.training import evaluation
from lakeforge.training import algorithms as models
from lakeforge.core import tracking
from lakeforge.core.config import PipelineConfig, Settings
from lakeforge.core.errors import InputDataError, LakeforgeError
from lakeforge.features.plan import (
    FEATURES_COL,
    deduplicate,
    feature_table,
    is_supervised,
    plan_features,
    preprocessing_pipeline,
    profile_features,
    resolve_roles,
    slot_names,
)
from lakeforge.profiling.frame import MAX_CLASSES, as_text, default_positive, infer_task
from lakeforge.core.columns import FOLD_COL, LABEL_COL, WEIGHT_COL
from lakeforge.core.io import latest_version, read_version, require_columns, write_table

SPLIT_BUCKETS = 10_000
LONG_MAX = 2**63 - 1
QUANTILE_ACCURACY = 10_000  # split cut points: brackets of about 6 n / 10,000 rows, then exact
PROGRESS_SECONDS = 20  # a long search reports a finished fit when nothing was said for this long


@dataclass
class Target:
    task: str
    labels: list[str]  # classification: class names by label index
    positive_class: str | None = None  # binary


@dataclass
class Candidate:
    algorithm: str
    params: dict
    fold_metrics: list[dict[str, float]] = field(default_factory=list)
    fold_evals: list[evaluation.Evaluation] = field(default_factory=list)
    fit_seconds: float = 0.0
    status: str = "ok"  # ok | skipped (time budget) | failed: <reason> | pruned after fold 1 (halving)
    selected_by: str = ""  # set on the winner: why it won

    @property
    def label(self) -> str:
        return f"{self.algorithm} {json.dumps(self.params, sort_keys=True)}"

    def mean(self, metric: str) -> float:
        vals = [m[metric] for m in self.fold_metrics if metric in m and not math.isnan(m[metric])]
        return statistics.fmean(vals) if vals else float("nan")

    def std(self, metric: str) -> float:
        vals = [m[metric] for m in self.fold_metrics if metric in m and not math.isnan(m[metric])]
        return statistics.pstdev(vals) if len(vals) > 1 else 0.0 if vals else float("nan")


@dataclass
class TrainResult:
    model: tracking.ModelRef
    mlflow_run_id: str
    table: str
    table_version: int
    rows_train: int
    rows_test: int
    task: str
    metric: str
    test_metrics: dict[str, float]
    leaderboard: list[dict]
    promoted: bool
    decision: str
    champion_version: str | None
    threshold: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    report: str | None = None
    preprocessing: dict | None = None  # lakeforge.features.PreprocessingReport as a dict


# ---------------------------------------------------------------------------------------------
# Task, labels, split
# ---------------------------------------------------------------------------------------------


def infer_target(raw: DataFrame, pipeline: PipelineConfig, table: str) -> Target:
    """The task and class labels from the config, else from the target's type and values."""
    target = pipeline.target
    dtype = raw.schema[target].dataType
    values = [r[0] for r in raw.select(target).where(F.col(target).isNotNull()).distinct().limit(MAX_CLASSES + 1).collect()]
    if not values:
        raise InputDataError(f"{table}: target {target!r} has no non-null value; nothing to learn")
    if len(values) == 1:
        raise InputDataError(f"{table}: target {target!r} is constant ({values[0]!r} in every row); nothing to learn")
    task = pipeline.model.task
    numeric = isinstance(dtype, NumericType)
    if task == "auto":
        try:
            task, _ = infer_task(values, numeric, len(values))
        except InputDataError as exc:
            raise InputDataError(f"{table}: {target!r}: {exc}; or set model.task") from None
    if task == "regression":
        if not numeric:
            sample = ", ".join(repr(v) for v in values[:3])
            raise InputDataError(
                f"{table}: model.task is regression but target {target!r} is {dtype.simpleString()} "
                f"(values like {sample}); regression needs a numeric target (or use task binary / multiclass)"
            )
        return Target("regression", [])
    names = sorted(as_text(v) for v in values)
    if task == "binary":
        if len(values) > 2 and pipeline.positive_class is None:
            raise InputDataError(
                f"{table}: target {target!r} has more than 2 values ({', '.join(names[:5])}...); "
                "for a binary task set positive_class (the rest is negative) or use task multiclass"
            )
        positive = as_text(pipeline.positive_class) if pipeline.positive_class is not None else default_positive(
            names, lambda: {as_text(r[0]): r[1] for r in raw.groupBy(target).count().collect() if r[0] is not None})
        if positive not in names:
            raise InputDataError(
                f"{table}: target {target!r} has no row equal to positive_class {positive!r} "
                f"(values: {', '.join(names[:10])}); check target and positive_class in {pipeline.file}"
            )
        return Target("binary", ["not " + positive, positive], positive)
    if len(values) > MAX_CLASSES:
        raise InputDataError(f"{table}: target {target!r} has more than {MAX_CLASSES} classes")
    return Target("multiclass", names)


def label_column(raw: DataFrame, target_col: str, target: Target) -> DataFrame:
    """Rows with a non-null target and a double ``label`` (class index, 1.0 = positive)."""
    df = raw.where(F.col(target_col).isNotNull())
    if target.task == "regression":
        return df.withColumn(LABEL_COL, F.col(target_col).cast("double"))
    text = _text_expr(raw, target_col)
    if target.task == "binary":
        return df.withColumn(LABEL_COL, F.when(text == F.lit(target.positive_class), 1.0).otherwise(0.0))
    mapping = F.create_map(*[x for i, name in enumerate(target.labels) for x in (F.lit(name), F.lit(float(i)))])
    return df.withColumn(LABEL_COL, mapping[text])


def _text_expr(raw: DataFrame, col: str):
    dtype = raw.schema[col].dataType
    c = F.col(col)
    if isinstance(dtype, BooleanType):
        return F.lower(c.cast("string"))
    if isinstance(dtype, NumericType):
        # 1.0 -> "1", as as_text does
        return F.when(c == F.floor(c), c.cast("long").cast("string")).otherwise(c.cast("string"))
    return c.cast("string")


def split_by_key(key: str, test_fraction: float, seed: int):
    """Deterministic train/test split from a hash of the key: the same rows land in the same
    split on every run, whatever the partitioning. Returns the is-test column expression."""
    bucket = F.pmod(_key_hash(key, seed), F.lit(SPLIT_BUCKETS))
    return bucket < F.lit(int(round(test_fraction * SPLIT_BUCKETS)))


def fold_of(key: str, folds: int, seed: int):
    return F.pmod(_key_hash(key, seed + 1), F.lit(folds)).cast("int")


def _key_hash(key: str, seed: int):
    return F.xxhash64(F.col(key).cast("string"), F.lit(seed))


def split_rows(labelled: DataFrame, cfg, key: str, task: str, table: str) -> tuple[DataFrame, dict]:
    """``labelled`` with the held-out test rows marked (``_is_test``) and the search's folds
    (``FOLD_COL``: 0..k-1 for cross-validation; 0 = validation and -1 = training for a
    train/validation split), and what the split was, for the record. Cache ``labelled`` first:
    the cut points are small aggregations over it.

    Rows are ordered by seeded hashes of the key, so the same data lands in the same place on
    every run. For classification the test set and the folds are stratified, as scikit-learn's
    ``train_test_split(stratify=y)`` and ``StratifiedKFold`` are: within each class, the first round(test_fraction x n) rows in hash order are test rows, and
    the class's training rows are cut into runs of equal size, one per fold, so rare classes
    keep their share everywhere (a class of one row stays in training). The cut points are the
    exact per-class quantiles of the hash, whatever the partitioning (see _first_shares; 2M rows,
    2 classes: a few seconds against 0.4-0.6 s for a plain hash split). They follow the data:
    when rows are added, a few existing rows change sides (7 of 10,000 when a table grew by
    10 %), so a champion re-scored on a later test set may have trained on those few; a plain
    hash split never moves a row but is only stratified on average. Regression: hash buckets. A time split takes its test rows by time.
    """
    info: dict = {"by": cfg.split.by, "test_fraction": cfg.test_fraction, "seed": cfg.seed,
                  "stratified": "no" if task == "regression" else "folds" if cfg.split.by == "time" else "test and folds"}
    data = labelled
    if task != "regression":  # 53-bit hashes: percentile_approx works in doubles, which hold them exactly
        data = (data.withColumn("_h", F.shiftright(_key_hash(key, cfg.seed), 11))
                .withColumn("_hf", F.shiftright(_key_hash(key, cfg.seed + 1), 11)))
    if cfg.split.by == "time":
        is_test, cut = _time_split(data, cfg.split.column, cfg.test_fraction, table)
        info.update(column=cfg.split.column, test_from=dt.datetime.fromtimestamp(cut, dt.timezone.utc).isoformat())
    elif task == "regression":
        is_test = split_by_key(key, cfg.test_fraction, cfg.seed)
    else:
        is_test = _first_shares(data, "_h", [cfg.test_fraction])[0]
    data = data.withColumn("_is_test", F.coalesce(is_test, F.lit(False)))  # no timestamp: training
    cv = cfg.search == "cross_validation"
    if task == "regression":
        bucket = F.pmod(_key_hash(key, cfg.seed + 1), F.lit(SPLIT_BUCKETS))
        fold = fold_of(key, cfg.folds, cfg.seed) if cv else F.when(
            bucket >= F.lit(int(round(cfg.train_ratio * SPLIT_BUCKETS))), 0).otherwise(-1)
    else:
        shares = [j / cfg.folds for j in range(1, cfg.folds)] if cv else [cfg.train_ratio]
        # a row's fold: how many of the cut points its hash is past
        fold = sum((~first).cast("int") for first in _first_shares(data.where(~F.col("_is_test")), "_hf", shares))
        fold = fold if cv else F.when(fold == 1, 0).otherwise(-1)
    return data.withColumn(FOLD_COL, fold.cast("int")).drop("_h", "_hf"), info


def _first_shares(df: DataFrame, hash_col: str, shares: list[float]) -> list:
    """For each share, a boolean column: whether a row is among the first round(share x n) of
    the n rows of its class (``LABEL_COL``) in ``df``, in ``hash_col`` order.

    Exact, whatever the partitioning: approximate quantiles (rank error at most n / accuracy)
    bracket the wanted rank; one more pass counts the rows below the bracket and collects the
    few hashes inside it (about 6 n / accuracy per cut point), and the driver picks the exact
    one. Three small jobs over ``df``."""
    counts = {c: n for c, n in df.groupBy(LABEL_COL).count().collect()}
    ranks = {(c, s): int(math.floor(s * n + 0.5)) for c, n in counts.items() for s in shares}
    wanted = {(c, r) for (c, _), r in ranks.items() if 0 < r < counts[c]}
    exact: dict[tuple, int] = {}
    margin = 2
    while wanted - exact.keys() and margin <= 200:
        todo = sorted(wanted - exact.keys())
        # percentile_approx returns the value of rank ceil(p x n) (within n / accuracy)
        err = {c: margin * math.ceil(n / QUANTILE_ACCURACY) + 1 for c, n in counts.items()}
        bounds = {(c, r): (max(r - err[c], 1) / counts[c], min(r + err[c], counts[c]) / counts[c]) for c, r in todo}
        pcts = sorted({p for pair in bounds.values() for p in pair})
        q = {c: dict(zip(pcts, v)) for c, v in df.groupBy(LABEL_COL).agg(
            F.percentile_approx(hash_col, F.array(*map(F.lit, pcts)), QUANTILE_ACCURACY)).collect()}
        h, label = F.col(hash_col), F.col(LABEL_COL)
        aggs = []
        for i, (c, r) in enumerate(todo):
            lo, hi = (q[c][p] for p in bounds[(c, r)])
            mine = label == F.lit(c)
            aggs += [F.sum((mine & (h < F.lit(lo))).cast("long")).alias(f"b{i}"),
                     F.sort_array(F.collect_list(F.when(mine & (h >= F.lit(lo)) & (h <= F.lit(hi)), h))).alias(f"w{i}")]
        row = df.agg(*aggs).first()
        for i, (c, r) in enumerate(todo):
            below, window = row[f"b{i}"] or 0, row[f"w{i}"]
            if 0 <= r - below - 1 < len(window):
                exact[(c, r)] = window[r - below - 1]
        margin *= 10  # the bracket missed (not expected): wider
    if wanted - exact.keys():  # approximate quantiles outside their documented error, three times
        raise LakeforgeError(f"stratified split: no exact cut point for class(es) "
                             f"{sorted({str(c) for c, _ in wanted - exact.keys()})} (approximate quantiles outside their "
                             "error bound); please report this as a bug with the Spark version")
    out = []
    for s in shares:
        cuts = {}  # class -> the last hash in its first share; none when the share is empty
        for c, n in counts.items():
            r = ranks[(c, s)]
            if r >= n:
                cuts[c] = LONG_MAX
            elif r > 0:
                cuts[c] = exact[(c, r)]
        lookup = F.create_map(*[x for c, v in cuts.items() for x in (F.lit(c), F.lit(v))])[F.col(LABEL_COL)] \
            if cuts else F.lit(None)
        out.append(F.coalesce(F.col(hash_col) <= lookup, F.lit(False)))
    return out


def _time_split(df: DataFrame, column: str, test_fraction: float, table: str):
    if column not in df.columns:
        raise InputDataError(f"{table}: model.split.column {column!r} is not a column")
    ts = F.col(column).cast("timestamp").cast("double")
    q = df.select(ts.alias("t")).where(F.col("t").isNotNull()).approxQuantile("t", [1 - test_fraction], 0.001)
    if not q:
        raise InputDataError(f"{table}: model.split.column {column!r} has no timestamp value")
    return ts >= F.lit(q[0]), q[0]


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def train(
    spark: SparkSession,
    settings: Settings,
    pipeline: PipelineConfig,
    run_id: str,
    run_date: dt.date,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    say = progress or (lambda _msg: None)
    cfg = pipeline.model
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
    f = pipeline.features
    if not roles.columns and not f.derived and not f.dates and not f.text_length and not f.text_tfidf:
        raise InputDataError(f"{pipeline.file}: no feature columns; list features.numeric / features.categorical")
    where = f"table {table} ({pipeline.file})"
    plan = plan_features(raw, pipeline.features, pipeline.preprocessing, pipeline.key, pipeline.target, where)
    duplicates = None
    if pipeline.preprocessing.deduplicate != "none":  # training rows only: scoring scores every row
        before = raw.count()
        raw = raw.transform(deduplicate(pipeline.preprocessing.deduplicate, pipeline.key))
        duplicates = before - raw.count()
    missing_target = raw.where(F.col(pipeline.target).isNull()).count()
    target = infer_target(raw, pipeline, table)
    task = target.task
    metric = cfg.metric or default_metric(task)
    if metric not in evaluation.METRICS[task]:
        raise InputDataError(
            f"{pipeline.file}: model.metric {metric!r} does not apply to a {task} target; "
            f"use one of {', '.join(evaluation.METRICS[task])}"
        )
    algorithms = cfg.algorithms if cfg.algorithms is not None else models.default_algorithms(task)
    for name in algorithms:
        if task not in models.ALGORITHMS[name].tasks:
            raise InputDataError(
                f"{pipeline.file}: model.algorithms.{name} does not do {task}; "
                f"for {task} use {', '.join(a for a, al in models.ALGORITHMS.items() if task in al.tasks)}"
            )

    labelled = label_column(raw, pipeline.target, target).cache()
    data, split_info = split_rows(labelled, cfg, pipeline.key, task, table)
    n_folds = cfg.folds if cfg.search == "cross_validation" else 1
    counts = {(r["_is_test"], r["cls"]): r["count"] for r in
              data.groupBy("_is_test", (F.col(LABEL_COL) if task != "regression" else F.lit(0.0)).alias("cls")).count().collect()}
    _check_counts(counts, target, pipeline, table, n_folds)
    rows_train = sum(v for (t, _), v in counts.items() if not t)
    rows_test = sum(v for (t, _), v in counts.items() if t)
    split_info["rows_train"], split_info["rows_test"] = rows_train, rows_test
    if task != "regression":
        split_info["test_share_per_class"] = {
            target.labels[int(c)]: round(counts.get((True, c), 0) / (counts.get((True, c), 0) + counts.get((False, c), 0)), 4)
            for c in sorted({c for (_, c) in counts})
        }
    weight = None
    if cfg.class_weights and task != "regression":
        weight = WEIGHT_COL
        per_class = {c: sum(v for (t, cc), v in counts.items() if cc == c and not t) for (_, c) in counts}
        k = len(per_class)
        wmap = F.create_map(*[x for c, n in per_class.items() for x in (F.lit(c), F.lit(rows_train / (k * n) if n else 0.0))])
        data = data.withColumn(WEIGHT_COL, wmap[F.col(LABEL_COL)])
    train_df = data.where(~F.col("_is_test"))
    test_df = data.where(F.col("_is_test"))
    plan = profile_features(plan, data, where, train=~F.col("_is_test"))
    plan.report.rows_missing_target, plan.report.duplicates_removed = missing_target, duplicates
    timings["read_split"] = time.perf_counter() - t0
    say(f"{task} target {pipeline.target!r}: {rows_train:,} training rows, {rows_test:,} test rows; metric {metric}")
    for line in plan.report.lines():
        say(f"preprocessing: {line}")

    t = time.perf_counter()
    classes = [float(i) for i in range(len(target.labels))] if task == "multiclass" else None

    def prep_pipeline(ranking=None):
        return preprocessing_pipeline(plan, selection=pipeline.selection, task=task, classes=classes, seed=cfg.seed,
                                      ranking=ranking)

    prep_model = prep_pipeline(plan.report.ranking).fit(train_df)
    keep = [LABEL_COL, FEATURES_COL, FOLD_COL] + ([WEIGHT_COL] if weight else [])
    train_features = _cached(prep_model.transform(train_df).select(*keep))
    num_features = train_features.select(FEATURES_COL).first()[0].size
    num_classes = len(target.labels) if task != "regression" else 0
    timings["preprocess_fit"] = time.perf_counter() - t

    def refit_in_fold(k: int):
        fit_rows = train_df.where(F.col(FOLD_COL) != k)
        fold_model = prep_pipeline().fit(fit_rows)
        train_k = _cached(fold_model.transform(fit_rows).select(*keep))
        valid_k = fold_model.transform(train_df.where(F.col(FOLD_COL) == k)).select(*keep).cache()
        return train_k, valid_k, train_k.select(FEATURES_COL).first()[0].size

    # Target encoding and supervised selection read the label: they are refitted inside every
    # fold, so no validation label leaks into the features it is scored on.
    fold_data = refit_in_fold if is_supervised(plan, pipeline.selection) else None
    if fold_data:
        say("preprocessing reads the label: refitted inside each fold")

    candidates = _candidates(algorithms, task)
    parallelism = cfg.parallelism or max(1, min(4, spark.sparkContext.defaultParallelism * 2))
    say(f"search: {len(candidates)} candidates from {len(algorithms)} algorithm(s), "
        f"{'%d-fold cross-validation' % n_folds if cfg.search == 'cross_validation' else 'train/validation split'}, "
        f"parallelism {parallelism}")
    t = time.perf_counter()
    deadline = t0 + cfg.max_minutes * 60 if cfg.max_minutes else None
    _search(spark, train_features, candidates, task, target, n_folds, weight, cfg.seed, cfg.max_iter, num_features,
            num_classes, parallelism, deadline, say, fold_data, halving_metric=metric if cfg.halving else None)
    timings["search"] = time.perf_counter() - t

    ranked = sorted(
        (c for c in candidates if c.status == "ok"),
        key=lambda c: (-c.mean(metric) if evaluation.higher_is_better(task, metric) else c.mean(metric)),
    )
    ranked = [c for c in ranked if not math.isnan(c.mean(metric))] + [c for c in ranked if math.isnan(c.mean(metric))]
    if not ranked:
        reasons = "; ".join(f"{c.label}: {c.status}" for c in candidates[:5])
        raise InputDataError(f"no candidate finished ({reasons}); nothing was registered")
    best, best.selected_by = select(ranked, task, metric, cfg.selection, n_folds)
    say(f"selected: {best.label} ({best.selected_by})")

    t = time.perf_counter()
    est = models.build(best.algorithm, task, features=FEATURES_COL, label=LABEL_COL, weight=weight, seed=cfg.seed,
                       num_features=num_features, num_classes=num_classes, max_iter=cfg.max_iter)
    refit_params = refit_penalty(best.params, cfg.search, n_folds, cfg.train_ratio)
    if refit_params != best.params:
        say(f"refit on all {rows_train:,} training rows with regParam {refit_params['regParam']:.6g} "
            f"(the search's {best.params['regParam']:.6g} x {refit_params['regParam'] / best.params['regParam']:.4g}: "
            "the same total penalty on more rows)")
    fitted = est.fit(train_features, models.param_map(est, refit_params, num_features, num_classes))
    threshold = None
    if task == "binary":
        pooled = evaluation.merge_binary(best.fold_evals)
        threshold = pooled.choose_threshold(cfg.threshold.strategy, cfg.threshold.value) if cfg.threshold.strategy != "fixed" else cfg.threshold.value
        set_threshold(fitted, threshold)
    stages = [*prep_model.stages, fitted]
    if task == "multiclass":
        stages.append(IndexToString(inputCol="prediction", outputCol="predicted_class", labels=target.labels))
    model = PipelineModel(stages=stages)
    timings["refit_best"] = time.perf_counter() - t

    t = time.perf_counter()
    test_eval = evaluation.evaluate(task, model.transform(test_df), LABEL_COL, target.labels)
    timings["evaluate"] = time.perf_counter() - t
    say(f"best: {best.label}; test {metric} {test_eval.metrics[metric]:.4f}")

    leaderboard = _leaderboard(candidates, ranked, best, task, metric)
    importances = feature_importances(fitted, prep_model, train_df)

    t = time.perf_counter()
    logged = _log_and_register(
        spark, settings, pipeline, model, raw.select(*plan.inputs), candidates, best, test_eval, leaderboard,
        table, version, run_id, run_date, target, metric, threshold, split_info, test_df, importances, timings,
        prep_report=plan.report, refit_params=refit_params,
    )
    timings["mlflow_log_register"] = time.perf_counter() - t
    train_features.unpersist()
    labelled.unpersist()  # the cache under data, train_df and test_df
    ref, mlflow_run_id, promoted, decision, champion_version, report = logged
    for row in leaderboard:
        row["model_version"] = ref.version if row["is_best"] else None
    if pipeline.tables.leaderboard:
        _write_leaderboard(spark, settings.table(pipeline.tables.leaderboard), leaderboard, run_id, run_date, mlflow_run_id, metric)
    if plan.report.ranking:
        _write_ranking(spark, settings.table(pipeline.feature_ranking_table),
                       plan.report.ranking, pipeline.name, run_id, run_date, mlflow_run_id)
    if pipeline.tables.features:  # the gold feature table: replaced each run (one Delta version per run)
        t = time.perf_counter()
        write_table(feature_table(prep_model, raw, pipeline.key), settings.table(pipeline.tables.features))
        timings["feature_table"] = time.perf_counter() - t
    return TrainResult(ref, mlflow_run_id, table, version, rows_train, rows_test, task, metric, test_eval.metrics,
                       leaderboard, promoted, decision, champion_version, threshold, timings, report,
                       preprocessing=plan.report.to_dict())


def refit_penalty(params: dict, search: str, n_folds: int, train_ratio: float) -> dict:
    """The winner's params for the refit on the whole training split.

    MLlib's ``regParam`` weighs the penalty against the MEAN loss per row, so the same value
    on more rows is a relatively stronger penalty. The search chose it on fold-sized training
    sets ((k-1)/k of the rows; ``train_ratio`` for a train/validation split); the refit keeps
    the same TOTAL penalty — regParam x (k-1)/k — which is what scikit-learn's GridSearchCV
    does with C (a total-penalty parameter). Measured on 2M generated rows: refitting with the
    unscaled regParam gave test ROC-AUC 0.75477 against scikit-learn's 0.75507, and
    scikit-learn refitted with the unscaled value gives the same 0.75477."""
    reg = params.get("regParam")
    if not isinstance(reg, (int, float)) or isinstance(reg, bool) or reg <= 0:
        return params
    share = (n_folds - 1) / n_folds if search == "cross_validation" else train_ratio
    return {**params, "regParam": reg * share}


def _cached(df: DataFrame) -> DataFrame:
    """``df`` cached and materialised by one job over all its partitions. (``first()`` alone
    would compute the first partition on one core and leave the rest to the first fits, which
    then wait on each other: 2M rows, 4.1 s on one core before the search began.)"""
    df = df.cache()
    df.count()
    return df


def select(ranked: list[Candidate], task: str, metric: str, rule: str, n_folds: int) -> tuple[Candidate, str]:
    """The winner among the ranked (best CV mean first) candidates.

    best_mean: the best CV mean. one_standard_error: the simplest algorithm (linear < naive Bayes
    < tree < factorization machines < ensembles < neural network) whose CV mean is within one
    standard error (std / sqrt(folds)) of the best, and the best mean within that algorithm class:
    differences smaller than the fold-to-fold noise do not buy a more complex model.
    """
    top = ranked[0]
    if rule == "best_mean" or n_folds < 2 or math.isnan(top.mean(metric)):
        return top, f"best CV {metric}"
    se = top.std(metric) / math.sqrt(n_folds)
    hib = evaluation.higher_is_better(task, metric)
    within = [c for c in ranked if not math.isnan(c.mean(metric))
              and (c.mean(metric) >= top.mean(metric) - se if hib else c.mean(metric) <= top.mean(metric) + se)]
    simplest = min(models.ALGORITHMS[c.algorithm].complexity for c in within)
    chosen = next(c for c in within if models.ALGORITHMS[c.algorithm].complexity == simplest)
    if chosen is top:
        return top, f"best CV {metric}"
    return chosen, (f"one-standard-error rule: CV {metric} {chosen.mean(metric):.4f} is within {se:.4f} of the best "
                    f"({top.label} {top.mean(metric):.4f}), with a simpler algorithm")


def default_metric(task: str) -> str:
    return {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}[task]


def set_threshold(fitted, threshold: float) -> None:
    """Store the decision threshold on P(positive) in the fitted classifier."""
    from pyspark.ml.classification import LinearSVCModel, LogisticRegressionModel

    if isinstance(fitted, LinearSVCModel):  # its threshold is on the raw margin
        t = min(max(threshold, 1e-9), 1 - 1e-9)
        fitted.set(fitted.threshold, math.log(t / (1 - t)))
    elif isinstance(fitted, LogisticRegressionModel):
        fitted.set(fitted.threshold, threshold)
    elif fitted.hasParam("thresholds"):
        fitted.set(fitted.thresholds, [1 - threshold, threshold])


def _halve(candidates: list[Candidate], first: dict[int, tuple], task: str, metric: str) -> tuple[list[int], dict[int, str]]:
    """Successive halving after the first fold (``first``: candidate index -> (evaluation, status,
    seconds)): the indexes of the candidates that go on — the best third (at least one) of those
    that finished it, and the best of each algorithm (the one-standard-error rule may pick a
    simpler algorithm, so each needs its full CV) — and a reason for each one dropped."""
    scored = [(ci, ev.metrics[metric]) for ci, (ev, status, _) in first.items()
              if status == "ok" and not math.isnan(ev.metrics[metric])]
    hib = evaluation.higher_is_better(task, metric)
    scored.sort(key=lambda x: (-x[1] if hib else x[1], x[0]))
    n_top = max(1, math.ceil(len(scored) / 3))
    keep = {ci for ci, _ in scored[:n_top]}
    best_of: dict[str, float] = {}
    for ci, v in scored:  # best first: the first seen of each algorithm is its best
        if candidates[ci].algorithm not in best_of:
            best_of[candidates[ci].algorithm] = v
            keep.add(ci)
    cut = scored[n_top - 1][1] if scored else math.nan
    side = "at least" if hib else "at most"
    why = {ci: (f"pruned after fold 1 (successive halving): {metric} {v:.4f}; the best third scored {side} {cut:.4f} "
                f"and the best {candidates[ci].algorithm} {best_of[candidates[ci].algorithm]:.4f}")
           for ci, v in scored if ci not in keep}
    # Finished but without a score (NaN): dropped too; failed / skipped ones keep their reason.
    for ci, (ev, status, _) in first.items():
        if status == "ok" and ci not in keep and ci not in why:
            why[ci] = f"pruned after fold 1 (successive halving): no {metric}"
    return sorted(keep), why


def _candidates(algorithms: dict, task: str) -> list[Candidate]:
    out = []
    for name, grid in algorithms.items():
        full = dict(models.ALGORITHMS[name].grid_for(task))
        full.update(grid or {})
        out += [Candidate(name, point) for point in models.grid_points(full)]
    return out


def _search(spark, features, candidates, task, target, n_folds, weight, seed, max_iter, num_features, num_classes,
            parallelism, deadline, say, fold_data=None, halving_metric: str | None = None) -> None:
    """Fit and score every candidate on every fold.

    All (fold, candidate) fits go to ONE thread pool, so Spark always has ``parallelism`` fits
    to schedule (on small data a fit is mostly driver-side job overhead; batches per algorithm
    and fold left the cores idle while the slowest fit of a batch finished). The folds are
    filters of the cached ``features``: the estimators keep their own cached copy of what they
    train on (blocks for linear models, binned points for trees), so a second cached copy per
    fold only costs memory (measured: 2M rows, logistic regression x3, one fold: 38 s with
    cached fold frames, 30 s without).

    ``fold_data(k)``, when given, returns fold k's cached (training, validation, vector size)
    instead (preprocessing refitted per fold). Results are stored per fold and appended in fold
    order, so the same data, config and seed give the same CV means.

    With ``halving_metric`` (``model.halving``), successive halving across folds: every
    candidate is fitted on the first fold, and only the best third by that metric (at least one)
    and the best of each algorithm are fitted on the other folds; the others are listed as
    pruned, with their first-fold score.
    """
    folds = []
    for k in range(n_folds):
        if fold_data is None:
            folds.append((features.where(F.col(FOLD_COL) != k), features.where(F.col(FOLD_COL) == k), num_features))
        else:
            folds.append(fold_data(k))
    lock = threading.Lock()
    started: set[str] = set()
    failed: dict[int, str] = {}  # candidate index -> why its first failed fit failed
    results: dict[tuple[int, int], tuple] = {}
    done_per_fold = [0] * n_folds
    per_fold = [0] * n_folds  # fits submitted per fold
    t_start = time.perf_counter()
    last_said = [t_start]  # long searches: a line per finished fit at most every PROGRESS_SECONDS

    def fit_eval(k: int, ci: int) -> None:
        c = candidates[ci]
        with lock:
            # Past the budget no new algorithm starts; started ones finish their folds, and
            # the first algorithm always runs so that there is a model.
            if deadline is not None and time.perf_counter() > deadline and started and c.algorithm not in started:
                results[(k, ci)] = (None, "skipped: time budget (model.max_minutes) reached", 0.0)
                return
            if ci in failed:  # it failed on another fold: the same reason, no second attempt
                results[(k, ci)] = (None, failed[ci], 0.0)
                return
            started.add(c.algorithm)
        train_k, valid_k, size = folds[k]
        est = models.build(c.algorithm, task, features=FEATURES_COL, label=LABEL_COL, weight=weight, seed=seed,
                           num_features=size, num_classes=num_classes, max_iter=max_iter)
        t_fit = time.perf_counter()
        try:
            m = est.fit(train_k, models.param_map(est, c.params, size, num_classes))
        except Exception as exc:  # noqa: BLE001 - an invalid combination (e.g. NB on negative values)
            why = f"failed: {str(exc).splitlines()[0][:200]}"
            with lock:
                failed.setdefault(ci, why)
            results[(k, ci)] = (None, why, time.perf_counter() - t_fit)
            return
        secs = time.perf_counter() - t_fit
        ev = evaluation.evaluate(task, m.transform(valid_k), LABEL_COL, target.labels)
        results[(k, ci)] = (ev, "ok", secs)
        with lock:
            done_per_fold[k] += 1
            now = time.perf_counter()
            if done_per_fold[k] == per_fold[k]:
                say(f"fold {k + 1}/{n_folds}: {per_fold[k]} candidate(s) done, {now - t_start:.1f} s into the search")
            elif now - last_said[0] >= PROGRESS_SECONDS:
                say(f"{sum(done_per_fold)}/{sum(per_fold)} fits done ({c.label} on fold {k + 1}: {secs:.1f} s), "
                    f"{now - t_start:.0f} s into the search")
            else:
                return
            last_said[0] = now

    def run(batch: list[tuple[int, int]]) -> None:
        for k, _ in batch:
            per_fold[k] += 1
        with ThreadPoolExecutor(max_workers=parallelism) as pool:
            for f in [pool.submit(fit_eval, k, ci) for k, ci in batch]:
                f.result()

    order = [(k, ci) for k in range(n_folds) for ci in range(len(candidates))]
    if halving_metric is None or n_folds < 2 or len(candidates) < 3:
        run(order)
    else:
        run([(0, ci) for ci in range(len(candidates))])
        keep, why = _halve(candidates, {ci: results[(0, ci)] for ci in range(len(candidates))}, task, halving_metric)
        for ci in set(range(len(candidates))) - set(keep):  # pruned, or failed / skipped on fold 1
            for k in range(1, n_folds):
                results[(k, ci)] = (None, why.get(ci, results[(0, ci)][1]), 0.0)
        say(f"halving: {len(keep)} of {len(candidates)} candidate(s) go on to the other folds")
        run([(k, ci) for k in range(1, n_folds) for ci in keep])
    skipped_said: set[str] = set()
    for k, ci in order:  # fold order: deterministic means
        c = candidates[ci]
        ev, status, secs = results[(k, ci)]
        c.fit_seconds += secs
        if c.status != "ok":
            continue
        if status != "ok":
            c.status = status
            if status.startswith("skipped") and c.algorithm not in skipped_said:
                skipped_said.add(c.algorithm)
                say(f"time budget reached: {c.algorithm} skipped")
            continue
        c.fold_metrics.append(ev.metrics)
        if task == "binary":
            c.fold_evals.append(evaluation.Evaluation("binary", {}, bins=ev.bins))
    if fold_data is not None:
        for train_k, valid_k, _ in folds:
            train_k.unpersist()
            valid_k.unpersist()


def _check_counts(counts: dict, target: Target, pipeline: PipelineConfig, table: str, n_folds: int) -> None:
    for split in (False, True):
        if not any(v for (is_test, _), v in counts.items() if is_test == split):
            name = "test" if split else "training"
            raise InputDataError(f"{table}: the {name} split is empty; adjust model.test_fraction (or model.split)")
    rows_train = sum(v for (t, _), v in counts.items() if not t)
    if rows_train < max(2, n_folds) * 2:
        raise InputDataError(
            f"{table}: only {rows_train} training rows for {pipeline.model.folds} folds; "
            "add data or lower model.folds"
        )
    if target.task != "regression":
        present = {c for (t, c), v in counts.items() if not t and v}
        if len(present) < 2:
            raise InputDataError(f"{table}: the training split holds only one class of {pipeline.target!r}; nothing to learn")


def _leaderboard(candidates: list[Candidate], ranked: list[Candidate], best: Candidate, task: str, metric: str) -> list[dict]:
    rows = []
    order = {id(c): i for i, c in enumerate(ranked, 1)}
    for c in sorted(candidates, key=lambda c: order.get(id(c), 10**6)):
        row = {
            "rank": order.get(id(c)),
            "algorithm": c.algorithm,
            "params": json.dumps(c.params, sort_keys=True),
            "status": c.status,
            "fit_seconds": round(c.fit_seconds, 3),
            "is_best": c is best,
            "metric": metric,
            "cv_mean": c.mean(metric) if c.status == "ok" else None,
            "cv_std": c.std(metric) if c.status == "ok" else None,
        }
        for m in evaluation.METRICS[task]:
            row[f"cv_{m}_mean"] = c.mean(m) if c.status == "ok" else None
            row[f"cv_{m}_std"] = c.std(m) if c.status == "ok" else None
        rows.append(row)
    return rows


def feature_importances(fitted, prep_model: PipelineModel, raw_train: DataFrame) -> list[tuple[str, float]]:
    """Importances (trees) or absolute coefficients (linear models), summed per ORIGINAL column,
    largest first. Empty when the model exposes neither."""
    from pyspark.ml.classification import OneVsRestModel

    if isinstance(fitted, OneVsRestModel):
        return []
    values = None
    try:
        if hasattr(fitted, "featureImportances"):
            values = list(fitted.featureImportances.toArray())
        elif getattr(fitted, "numClasses", 2) > 2 and hasattr(fitted, "coefficientMatrix"):  # multinomial
            m = fitted.coefficientMatrix.toArray()
            values = [float(abs(m[:, j]).sum()) for j in range(m.shape[1])]
        elif hasattr(fitted, "coefficients"):
            values = [abs(x) for x in fitted.coefficients.toArray()]
    except Exception:  # noqa: BLE001 - importances are a report extra, never a reason to fail
        return []
    if not values:
        return []
    names = _slot_names(prep_model, raw_train, len(values))
    total: dict[str, float] = {}
    for name, v in zip(names, values):
        total[name] = total.get(name, 0.0) + float(v)
    return sorted(total.items(), key=lambda kv: -kv[1])


def _slot_names(prep_model: PipelineModel, raw_train: DataFrame, size: int) -> list[str]:
    """The original column behind each slot of the feature vector (lakeforge.features.slot_names:
    from the vector's metadata, schema only, no Spark job)."""
    names = [source for _, source in slot_names(prep_model, raw_train)]
    return names if len(names) == size else [f"f{i}" for i in range(size)]


def _log_and_register(spark, settings, pipeline, model, feature_frame, candidates, best, test_eval, leaderboard,
                      table, version, run_id, run_date, target, metric, threshold, split_info, test_df,
                      importances, timings, prep_report=None, refit_params=None):
    import mlflow
    import mlflow.spark
    import pyspark
    from mlflow.models import infer_signature

    from lakeforge.training import report

    cfg = pipeline.model
    experiment_id = tracking.configure(settings)
    client = mlflow.MlflowClient()
    tags = {
        "lakeforge.pipeline": pipeline.name,
        "lakeforge.run_id": run_id,
        "lakeforge.run_date": run_date.isoformat(),
        "lakeforge.task": target.task,
        "git_commit": tracking.git_commit(settings.root),
        "config_hash": pipeline.config_hash,
        "data.table": table,
        "data.table_version": str(version),
        "seed": str(cfg.seed),
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{pipeline.name}-{run_date.isoformat()}") as run:
        mlflow.set_tags({**tags, "lakeforge.features.feature_selection": best.selected_by[:5000]})
        mlflow.log_params({
            "task": target.task,
            "selection": cfg.selection,
            "search": cfg.search,
            "folds": cfg.folds,
            "metric": metric,
            "seed": cfg.seed,
            "test_fraction": cfg.test_fraction,
            "split": json.dumps(split_info, sort_keys=True)[:6000],
            "algorithms": json.dumps(sorted({c.algorithm for c in candidates})),
            "rows_train": split_info["rows_train"],
            "rows_test": split_info["rows_test"],
            "data_table": table,
            "data_table_version": version,
            "best.algorithm": best.algorithm,
            **{f"best.{k}": json.dumps(v) if isinstance(v, list) else v for k, v in best.params.items()},
            **({"refit.regParam": refit_params["regParam"]} if refit_params and refit_params != best.params else {}),
            **({"threshold": round(threshold, 6), "threshold_strategy": cfg.threshold.strategy} if threshold is not None else {}),
            **({"class_labels": json.dumps(target.labels)} if target.task != "regression" else {}),
        })
        mlflow.log_metrics(_finite({f"test_{k}": v for k, v in test_eval.metrics.items()}))
        mlflow.log_metrics(_finite({f"cv_{m}_mean": best.mean(m) for m in evaluation.METRICS[target.task]}))
        mlflow.log_metrics(_finite({f"cv_{m}_std": best.std(m) for m in evaluation.METRICS[target.task]}))
        mlflow.log_metrics({f"seconds_{k}": v for k, v in timings.items()})
        mlflow.log_dict(pipeline.model_dump(mode="json"), "config/pipeline.json")
        mlflow.log_dict(settings.model_dump(mode="json"), "config/settings.json")
        mlflow.log_dict({"split": split_info}, "split.json")
        mlflow.log_dict({"leaderboard": leaderboard}, "leaderboard.json")
        if importances:
            mlflow.log_dict({"importances": importances}, "feature_importances.json")
        if prep_report is not None:  # dropped columns, coerced-to-null counts, feature ranking
            mlflow.log_params(prep_report.params())
            mlflow.log_dict(prep_report.to_dict(), "preprocessing.json")
            if prep_report.ranking:
                mlflow.log_dict({"ranking": prep_report.ranking}, "feature_ranking.json")
        for c in candidates:  # one child run per candidate
            with mlflow.start_run(experiment_id=experiment_id, run_name=c.label[:250], nested=True):
                mlflow.set_tags({**tags, "lakeforge.status": c.status[:5000]})
                mlflow.log_params({"algorithm": c.algorithm, **{k: json.dumps(v) if isinstance(v, list) else v for k, v in c.params.items()}})
                if c.status == "ok":
                    mlflow.log_metrics(_finite({f"cv_{m}_mean": c.mean(m) for m in evaluation.METRICS[target.task]}))
                    mlflow.log_metrics(_finite({f"cv_{m}_std": c.std(m) for m in evaluation.METRICS[target.task]}))
                mlflow.log_metric("fit_seconds", c.fit_seconds)
        with warnings.catch_warnings():  # MLflow's hint about integer columns: not actionable here
            warnings.simplefilter("ignore")
            # decimals as doubles: MLflow can't infer or store Python Decimal values
            example = feature_frame.limit(5).select(*[
                F.col(f"`{f.name}`").cast("double").alias(f.name) if isinstance(f.dataType, DecimalType) else f"`{f.name}`"
                for f in feature_frame.schema.fields]).toPandas()
            signature = infer_signature(example)
        with _no_serving_validation():
            info = mlflow.spark.log_model(
                model,
                "model",
                registered_model_name=cfg.registered_name,
                signature=signature,
                input_example=example.head(2),
                # Passing requirements avoids MLflow's slow inference of them (~15 s).
                pip_requirements=[f"pyspark=={pyspark.__version__}", f"mlflow=={mlflow.__version__}"],
            )
        new_version = str(info.registered_model_version)
        promoted, decision, champion_version, champion_score = _promotion(
            client, cfg, target, metric, test_eval.metrics[metric], test_df, new_version
        )
        mlflow.set_tags({"lakeforge.decision": decision, "lakeforge.promoted": str(promoted)})
        if champion_score is not None:
            mlflow.log_metric(f"champion_test_{metric}", champion_score)
        html = report.training_report(pipeline, target.task, metric, leaderboard, best, test_eval, importances,
                                      split_info, threshold, decision, new_version, timings, prep=prep_report)
        report_path = None
        if settings.reports_dir:
            folder = settings.path(settings.reports_dir) / pipeline.name
            folder.mkdir(parents=True, exist_ok=True)
            report_path = folder / f"training_{run_date.isoformat()}.html"
            report_path.write_text(html.html)
            for name, png in html.images.items():
                (folder / f"training_{run_date.isoformat()}_{name}.png").write_bytes(png)
        mlflow.log_text(html.html, "report/training_report.html")
        with tempfile.TemporaryDirectory() as tmp:
            for name, png in html.images.items():
                p = Path(tmp) / f"{name}.png"
                p.write_bytes(png)
                mlflow.log_artifact(str(p), "report")
    for k, v in {"lakeforge.task": target.task, "lakeforge.metric": metric, "lakeforge.decision": decision,
                 f"lakeforge.test_{metric}": f"{test_eval.metrics[metric]:.6f}",
                 **({"lakeforge.threshold": f"{threshold:.6f}"} if threshold is not None else {})}.items():
        client.set_model_version_tag(cfg.registered_name, new_version, k, v)
    ref = tracking.ModelRef(cfg.registered_name, new_version, "challenger")
    return ref, run.info.run_id, promoted, decision, champion_version, str(report_path) if report_path else None


@contextlib.contextmanager
def _no_serving_validation():
    """MLflow validates an input example by reloading the model and predicting with it (about
    2.7 s for a Spark model here); mlflow.spark.log_model offers no switch, so lakeforge skips
    that step: the example is still saved with the model."""
    import mlflow.models.utils as mu

    original = mu._validate_serving_input
    mu._validate_serving_input = lambda *a, **k: None
    try:
        yield
    finally:
        mu._validate_serving_input = original


def _promotion(client, cfg, target: Target, metric: str, new_score: float, test_df: DataFrame, new_version: str):
    """Alias the new version ``challenger``; make it ``champion`` if there is none or if it beats
    the champion on the same test rows by ``promotion_margin``. Returns (promoted, decision,
    champion version after the decision, the old champion's score)."""
    from mlflow.exceptions import MlflowException

    name = cfg.registered_name
    tracking.set_alias(name, "challenger", new_version)
    try:
        current = client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        current = None
    if current is None or str(current.version) == new_version:
        tracking.set_alias(name, "champion", new_version)
        return True, f"version {new_version} is the first model: champion", new_version, None
    hib = evaluation.higher_is_better(target.task, metric)
    try:
        champ_task = current.tags.get("lakeforge.task", "binary")
        if champ_task != target.task:
            raise ValueError(f"champion is a {champ_task} model")
        champion = tracking.load_spark_model(tracking.ModelRef(name, str(current.version)))
        champ_score = evaluation.evaluate(target.task, champion.transform(test_df), LABEL_COL, target.labels).metrics[metric]
    except Exception as exc:  # the champion cannot score today's data: the new model replaces it
        tracking.set_alias(name, "champion", new_version)
        return True, (f"champion v{current.version} could not be scored on the test rows ({str(exc).splitlines()[0][:160]}): "
                      f"v{new_version} promoted"), new_version, None
    gain = (new_score - champ_score) if hib else (champ_score - new_score)
    verdict = (f"test {metric}: challenger v{new_version} {new_score:.4f} vs champion v{current.version} "
               f"{champ_score:.4f} (margin {cfg.promotion_margin})")
    if gain > cfg.promotion_margin:
        tracking.set_alias(name, "champion", new_version)
        return True, verdict + f": v{new_version} promoted to champion", new_version, champ_score
    return False, verdict + f": champion v{current.version} kept", str(current.version), champ_score


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    """Finite values only, under MLflow-safe names (per-class metrics such as ``f1[a b]`` -> ``f1.a_b``)."""
    out = {}
    for k, v in metrics.items():
        if v is None or math.isnan(v) or math.isinf(v):
            continue
        key = re.sub(r"[^A-Za-z0-9_\-. /]", "_", k.replace("[", ".").rstrip("]"))
        out[key] = float(v)
    return out


def _write_leaderboard(spark, table, leaderboard, run_id, run_date, mlflow_run_id, metric) -> None:
    rows = [
        Row(
            run_date=run_date, run_id=run_id, mlflow_run_id=mlflow_run_id, rank=r["rank"], algorithm=r["algorithm"],
            params=r["params"], status=r["status"], metric=metric, cv_mean=r["cv_mean"], cv_std=r["cv_std"],
            metrics=json.dumps({k[3:]: v for k, v in r.items() if k.startswith("cv_") and k not in ("cv_mean", "cv_std")}),
            fit_seconds=float(r["fit_seconds"]), is_best=r["is_best"], model_version=r["model_version"],
        )
        for r in leaderboard
    ]
    schema = (
        "run_date date, run_id string, mlflow_run_id string, rank int, algorithm string, params string, status string, "
        "metric string, cv_mean double, cv_std double, metrics string, fit_seconds double, is_best boolean, model_version string"
    )
    write_table(spark.createDataFrame(rows, schema), table, partition_col="run_date", partition_value=run_date,
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
    write_table(spark.createDataFrame(rows, schema), table, partition_col="run_date", partition_value=run_date)
