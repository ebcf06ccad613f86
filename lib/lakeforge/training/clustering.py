"""Clustering (``model.task: clustering``): the same preprocessing as the supervised tasks
(impute, encode, scale), a search over k x algorithm (KMeans, BisectingKMeans,
GaussianMixture) judged by the silhouette on held-out rows, the elbow curve, a profile per
cluster, and the winner registered like any other model.

1. The held-out split is a hash of the key (``model.test_fraction``), as for the other tasks.
   Preprocessing is fitted on the training rows only.
2. Every candidate is fitted on the training rows; its silhouette (squared Euclidean, Spark's
   ClusteringEvaluator) is measured on a sample of at most ``model.clustering.eval_rows``
   held-out rows, which no candidate was fitted on. The within-cluster cost (KMeans, bisecting
   KMeans) or log-likelihood (Gaussian mixture) is recorded for the elbow plot. After
   ``model.max_minutes`` no new candidate starts.
3. The highest silhouette wins; the profile (lakeforge.training.cluster_profile) describes its
   clusters over every row, from Spark aggregates.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pyspark.ml import PipelineModel
from pyspark.ml.clustering import BisectingKMeans, GaussianMixture, KMeans
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.core.columns import FEATURES_COL
from lakeforge.core.config import PipelineConfig
from lakeforge.core.errors import InputDataError
from lakeforge.core.frames import local_frame
from lakeforge.core.io import write_table
from lakeforge.core.plotting import png, pyplot
from lakeforge.core.settings import Settings
from lakeforge.features.pipeline import is_supervised, preprocessing_pipeline
from lakeforge.features.plan import FeaturePlan, plan_features
from lakeforge.features.statistics import feature_statistics
from lakeforge.training.cluster_profile import cluster_profile, profile_html
from lakeforge.training.input_nulls import tag_null_shares
from lakeforge.training.register import Lineage, TrainResult
from lakeforge.training.task_register import (
    TaskRun,
    html_table,
    read_input,
    register_task,
    write_leaderboard,
)

CLUSTER_COL = "prediction"
ESTIMATORS = {"kmeans": KMeans, "bisecting_kmeans": BisectingKMeans, "gaussian_mixture": GaussianMixture}
# Iterations per fit (model.clustering.max_iter overrides). KMeans stops earlier when it converges
# (MLlib's default cap, 20); bisecting k-means runs every iteration of every split (MLlib: 20);
# a Gaussian mixture stops at tol (MLlib: 100). On the README's customers example, 10 and 30 gave
# the same held-out silhouettes as 20 and 100 (within 0.004) in a third to a half of the time.
MAX_ITER = {"kmeans": 20, "bisecting_kmeans": 10, "gaussian_mixture": 30}


def silhouette(predictions: DataFrame, features: str = FEATURES_COL, prediction: str = CLUSTER_COL) -> float:
    """Spark's silhouette (squared Euclidean distance) of clustered rows."""
    return ClusteringEvaluator(featuresCol=features, predictionCol=prediction, metricName="silhouette",
                               distanceMeasure="squaredEuclidean").evaluate(predictions)


def estimator(algorithm: str, k: int, seed: int, max_iter: int):
    """The MLlib estimator of ``algorithm`` with ``k`` clusters."""
    est = ESTIMATORS[algorithm](k=k, seed=seed, featuresCol=FEATURES_COL, predictionCol=CLUSTER_COL)
    est.setMaxIter(max_iter)
    return est


def fit_cost(model) -> tuple[str, float]:
    """(name, value) of the fitted model's training cost: within-cluster sum of squares, or the
    Gaussian mixture's log-likelihood."""
    if hasattr(model.summary, "trainingCost"):
        return "within_cluster_cost", float(model.summary.trainingCost)
    return "log_likelihood", float(model.summary.logLikelihood)


