"""The profile of each cluster: its size and the features that set it apart, in plain numbers
from Spark aggregates (nothing row-level reaches the driver).

A numeric feature's difference is its standardised mean difference, (cluster mean - overall
mean) / overall standard deviation. A categorical feature is described by the level whose share
in the cluster differs most from its share overall, standardised the same way (an indicator's
standard deviation, sqrt(p (1 - p))). Every cluster's features are ranked by |difference|.
"""

from __future__ import annotations

import html
import math

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakeforge.features.plan import FeaturePlan

MAX_CATEGORICAL = 20  # categorical features profiled (one grouped count each)


def cluster_profile(assigned: DataFrame, plan: FeaturePlan, cluster_col: str) -> list[dict]:
    """Rows (cluster, size, share, feature, kind, cluster_value, overall_value, difference, rank),
    one per cluster and feature, ranked within each cluster by |difference|."""
    numeric = [c for c in plan.numeric if c in plan.inputs]
    values = {c: F.expr(plan.typed_sql(c)) for c in numeric}
    overall = assigned.agg(F.count(F.lit(1)).alias("__n"),
                           *[F.avg(v).alias(f"m{i}") for i, v in enumerate(values.values())],
                           *[F.stddev_pop(v).alias(f"s{i}") for i, v in enumerate(values.values())]).first()
    per_cluster = assigned.groupBy(cluster_col).agg(
        F.count(F.lit(1)).alias("__n"), *[F.avg(v).alias(f"m{i}") for i, v in enumerate(values.values())]).collect()
    total = overall["__n"]
    sizes = {int(r[cluster_col]): r["__n"] for r in per_cluster}
    out: list[dict] = []
    for r in per_cluster:
        cluster = int(r[cluster_col])
        for i, c in enumerate(numeric):
            mean, sd = overall[f"m{i}"], overall[f"s{i}"]
            value = r[f"m{i}"]
            diff = (value - mean) / sd if value is not None and mean is not None and sd else 0.0
            out.append(_row(cluster, sizes, total, c, "numeric", value, mean, diff))
    for c in [c for c in plan.categorical if c in plan.inputs][:MAX_CATEGORICAL]:
        for r in _top_levels(assigned, c, cluster_col, total):
            out.append(_row(int(r[cluster_col]), sizes, total, f"{c}={r['level']}", "categorical", r["p_cluster"],
                            r["p_all"], r["z"]))
    out.sort(key=lambda p: (p["cluster"], -abs(p["difference"])))
    rank: dict[int, int] = {}
    for p in out:
        rank[p["cluster"]] = p["rank"] = rank.get(p["cluster"], 0) + 1
    return out


def _row(cluster: int, sizes: dict[int, int], total: int, feature: str, kind: str, value, overall, diff) -> dict:
    return {"cluster": cluster, "size": int(sizes.get(cluster, 0)), "share": sizes.get(cluster, 0) / total if total else 0.0,
            "feature": feature, "kind": kind, "cluster_value": None if value is None else float(value),
            "overall_value": None if overall is None else float(overall), "difference": float(diff), "rank": 0}


def _top_levels(assigned: DataFrame, column: str, cluster_col: str, total: int) -> list:
    """Per cluster, the level of ``column`` whose share differs most (standardised) from overall."""
    level = F.coalesce(F.col(f"`{column}`").cast("string"), F.lit("(null)")).alias("level")
    counts = assigned.groupBy(F.col(cluster_col), level).count()
    by_cluster = Window.partitionBy(cluster_col)
    by_level = Window.partitionBy("level")
    scored = (counts
              .withColumn("p_cluster", F.col("count") / F.sum("count").over(by_cluster))
              .withColumn("p_all", F.sum("count").over(by_level) / F.lit(total))
              .withColumn("z", (F.col("p_cluster") - F.col("p_all"))
                          / F.greatest(F.sqrt(F.col("p_all") * (1 - F.col("p_all"))), F.lit(1e-9))))
    best = Window.partitionBy(cluster_col).orderBy(F.abs("z").desc(), F.col("level"))
    return scored.withColumn("__r", F.row_number().over(best)).where("__r = 1").collect()


def profile_html(profile: list[dict], top: int) -> str:
    """One line per cluster: size, share and its ``top`` most distinguishing features."""
    lines = []
    for cluster in sorted({p["cluster"] for p in profile}):
        rows = [p for p in profile if p["cluster"] == cluster]
        size, share = rows[0]["size"], rows[0]["share"]
        parts = []
        for p in rows[:top]:
            if p["kind"] == "numeric":
                parts.append(f"{p['feature']} {_num(p['cluster_value'])} (all rows {_num(p['overall_value'])}, "
                             f"{p['difference']:+.2f} sd)")
            else:
                parts.append(f"{p['feature']} {p['cluster_value']:.0%} of the cluster (all rows {p['overall_value']:.0%})")
        lines.append(f"<tr><td>{cluster}</td><td>{size:,}</td><td>{share:.1%}</td>"
                     f"<td style='text-align:left'>{html.escape('; '.join(parts))}</td></tr>")
    return ("<table><tr><th>cluster</th><th>rows</th><th>share</th><th>what sets it apart</th></tr>"
            + "".join(lines) + "</table>")


def _num(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "null"
    return f"{v:,.4g}"
