"""Scoring a recommender: the top-N unseen items per user into ``recommendations_<pipeline>``
(user, rank, item, score, model_name, model_version, scored_at, run_date) and the predicted
rating of every known user-item pair into the predictions table; both partitioned by run date,
each run replacing its own date's partition (reruns never duplicate). Unknown users or items get
no row (ALS coldStartStrategy 'drop'), never NaN."""

from __future__ import annotations

import datetime as dt

from pyspark.ml import PipelineModel
from pyspark.ml.feature import IndexToString
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.core import tracking
from lakeforge.core.config import PipelineConfig
from lakeforge.core.io import WriteResult, write_table
from lakeforge.core.settings import Settings
from lakeforge.training.recommend_steps import ITEM_IDX, RATING, USER_IDX, indexed, interactions, top_items


def recommendations_table(pipeline: PipelineConfig) -> str:
    """The top-N table (short name): recommendations_<pipeline>."""
    return f"recommendations_{pipeline.name}"


def top_n(model: PipelineModel, inter: DataFrame, n: int) -> DataFrame:
    """(user, rank, item, score): the ``n`` best items per known user of ``inter``, skipping
    the items the user has interacted with, ids as in the input."""
    seen = indexed(model, inter)
    n_users = len(model.stages[0].labelsArray[0])
    users = seen.where(F.col(USER_IDX) < n_users).select(USER_IDX).distinct()
    ranked = top_items(model, users, seen.select(USER_IDX, ITEM_IDX), n)
    user_col, item_col = model.stages[0].getInputCol(), model.stages[1].getInputCol()
    for stage, idx, col in ((model.stages[0], USER_IDX, user_col), (model.stages[1], ITEM_IDX, item_col)):
        ranked = IndexToString(inputCol=idx, outputCol=col, labels=stage.labelsArray[0]).transform(ranked)
    types = dict(inter.dtypes)
    return ranked.select(F.col(user_col).cast(types[user_col]).alias(user_col), F.col("rank").cast("int"),
                         F.col(item_col).cast(types[item_col]).alias(item_col), "score")


def write_recommendations(settings: Settings, pipeline: PipelineConfig, df: DataFrame, model: PipelineModel,
                          ref: tracking.ModelRef, run_date: dt.date) -> tuple[WriteResult, str]:
    """Write both tables for ``run_date``: (the predictions write, a line about the top-N write)."""
    rc = pipeline.model.recommendation
    inter = interactions(df, rc, f"scoring input of {pipeline.name}").cache()
    meta = [F.lit(ref.name).alias("model_name"), F.lit(ref.version).alias("model_version"),
            F.current_timestamp().alias("scored_at"), F.lit(run_date).cast("date").alias("run_date")]
    recs = top_n(model, inter, rc.top_n).select("*", *meta)
    rec_table = settings.table(recommendations_table(pipeline))
    rec_write = write_table(recs, rec_table, partition_col="run_date", partition_value=run_date,
                            stats_columns=[rc.user, "rank"])
    pairs = model.transform(inter).select(
        rc.user, rc.item, *([F.col(RATING).alias(rc.rating)] if rc.rating else []),
        F.col("prediction").cast("double").alias("score"), *meta)
    write = write_table(pairs, settings.table(pipeline.tables.predictions), partition_col="run_date",
                        partition_value=run_date, stats_columns=[rc.user, "score"])
    inter.unpersist()
    return write, (f"{rec_write.rows_written:,} recommendations (top {rc.top_n} per user) -> {rec_table} "
                   f"(table version {rec_write.version}); the predictions are the known pairs' predicted ratings")
