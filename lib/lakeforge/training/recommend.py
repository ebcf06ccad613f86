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
import statistics
import time
from collections.abc import Callable

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.core.config import PipelineConfig
from lakeforge.core.errors import InputDataError
from lakeforge.core.settings import Settings
from lakeforge.training.recommend_steps import evaluate, grid, als_pipeline, interactions, split_interactions
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
        params={"k": rc.k, "implicit": rc.is_implicit, "user": rc.user, "item": rc.item, "rating": rc.rating or ""},
        tags={"lakeforge.beats_popularity": str(beats).lower()},
        sections=[("Against the most popular items (held-out)", html_table(
            [{"metric": m, "ALS": test_metrics[m], "most popular": test_metrics[f"popularity_{m}"]}
             for m in ("ndcg_at_k", "precision_at_k", "recall_at_k", "map_at_k")], ["metric", "ALS", "most popular"])
            + ("" if beats else "<p><b>The recommender does not beat the popularity baseline.</b></p>"))],
        timings=timings)
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
    """Every grid point fitted outside each fold and scored on it: the leaderboard, best first."""
    cfg, rc = pipeline.model, pipeline.model.recommendation
    deadline = time.perf_counter() + cfg.max_minutes * 60 if cfg.max_minutes else None
    rows = []
    for params in grid(rc):
        row = {"algorithm": "als", "params": json.dumps(params), "status": "ok", "fit_seconds": 0.0, "cv_mean": None,
               "cv_std": None, "rank": None, "is_best": False}
        rows.append(row)
        if deadline is not None and time.perf_counter() > deadline and len(rows) > 1:
            row["status"] = "skipped: model.max_minutes budget spent"
            continue
        t = time.perf_counter()
        per_fold: list[dict[str, float]] = []
        for k in range(cfg.n_folds):
            seen, valid = train_df.where(F.col("__fold") != k), train_df.where(F.col("__fold") == k)
            per_fold.append(evaluate(als_pipeline(rc, params, cfg.seed).fit(seen), seen, valid, rc))
        for m in per_fold[0]:
            row[f"cv_{m}"] = statistics.fmean(f[m] for f in per_fold)
        ndcg = [f["ndcg_at_k"] for f in per_fold]
        row["cv_mean"], row["cv_std"] = statistics.fmean(ndcg), statistics.pstdev(ndcg)
        row["fit_seconds"] = time.perf_counter() - t
        say(f"als {params}: NDCG@{rc.k} {row['cv_mean']:.4f} ± {row['cv_std']:.4f}")
    ok = sorted((r for r in rows if r["cv_mean"] is not None), key=lambda r: -r["cv_mean"])
    for i, r in enumerate(ok, 1):
        r["rank"] = i
    ok[0]["is_best"] = True
    return ok + [r for r in rows if r["cv_mean"] is None]
