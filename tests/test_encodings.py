"""Encodings chosen by the number of levels (preprocessing.encoding) and the cached feature frame:
a many-level column gets a bounded encoding (its top levels one-hot, one value per level), recorded
with the reason in the report and the problem card; the target mean per level is fitted on the
training rows only (refitted per fold in training); the numpy scorer equals Spark on the new
stages; the feature cache is MEMORY_AND_DISK, sparse, and sized."""

from __future__ import annotations

import numpy as np
import pytest
from chispa import assert_approx_df_equality
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import SparseVector
from pyspark.sql import functions as F

from lakeforge.core.columns import FEATURES_COL, FOLD_COL, LABEL_COL
from lakeforge.core.config_features import FeaturesConfig, PreprocessingConfig
from lakeforge.core.frames import local_frame
from lakeforge.features.pipeline import preprocessing_pipeline
from lakeforge.features.plan import plan_features
from lakeforge.features.slots import slot_names
from lakeforge.features.statistics import feature_statistics
from lakeforge.training.feature_cache import LEVEL, cache_features, cached_size, refit_in_fold

SMALL = {"max_onehot_levels": 3, "top_levels": 2, "min_count": 2, "smoothing": 2.0}


def _fit(df, features, prep, task="binary", classes=None, target="y"):
    plan = plan_features(df, features, prep, "id", target, "t")
    plan = feature_statistics(plan, df, "t")
    model = preprocessing_pipeline(plan, label_col=target, task=task, classes=classes).fit(df)
    return plan, model


@pytest.fixture(scope="module")
def towns(spark):
    """city: 6 levels (a x4, b x3, c x2, d, e, f) and a null; plan: 2 levels; street: 4 levels."""
    cities = ["a", "a", "a", "a", "b", "b", "b", "c", "c", "d", "e", "f", None]
    ys = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    rows = [(str(i), c, "p" if i % 2 else "q", "wwwxxyz"[i % 7], float(i), y) for i, (c, y) in enumerate(zip(cities, ys))]
    return local_frame(spark, rows, "id string, city string, plan string, street string, x double, y double")


def test_a_many_level_column_gets_the_bounded_encoding_with_its_reason(towns):
    prep = PreprocessingConfig(scale=False, encoding=SMALL)
    plan, model = _fit(towns, FeaturesConfig(numeric=["x"], categorical=["city", "plan"]), prep)
    assert plan.bounded == {"city": 6} and plan.supervised
    reasons = {e["column"]: (e["encoding"], e["reason"]) for e in plan.report.encodings}
    assert reasons == {
        "city": ("bounded", "6 levels > preprocessing.encoding.max_onehot_levels 3: the top 2 levels (>= 2 rows) one-hot, "
                            "the rest one slot + its target mean per level (fitted in-fold)"),
        "plan": ("onehot", "2 levels <= preprocessing.encoding.max_onehot_levels 3: one-hot"),
    }
    assert "encoding: city: 6 levels > preprocessing.encoding.max_onehot_levels 3" in "\n".join(plan.report.lines())
    # x, city's target mean, city: the other levels (5 rows), a, b, null; plan: q, p, null
    names = [n for n, _ in slot_names(model, towns)]
    assert names == ["x", "city", "city=__rare__", "city=a", "city=b", "city=__unknown", "plan=q", "plan=p", "plan=__unknown"]
    assert model.transform(towns).first()[FEATURES_COL].size == 9


def test_the_default_bounds_a_1000_level_column_and_keeps_few_levels_one_hot(spark):
    df = spark.range(1200).select(F.col("id").cast("string").alias("id"), (F.col("id") % 1000).cast("string").alias("tail"),
                                  (F.col("id") % 4).cast("string").alias("kind"), (F.col("id") % 3 == 0).cast("double").alias("y"))
    plan, model = _fit(df, FeaturesConfig(categorical=["tail", "kind"]), PreprocessingConfig(scale=False))
    assert set(plan.bounded) == {"tail"} and 990 <= plan.bounded["tail"] <= 1010  # approximate count, 1 %
    names = [n for n, _ in slot_names(model, df)]
    # every level is seen once or twice (< min_count 20): none keeps a slot; the target mean carries the column
    assert names == ["tail", "tail=__rare__", "tail=__unknown", "kind=0", "kind=1", "kind=2", "kind=3", "kind=__unknown"]
    wide = PreprocessingConfig(scale=False, encoding={"max_onehot_levels": None})  # the wide one-hot of before
    _, old = _fit(df, FeaturesConfig(categorical=["tail", "kind"]), wide)
    assert old.transform(df).first()[FEATURES_COL].size == 1001 + 5


