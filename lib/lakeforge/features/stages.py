"""Fit-time statistics baked into plain Spark ML stages.

MLlib has no estimator for rare-level grouping, quantile clipping, target encoding, mode / constant
imputation of text columns or a date reference fixed at fit time. Each of them is a ``FitSQL``
estimator here: ``fit`` computes its statistics with Spark aggregations (bounded results only:
per-level counts after a threshold, quantiles, one row of aggregates) and returns a built-in
``SQLTransformer`` whose statement holds those statistics as literals. The fitted model therefore
contains only pyspark.ml classes: it saves and loads with ``PipelineModel.load`` and scores in the
JVM (no Python UDF), without lakeforge installed. The estimators themselves are not persisted
(only fitted models are).

``FlatPipeline`` is a Pipeline whose fitted model has no nested PipelineModel: an estimator that
returns several stages (feature selection) is spliced into the flat stage list.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from pyspark.ml import Estimator, Pipeline, PipelineModel
from pyspark.ml.feature import SQLTransformer
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakeforge.core.sql import dbl, lit, q, select_sql

# At most this many levels per column are ever collected to the driver.
LEVEL_CAP = 10_000


class FitSQL(Estimator):
    """Runs ``build(dataset)`` at fit time and returns ``SQLTransformer(statement=...)``."""

    def __init__(self, build: Callable[[DataFrame], str], name: str):
        super().__init__()
        self._build = build
        self.name = name

    def _fit(self, dataset: DataFrame) -> SQLTransformer:
        return SQLTransformer(statement=self._build(dataset))

    def __repr__(self) -> str:
        return f"FitSQL({self.name})"


class FlatPipeline(Pipeline):
    """A Pipeline whose fitted model lists every fitted stage at the top level."""

    def _fit(self, dataset: DataFrame) -> PipelineModel:
        return self.fit_for_training(dataset)[0]

    def fit_for_training(self, dataset: DataFrame) -> tuple[PipelineModel, DataFrame]:
        """(the fitted model, ``dataset`` as its later stages were fitted on it): a stage with
        ``fit_crossed`` (a target mean per level) hands on out-of-fold values, so that neither the
        later stages nor the learner trained on this output see a row's own label in its features.
        Without such a stage the output is the model's transform of ``dataset``."""
        fitted = []
        for stage in self.getStages():
            if hasattr(stage, "fit_crossed"):
                model, dataset = stage.fit_crossed(dataset)
            elif isinstance(stage, Estimator):
                model = stage.fit(dataset)
                dataset = model.transform(dataset)
            else:
                model, dataset = stage, stage.transform(dataset)
            fitted.append(model)
        return PipelineModel(stages=flatten(fitted)), dataset


def fit_for_training(pipeline: Pipeline, dataset: DataFrame) -> tuple[PipelineModel, DataFrame]:
    """(``pipeline`` fitted on ``dataset``, the rows to train a learner on): FlatPipeline's
    out-of-fold output, or the fitted model's transform of ``dataset``."""
    if isinstance(pipeline, FlatPipeline):
        return pipeline.fit_for_training(dataset)
    model = pipeline.fit(dataset)
    return model, model.transform(dataset)


def flatten(stages: list) -> list:
    out = []
    for s in stages:
        out.extend(flatten(s.stages) if isinstance(s, PipelineModel) else [s])
    return out


# ---------------------------------------------------------------------------------------------
# Statistics (Spark aggregations with bounded results)
# ---------------------------------------------------------------------------------------------


def stacked(df: DataFrame, cols: list[str], label: str | None = None) -> DataFrame:
    """One row per (input row, column): c = column index, v = value as text[, y = label]."""
    structs = [
        F.struct(F.lit(i).alias("c"), F.col(c).cast("string").alias("v"), *([F.col(label).cast("double").alias("y")] if label else []))
        for i, c in enumerate(cols)
    ]
    return df.select(F.explode(F.array(*structs)).alias("s")).select("s.*")


