"""The generated scored rows of scripts/bench_monitor.py: a key, 18 features and the model's score
and predicted label, from Spark's seeded rand / randn (the same seed gives the same rows, so the
Parquet copy for Evidently holds exactly what lakeforge monitored).

``drift=True`` (the monitored window) shifts 5 columns against ``drift=False`` (the reference):
n_normal +0.3 sd, n_expon x1.2, n_money x1.15, c_3's mix, c_200 with 2 % values the reference
never had.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

NUMERIC = ["n_normal", "n_lognormal", "n_uniform", "n_int100", "n_int5", "n_bimodal", "n_expon", "n_nulls",
           "n_money", "n_count"]
CATEGORICAL = ["c_3", "c_5", "c_12", "c_50", "c_200", "c_yn", "c_8_nulls", "c_1000"]


def _pick(u: Column, levels: list[str], shares: list[float]) -> Column:
    """One of ``levels`` with the given shares, from a uniform draw ``u``."""
    cum, expr = 0.0, None
    for level, share in zip(levels[:-1], shares[:-1]):
        cum += share
        expr = F.when(u < cum, F.lit(level)) if expr is None else expr.when(u < cum, F.lit(level))
    return F.lit(levels[-1]) if expr is None else expr.otherwise(F.lit(levels[-1]))


def _levels(u: Column, prefix: str, n: int, skew: float = 1.0) -> Column:
    return F.concat(F.lit(prefix), F.floor(F.pow(u, F.lit(skew)) * n).cast("int").cast("string"))


def features(seed: int, drift: bool) -> dict[str, Column]:
    """{column: expression} of the 18 features (seeded by ``seed``)."""
    r = lambda k: F.rand(seed * 100 + k)  # noqa: E731
    n = lambda k: F.randn(seed * 100 + k)  # noqa: E731
    d = 1.0 if drift else 0.0
    c3 = [0.3, 0.4, 0.3] if drift else [0.5, 0.3, 0.2]
    return {
        "n_normal": n(1) * 10 + 50 + 3 * d,
        "n_lognormal": F.exp(n(2) * 0.8 + 3),
        "n_uniform": r(3) * 100,
        "n_int100": F.floor(r(4) * 101),  # 101 values: quantile bins
        "n_int5": F.floor(r(5) * 5),  # 5 values: exact bins
        "n_bimodal": F.when(r(6) < 0.3, n(7) * 2 + 10).otherwise(n(7) * 3 + 30),
        "n_expon": -F.log(1 - r(8)) * 7 * (1 + 0.2 * d),
        "n_nulls": F.when(r(9) < 0.05, F.lit(None)).otherwise(n(10) * 4 + 100),
        "n_money": F.round((r(11) * 100 + 18) * (1 + 0.15 * d), 2),
        "n_count": F.floor(F.exp(n(12) * 0.5 + 2)),
        "c_3": _pick(r(13), ["a", "b", "c"], c3),
        "c_5": _levels(r(14), "k", 5),
        "c_12": _levels(r(15), "m", 12, 1.5),
        "c_50": _levels(r(16), "s", 50, 2.0),
        "c_200": F.when(r(17) < 0.02 * d, F.concat(F.lit("new"), F.floor(r(18) * 10).cast("string")))
                  .otherwise(_levels(r(19), "t", 200, 2.0)),
        "c_yn": F.when(r(20) < 0.3, F.lit("Y")).otherwise(F.lit("N")),
        "c_8_nulls": F.when(r(21) < 0.1, F.lit(None)).otherwise(_levels(r(22), "e", 8)),
        "c_1000": _levels(r(23), "h", 1000),
    }


def generate(spark: SparkSession, rows: int, partitions: int, seed: int, drift: bool) -> DataFrame:
    """``rows`` scored rows: id, the 18 features, score (a probability) and predicted_label."""
    base = spark.range(0, rows, 1, partitions).select(F.concat(F.lit(f"r{seed}_"), F.col("id").cast("string")).alias("id"),
                                                       *[e.alias(c) for c, e in features(seed, drift).items()])
    logit = (0.05 * (F.col("n_normal") - 50) - 0.05 * F.col("n_expon") + F.when(F.col("c_3") == "a", 0.8).otherwise(-0.4)
             + 0.01 * (F.col("n_money") - 68) + F.randn(seed * 100 + 99) * 0.5)
    score = 1 / (1 + F.exp(-logit))
    return base.select("*", score.alias("score")).withColumn("predicted_label", (F.col("score") >= 0.5).cast("double"))