def test_the_problem_card_records_each_encoding_and_why(spark, tmp_path):
    from lakeforge.core.config import load_pipeline
    from lakeforge.profiling.card import to_yaml
    from lakeforge.profiling.frame import frame

    df = spark.range(600).select(F.concat(F.lit("k"), F.col("id")).alias("cust_id"), F.concat(F.lit("s"), F.col("id") % 100).alias("shop"),
                                 F.concat(F.lit("p"), F.col("id") % 3).alias("plan"), (F.col("id") * 1.5).alias("spend"),
                                 (F.xxhash64("id") % 2 == 0).cast("int").alias("y"))
    card = frame(df, "y", {"format": "csv", "path": "x.csv"}, "x")
    got = {c.name: (c.encoding, c.encoding_reason) for c in card.columns if c.role == "categorical"}
    shop = next(c for c in card.columns if c.name == "shop").distinct  # approximate: 100 +- 1 %
    assert got == {
        "shop": ("bounded", f"{shop} levels > preprocessing.encoding.max_onehot_levels 50: the top 50 levels (>= 20 rows) "
                            "one-hot, the rest one slot + its target mean per level (fitted in-fold)"),
        "plan": ("onehot", "3 levels <= preprocessing.encoding.max_onehot_levels 50: one-hot"),
    }
    text = to_yaml(card)
    assert "#   one-hot: plan (at most 3 levels each)" in text and f"#   shop: {shop} levels > " in text
    # spend, plan (3 + unknown), shop (50 + rare + unknown + its target mean): 58 slots, 4 stored per row
    assert ("# Memory: the search caches about 0.2 MB of features (480 training rows x 4 stored values of 58 slots; x4 with "
            "the per-fold refits of the target means): spark.driver_memory 2g or more") in text
    (tmp_path / "x.yaml").write_text(text)
    assert load_pipeline(tmp_path / "x.yaml").preprocessing.encoding == PreprocessingConfig().encoding


def test_the_target_mean_per_level_is_fitted_on_the_given_rows_only(spark, towns):
    prep = PreprocessingConfig(scale=False, encoding=SMALL)
    train = towns.where(F.col("id").cast("int") < 11)  # rows 11 (f) and 12 (null) are held out
    _, model = _fit(train, FeaturesConfig(categorical=["city"]), prep)
    new = local_frame(spark, [("a", "a"), ("b", "b"), ("f", "f"), ("zz", "zz"), ("null", None), ("empty", "")],
                                "id string, city string")
    # training rows: 11, 7 positives: prior 7/11; a: 3 of 4; b: 1 of 3; f and nulls unseen -> the prior
    prior = 7 / 11
    expected = local_frame(spark, [("a", (3 + 2 * prior) / 6), ("b", (1 + 2 * prior) / 5), ("f", prior), ("zz", prior),
                                      ("null", prior), ("empty", prior)], "id string, te double")
    got = model.transform(new).select("id", F.col("city__te").alias("te"))
    assert_approx_df_equality(got, expected, 1e-12, ignore_nullable=True, ignore_row_order=True)


