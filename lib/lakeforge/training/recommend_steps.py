"""Recommendation's pure steps: the interactions (one row per user-item pair), the split that
keeps every user's history in training, the ALS pipeline, top-K lists that skip the items a
user has already seen, the popularity baseline and the metrics (RMSE/MAE for explicit ratings;
precision@K, recall@K, NDCG@K, MAP@K with Spark's RankingEvaluator). DataFrames in, DataFrames
or numbers out; lakeforge.training.recommend and lakeforge.scoring.recommendations call them."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import RankingEvaluator
from pyspark.ml.feature import StringIndexer
from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import IntegralType, NumericType, StringType

from lakeforge.core.config_model import RecommendationConfig
from lakeforge.core.errors import InputDataError

USER_IDX, ITEM_IDX, RATING = "__user", "__item", "__rating"
RANKING = {"precision_at_k": "precisionAtK", "recall_at_k": "recallAtK", "ndcg_at_k": "ndcgAtK",
           "map_at_k": "meanAveragePrecisionAtK"}
# The default grid: the rank and the parameter that matters most for the kind of feedback. On the
# README's interactions (implicit), regParam 0.01 vs 0.1 moved the 3-fold NDCG@10 by at most
# 0.002, alpha 1 vs 10 by up to 0.004 and rank 8 vs 16 by 0.004-0.009. A key of
# model.recommendation.grid replaces its default.
DEFAULT_GRID = {"implicit": {"rank": [8, 16], "regParam": [0.1], "alpha": [1.0, 10.0]},
                "explicit": {"rank": [8, 16], "regParam": [0.01, 0.1]}}


def interactions(df: DataFrame, rc: RecommendationConfig, where: str) -> DataFrame:
    """One row per (user, item) with ``__rating``: the mean rating (explicit), the summed counts
    (implicit with a rating column) or the number of rows (no rating column). Raises one line
    for a user/item column that is not an ID, or a rating that is not a number."""
    for role, col in (("user", rc.user), ("item", rc.item), ("rating", rc.rating)):
        if col is not None and col not in df.columns:
            raise InputDataError(f"{where}: model.recommendation.{role} column {col!r} not found; "
                                 f"available columns: {', '.join(df.columns)[:300]}")
    for role, col in (("user", rc.user), ("item", rc.item)):
        t = df.schema[col].dataType
        if not isinstance(t, (IntegralType, StringType)):
            raise InputDataError(f"{where}: model.recommendation.{role} column {col!r} is {t.simpleString()}, not an ID "
                                 "(integer or text ids)")
    if rc.rating is not None:
        value = F.col(rc.rating) if isinstance(df.schema[rc.rating].dataType, NumericType) else F.expr(
            f"try_cast(`{rc.rating}` AS DOUBLE)")
        bad = df.where(F.col(rc.rating).isNotNull() & value.isNull()).select(rc.rating).first()
        if bad is not None:
            raise InputDataError(f"{where}: rating column {rc.rating!r} holds {str(bad[0])[:40]!r}, not a number: "
                                 "ratings must be numbers (or drop model.recommendation.rating for implicit feedback)")
    else:
        value = F.lit(1.0)
    rows = df.where(F.col(rc.user).isNotNull() & F.col(rc.item).isNotNull()).withColumn(RATING, value.cast("double"))
    agg = F.sum(RATING) if rc.is_implicit else F.avg(RATING)
    return rows.where(F.col(RATING).isNotNull()).groupBy(rc.user, rc.item).agg(agg.alias(RATING))


def split_interactions(inter: DataFrame, rc: RecommendationConfig, test_fraction: float, folds: int,
                       seed: int) -> DataFrame:
    """``inter`` with ``_is_test`` and ``__fold``: each user's first interaction (by a hash) is
    never held out nor in a validation fold, so every user keeps history in training; the others
    are held out with probability ``test_fraction``, and the rest spread over ``folds``."""
    def h(s):
        return F.abs(F.xxhash64(F.col(rc.user).cast("string"), F.col(rc.item).cast("string"), F.lit(seed + s)))

    first = F.row_number().over(Window.partitionBy(rc.user).orderBy(h(0), F.col(rc.item).cast("string"))) == 1
    test = ~first & (h(1) % 10_000 < int(test_fraction * 10_000))
    return (inter.withColumn("_is_test", test)
            .withColumn("__fold", F.when(first | test, F.lit(-1)).otherwise((h(2) % folds).cast("int"))))


def index_pipeline(rc: RecommendationConfig) -> Pipeline:
    """The user and item ids as indices (unknown ids -> an index ALS has no factors for: dropped,
    never NaN)."""
    return Pipeline(stages=[StringIndexer(inputCol=rc.user, outputCol=USER_IDX, handleInvalid="keep"),
                            StringIndexer(inputCol=rc.item, outputCol=ITEM_IDX, handleInvalid="keep")])


def als_estimator(rc: RecommendationConfig, params: dict, seed: int) -> ALS:
    """ALS on the indexed pairs with the grid point ``params``."""
    spark = SparkSession.getActiveSession()
    blocks = max(1, min(10, spark.sparkContext.defaultParallelism)) if spark is not None else 10  # ALS's default: 10
    als = ALS(userCol=USER_IDX, itemCol=ITEM_IDX, ratingCol=RATING, implicitPrefs=rc.is_implicit,
              coldStartStrategy="drop", maxIter=rc.max_iter, seed=seed, rank=int(params["rank"]),
              regParam=float(params["regParam"]), numUserBlocks=blocks, numItemBlocks=blocks)
    if rc.is_implicit and "alpha" in params:
        als.setAlpha(float(params["alpha"]))
    return als


def als_pipeline(rc: RecommendationConfig, params: dict, seed: int) -> Pipeline:
    """The model: the ids indexed (index_pipeline), then ALS."""
    return Pipeline(stages=[*index_pipeline(rc).getStages(), als_estimator(rc, params, seed)])


def grid(rc: RecommendationConfig) -> list[dict]:
    """Every grid point: rank x regParam (x alpha for implicit feedback)."""
    g = {**DEFAULT_GRID["implicit" if rc.is_implicit else "explicit"], **rc.grid}
    keys = ["rank", "regParam"] + (["alpha"] if rc.is_implicit else [])
    points = [{}]
    for k in keys:
        points = [{**p, k: v} for p in points for v in g[k]]
    return points


def indexed(model: PipelineModel, df: DataFrame) -> DataFrame:
    """``df`` with the user and item indices of ``model`` (its first two stages: the indexers)."""
    return PipelineModel(stages=model.stages[:2]).transform(df)


def most_seen(seen: DataFrame) -> int:
    """The most items one user has in ``seen``: how far past K a top list must look."""
    return seen.groupBy(USER_IDX).count().agg(F.max("count")).first()[0] or 0


def seen_lists(seen: DataFrame) -> DataFrame:
    """(``__user``, ``__seen``: array<double>): each user's items in ``seen`` (indexed pairs)."""
    return seen.groupBy(USER_IDX).agg(F.collect_set(F.col(ITEM_IDX).cast("double")).alias("__seen"))