def train_clustering(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, run_id: str,
                     run_date: dt.date, progress: Callable[[str], None] | None = None,
                     allow_failed_checks: bool = False) -> TrainResult:
    say = progress or (lambda _msg: None)
    cfg = pipeline.model
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    table, version, raw = read_input(spark, settings, pipeline, allow_failed_checks, say)
    plan, data = _plan(raw, pipeline, f"table {table} ({pipeline.file})")
    train_df, test_df = data.where(~F.col("_is_test")).drop("_is_test"), data.where(F.col("_is_test")).drop("_is_test")
    prep_model = preprocessing_pipeline(plan, selection=pipeline.selection, task="clustering", seed=cfg.seed).fit(train_df)
    train_features = prep_model.transform(train_df).select(FEATURES_COL).cache()
    rows_train, rows_test = train_features.count(), test_df.count()
    if rows_test < 4:
        raise InputDataError(f"table {table}: {rows_test} held-out rows (model.test_fraction {cfg.test_fraction} of "
                             f"{rows_train + rows_test:,}); the silhouette needs more: raise model.test_fraction or add rows")
    eval_raw = test_df.sample(fraction=min(1.0, cfg.clustering.eval_rows / rows_test), seed=cfg.seed).cache()
    eval_features = prep_model.transform(eval_raw).select(FEATURES_COL).cache()
    timings["read_preprocess"] = time.perf_counter() - t0
    say(f"clustering: {rows_train:,} training rows, {eval_features.count():,} held-out rows for the silhouette; "
        f"{len(plan.numeric)} numeric, {len(plan.categorical)} categorical features")
    t = time.perf_counter()
    board, fitted = _search(pipeline, train_features, eval_features, rows_train, t0, say)
    timings["search"] = time.perf_counter() - t
    best = next(r for r in board if r["is_best"])
    model = PipelineModel(stages=[*prep_model.stages, fitted])
    say(f"best: {best['algorithm']} k={json.loads(best['params'])['k']}, held-out silhouette {best['cv_mean']:.4f}")
    train_features.unpersist()

    t = time.perf_counter()
    assigned = model.transform(raw).cache()
    profile = cluster_profile(assigned, plan, CLUSTER_COL)
    timings["profile"] = time.perf_counter() - t
    test_metrics = {"silhouette": best["cv_mean"], "k": float(json.loads(best["params"])["k"]),
                    **{k[3:]: v for k, v in best.items() if k in ("cv_within_cluster_cost", "cv_log_likelihood")}}
    run = TaskRun(
        "clustering", "silhouette", model, raw.select(*plan.inputs), board, test_metrics, rows_train, rows_test,
        champion_score=lambda champion: silhouette(champion.transform(eval_raw)),
        params={"k": json.dumps(cfg.clustering.k), "algorithms": json.dumps(cfg.clustering.algorithms),
                "k_search": cfg.clustering.k_search, "max_iter": json.dumps({**MAX_ITER, **cfg.clustering.max_iter})},
        sections=[("Leaderboard by k", search_note(cfg.clustering.k, cfg.clustering.k_search) + html_table(
                      board, ["algorithm", "params", "cv_silhouette", "cv_within_cluster_cost", "cv_log_likelihood",
                              "cv_iterations", "status"])),
                  ("Clusters (every row)", profile_html(profile, cfg.clustering.profile_features))],
        images={"elbow": elbow_plot(board)}, timings=timings)
    lineage = Lineage(table, version, run_id, run_date)
    reg = register_task(settings, pipeline, lineage, run)
    tag_null_shares(reg.model, plan)
    for row in board:
        row["model_version"] = reg.model.version if row["is_best"] else None
    if pipeline.tables.leaderboard:
        write_leaderboard(spark, settings.table(pipeline.tables.leaderboard), board, lineage, reg.mlflow_run_id,
                          "silhouette")
    _write_profile(spark, settings.table(profile_table(pipeline)), profile, lineage, reg.model.version)
    assigned.unpersist()
    eval_raw.unpersist()
    eval_features.unpersist()
    return TrainResult(reg.model, reg.mlflow_run_id, table, version, rows_train, rows_test, "clustering",
                           "silhouette", test_metrics, board, reg.promoted, reg.decision, reg.champion_version,
                           timings=timings, report=reg.report, preprocessing=plan.report.to_dict())


def profile_table(pipeline: PipelineConfig) -> str:
    """The cluster profile's Delta table (short name): cluster_profile_<pipeline>."""
    return f"cluster_profile_{pipeline.name}"