def top_levels(df: DataFrame, cols: list[str], min_count: int = 1, max_levels: int = LEVEL_CAP) -> dict[str, list[tuple[str, int]]]:
    """Per column, its non-null levels seen at least ``min_count`` times, most frequent first
    (ties by level), at most ``max_levels`` of them: one shuffle for all columns."""
    if not cols:
        return {}
    max_levels = min(max_levels, LEVEL_CAP)
    counts = (stacked(df, cols).where(F.col("v").isNotNull()).groupBy("c", "v").count()
              .where(F.col("count") >= F.lit(max(1, min_count))))
    w = Window.partitionBy("c").orderBy(F.desc("count"), F.asc("v"))
    rows = counts.withColumn("rn", F.row_number().over(w)).where(F.col("rn") <= max_levels).collect()
    out: dict[str, list[tuple[str, int]]] = {c: [] for c in cols}
    for r in sorted(rows, key=lambda r: (r["c"], r["rn"])):
        out[cols[r["c"]]].append((r["v"], int(r["count"])))
    return out


def rare_grouping(cols: dict[str, str], min_count: int, min_fraction: float, max_levels: int | None, label: str,
                  report: dict | None = None) -> Callable[[DataFrame], str]:
    """cols: input column -> output column. Levels below the thresholds (and beyond the
    ``max_levels`` most frequent) become ``label``; nulls stay null."""

    def build(df: DataFrame) -> str:
        threshold = max(1, min_count)
        if min_fraction:
            threshold = max(threshold, math.ceil(min_fraction * df.count()))
        kept = top_levels(df, list(cols), threshold, max_levels or LEVEL_CAP)
        exprs = []
        for src, out in cols.items():
            text = f"CAST({q(src)} AS STRING)"
            levels = [v for v, _ in kept[src]]
            frequent = f"WHEN {text} IN ({', '.join(lit(v) for v in levels)}) THEN {text} " if levels else ""
            exprs.append(f"CASE WHEN {q(src)} IS NULL THEN NULL {frequent}ELSE {lit(label)} END AS {q(out)}")
            if report is not None:
                report[out.rsplit("__", 1)[0]] = {"levels_kept": len(levels)}
        return select_sql(exprs)

    return build


def indexer_inputs(cols: dict[str, str], as_text: set[str]) -> Callable[[DataFrame], str]:
    """The columns to one-hot encode as the StringIndexer reads them: ``as_text`` columns (booleans,
    dates) cast to text, and an empty text value as null (the indexer's missing slot, as blank CSV
    fields already are: Spark's OneHotEncoder cannot name a level ''). Numbers pass as they are."""

    def build(df: DataFrame) -> str:
        types = {f.name: f.dataType.simpleString() for f in df.schema.fields}

        def expr(src: str) -> str:
            if src in as_text:
                return f"CAST({q(src)} AS STRING)"
            return f"NULLIF({q(src)}, {lit('')})" if types.get(src) == "string" else q(src)

        return select_sql([f"{expr(src)} AS {q(out)}" for src, out in cols.items()])

    return build


def mode_fill(cols: dict[str, str]) -> Callable[[DataFrame], str]:
    """Text columns: nulls replaced by the most frequent level (ties: the smallest level)."""

    def build(df: DataFrame) -> str:
        top = top_levels(df, list(cols), 1, 1)
        exprs = []
        for src, out in cols.items():
            fill = f"COALESCE(CAST({q(src)} AS STRING), {lit(top[src][0][0])})" if top[src] else f"CAST({q(src)} AS STRING)"
            exprs.append(f"{fill} AS {q(out)}")
        return select_sql(exprs)

    return build


