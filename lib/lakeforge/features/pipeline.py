"""The preprocessing Pipeline: raw columns to one feature vector, as pure Spark ML stages (no Python
UDF), fitted once and shipped inside the model, so batch scoring and serving apply exactly the
transformation fitted at training time.

``preprocessing_pipeline`` builds the unfitted Pipeline from a FeaturePlan
(lakeforge.features.plan). Stages, in order (each only when configured; with no option set,
stages 2, 6, 8, 11 and 12 are exactly lakeforge's original pipeline):

1. SQLTransformer: derived features (SQL expressions), date parts, text lengths;
2. SQLTransformer: numeric features parsed with ``try_cast(... AS DOUBLE)`` (so text numbers
   such as Telco's ``TotalCharges``, blank for new customers, become doubles or null), boolean
   text (yes/no, true/false) as 1/0, ordinal levels as 0, 1, 2...;
3. quantile clipping (SQLTransformer with the quantiles fitted), 4. log1p (SQLTransformer),
5. "was missing" indicators (SQLTransformer);
6. Imputer per strategy (mean / median / mode), constants by SQLTransformer;
7. categorical columns: mode / constant fill; a column with many levels (preprocessing.encoding,
   lakeforge.features.encodings) gets its target mean or frequency per level (LevelEncoder:
   SQLTransformer, StringIndexerModel, SQLTransformer) and only its top levels one-hot; rare-level
   grouping, target encoding (SQLTransformers with the fitted levels and means);
8. StringIndexer (``handleInvalid='keep'``: nulls and categories unseen at fit time get their
   own index) and OneHotEncoder;
9. Bucketizer / QuantileDiscretizer + OneHotEncoder, 10. Interaction, free text as TF-IDF
   word weights (RegexTokenizer, HashingTF, IDF);
11. the numeric block assembled and scaled (StandardScaler / MinMaxScaler / RobustScaler; one-hot
    columns stay 0/1), 12. one VectorAssembler of everything;
13. feature selection (lakeforge.features.feature_selection).

The label is made by lakeforge.training (binary, multiclass or numeric targets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pyspark.ml import Pipeline
from pyspark.ml.feature import (
    Bucketizer,
    HashingTF,
    IDF,
    Imputer,
    Interaction,
    MinMaxScaler,
    OneHotEncoder,
    QuantileDiscretizer,
    RegexTokenizer,
    RobustScaler,
    SQLTransformer,
    StandardScaler,
    StringIndexer,
    VectorAssembler,
)

from lakeforge.core.columns import FEATURES_COL, LABEL_COL
from lakeforge.core.config_features import FeatureSelectionConfig, PreprocessingConfig
from lakeforge.core.sql import dbl, lit, q, select_sql
from lakeforge.features.encodings import LevelEncoder, LevelSpec
from lakeforge.features.plan import FeaturePlan, FeatureRoles
from lakeforge.features.stages import (
    FitSQL,
    FlatPipeline,
    SlotNamer,
    derive_with_reference,
    indexer_inputs,
    mode_fill,
    quantile_clip,
    rare_grouping,
    target_encoding,
)

NUMERIC_RAW_COL = "__numeric_raw"
NUMERIC_COL = "__numeric_scaled"
ASSEMBLED_COL = "__assembled"


def preprocessing_pipeline(
    plan: FeaturePlan | FeatureRoles,
    prep: PreprocessingConfig | None = None,
    *,
    selection: FeatureSelectionConfig | None = None,
    label_col: str = LABEL_COL,
    task: str = "binary",
    classes: list[float] | None = None,
    seed: int = 42,
    ranking: list | None = None,
) -> Pipeline:
    """An unfitted Pipeline turning raw columns into one feature vector (column FEATURES_COL).

    ``classes``: the label values of a multiclass target (target encoding makes one column per
    class); ``ranking``: a list that receives the feature-selection ranking when fitted."""
    if isinstance(plan, FeatureRoles):
        plan = FeaturePlan.from_roles(plan, prep)
    prep = plan.prep
    fitted_stats = plan.report.fitted if ranking is not None else None
    stages = _derived_stages(plan)
    imputed = _numeric_stages(plan, fitted_stats, stages)
    cat = _categorical_stages(plan, fitted_stats, label_col, classes, stages)
    bucket_vec = _bucket_stages(plan, imputed, stages)
    interactions = _interaction_stages(plan, imputed, cat, stages)
    texts = _text_stages(plan, stages)

    # assemble: the numeric block (scaled), indicators, one-hot vectors, buckets, interactions, text
    block = ([imputed[c] for c in plan.numeric if plan.keeps_numeric(c)] + [o for c in plan.target_encoded for o in cat.target_encoded[c]]
             + [o for outs in cat.level_encoded.values() for o in outs])
    numeric_part = block
    scaler = _scaler(prep.scale)
    if scaler is not None and block:
        # Only the numeric columns are scaled: one-hot columns stay 0/1 (scaling them would
        # blow rare levels up and weaken the regularization on them).
        stages.append(VectorAssembler(inputCols=block, outputCol=NUMERIC_RAW_COL, handleInvalid="keep"))
        stages.append(scaler)
        numeric_part = [NUMERIC_COL]
    final_inputs = numeric_part + [f"{c}__missing" for c in plan.indicators] + cat.vectors + bucket_vec + interactions + texts
    select = selection is not None and selection.enabled
    stages.append(VectorAssembler(inputCols=final_inputs, outputCol=ASSEMBLED_COL if select else FEATURES_COL, handleInvalid="keep"))
    if select:
        from lakeforge.features.feature_selection import FeatureSelection, SelectionTarget

        namer = SlotNamer(final_inputs, NUMERIC_COL if numeric_part != block else None, block)
        stages.append(FeatureSelection(selection, ASSEMBLED_COL, FEATURES_COL, SelectionTarget(label_col, task, seed), namer,
                                       ranking))
    return FlatPipeline(stages=stages)


def is_supervised(plan: FeaturePlan, selection: FeatureSelectionConfig | None) -> bool:
    """True when fitting reads the label (target encoding, univariate or model-based feature
    selection): then lakeforge.training refits the preprocessing inside every CV fold."""
    return plan.supervised or bool(selection is not None and selection.supervised)


# ---------------------------------------------------------------------------------------------
# Stage builders: each appends its stages to ``stages``, in pipeline order
# ---------------------------------------------------------------------------------------------


def _derived_stages(plan: FeaturePlan) -> list:
    stages: list = []
    if plan.derived or plan.reference_dates:
        exprs = [f"{e} AS {q(n)}" for n, e in plan.derived.items()]
        stages.append(FitSQL(derive_with_reference(exprs, plan.reference_dates), "derived") if plan.reference_dates
                      else SQLTransformer(statement=select_sql(exprs)))
    return stages


def _numeric_stages(plan: FeaturePlan, fitted_stats: dict | None, stages: list) -> dict[str, str]:
    """Numeric features: parse, clip, log, indicators, impute. Returns feature -> imputed column."""
    prep, numeric = plan.prep, plan.numeric
    cur = {c: f"{c}__num" for c in numeric}
    if numeric:
        stages.append(SQLTransformer(statement=select_sql([f"{plan.typed_sql(c)} AS {q(cur[c])}" for c in numeric])))
    clip_cols = [c for c in (prep.clip.columns if prep.clip else []) if c in cur]
    if clip_cols:
        stats = fitted_stats.setdefault("clip", {}) if fitted_stats is not None else None
        stages.append(FitSQL(quantile_clip({cur[c]: f"{c}__clip" for c in clip_cols}, prep.clip.lower, prep.clip.upper, stats), "clip"))
        cur.update({c: f"{c}__clip" for c in clip_cols})
    log_cols = [c for c in prep.log if c in cur]
    if log_cols:
        stages.append(SQLTransformer(statement=select_sql(
            [f"CASE WHEN {q(cur[c])} > -1 THEN log1p({q(cur[c])}) END AS {q(c + '__log')}" for c in log_cols])))
        cur.update({c: f"{c}__log" for c in log_cols})
    if plan.indicators:
        exprs = []
        for c in plan.indicators:
            x = q(f"{c}__num") if c in cur else q(c)
            cond = f"{x} IS NULL OR isnan({x})" if c in cur else f"{x} IS NULL"
            exprs.append(f"CASE WHEN {cond} THEN 1.0D ELSE 0.0D END AS {q(c + '__missing')}")
        stages.append(SQLTransformer(statement=select_sql(exprs)))
    imputed = {c: f"{c}__imp" for c in numeric}
    groups: dict[str, list[str]] = {}
    for c in numeric:
        groups.setdefault(plan.impute_numeric(c)[0], []).append(c)
    for strategy, cols in groups.items():
        if strategy == "constant":
            exprs = []
            for c in cols:
                x, v = q(cur[c]), dbl(float(plan.impute_numeric(c)[1]))
                exprs.append(f"CASE WHEN {x} IS NULL OR isnan({x}) THEN {v} ELSE {x} END AS {q(imputed[c])}")
            stages.append(SQLTransformer(statement=select_sql(exprs)))
        else:
            stages.append(Imputer(inputCols=[cur[c] for c in cols], outputCols=[imputed[c] for c in cols], strategy=strategy))
    return imputed


@dataclass
class _Categorical:
    current: dict[str, str]  # feature -> its column after fill / rare-level grouping
    target_encoded: dict[str, list[str]] = field(default_factory=dict)  # feature -> its target-encoded column(s)
    vectors: list[str] = field(default_factory=list)  # the one-hot vectors
    level_encoded: dict[str, list[str]] = field(default_factory=dict)  # many-level feature -> its value(s) per level


def _categorical_stages(plan: FeaturePlan, fitted_stats: dict | None, label_col: str, classes: list[float] | None,
                        stages: list) -> _Categorical:
    """Categorical features: fill, rare levels, target encoding, one-hot."""
    prep, categorical = plan.prep, plan.categorical
    ccur = {c: c for c in categorical}
    constant_fill = [c for c in categorical if plan.impute_categorical(c)[0] == "constant"]
    if constant_fill:
        stages.append(SQLTransformer(statement=select_sql(
            [f"COALESCE(CAST({q(c)} AS STRING), {lit(plan.impute_categorical(c)[1])}) AS {q(c + '__fill')}" for c in constant_fill])))
    mode_cols = [c for c in categorical if plan.impute_categorical(c)[0] == "mode"]
    if mode_cols:
        stages.append(FitSQL(mode_fill({c: f"{c}__fill" for c in mode_cols}), "mode"))
    ccur.update({c: f"{c}__fill" for c in constant_fill + mode_cols})
    levels_out = _level_stages(plan, ccur, fitted_stats, LevelSpec(plan.level_encoding, label_col, classes,
                                                                    prep.encoding.smoothing), stages)
    rare = prep.rare_levels
    rare_cols = [c for c in (rare.columns if rare and rare.columns is not None else categorical if rare else []) if c in ccur]
    if rare_cols:
        stats = fitted_stats.setdefault("rare_levels", {}) if fitted_stats is not None else None
        stages.append(FitSQL(rare_grouping({ccur[c]: f"{c}__grp" for c in rare_cols}, rare.min_count, rare.min_fraction,
                                           rare.max_levels, rare.label, stats), "rare_levels"))
        ccur.update({c: f"{c}__grp" for c in rare_cols})
    top_cols = [c for c in plan.bounded if c in ccur and c not in rare_cols]
    if top_cols:  # many levels: the most frequent ones keep a slot (preprocessing.encoding)
        enc = prep.encoding
        stats = fitted_stats.setdefault("top_levels", {}) if fitted_stats is not None else None
        stages.append(FitSQL(rare_grouping({ccur[c]: f"{c}__grp" for c in top_cols}, enc.min_count, 0.0, enc.top_levels,
                                           rare.label if rare else "__rare__", stats), "top_levels"))
        ccur.update({c: f"{c}__grp" for c in top_cols})
    te_cols = plan.target_encoded
    te_out: dict[str, list[str]] = {}
    if te_cols:
        te = prep.target_encoding
        te_out = {c: [f"{c}__te"] if not classes else [f"{c}__te{int(k)}" for k in classes] for c in te_cols}
        stages.append(FitSQL(target_encoding({ccur[c]: te_out[c] for c in te_cols}, label_col, classes, te.smoothing,
                                             te.max_levels), "target_encoding"))
    onehot = [c for c in categorical if c not in te_out]
    cat_vec = [f"{c}__ohe" for c in onehot]
    if onehot:
        # booleans, dates... as text (StringIndexer takes text and numbers only); '' as null
        as_text = {c for c in onehot if ccur[c] == c and c in plan.as_text}
        stages.append(FitSQL(indexer_inputs({ccur[c]: f"{c}__lvl" for c in onehot}, as_text), "indexer_inputs"))
        ccur.update({c: f"{c}__lvl" for c in onehot})
        stages.append(StringIndexer(inputCols=[ccur[c] for c in onehot], outputCols=[f"{c}__idx" for c in onehot],
                                    handleInvalid="keep", stringOrderType="frequencyDesc"))
        stages.append(OneHotEncoder(inputCols=[f"{c}__idx" for c in onehot], outputCols=cat_vec, handleInvalid="keep"))
    return _Categorical(ccur, te_out, cat_vec, levels_out)


def _level_stages(plan: FeaturePlan, ccur: dict[str, str], fitted_stats: dict | None, spec: LevelSpec,
                  stages: list) -> dict[str, list[str]]:
    """Many-level columns: a target mean or frequency per level (LevelEncoder), read from the
    column before its levels are grouped. Returns column -> its output column(s)."""
    cols = [c for c in plan.bounded if c in ccur and c not in plan.target_encoded]
    if not cols or spec.kind == "none":
        return {}
    out = {c: spec.outputs(c) for c in cols}
    stats = fitted_stats.setdefault("level_encoding", {}) if fitted_stats is not None else None
    stages.append(LevelEncoder({ccur[c]: out[c] for c in cols}, spec, stats))
    return out


def _bucket_stages(plan: FeaturePlan, imputed: dict[str, str], stages: list) -> list[str]:
    """features.buckets: Bucketizer / QuantileDiscretizer, then one-hot. Returns the vectors."""
    buckets = {c: s for c, s in plan.features.buckets.items() if c in imputed}
    for c, spec in buckets.items():
        if spec.splits is not None:
            splits = [float(x) for x in spec.splits]
            splits = ([] if splits[0] == -math.inf else [-math.inf]) + splits + ([] if splits[-1] == math.inf else [math.inf])
            stages.append(Bucketizer(splits=splits, inputCol=imputed[c], outputCol=f"{c}__bkt", handleInvalid="keep"))
        else:
            stages.append(QuantileDiscretizer(numBuckets=spec.quantiles, inputCol=imputed[c], outputCol=f"{c}__bkt",
                                              handleInvalid="keep", relativeError=0.001))
    bucket_vec = [f"{c}__bucket" for c in buckets]
    if buckets:
        stages.append(OneHotEncoder(inputCols=[f"{c}__bkt" for c in buckets], outputCols=bucket_vec, handleInvalid="keep"))
    return bucket_vec


def _interaction_stages(plan: FeaturePlan, imputed: dict[str, str], cat: _Categorical, stages: list) -> list[str]:
    """features.interactions: one Interaction per group. Returns the output columns."""
    interactions = []
    for group in plan.features.interactions:
        if not all(c in imputed or c in cat.current for c in group):
            continue  # a member was dropped (reported)
        parts = [(imputed[c] if plan.keeps_numeric(c) else f"{c}__bucket") if c in imputed else
                 cat.target_encoded[c][0] if c in cat.target_encoded else f"{c}__ohe" for c in group]
        out = "_x_".join(group) + "__int"
        stages.append(Interaction(inputCols=parts, outputCol=out))
        interactions.append(out)
    return interactions


def _text_stages(plan: FeaturePlan, stages: list) -> list[str]:
    """Free text: TF-IDF word weights (null text: no words). Returns the vectors."""
    texts = [f"{c}__tfidf" for c in plan.features.text_tfidf]
    if texts:
        stages.append(SQLTransformer(statement=select_sql(
            [f"COALESCE(CAST({q(c)} AS STRING), '') AS {q(c + '__txt')}" for c in plan.features.text_tfidf])))
    for c in plan.features.text_tfidf:
        stages += [RegexTokenizer(inputCol=f"{c}__txt", outputCol=f"{c}__words", pattern=r"[^\p{L}\p{N}]+", minTokenLength=2),
                   HashingTF(inputCol=f"{c}__words", outputCol=f"{c}__tf", numFeatures=plan.features.text_tfidf_size),
                   IDF(inputCol=f"{c}__tf", outputCol=f"{c}__tfidf", minDocFreq=2)]
    return texts


def _scaler(scale):
    if scale is True:
        return StandardScaler(inputCol=NUMERIC_RAW_COL, outputCol=NUMERIC_COL, withMean=False, withStd=True)
    if scale == "standard":
        return StandardScaler(inputCol=NUMERIC_RAW_COL, outputCol=NUMERIC_COL, withMean=True, withStd=True)
    if scale == "minmax":
        return MinMaxScaler(inputCol=NUMERIC_RAW_COL, outputCol=NUMERIC_COL)
    if scale == "robust":
        return RobustScaler(inputCol=NUMERIC_RAW_COL, outputCol=NUMERIC_COL, withCentering=True, withScaling=True)
    return None