def _plan(raw: DataFrame, pipeline: PipelineConfig, where: str) -> tuple[FeaturePlan, DataFrame]:
    """The feature plan with its statistics on the training rows, and ``raw`` with ``_is_test``."""
    cfg = pipeline.model
    plan = plan_features(raw, pipeline.features, pipeline.preprocessing, pipeline.key, None, where)
    if is_supervised(plan, pipeline.selection):
        raise InputDataError(f"{where}: target encoding and supervised feature selection need a target; clustering has "
                             "none: remove preprocessing.target_encoding and the selection method")
    bucket = F.abs(F.xxhash64(F.col(pipeline.key).cast("string"), F.lit(cfg.seed))) % 10_000
    data = raw.withColumn("_is_test", bucket < int(cfg.test_fraction * 10_000))
    if plan.numeric or plan.categorical:
        plan = feature_statistics(plan, data, where, train=~F.col("_is_test"))
    if not plan.numeric and not plan.categorical:
        dropped = ", ".join(f"{d['column']} ({d['reason']})" for d in plan.report.dropped_columns)
        raise InputDataError(f"{where}: no numeric or categorical feature left for clustering"
                             + (f" (dropped: {dropped})" if dropped else "")
                             + "; list columns in features.numeric / features.categorical (the key is never a feature)")
    return plan, data


def search_note(ks: list[int], k_search: str) -> str:
    """The report's sentence on which k were searched."""
    if k_search == "every_k" or coarse_ks(ks) == ks:
        return f"<p>Every k of {ks} for each algorithm.</p>"
    return (f"<p>k searched coarse to fine: {coarse_ks(ks)} for each algorithm, then the k of {ks} between "
            "that algorithm's best and its neighbours (model.clustering.k_search).</p>")


def coarse_ks(ks: list[int]) -> list[int]:
    """The first pass of the k search: every other k of the sorted list, and its largest."""
    return sorted(set(ks[::2]) | set(ks[-1:]))


def refine_ks(ks: list[int], coarse: list[int], best: int) -> list[int]:
    """The second pass: the listed k strictly between ``best``'s neighbours in ``coarse``."""
    i = coarse.index(best)
    lo, hi = (coarse[i - 1] if i else best), (coarse[i + 1] if i + 1 < len(coarse) else best)
    return [k for k in ks if lo < k < hi and k not in coarse]


def _search(pipeline: PipelineConfig, train_features: DataFrame, eval_features: DataFrame, rows_train: int,
            started: float, say: Callable[[str], None]) -> tuple[list[dict], object]:
    """Every algorithm x k (coarse to fine unless ``k_search: every_k``) fitted on the training
    rows, scored on the held-out sample: (the leaderboard, best first, and the best fitted model)."""
    cc = pipeline.model.clustering
    ks = [k for k in cc.k if k < rows_train]
    fits = _Fits(pipeline.model, train_features, eval_features, started, say)
    first = coarse_ks(ks) if cc.k_search == "coarse_to_fine" and ks else ks
    rows = fits.batch([(a, k) for a in cc.algorithms for k in first])
    if first != ks:
        more = []
        for algorithm in cc.algorithms:
            scored = [r for r in rows if r["algorithm"] == algorithm and r["cv_mean"] is not None]
            if scored:
                best_k = json.loads(max(scored, key=lambda r: r["cv_mean"])["params"])["k"]
                more += [(algorithm, k) for k in refine_ks(ks, first, best_k)]
        rows += fits.batch(more)
    ok = sorted((r for r in rows if r["cv_mean"] is not None), key=lambda r: -r["cv_mean"])
    if not ok:
        raise InputDataError(f"{pipeline.file}: no clustering candidate could be scored "
                             f"({rows[0]['status'] if rows else 'no k below the number of training rows'})")
    for i, r in enumerate(ok, 1):
        r["rank"] = i
    ok[0]["is_best"] = True
    return ok + [r for r in rows if r["cv_mean"] is None], fits.models[id(ok[0])]