def quantile_clip(cols: dict[str, str], lower: float | None, upper: float | None, report: dict | None = None) -> Callable[[DataFrame], str]:
    """Numeric columns clipped to their approximate quantiles (one aggregation for all)."""

    def build(df: DataFrame) -> str:
        probs = [p for p in (lower, upper) if p is not None]
        row = df.select(*[F.percentile_approx(F.col(c), probs, 10_000).alias(f"q{i}") for i, c in enumerate(cols)]).first()
        exprs = []
        for i, (src, out) in enumerate(cols.items()):
            qs = row[f"q{i}"] or []
            lo = qs[0] if lower is not None and qs else None
            hi = qs[-1] if upper is not None and qs else None
            x = q(src)
            parts = [f"WHEN isnan({x}) THEN {x}"]
            if lo is not None:
                parts.append(f"WHEN {x} < {dbl(lo)} THEN {dbl(lo)}")
            if hi is not None:
                parts.append(f"WHEN {x} > {dbl(hi)} THEN {dbl(hi)}")
            exprs.append(f"CASE {' '.join(parts)} ELSE {x} END AS {q(out)}")
            if report is not None:
                report[out.rsplit("__", 1)[0]] = {"lower": lo, "upper": hi}
        return select_sql(exprs)

    return build


def target_encoding(cols: dict[str, list[str]], label: str, classes: list[float] | None, smoothing: float,
                    max_levels: int) -> Callable[[DataFrame], str]:
    """cols: input column -> output columns (one, or one per class of a multiclass target).

    Each level gets (sum + smoothing * prior) / (count + smoothing), where sum counts the label
    (or, per class, the rows of that class) and prior is its training mean; levels beyond the
    ``max_levels`` most frequent and levels unseen at fit time get the prior."""

    def build(df: DataFrame) -> str:
        ks = classes if classes is not None else [None]
        targets = [F.col("y") if k is None else (F.col("y") == F.lit(k)).cast("double") for k in ks]
        prior_row = df.select(*[(F.col(label).cast("double") if k is None else (F.col(label) == F.lit(k)).cast("double")).alias(f"p{i}")
                                for i, k in enumerate(ks)]).agg(*[F.avg(f"p{i}").alias(f"p{i}") for i in range(len(ks))]).first()
        priors = [float(prior_row[f"p{i}"] or 0.0) for i in range(len(ks))]
        src_cols = list(cols)
        stats = (stacked(df, src_cols, label).groupBy("c", "v")
                 .agg(F.count(F.lit(1)).alias("n"), *[F.sum(t).alias(f"s{i}") for i, t in enumerate(targets)]))
        w = Window.partitionBy("c").orderBy(F.desc("n"), F.asc_nulls_first("v"))
        rows = stats.withColumn("rn", F.row_number().over(w)).where(F.col("rn") <= min(max_levels, LEVEL_CAP)).collect()
        exprs = []
        for ci, src in enumerate(src_cols):
            mine = sorted((r for r in rows if r["c"] == ci), key=lambda r: r["rn"])
            text = f"CAST({q(src)} AS STRING)"
            for i, out in enumerate(cols[src]):
                def enc(r, i=i):
                    return (float(r[f"s{i}"]) + smoothing * priors[i]) / (r["n"] + smoothing)
                null_row = next((r for r in mine if r["v"] is None), None)
                pairs = [f"{lit(r['v'])}, {dbl(enc(r))}" for r in mine if r["v"] is not None]
                known = f"try_element_at(map({', '.join(pairs)}), {text})" if pairs else "CAST(NULL AS DOUBLE)"
                on_null = dbl(enc(null_row)) if null_row is not None else dbl(priors[i])
                exprs.append(f"CASE WHEN {q(src)} IS NULL THEN {on_null} ELSE COALESCE({known}, {dbl(priors[i])}) END AS {q(out)}")
        return select_sql(exprs)

    return build