def _first_unseen(items: str, k: int):
    """The first ``k`` structs of the array column ``items`` whose item is not in ``__seen``."""
    seen = F.coalesce(F.col("__seen"), F.array().cast("array<double>"))
    return F.slice(F.filter(items, lambda r: ~F.array_contains(seen, r[ITEM_IDX])), 1, k)


def top_lists(model: PipelineModel, users: DataFrame, seen_sets: DataFrame, k: int, extra: int) -> DataFrame:
    """(``__user``, ``__top``: array<struct<__item, score>>, best first): the model's best ``k``
    items per user of ``users`` (indexed), skipping the user's items in ``seen_sets``
    (seen_lists; ``extra``: most_seen). Array functions on one row per user: no exploded pairs."""
    als = model.stages[-1]
    n_items = len(model.stages[1].labelsArray[0])
    recs = als.recommendForUserSubset(users.select(USER_IDX).distinct(), int(min(n_items, k + extra))).select(
        F.col(USER_IDX).cast("double").alias(USER_IDX),
        F.transform("recommendations", lambda r: F.struct(r[ITEM_IDX].cast("double").alias(ITEM_IDX),
                                                          r["rating"].cast("double").alias("score"))).alias("__recs"))
    return recs.join(seen_sets, USER_IDX, "left").select(USER_IDX, _first_unseen("__recs", k).alias("__top"))


def popular_lists(seen: DataFrame, users: DataFrame, seen_sets: DataFrame, k: int, extra: int) -> DataFrame:
    """The popularity baseline as top_lists: the most interacted-with items (in the pairs
    ``seen``, ties by index) that each user of ``users`` has not seen, scored by their count."""
    counts = seen.groupBy(ITEM_IDX).agg(F.count(F.lit(1)).cast("double").alias("score"))
    top = counts.orderBy(F.desc("score"), ITEM_IDX).limit(int(k + extra)).agg(F.sort_array(F.collect_list(
        F.struct((-F.col("score")).alias("__neg"), F.col(ITEM_IDX).cast("double").alias(ITEM_IDX), "score"))).alias("__o"))
    ranked = top.select(F.transform("__o", lambda r: F.struct(r[ITEM_IDX].alias(ITEM_IDX), r["score"].alias("score")))
                        .alias("__recs"))
    pairs = users.select(USER_IDX).distinct().crossJoin(F.broadcast(ranked))
    return pairs.join(seen_sets, USER_IDX, "left").select(USER_IDX, _first_unseen("__recs", k).alias("__top"))


def top_items(model: PipelineModel, users: DataFrame, seen: DataFrame, k: int) -> DataFrame:
    """(``__user``, ``__item``, score, rank 1..k): the model's best items per user of ``users``
    that are not among the user's (``__user``, ``__item``) pairs in ``seen``; one row each."""
    top = top_lists(model, users, seen_lists(seen), k, most_seen(seen))
    flat = top.select(USER_IDX, F.posexplode("__top").alias("__pos", "r"))
    return flat.select(USER_IDX, F.col("r")[ITEM_IDX].alias(ITEM_IDX), F.col("r.score").alias("score"),
                       (F.col("__pos") + 1).alias("rank"))


