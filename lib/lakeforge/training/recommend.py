"""Recommendation (``model.task: recommendation``): ALS on user-item feedback, searched over a
grid, measured against the most-popular-items baseline, registered like any other model.

1. The interactions are one row per (user, item) (lakeforge.training.recommend_steps); explicit
   ratings are averaged, implicit feedback summed (or counted: no rating column).
2. Held-out interactions (``model.test_fraction``) and the search's folds are drawn per
   interaction, but each user's first interaction (by a hash) always stays in training: every
   user keeps history, so the held-out metrics measure recommendations, not cold starts.
3. Each grid point (rank x regParam, x alpha for implicit feedback) is fitted on the training
   rows outside each fold and scored on the fold: NDCG@K (the primary metric), precision@K,
   recall@K, MAP@K, and RMSE/MAE for explicit ratings.
4. The best is refitted on all training rows and scored on the held-out rows with the
   popularity baseline beside it; a recommender that does not beat it is flagged (a warning
   line, the version tag ``lakeforge.beats_popularity``, the report).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.core.config import PipelineConfig
from lakeforge.core.errors import InputDataError
from lakeforge.core.settings import Settings
from lakeforge.core.plotting import png, pyplot
from lakeforge.training.recommend_steps import (
    ITEM_IDX,
    RANKING,
    RATING,
    USER_IDX,
    als_estimator,
    als_pipeline,
    evaluate,
    grid,
    holdout,
    index_pipeline,
    interactions,
    scores,
    split_interactions,
)
from lakeforge.training.register import Lineage, TrainResult
from lakeforge.training.task_register import (
    TaskRun,
    html_table,
    read_input,
    register_task,
    write_leaderboard,
)


def train_recommender(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, run_id: str,
                      run_date: dt.date, progress: Callable[[str], None] | None = None,
                      allow_failed_checks: bool = False) -> TrainResult:
    say = progress or (lambda _msg: None)
    cfg, rc = pipeline.model, pipeline.model.recommendation
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    table, version, raw = read_input(spark, settings, pipeline, allow_failed_checks, say)
    where = f"table {table} ({pipeline.file})"
    # train_validation_split: one fit on fold 0 of two (half the training pairs validate)
    data = split_interactions(interactions(raw, rc, where), rc, cfg.test_fraction, max(2, cfg.n_folds), cfg.seed).cache()
    counts = {r["_is_test"]: r["count"] for r in data.groupBy("_is_test").count().collect()}
    rows_train, rows_test = counts.get(False, 0), counts.get(True, 0)
    if rows_test == 0 or rows_train < 2:
        raise InputDataError(f"{where}: {rows_train + rows_test:,} user-item pairs, {rows_test} held out: too few repeat "
                             "interactions per user to measure recommendations; add interactions")
    train_df, test_df = data.where(~F.col("_is_test")), data.where(F.col("_is_test"))
    kind = "implicit feedback" if rc.is_implicit else "explicit ratings"
    say(f"recommendation ({kind}): {rows_train:,} training pairs, {rows_test:,} held-out pairs; metric ndcg_at_k (K={rc.k})")
    timings["read_split"] = time.perf_counter() - t0

    t = time.perf_counter()
    als_checkpoints(spark, settings)
    board = _search(pipeline, train_df, say)
    timings["search"] = time.perf_counter() - t
    best = next(r for r in board if r["is_best"])
    params = json.loads(best["params"])
    t = time.perf_counter()
    model = als_pipeline(rc, params, cfg.seed).fit(train_df)
    test_metrics = evaluate(model, train_df, test_df, rc, baseline=True)
    timings["refit_evaluate"] = time.perf_counter() - t
    beats = test_metrics["ndcg_at_k"] > test_metrics["popularity_ndcg_at_k"]
    test_metrics["ndcg_lift_over_popularity"] = (test_metrics["ndcg_at_k"] / test_metrics["popularity_ndcg_at_k"]
                                                 if test_metrics["popularity_ndcg_at_k"] else float("nan"))
    verdict = (f"held-out NDCG@{rc.k} {test_metrics['ndcg_at_k']:.4f} vs most popular items "
               f"{test_metrics['popularity_ndcg_at_k']:.4f}")
    say(verdict if beats else f"WARNING: the recommender does not beat the popularity baseline ({verdict})")
    inputs = [rc.user, rc.item] + ([rc.rating] if rc.rating else [])
    run = TaskRun(
        "recommendation", "ndcg_at_k", model, raw.select(*inputs), board, test_metrics, rows_train, rows_test,
        champion_score=lambda champion: evaluate(champion, train_df, test_df, rc)["ndcg_at_k"],
        params={"k": rc.k, "implicit": rc.is_implicit, "user": rc.user, "item": rc.item, "rating": rc.rating or "",
                "halving": cfg.halving is not False and cfg.n_folds > 1},
        tags={"lakeforge.beats_popularity": str(beats).lower()},
        sections=[("Against the most popular items (held-out)", html_table(
            [{"metric": m, "ALS": test_metrics[m], "most popular": test_metrics[f"popularity_{m}"]}
             for m in RANKING], ["metric", "ALS", "most popular"])
            + ("" if beats else "<p><b>The recommender does not beat the popularity baseline.</b></p>"))],
        images={"ranking": ranking_plot(board, test_metrics, rc.k)}, timings=timings)
    lineage = Lineage(table, version, run_id, run_date)
    reg = register_task(settings, pipeline, lineage, run)
    for row in board:
        row["model_version"] = reg.model.version if row["is_best"] else None
    if pipeline.tables.leaderboard:
        write_leaderboard(spark, settings.table(pipeline.tables.leaderboard), board, lineage, reg.mlflow_run_id,
                          "ndcg_at_k")
    data.unpersist()
    return TrainResult(reg.model, reg.mlflow_run_id, table, version, rows_train, rows_test, "recommendation",
                           "ndcg_at_k", test_metrics, board, reg.promoted, reg.decision, reg.champion_version,
                           timings=timings, report=reg.report, notes=[] if beats else [verdict])


def _search(pipeline: PipelineConfig, train_df, say: Callable[[str], None]) -> list[dict]:
    """Every grid point fitted outside each fold and scored on it: the leaderboard, best first.

    The ids are indexed once on all training pairs and each fold's held-out lists built once
    (recommend_steps.Holdout), shared by every grid point. With ``model.halving`` (null: true
    here) every point is fitted on the first fold and only the best third (at least one) on the
    others. The fits run ``model.parallelism`` at a time (null: twice Spark's cores, at most 4),
    each seeded: the leaderboard does not depend on the order they finish in."""
    cfg, rc = pipeline.model, pipeline.model.recommendation
    points, n_folds = grid(rc), cfg.n_folds
    search = _FoldFits(pipeline, train_df)
    try:
        search.run([(i, 0) for i in range(len(points))])
        keep, why = list(range(len(points))), {}
        if (cfg.halving is None or cfg.halving) and n_folds > 1 and len(points) > 2:
            keep, why = halve_points(search.results, len(points), rc.k)
            say(f"halving: {len(keep)} of {len(points)} grid points go on to the other folds")
        search.run([(i, k) for k in range(1, n_folds) for i in keep])
    finally:
        search.release()
    rows = [_board_row(p, [search.results.get((i, k)) for k in range(n_folds)], why.get(i)) for i, p in enumerate(points)]
    for row in rows:
        say(f"als {row['params']}: " + (f"NDCG@{rc.k} {row['cv_mean']:.4f} ± {row['cv_std']:.4f}"
                                        if row["cv_mean"] is not None else row["status"]))
    ok = sorted((r for r in rows if r["cv_mean"] is not None), key=lambda r: -r["cv_mean"])
    for i, r in enumerate(ok, 1):
        r["rank"] = i
    ok[0]["is_best"] = True
    return ok + [r for r in rows if r["cv_mean"] is None]


class _FoldFits:
    """The search's (grid point, fold) fits: results[(point, fold)] = (metrics or None when
    skipped by model.max_minutes, seconds)."""

    def __init__(self, pipeline: PipelineConfig, train_df):
        cfg, rc = pipeline.model, pipeline.model.recommendation
        self.rc, self.seed, self.points = rc, cfg.seed, grid(rc)
        self.deadline = time.perf_counter() + cfg.max_minutes * 60 if cfg.max_minutes else None
        self.indexers = index_pipeline(rc).fit(train_df)
        self.folds, self.fit_rows = [], []
        for k in range(cfg.n_folds):
            seen, valid = train_df.where(F.col("__fold") != k), train_df.where(F.col("__fold") == k)
            self.folds.append(holdout(self.indexers, seen, valid, rc))
            self.fit_rows.append(self.indexers.transform(seen).select(USER_IDX, ITEM_IDX, RATING).cache())
        cores = train_df.sparkSession.sparkContext.defaultParallelism
        self.parallelism = cfg.parallelism or max(1, min(4, 2 * cores))
        self.results: dict[tuple[int, int], tuple[dict | None, float]] = {}
        self.started: set[int] = set()
        self.lock = threading.Lock()

    def run(self, pairs: list[tuple[int, int]]) -> None:
        with ThreadPoolExecutor(max_workers=self.parallelism) as pool:
            for f in [pool.submit(self.fit, i, k) for i, k in pairs]:
                f.result()

    def fit(self, i: int, k: int) -> None:
        with self.lock:  # past model.max_minutes no new grid point starts (started ones finish)
            if self.deadline is not None and time.perf_counter() > self.deadline and self.started \
                    and i not in self.started:
                self.results[(i, k)] = (None, 0.0)
                return
            self.started.add(i)
        t = time.perf_counter()
        als = als_estimator(self.rc, self.points[i], self.seed).fit(self.fit_rows[k])
        model = PipelineModel(stages=[*self.indexers.stages, als])
        self.results[(i, k)] = (scores(model, self.folds[k], self.rc), time.perf_counter() - t)

    def release(self) -> None:
        for h, rows in zip(self.folds, self.fit_rows):
            h.release()
            rows.unpersist()


def halve_points(results: dict, n_points: int, k: int) -> tuple[list[int], dict[int, str]]:
    """Successive halving after the first fold: the best third (at least one) of the grid points
    by NDCG@K go on; a reason for each one that does not."""
    scored = sorted(((i, results[(i, 0)][0]["ndcg_at_k"]) for i in range(n_points) if results[(i, 0)][0] is not None),
                    key=lambda x: (-x[1], x[0]))
    keep = scored[:max(1, math.ceil(len(scored) / 3))]
    cut = keep[-1][1] if keep else math.nan
    why = {i: f"pruned after fold 1 (successive halving): NDCG@{k} {v:.4f}; the best third scored at least {cut:.4f}"
           for i, v in scored[len(keep):]}
    return sorted(i for i, _ in keep), why


def _board_row(params: dict, folds: list[tuple[dict | None, float] | None], pruned: str | None) -> dict:
    """A leaderboard row from one grid point's per-fold (metrics or None when skipped, seconds);
    None for a fold it was not fitted on (pruned by halving)."""
    done = [f for f in folds if f is not None]
    row = {"algorithm": "als", "params": json.dumps(params), "status": pruned or "ok",
           "fit_seconds": sum(s for _, s in done), "cv_mean": None, "cv_std": None, "rank": None, "is_best": False}
    if any(m is None for m, _ in done):
        row["status"] = "skipped: model.max_minutes budget spent"
    if pruned or row["status"] != "ok":
        return row
    for m in done[0][0]:
        row[f"cv_{m}"] = statistics.fmean(f[m] for f, _ in done)
    ndcg = [f["ndcg_at_k"] for f, _ in done]
    row["cv_mean"], row["cv_std"] = statistics.fmean(ndcg), statistics.pstdev(ndcg)
    return row


def als_checkpoints(spark: SparkSession, settings: Settings) -> None:
    """Give the session a checkpoint directory when it has none (under the warehouse, so that a
    cluster's executors reach it): ALS cuts its RDD lineage every ``checkpointInterval`` (10)
    iterations only with one. Without it, 10 iterations on the README's 20,000 interactions
    overflowed a task's stack (java.lang.StackOverflowError deserializing the lineage). ALS
    deletes each checkpoint when it writes the next, so at most one file per fit remains."""
    if spark.sparkContext.getCheckpointDir() is None:
        spark.sparkContext.setCheckpointDir(f"{settings.warehouse.rstrip('/')}/_checkpoints/als")


def ranking_plot(board: list[dict], test_metrics: dict[str, float], k: int) -> bytes:
    """Held-out precision, recall, NDCG and MAP at K of ALS beside the most popular items, and
    the search's cross-validated NDCG@K per grid point (mean ± std over the folds)."""
    plt = pyplot()
    fig, (held, cv) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1, 1.4]})
    names = list(RANKING)
    x = range(len(names))
    held.bar([i - 0.2 for i in x], [test_metrics[m] for m in names], 0.4, label="ALS")
    held.bar([i + 0.2 for i in x], [test_metrics[f"popularity_{m}"] for m in names], 0.4, label="most popular")
    held.set_xticks(list(x), [m.replace("_at_k", f"@{k}") for m in names], fontsize=8)
    held.set(title=f"Held-out interactions (K={k})", ylabel="score")
    held.legend(fontsize=8)
    scored = [r for r in board if r["cv_mean"] is not None]
    labels = [" ".join(f"{p}={v:g}" for p, v in json.loads(r["params"]).items()) for r in scored]
    cv.barh(range(len(scored)), [r["cv_mean"] for r in scored], xerr=[r["cv_std"] for r in scored],
            color=["C2" if r["is_best"] else "C0" for r in scored])
    cv.set_yticks(range(len(scored)), labels, fontsize=7)
    cv.invert_yaxis()
    cv.axvline(test_metrics["popularity_ndcg_at_k"], color="C1", linestyle="--", label="most popular (held-out)")
    cv.set(title=f"Search: NDCG@{k} per grid point (folds)", xlabel=f"NDCG@{k}")
    cv.legend(fontsize=8, loc="lower right")
    return png(fig)