def derive_with_reference(exprs: list[str], refs: dict[str, str]) -> Callable[[DataFrame], str]:
    """Derived columns, plus ``days_since`` columns whose reference is the latest date in the
    training data (refs: output column -> SQL expression of the parsed timestamp)."""

    def build(df: DataFrame) -> str:
        names = list(refs)
        row = df.select(*[F.max(F.to_date(F.expr(refs[n]))).alias(f"m{i}") for i, n in enumerate(names)]).first()
        out = list(exprs)
        for i, n in enumerate(names):
            ref = row[f"m{i}"]
            day = f"DATE'{ref.isoformat()}'" if ref is not None else "current_date()"
            out.append(f"CAST(datediff({day}, to_date({refs[n]})) AS DOUBLE) AS {q(n)}")
        return select_sql(out)

    return build


# ---------------------------------------------------------------------------------------------
# Names of the feature vector's slots
# ---------------------------------------------------------------------------------------------


class SlotNamer:
    """Readable names for the slots of an assembled vector.

    lakeforge names every intermediate column ``<source>__<tag>`` (``tenure__imp``,
    ``Contract__ohe``, ``TotalCharges__missing``); the assembler's slot attributes are
    ``<input column>[_<suffix>]``, and the scaled numeric block's are ``<block>_<i>`` (its i-th
    input). A slot is named after its source column: ``tenure``, ``Contract=Month-to-month``,
    ``TotalCharges missing``, ``tenure in [12.0, 24.0)``."""

    def __init__(self, inputs: list[str], block: str | None = None, block_inputs: list[str] = ()):
        self.inputs = sorted(inputs, key=len, reverse=True)
        self.block = block
        self.block_inputs = list(block_inputs)

    def __call__(self, attr: str) -> tuple[str, str]:
        """(slot name, source column) for an attribute name."""
        if self.block and attr.startswith(self.block + "_") and attr[len(self.block) + 1:].isdigit():
            i = int(attr[len(self.block) + 1:])
            if i < len(self.block_inputs):
                return describe(self.block_inputs[i], None)
        col = next((c for c in self.inputs if attr == c or attr.startswith(c + "_")), None)
        if col is None:
            return attr, attr
        return describe(col, attr[len(col) + 1:] if attr != col else None)

    def names(self, field) -> list[tuple[str, str]]:
        """(slot, source) for every slot of a vector column, from its ML attribute metadata."""
        meta = field.metadata.get("ml_attr", {})
        size = int(meta.get("num_attrs", 0))
        by_index = {a["idx"]: a.get("name") for group in meta.get("attrs", {}).values() for a in group}
        size = max(size, max(by_index, default=-1) + 1)
        return [self(by_index[i]) if by_index.get(i) else (f"f{i}", f"f{i}") for i in range(size)]


_TAGGED = re.compile(r"^(.*?)__(ohe|imp|num|clip|log|te\d*|freq|bucket|missing|tfidf)(?:_(.*))?$", re.S)


def _split_attr(attr: str) -> tuple[str, str | None]:
    """``Contract__ohe_Month-to-month`` -> (``Contract__ohe``, ``Month-to-month``)."""
    m = _TAGGED.match(attr)
    if not m:
        return attr, None
    return f"{m.group(1)}__{m.group(2)}", m.group(3)


def describe(col: str, suffix: str | None) -> tuple[str, str]:
    if "__" not in col.strip("_"):
        return (col if suffix is None else f"{col}_{suffix}"), col
    source, tag = col.rsplit("__", 1)
    if tag == "ohe":
        return f"{source}={suffix}", source
    if tag == "bucket":
        return f"{source} in [{suffix})", source
    if tag == "missing":
        return f"{source} missing", source
    if tag == "freq":
        return f"{source} frequency", source
    if tag == "tfidf":  # HashingTF slot: the words hashed to it
        return f"{source} words #{suffix}", source
    if tag == "int":  # Interaction attributes: "a__imp:b__ohe_level"
        parts = [describe(*_split_attr(p))[0] for p in (suffix or "").split(":")]
        return f"{source}[{' * '.join(parts)}]", source
    if tag in ("num", "imp", "clip", "log", "te"):
        return source, source
    return f"{source} {tag}" + (f" {suffix}" if suffix else ""), source
