"""Out-of-fold target means for the rows a model is trained on (cross-fitting).

A target mean per level, fitted on the training rows and then applied to those same rows, hands
every row a value that contains its own label: a level seen once gets (its label + smoothing *
prior) / (1 + smoothing), so the learner finds the label in the feature and trusts it more than it
deserves on new rows (where the value comes from other rows' labels). The validation folds of the
search are clean already (the preprocessing is refitted per fold: lakeforge.training.feature_cache),
but the model itself was trained on leaky values: on the flights benchmark, with a 4,037-level
tail number, that is how lakeforge fell behind (docs/benchmarks.md, issue 22).

So the rows the later stages and the learner are fitted on get out-of-fold values instead: the
rows are split into ``CROSS_FOLDS`` parts by a hash of all their plain columns (deterministic: the
same rows always land in the same part, whatever Spark recomputes), and a row of part f gets the
smoothed mean of its level over the other parts, with the other parts' prior:

    (S_level - S_level,f + smoothing * prior_f) / (N_level - N_level,f + smoothing)

A level seen in one part only therefore gets the prior, as it would on a new row. The fitted
model (what scores new rows, in batch and online) is unchanged: the means over all training rows.
One extra aggregation (per column, level and part) and a broadcast join per column; only the
K per-part totals reach the driver.
"""

from __future__ import annotations

from pyspark.ml import PipelineModel
from pyspark.ml.feature import StringIndexerModel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, UserDefinedType

CROSS_FOLDS = 5
PART_COL = "__cross_part"


def cross_part(df: DataFrame) -> Column:
    """The part (0 .. CROSS_FOLDS - 1) of each row: a hash of its plain columns (vectors and
    maps cannot be hashed; two identical rows share a part, which keeps duplicates out of each
    other's values)."""
    plain = [F.col(f"`{f.name}`") for f in df.schema.fields if not isinstance(f.dataType, (UserDefinedType, MapType))]
    return F.pmod(F.xxhash64(*plain), F.lit(CROSS_FOLDS)) if plain else F.lit(0)


def out_of_fold(dataset: DataFrame, transformed: DataFrame, model: PipelineModel, cols: dict[str, list[str]],
                targets: list[Column], smoothing: float) -> DataFrame:
    """``transformed`` (``model``'s output on ``dataset``, the rows it was fitted on) with each
    target-mean column replaced by its out-of-fold value; same columns, same rows. ``cols``: input
    column -> its output columns, one per target in ``targets`` (the label, or one 0/1 per class)."""
    src = list(cols)
    keys = {c: f"{c}__key" for c in src}
    seen = {m.getInputCol(): len(m.labels) for m in model.stages if isinstance(m, StringIndexerModel)}
    data = transformed.withColumn(PART_COL, cross_part(dataset))
    parts = data.groupBy(PART_COL).agg(F.count(F.lit(1)).alias("n"), *[F.sum(t).alias(f"s{i}") for i, t in enumerate(targets)])
    totals = {r[PART_COL]: r for r in parts.collect()}  # at most CROSS_FOLDS rows
    stats = _level_part_stats(data, [keys[c] for c in src], targets)
    columns = list(transformed.columns)
    for i, c in enumerate(src):
        mine = stats.where(F.col(_X + "c") == i).drop(_X + "c")
        data = data.join(F.broadcast(mine), data[keys[c]].eqNullSafe(mine[_X + "v"]) & (data[PART_COL] == mine[_X + "p"]), "left")
        # a level outside the fitted model (beyond its level cap) is unseen there: the prior
        in_model = F.col(f"`{c}__code`") < F.lit(seen[keys[c]]) if keys[c] in seen else F.lit(False)
        encoded = F.col(_X + "hit") & (data[keys[c]].isNull() | in_model)
        for j, out in enumerate(cols[c]):
            prior = _part_prior(totals, j)
            oof = ((F.col(f"{_X}tot_s{j}") - F.col(f"{_X}s{j}") + F.lit(smoothing) * prior)
                   / (F.col(_X + "tot_n") - F.col(_X + "n") + F.lit(smoothing)))
            data = data.withColumn(out, F.when(encoded, oof).otherwise(prior))
        data = data.drop(*mine.columns)
    return data.select(*[F.col(f"`{c}`") for c in columns])


_X = "__xf_"  # the statistics' column names: no clash with a data column (nor with each other: Spark ignores case)


def _level_part_stats(data: DataFrame, keys: list[str], targets: list[Column]) -> DataFrame:
    """One row per (column index c, level v, part p): that part's rows n and label sums s0..,
    the level's rows tot_n and sums tot_s0.. over all parts, hit = true (marks a joined row);
    every column name prefixed with ``_X``."""
    k = len(targets)
    structs = [F.struct(F.lit(i).alias("c"), F.col(f"`{key}`").alias("v"), F.col(PART_COL).alias("p"),
                        *[t.alias(f"y{j}") for j, t in enumerate(targets)]) for i, key in enumerate(keys)]
    stacked = data.select(F.explode(F.array(*structs)).alias("x")).select("x.*")
    per_part = stacked.groupBy("c", "v", "p").agg(F.count(F.lit(1)).alias("n"), *[F.sum(f"y{j}").alias(f"s{j}") for j in range(k)])
    level = Window.partitionBy("c", "v")
    return per_part.select(
        *[F.col(x).alias(_X + x) for x in ("c", "v", "p", "n")], *[F.col(f"s{j}").alias(f"{_X}s{j}") for j in range(k)],
        F.sum("n").over(level).alias(_X + "tot_n"), *[F.sum(f"s{j}").over(level).alias(f"{_X}tot_s{j}") for j in range(k)],
        F.lit(True).alias(_X + "hit"))


def _part_prior(totals: dict, j: int) -> Column:
    """The mean of target ``j`` over the rows outside each part: a literal per part."""
    n_all = sum(r["n"] for r in totals.values())
    s_all = sum(float(r[f"s{j}"] or 0.0) for r in totals.values())
    overall = s_all / n_all if n_all else 0.0
    expr = F.lit(overall)
    for p, r in totals.items():
        rest = n_all - r["n"]
        expr = F.when(F.col(PART_COL) == p, F.lit((s_all - float(r[f"s{j}"] or 0.0)) / rest if rest else overall)).otherwise(expr)
    return expr
