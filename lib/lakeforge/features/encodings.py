"""Categorical encodings chosen by the number of levels (``preprocessing.encoding``).

A column with few levels is one-hot encoded, every level (lakeforge.features.pipeline). A column
with many levels (``EncodingConfig.choose`` on the training rows' distinct count, decided by
``choose_encodings``, called from lakeforge.features.statistics) gets a bounded encoding: its most
frequent levels one-hot (``rare_grouping`` in lakeforge.features.stages: the others share one
slot) plus one number per level from ``LevelEncoder``:

* ``target``: the smoothed target mean (sum + smoothing * prior) / (count + smoothing), one per
  class for a multiclass target. It reads the label, so lakeforge.training refits it inside every
  CV fold on that fold's training rows only (``FeaturePlan.supervised``), and the rows a model is
  trained on get out-of-fold means (``fit_crossed``, lakeforge.features.cross_fit), never their own
  label's;
* ``frequency``: the level's share of the rows it was fitted on (no label: clustering uses it
  instead of ``target``).

``LevelEncoder`` fits with two aggregations, the prior and the per-level sums (at most LEVEL_CAP
levels per column reach the driver, most frequent first; the others count as unseen) and returns
built-in stages only: a SQLTransformer (the level as text, '' as null, as the one-hot path reads
it), a StringIndexerModel per column (level -> index, a hash lookup in the JVM) and a
SQLTransformer that takes each index's value from an array literal: constant work per row. A map
literal is a linear search per row in Spark, and so is the CASE WHEN chain of Spark 4's own
``TargetEncoderModel``, which also marks its output as a nominal attribute with one value per
encoding, so tree learners refuse it ("maxBins ... at least as large as the number of values in
each categorical feature"); docs/benchmarks.md has the measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml import Estimator, PipelineModel
from pyspark.ml.feature import SQLTransformer, StringIndexerModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakeforge.core.config_features import EncodingConfig
from lakeforge.core.sql import dbl, q, select_sql
from lakeforge.features.cross_fit import out_of_fold
from lakeforge.features.stages import LEVEL_CAP, stacked

KEY_PATH = "preprocessing.encoding"


@dataclass(frozen=True)
class LevelSpec:
    """What ``LevelEncoder`` computes: ``kind`` (target / frequency), the label column and the
    classes of a multiclass target (one output per class), the smoothing of the target mean."""

    kind: str
    label: str | None = None
    classes: list[float] | None = None
    smoothing: float = 10.0

    def outputs(self, col: str) -> list[str]:
        if self.kind == "frequency":
            return [f"{col}__freq"]
        return [f"{col}__te"] if not self.classes else [f"{col}__te{int(k)}" for k in self.classes]


def choose_encodings(categorical: list[str], levels: dict[str, int], cfg: EncodingConfig, skip: set[str],
                     labelled: bool = True) -> tuple[dict[str, int], list[dict]]:
    """({column: levels} of the columns that get the bounded encoding, a report row per column:
    {column, levels, encoding, reason}). ``skip``: columns the config encodes otherwise;
    ``labelled``: false without a target (a target mean becomes a frequency)."""
    bounded, rows = {}, []
    for c in categorical:
        if c in skip or c not in levels:
            continue
        kind, why = cfg.choose(levels[c], KEY_PATH)
        if kind == "bounded" and cfg.high_cardinality == "target" and not labelled:
            why = why.replace("its target mean per level (fitted in-fold)", "its frequency per level (no target)")
        rows.append({"column": c, "levels": levels[c], "encoding": kind, "reason": why})
        if kind == "bounded":
            bounded[c] = levels[c]
    return bounded, rows


class LevelEncoder(Estimator):
    """One number per level of each column (``cols``: input column -> output columns) by ``spec``;
    fits to [SQLTransformer, a StringIndexerModel per column, SQLTransformer] in a PipelineModel
    (spliced into the flat stage list by FlatPipeline)."""

    def __init__(self, cols: dict[str, list[str]], spec: LevelSpec, report: dict | None = None):
        super().__init__()
        self.cols, self.spec, self.report = cols, spec, report

    def __repr__(self) -> str:
        return f"LevelEncoder({self.spec.kind}: {', '.join(self.cols)})"

    def _fit(self, dataset: DataFrame) -> PipelineModel:
        src = list(self.cols)
        keys = {c: f"{c}__key" for c in src}
        keyed = SQLTransformer(statement=select_sql([f"NULLIF(CAST({q(c)} AS STRING), '') AS {q(keys[c])}" for c in src]))
        data = keyed.transform(dataset)
        targets = self._targets()
        totals = self._totals(data, targets)
        per_level = self._level_stats(data, [keys[c] for c in src], targets)
        stages, lookups = [keyed], []
        for c in src:  # one indexer per column: from_arrays_of_labels pads shorter label lists with nulls
            if per_level[keys[c]][0]:
                stages.append(StringIndexerModel.from_labels([v for v, _ in per_level[keys[c]][0]], inputCol=keys[c],
                                                             outputCol=f"{c}__code", handleInvalid="keep"))
        for c in src:
            levels, null_row = per_level[keys[c]]
            for i, out in enumerate(self.cols[c]):
                values = [self._value(row, i, totals) for _, row in levels]
                on_null = self._value(null_row, i, totals) if null_row is not None else self._unseen(i, totals)
                lookups.append(_lookup(keys[c], f"{c}__code", values, self._unseen(i, totals), on_null, out))
            if self.report is not None:
                self.report[c] = {"encoding": self.spec.kind, "levels_encoded": len(levels)}
        stages.append(SQLTransformer(statement=select_sql(lookups)))
        return PipelineModel(stages=stages)

    def fit_crossed(self, dataset: DataFrame) -> tuple[PipelineModel, DataFrame]:
        """(the fitted model, its output on ``dataset`` where each target mean is out of fold:
        lakeforge.features.cross_fit; frequencies read no label and stay as they are)."""
        model = self.fit(dataset)
        out = model.transform(dataset)
        if self.spec.kind != "target":
            return model, out
        return model, out_of_fold(dataset, out, model, self.cols, self._targets(), self.spec.smoothing)

    def _targets(self) -> list:
        """What is summed per level: nothing (frequency), the label, or one 0/1 per class."""
        s = self.spec
        if s.kind == "frequency":
            return []
        y = F.col(s.label).cast("double")
        return [y] if not s.classes else [(y == F.lit(k)).cast("double") for k in s.classes]

    @staticmethod
    def _totals(data: DataFrame, targets: list) -> dict:
        """The rows and, per target, its mean (the prior): one aggregation."""
        row = data.agg(F.count(F.lit(1)).alias("n"), *[F.avg(t).alias(f"p{i}") for i, t in enumerate(targets)]).first()
        return {"n": int(row["n"]), "priors": [float(row[f"p{i}"] or 0.0) for i in range(len(targets))]}

    def _level_stats(self, data: DataFrame, keys: list[str], targets: list) -> dict[str, tuple[list, object]]:
        """key column -> ([(level, row)] most frequent first, at most LEVEL_CAP; the null level's
        row or None): one grouped aggregation for all columns."""
        label = self.spec.label if targets else None
        base = data.select(*keys, *([F.col(label)] if label else []))
        sums = [(F.col("y") if not self.spec.classes else (F.col("y") == F.lit(k)).cast("double")) for k in (self.spec.classes or [None])]
        stats = (stacked(base, keys, label).groupBy("c", "v")
                 .agg(F.count(F.lit(1)).alias("n"), *([F.sum(t).alias(f"s{i}") for i, t in enumerate(sums)] if label else [])))
        w = Window.partitionBy("c").orderBy(F.col("v").isNull().desc(), F.desc("n"), F.asc("v"))
        rows = stats.withColumn("rn", F.row_number().over(w)).where(F.col("rn") <= LEVEL_CAP + 1).collect()
        out: dict[str, tuple[list, object]] = {}
        for i, k in enumerate(keys):
            mine = sorted((r for r in rows if r["c"] == i), key=lambda r: r["rn"])
            out[k] = ([(r["v"], r) for r in mine if r["v"] is not None][:LEVEL_CAP],
                      next((r for r in mine if r["v"] is None), None))
        return out

    def _value(self, row, i: int, totals: dict) -> float:
        if self.spec.kind == "frequency":
            return row["n"] / totals["n"] if totals["n"] else 0.0
        m, prior = self.spec.smoothing, totals["priors"][i]
        return (float(row[f"s{i}"] or 0.0) + m * prior) / (row["n"] + m) if row["n"] + m else prior

    def _unseen(self, i: int, totals: dict) -> float:
        """A level not seen at fit time: no rows (frequency), the prior (target)."""
        return 0.0 if self.spec.kind == "frequency" else totals["priors"][i]


def _lookup(key: str, code: str, values: list[float], unseen: float, on_null: float, out: str) -> str:
    """SQL: the value of ``key``'s level from its index ``code`` (``values`` in index order; the
    indexer's extra index, numLabels, is an unseen level)."""
    if not values:
        return f"CASE WHEN {q(key)} IS NULL THEN {dbl(on_null)} ELSE {dbl(unseen)} END AS {q(out)}"
    array = ", ".join(dbl(v) for v in [*values, unseen])
    return (f"CASE WHEN {q(key)} IS NULL THEN {dbl(on_null)} "
            f"ELSE element_at(array({array}), CAST({q(code)} AS INT) + 1) END AS {q(out)}")