def test_the_in_fold_target_mean_of_an_id_column_does_not_predict_the_held_out_label(spark):
    """A column with one level per row: a target mean fitted on all rows would give each
    validation row its own label (ROC-AUC 1); fitted on the other folds it is the prior."""
    rows = spark.range(200).select(F.col("id").cast("string").alias("id"), F.concat(F.lit("u"), F.col("id")).alias("uid"),
                                   (F.xxhash64("id") % 2 == 0).cast("double").alias(LABEL_COL),
                                   (F.col("id") % 2).cast("int").alias(FOLD_COL))
    prep = PreprocessingConfig(scale=False, encoding={"max_onehot_levels": 10})
    plan = feature_statistics(plan_features(rows, FeaturesConfig(categorical=["uid"]), prep, "id", LABEL_COL, "t"), rows, "t")
    pipe = preprocessing_pipeline(plan, label_col=LABEL_COL)
    keep = [LABEL_COL, FEATURES_COL, FOLD_COL]
    for k in range(2):
        train_k, valid_k, _ = refit_in_fold(pipe, rows, keep, k)
        prior = train_k.agg(F.avg(LABEL_COL)).first()[0]
        te = valid_k.select(vector_to_array(FEATURES_COL)[0].alias("te")).distinct().collect()
        assert [r["te"] for r in te] == [pytest.approx(prior, abs=1e-12)]
        train_k.unpersist()
        valid_k.unpersist()
    leaky = preprocessing_pipeline(plan, label_col=LABEL_COL).fit(rows).transform(rows.where(F.col(FOLD_COL) == 0))
    pairs = leaky.select(LABEL_COL, vector_to_array(FEATURES_COL)[0].alias("te")).collect()
    assert min(p["te"] for p in pairs if p[LABEL_COL] == 1) > max(p["te"] for p in pairs if p[LABEL_COL] == 0)  # what leakage looks like


@pytest.mark.parametrize("classes", [None, [0.0, 1.0]], ids=["binary", "per-class"])
def test_the_rows_a_model_trains_on_get_out_of_fold_target_means(spark, towns, classes):
    """fit_crossed: the fitted model keeps the means over all rows (what scores new rows); the rows
    it was fitted on get, per level, the smoothed mean of the OTHER parts' rows, with the other
    parts' prior, so no row's own label is in its value. Expected values computed here by hand."""
    from lakeforge.features.cross_fit import CROSS_FOLDS, cross_part
    from lakeforge.features.encodings import LevelEncoder, LevelSpec

    m = 2.0
    enc = LevelEncoder({"city": ["te"] if classes is None else ["te0", "te1"]}, LevelSpec("target", "y", classes, m))
    model, rows = enc.fit_crossed(towns)
    parts = {r["id"]: r["p"] for r in towns.select("id", cross_part(towns).alias("p")).collect()}
    assert set(parts.values()) <= set(range(CROSS_FOLDS)) and len(set(parts.values())) > 2
    data = {r["id"]: (r["city"], r["y"]) for r in towns.collect()}

    def expected(rid: str, positive: float) -> float:
        part, (city, _) = parts[rid], data[rid]
        out = [y == positive for i, (_, y) in data.items() if parts[i] != part]
        same = [y == positive for i, (c, y) in data.items() if parts[i] != part and c == city]
        return (sum(same) + m * sum(out) / len(out)) / (len(same) + m)

    outs = ["te"] if classes is None else ["te0", "te1"]
    got = {r["id"]: r for r in rows.select("id", *outs).collect()}
    assert len(got) == towns.count()
    for rid in data:
        for out, positive in zip(outs, [1.0] if classes is None else [0.0, 1.0]):
            assert got[rid][out] == pytest.approx(expected(rid, positive), abs=1e-12), (rid, out)
    full = {r["id"]: r[outs[-1]] for r in model.transform(towns).select("id", *outs).collect()}
    assert full["0"] == pytest.approx((3 + m * 8 / 13) / (4 + m))  # city a: 3 of 4 positive, prior 8/13
    assert rows.columns == model.transform(towns).columns


def test_an_id_columns_training_values_are_the_other_parts_prior_not_its_label(spark):
    """With one level per row, a row's level is in no other part: the rows a model trains on get
    their part's out-of-fold prior (at most CROSS_FOLDS values), which says nothing of the row's
    own label (in-sample, the mean would separate the classes perfectly: the test above)."""
    from lakeforge.features.cross_fit import CROSS_FOLDS
    from lakeforge.features.stages import fit_for_training

    rows = spark.range(200).select(F.col("id").cast("string").alias("id"), F.concat(F.lit("u"), F.col("id")).alias("uid"),
                                   (F.xxhash64("id") % 2 == 0).cast("double").alias(LABEL_COL))
    prep = PreprocessingConfig(scale=False, encoding={"max_onehot_levels": 10})
    plan = feature_statistics(plan_features(rows, FeaturesConfig(categorical=["uid"]), prep, "id", LABEL_COL, "t"), rows, "t")
    _, trained_on = fit_for_training(preprocessing_pipeline(plan, label_col=LABEL_COL), rows)
    pairs = trained_on.select(LABEL_COL, vector_to_array(FEATURES_COL)[0].alias("te")).collect()
    assert len(pairs) == 200 and 2 <= len({round(p["te"], 12) for p in pairs}) <= CROSS_FOLDS
    positives, negatives = [p["te"] for p in pairs if p[LABEL_COL] == 1], [p["te"] for p in pairs if p[LABEL_COL] == 0]
    assert min(positives) <= max(negatives) and min(negatives) <= max(positives)  # no separation