class _Fits:
    """Candidates fitted ``model.parallelism`` at a time (null: twice Spark's cores, at most 4): on
    small data a fit is mostly driver-side job overhead (as in lakeforge.training.search). Each
    candidate is seeded, so the results do not depend on the order the fits finish in."""

    def __init__(self, cfg, train_features: DataFrame, eval_features: DataFrame, started: float,
                 say: Callable[[str], None]):
        self.cfg, self.train, self.eval, self.say = cfg, train_features, eval_features, say
        self.deadline = started + cfg.max_minutes * 60 if cfg.max_minutes else None
        self.iterations = {**MAX_ITER, **cfg.clustering.max_iter}
        cores = train_features.sparkSession.sparkContext.defaultParallelism
        self.parallelism = cfg.parallelism or max(1, min(4, 2 * cores))
        self.models: dict[int, object] = {}
        self.lock = threading.Lock()

    def batch(self, pairs: list[tuple[str, int]]) -> list[dict]:
        """The leaderboard rows of (algorithm, k) ``pairs``, in their order."""
        if not pairs:
            return []
        with ThreadPoolExecutor(max_workers=self.parallelism) as pool:
            return [f.result() for f in [pool.submit(self.one, a, k) for a, k in pairs]]

    def one(self, algorithm: str, k: int) -> dict:
        # Past model.max_minutes no new candidate starts (once one has a model).
        over = self.deadline is not None and time.perf_counter() > self.deadline and bool(self.models)
        row = _candidate(algorithm, k, self.iterations[algorithm], self.cfg.seed, self.train, self.eval,
                         "skipped: model.max_minutes budget spent" if over else None)
        with self.lock:
            if "model" in row:
                self.models[id(row)] = row.pop("model")
            self.say(f"{algorithm} k={k}: silhouette "
                     + (f"{row['cv_mean']:.4f}" if row["cv_mean"] is not None else row["status"]))
        return row


def _candidate(algorithm: str, k: int, max_iter: int, seed: int, train_features: DataFrame,
               eval_features: DataFrame, skipped: str | None) -> dict:
    """One leaderboard row: ``algorithm`` with ``k`` clusters fitted on the training rows, its
    cost, iterations and held-out silhouette (and the fitted model under "model")."""
    row = {"algorithm": algorithm, "params": json.dumps({"k": k}), "status": skipped or "ok", "fit_seconds": 0.0,
           "cv_mean": None, "cv_std": None, "rank": None, "is_best": False}
    if skipped:
        return row
    t = time.perf_counter()
    try:
        fitted = estimator(algorithm, k, seed, max_iter).fit(train_features)
        cost_name, cost = fit_cost(fitted)
        row[f"cv_{cost_name}"] = cost
        row["cv_iterations"] = float(fitted.summary.numIter)
        row["cv_silhouette"] = row["cv_mean"] = silhouette(fitted.transform(eval_features))
        row["cv_std"], row["model"] = 0.0, fitted
    except Exception as exc:  # e.g. every held-out row in one cluster: no silhouette
        lines = str(exc).splitlines()
        row["status"] = "failed: " + next((x.strip() for x in lines if "Exception:" in x), lines[0])[:200]
    row["fit_seconds"] = time.perf_counter() - t
    return row


def elbow_plot(board: list[dict]) -> bytes:
    """Within-cluster cost (and the silhouette) against k, one line per algorithm."""
    plt = pyplot()
    fig, (cost_ax, sil_ax) = plt.subplots(1, 2, figsize=(9, 3.6))
    for algorithm in dict.fromkeys(r["algorithm"] for r in board):
        pts = sorted((json.loads(r["params"])["k"], r) for r in board if r["algorithm"] == algorithm and r["cv_mean"] is not None)
        costs = [(k, r["cv_within_cluster_cost"]) for k, r in pts if r.get("cv_within_cluster_cost") is not None]
        if costs:
            cost_ax.plot(*zip(*costs), "o-", label=algorithm)
        if pts:
            sil_ax.plot([k for k, _ in pts], [r["cv_mean"] for _, r in pts], "o-", label=algorithm)
    cost_ax.set(xlabel="k", ylabel="within-cluster sum of squares", title="Elbow (training rows)")
    sil_ax.set(xlabel="k", ylabel="silhouette", title="Silhouette (held-out rows)")
    for ax in (cost_ax, sil_ax):
        ax.legend(fontsize=8)
    return png(fig)


def _write_profile(spark: SparkSession, table: str, profile: list[dict], lineage: Lineage, version: str) -> None:
    rows = [{**p, "run_date": lineage.run_date, "run_id": lineage.run_id, "model_version": version} for p in profile]
    schema = ("run_date date, run_id string, model_version string, cluster int, size bigint, share double, "
              "feature string, kind string, cluster_value double, overall_value double, difference double, rank int")
    df = local_frame(spark, [tuple(r[c.split()[0]] for c in schema.split(", ")) for r in rows], schema)
    write_table(df, table, partition_col="run_date", partition_value=lineage.run_date)