def as_lists(top: DataFrame, relevant: DataFrame) -> DataFrame:
    """One row per user of ``relevant`` (``__user``, ``relevant``: array<double>) with
    ``predicted``: the items of its ``__top`` list (top_lists / popular_lists; empty when none)."""
    lists = top.select(USER_IDX, F.transform("__top", lambda r: r[ITEM_IDX]).alias("predicted"))
    return relevant.join(lists, USER_IDX, "left").select(
        USER_IDX, "relevant", F.coalesce("predicted", F.array().cast("array<double>")).alias("predicted"))


def ranking_metrics(lists: DataFrame, k: int) -> dict[str, float]:
    """precision@K, recall@K, NDCG@K and MAP@K of (``predicted``, ``relevant``) lists."""
    lists = lists.cache()  # four evaluators over the same lists
    out = {name: float(RankingEvaluator(predictionCol="predicted", labelCol="relevant", metricName=spark_name, k=k)
                       .evaluate(lists)) for name, spark_name in RANKING.items()}
    lists.unpersist()
    return out


def relevant_items(model: PipelineModel, heldout: DataFrame, rc: RecommendationConfig) -> DataFrame:
    """(``__user``, ``relevant``): each known user's held-out items (explicit ratings: those of at
    least ``relevant_rating``); an item the model never saw keeps a distinct negative id (a miss)."""
    rows = indexed(model, heldout)
    if not rc.is_implicit and rc.relevant_rating is not None:
        rows = rows.where(F.col(RATING) >= rc.relevant_rating)
    n_users, n_items = len(model.stages[0].labelsArray[0]), len(model.stages[1].labelsArray[0])
    item = F.when(F.col(ITEM_IDX) < n_items, F.col(ITEM_IDX)).otherwise(
        -1.0 - F.abs(F.xxhash64(F.col(model.stages[1].getInputCol()).cast("string"))) % 1_000_000_000)
    return rows.where(F.col(USER_IDX) < n_users).groupBy(USER_IDX).agg(
        F.collect_set(item.cast("double")).alias("relevant"))


@dataclass
class Holdout:
    """What scoring any model on held-out interactions needs besides the model, computed (and
    cached) once per split and shared by every grid point."""

    seen: DataFrame  # (__user, __item): the training pairs, indexed
    seen_sets: DataFrame  # (__user, __seen): seen_lists(seen)
    relevant: DataFrame  # (__user, relevant): relevant_items
    heldout: DataFrame  # the held-out interactions as they are (RMSE and MAE of explicit ratings)
    extra: int  # most_seen(seen)

    def release(self) -> None:
        for df in (self.seen, self.seen_sets, self.relevant):
            df.unpersist()


def holdout(indexers: PipelineModel, seen: DataFrame, heldout: DataFrame, rc: RecommendationConfig) -> Holdout:
    """The Holdout of training interactions ``seen`` and ``heldout`` under ``indexers`` (a
    model's first two stages, or index_pipeline fitted)."""
    seen_idx = indexed(indexers, seen).select(USER_IDX, ITEM_IDX).cache()
    return Holdout(seen_idx, seen_lists(seen_idx).cache(), relevant_items(indexers, heldout, rc).cache(), heldout,
                   most_seen(seen_idx))


def scores(model: PipelineModel, h: Holdout, rc: RecommendationConfig, baseline: bool = False) -> dict[str, float]:
    """The model's ranking metrics at K on ``h`` (items the user has seen skipped), RMSE and MAE
    for explicit ratings; with ``baseline`` also the popularity baseline's (``popularity_*``)."""
    out = ranking_metrics(as_lists(top_lists(model, h.relevant, h.seen_sets, rc.k, h.extra), h.relevant), rc.k)
    if baseline:
        pop = popular_lists(h.seen, h.relevant, h.seen_sets, rc.k, h.extra)
        out.update({f"popularity_{m}": v for m, v in ranking_metrics(as_lists(pop, h.relevant), rc.k).items()})
    if not rc.is_implicit:
        err = model.transform(h.heldout).select((F.col("prediction") - F.col(RATING)).alias("e"))
        row = err.agg(F.sqrt(F.avg(F.col("e") ** 2)).alias("rmse"), F.avg(F.abs("e")).alias("mae")).first()
        out.update({"rmse": float(row.rmse) if row.rmse is not None else float("nan"),
                    "mae": float(row.mae) if row.mae is not None else float("nan")})
    return out


def evaluate(model: PipelineModel, seen: DataFrame, heldout: DataFrame, rc: RecommendationConfig,
             baseline: bool = False) -> dict[str, float]:
    """scores of ``model`` on ``heldout`` (raw interactions) after training on ``seen``."""
    h = holdout(model, seen, heldout, rc)
    try:
        return scores(model, h, rc, baseline)
    finally:
        h.release()