def test_the_feature_cache_is_memory_and_disk_keeps_vectors_sparse_and_is_sized(spark):
    df = spark.range(2000).select(F.col("id").cast("string").alias("id"), (F.col("id") % 500).cast("string").alias("c"),
                                  (F.col("id") % 2).cast("double").alias("y"))
    _, model = _fit(df, FeaturesConfig(categorical=["c"]), PreprocessingConfig(encoding={"max_onehot_levels": None}))
    said = []
    cached = cache_features(model.transform(df).select("y", FEATURES_COL), "test features", said.append)
    try:
        assert cached.storageLevel == LEVEL
        assert isinstance(cached.first()[FEATURES_COL], SparseVector)
        size = cached_size(cached)
        assert size.memory_bytes + size.disk_bytes > 0 and size.partitions_cached == size.partitions
        assert said and said[0].startswith("cached test features: ") and "(MEMORY_AND_DISK)" in said[0]
    finally:
        cached.unpersist()


def test_big_frames_go_to_disk_and_cut_the_fits_at_once_to_what_memory_holds(spark):
    """The labelled rows stay in memory while they take at most half of the storage memory, else
    local disk only; the search runs as many fits at once as copies of the largest cached training
    frame fit in half the storage memory (each fit caches its own copy)."""
    from pyspark import StorageLevel

    from lakeforge.training.feature_cache import CACHE_TO_FILES, fit_parallelism, rows_level, storage_memory

    _, total = storage_memory(spark)
    assert rows_level(spark, int(total / 2 / CACHE_TO_FILES))[0] == StorageLevel.MEMORY_AND_DISK_DESER
    level, why = rows_level(spark, int(total / CACHE_TO_FILES))
    assert level == StorageLevel.DISK_ONLY and why.startswith("local disk only")
    assert rows_level(spark, None)[0] == StorageLevel.MEMORY_AND_DISK_DESER  # size unknown: as before
    frame = cache_features(spark.range(20000).select(F.col("id").cast("double").alias("y")))
    try:
        size = cached_size(frame)
        per_copy = size.memory_bytes + size.disk_bytes
        assert fit_parallelism([frame], 4) == (4, None)
        holds = int(total / 2 // per_copy)
        fits, why = fit_parallelism([frame], holds + 5)
        assert fits == holds and why.startswith(f"{holds} fit(s) at a time"), why
    finally:
        frame.unpersist()


def test_numpy_scorer_equals_spark_on_level_encodings(spark, towns, tmp_path):
    from test_scorer_features import assert_parity

    """Two many-level columns with different numbers of levels (each its own indexer), nulls, ''
    and levels unseen at fit time, for the frequency and the per-class target mean."""
    score = local_frame(
        spark, [(str(i), c, p, s, x, None) for i, (c, p, s, x) in enumerate(
            [("a", "p", "w", 1.0), ("b", "q", "y", 2.0), ("f", "p", "new", None), (None, None, None, 3.0), ("", "", "", 4.0),
             ("zz", "new", "z", 5.0), ("c", "q", "x", 0.0)])],
        "id string, city string, plan string, street string, x double, y double")
    for kind, task, classes in (("frequency", "binary", None), ("target", "multiclass", [0.0, 1.0])):
        prep = PreprocessingConfig(scale=False, encoding={**SMALL, "high_cardinality": kind})
        _, model = _fit(towns, FeaturesConfig(numeric=["x"], categorical=["city", "plan", "street"]), prep, task, classes)
        got = assert_parity(model, score, tmp_path / f"{kind}_{task}", order="id")
        # x, city's and street's value(s); city: __rare__, a, b, unknown; plan: q, p, unknown; street: w, x, __rare__, unknown
        assert np.asarray(got[FEATURES_COL]).shape[1] == (16 if task == "multiclass" else 14)
