"""Preprocessing, feature engineering and feature selection: one test per transform on inline
rows with exact (chispa) assertions, the save -> load round trip of a fitted pipeline, the
no-Python-UDF check, and the bad-input messages."""

import datetime as dt
import math

import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F

from conftest import ROOT
from lakeforge.core.config import load_pipeline
from lakeforge.core.config_features import FeatureSelectionConfig, FeaturesConfig, PreprocessingConfig
from lakeforge.core.errors import ConfigError, InputDataError, MissingColumnError
from lakeforge.core.frames import local_frame
from lakeforge.features.dedupe import deduplicate
from lakeforge.features.pipeline import preprocessing_pipeline
from lakeforge.features.plan import FeatureRoles, plan_features
from lakeforge.features.slots import feature_table, slot_names
from lakeforge.features.statistics import feature_statistics
from lakeforge.training.target import infer_target

SCHEMA = "id string, y double"


def _fit(df, features, prep=None, selection=None, task="binary"):
    plan = plan_features(df, features, prep or PreprocessingConfig(scale=False), "id", "y", "t")
    plan = feature_statistics(plan, df, "t")
    model = preprocessing_pipeline(plan, selection=selection, label_col="y", task=task, ranking=plan.report.ranking).fit(df)
    return plan, model


def _vec(model, df, col="features"):
    return model.transform(df).select("id", vector_to_array(col).alias("v"))


def _first(model, df):
    """The first slot as a double column (approximate comparisons need scalars)."""
    return model.transform(df).select("id", vector_to_array("features")[0].alias("x"))


def _rows(spark, rows, schema="id string, v array<double>"):
    return local_frame(spark, rows, schema)


# --- type repair, missing values -------------------------------------------------------------


def test_text_numbers_booleans_and_dates_are_parsed_and_every_coerced_value_is_counted(spark):
    df = local_frame(
        spark, [("1", "10.5", "Yes", "2024-01-31", 1.0), ("2", " ", "no", "2024-13-01", 0.0),
         ("3", "abc", "maybe", None, 1.0), ("4", "7", "TRUE", "2023-06-15", 0.0)],
        "id string, amount string, flag string, signup string, y double")
    features = FeaturesConfig(numeric=["amount", "flag"], dates={"signup": {"parts": ["year", "month"]}})
    plan, model = _fit(df, features, PreprocessingConfig(scale=False, types={"flag": "boolean"}))
    assert plan.report.coerced_to_null == {
        "amount": {"count": 2, "example": " ", "as": "number"},
        "flag": {"count": 1, "example": "maybe", "as": "boolean (yes/no, true/false, y/n, 1/0)"},
        "signup": {"count": 1, "example": "2024-13-01", "as": "date"},
    }
    # (Spark's median of an even count is the lower middle value: 1 of [1, 6])
    out = model.transform(df).select("id", "amount__num", "flag__num", "signup_year__num", "signup_month__imp")
    expected = local_frame(
        spark, [("1", 10.5, 1.0, 2024.0, 1.0), ("2", None, 0.0, None, 1.0), ("3", None, None, None, 1.0), ("4", 7.0, 1.0, 2023.0, 6.0)],
        "id string, amount__num double, flag__num double, signup_year__num double, signup_month__imp double")
    assert_df_equality(out, expected, ignore_nullable=True)


def test_imputation_per_column_per_type_and_missing_indicators(spark):
    df = local_frame(
        spark, [("1", 1.0, 10.0, "a", "p", 1.0), ("2", None, 20.0, None, "q", 0.0), ("3", 5.0, None, "b", None, 1.0),
         ("4", 6.0, 60.0, "b", "q", 0.0)],
        "id string, x double, z double, c string, d string, y double")
    prep = PreprocessingConfig(scale=False, numeric_impute="mean", categorical_impute="mode",
                               impute={"z": {"strategy": "constant", "value": -1}, "d": {"strategy": "constant", "value": "none"}},
                               missing_indicators=True)
    plan, model = _fit(df, FeaturesConfig(numeric=["x", "z"], categorical=["c", "d"]), prep)
    assert plan.indicators == ["x", "z", "c", "d"]  # every feature with a missing training value
    assert plan.report.missing_counts == {"x": 1, "z": 1, "c": 1, "d": 1}
    out = model.transform(df).select("id", "x__imp", "z__imp", "c__fill", "d__fill", "x__missing", "c__missing")
    expected = local_frame(
        spark, [("1", 1.0, 10.0, "a", "p", 0.0, 0.0), ("2", 4.0, 20.0, "b", "q", 1.0, 1.0),
         ("3", 5.0, -1.0, "b", "none", 0.0, 0.0), ("4", 6.0, 60.0, "b", "q", 0.0, 0.0)],
        "id string, x__imp double, z__imp double, c__fill string, d__fill string, x__missing double, c__missing double")
    assert_df_equality(out, expected, ignore_nullable=True)


# --- categorical encodings -------------------------------------------------------------------


def test_rare_levels_are_grouped_and_unseen_levels_join_the_rare_bucket(spark):
    df = local_frame(
        spark, [("1", "a", 1.0), ("2", "a", 0.0), ("3", "a", 1.0), ("4", "b", 0.0), ("5", "b", 1.0), ("6", "c", 0.0), ("7", None, 1.0)],
        "id string, c string, y double")
    prep = PreprocessingConfig(scale=False, rare_levels={"min_count": 2})
    plan, model = _fit(df, FeaturesConfig(categorical=["c"]), prep)
    assert plan.report.fitted["rare_levels"] == {"c": {"levels_kept": 2}}
    new = local_frame(spark, [("8", "a"), ("9", "c"), ("10", "zzz"), ("11", None)], "id string, c string")
    # layout: c=a, c=b, c=__rare__, c=unknown (null)
    out = model.transform(new).select("id", "c__grp", vector_to_array("features").alias("v"))
    expected = local_frame(
        spark, [("8", "a", [1.0, 0.0, 0.0, 0.0]), ("9", "__rare__", [0.0, 0.0, 1.0, 0.0]), ("10", "__rare__", [0.0, 0.0, 1.0, 0.0]),
         ("11", None, [0.0, 0.0, 0.0, 1.0])],
        "id string, c__grp string, v array<double>")
    assert_df_equality(out, expected, ignore_nullable=True)


def test_ordinal_encoding_maps_levels_in_order_and_imputes_unknown_ones(spark):
    df = local_frame(
        spark, [("1", "Month-to-month", 1.0), ("2", "One year", 0.0), ("3", "Two year", 0.0), ("4", "Two year", 0.0)],
        "id string, contract string, y double")
    prep = PreprocessingConfig(scale=False, ordinal={"contract": ["Month-to-month", "One year", "Two year"]})
    plan, model = _fit(df, FeaturesConfig(categorical=["contract"]), prep)
    assert (plan.numeric, plan.categorical) == (["contract"], [])
    new = local_frame(spark, [("5", "One year"), ("6", "Lifetime")], "id string, contract string")
    expected = _rows(spark, [("5", [1.0]), ("6", [1.0])])  # unknown -> missing -> median of 0, 1, 2, 2
    assert_df_equality(_vec(model, new), expected, ignore_nullable=True)


def test_target_encoding_is_the_smoothed_level_mean_with_the_prior_for_unseen_levels(spark):
    df = local_frame(
        spark, [("1", "a", 1.0), ("2", "a", 1.0), ("3", "a", 0.0), ("4", "b", 1.0), ("5", "b", 0.0), ("6", "c", 0.0)],
        "id string, c string, y double")
    prep = PreprocessingConfig(scale=False, target_encoding={"columns": ["c"], "smoothing": 2})
    plan, model = _fit(df, FeaturesConfig(categorical=["c"]), prep)
    assert plan.supervised
    new = local_frame(spark, [("7", "a"), ("8", "b"), ("9", "c"), ("10", "z"), ("11", None)], "id string, c string")
    # prior 3/6; a: (2 + 2 * 0.5) / (3 + 2); b: (1 + 1) / (2 + 2); c: (0 + 1) / (1 + 2)
    expected = _rows(spark, [("7", 0.6), ("8", 0.5), ("9", 1 / 3), ("10", 0.5), ("11", 0.5)], "id string, x double")
    assert_approx_df_equality(_first(model, new), expected, 1e-12, ignore_nullable=True)


# --- numeric transforms ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "expected"),
    [
        ("minmax", [0.0, 0.25, 1.0]),
        ("standard", [(v - 8 / 3) / math.sqrt(39 / 9) for v in (1.0, 2.0, 5.0)]),  # mean 8/3, sample std
        ("robust", [-0.25, 0.0, 0.75]),
    ],
)
def test_scalers(spark, scale, expected):
    df = local_frame(spark, [("1", 1.0, 0.0), ("2", 2.0, 1.0), ("3", 5.0, 0.0)], "id string, x double, y double")
    _, model = _fit(df, FeaturesConfig(numeric=["x"]), PreprocessingConfig(scale=scale))
    rows = _rows(spark, [(str(i + 1), v) for i, v in enumerate(expected)], "id string, x double")
    assert_approx_df_equality(_first(model, df), rows, 1e-12, ignore_nullable=True)


def test_log_and_quantile_clipping(spark):
    df = local_frame(spark, [(str(i), float(v), 0.0) for i, v in enumerate([1, 2, 3, 4, 100], 1)], "id string, x double, y double")
    prep = PreprocessingConfig(scale=False, clip={"columns": ["x"], "lower": 0.25, "upper": 0.75}, log=["x"])
    plan, model = _fit(df, FeaturesConfig(numeric=["x"]), prep)
    assert plan.report.fitted["clip"] == {"x": {"lower": 2.0, "upper": 4.0}}
    expected = _rows(spark, [(str(i), math.log1p(v)) for i, v in enumerate([2, 2, 3, 4, 4], 1)], "id string, x double")
    assert_approx_df_equality(_first(model, df), expected, 1e-12, ignore_nullable=True)


# --- dropping rows and columns ---------------------------------------------------------------


def test_constant_near_constant_id_like_missing_and_listed_columns_are_dropped_with_the_reason(spark):
    rows = [(str(i), "k", "common" if i < 10 else "other", f"cust{i}", None if i < 8 else 1.0, float(i % 3), "zz", float(i % 2))
            for i in range(11)]
    df = local_frame(spark, rows, "id string, const string, near string, code string, sparse double, x double, "
                                     "noise string, y double")
    prep = PreprocessingConfig(scale=False, drop={"columns": ["noise"], "constant": True, "near_constant": 0.9, "id_like": True,
                                                  "max_missing_fraction": 0.5})
    plan, _ = _fit(df, FeaturesConfig(), prep)  # roles inferred from the types
    assert [(d["column"], d["reason"]) for d in plan.report.dropped_columns] == [
        ("noise", "user_listed"), ("sparse", "too_many_missing"), ("const", "constant"), ("near", "near_constant"),
        ("code", "id_like")]
    assert (plan.numeric, plan.categorical, plan.inputs) == (["x"], [], ["x"])
    assert plan.report.dropped_columns[1]["detail"].startswith("72.7% of 11 training rows missing")


def test_duplicates_are_removed_by_row_or_by_key_keeping_the_latest_ingested(spark):
    t1, t2 = dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)
    df = local_frame(spark, [("1", 5.0, t1), ("1", 5.0, t2), ("1", 7.0, t2), ("2", 1.0, t1)],
                               "id string, x double, _ingested_at timestamp")
    rows = df.transform(deduplicate("rows", "id")).select("id", "x")
    assert_df_equality(rows, local_frame(spark, [("1", 5.0), ("1", 7.0), ("2", 1.0)], "id string, x double"),
                       ignore_row_order=True, ignore_nullable=True)
    by_key = df.where(F.col("x") != 7.0).transform(deduplicate("key", "id"))
    expected = local_frame(spark, [("1", 5.0, t2), ("2", 1.0, t1)], "id string, x double, _ingested_at timestamp")
    assert_df_equality(by_key, expected, ignore_row_order=True, ignore_nullable=True)


# --- feature engineering ---------------------------------------------------------------------


def test_derived_sql_date_parts_days_since_and_text_length(spark):
    df = local_frame(
        spark, [("1", "100", 10, "2026-01-01 08:30:00", "hi", 1.0), ("2", " ", 0, "2025-12-30 23:00:00", None, 0.0)],
        "id string, total string, tenure int, seen string, note string, y double")
    features = FeaturesConfig(
        numeric=["tenure"],
        derived={"per_month": "try_cast(total AS DOUBLE) / NULLIF(tenure, 0)",
                 "long_tenure": {"expr": "CASE WHEN tenure > 5 THEN 'yes' ELSE 'no' END", "role": "categorical"}},
        dates={"seen": {"parts": ["day", "day_of_week", "hour", "days_since"]}},
        text_length=["note"])
    plan, model = _fit(df, features)
    assert plan.inputs == ["tenure", "seen", "note", "total"]  # what the model reads (its signature)
    out = model.transform(df).select("id", "per_month", "long_tenure", "seen_day", "seen_day_of_week", "seen_hour",
                                     "seen_days_since", "note_length")
    # days_since: from the latest training date, 2026-01-01 (2026-01-01 is a Thursday: day 5)
    expected = local_frame(
        spark, [("1", 10.0, "yes", 1.0, 5.0, 8.0, 0.0, 2.0), ("2", None, "no", 30.0, 3.0, 23.0, 2.0, 0.0)],
        "id string, per_month double, long_tenure string, seen_day double, seen_day_of_week double, seen_hour double, "
        "seen_days_since double, note_length double")
    assert_df_equality(out, expected, ignore_nullable=True)


def test_free_text_becomes_tfidf_word_weights_inside_the_model(spark):
    import math as m

    from pyspark.ml.feature import HashingTF

    df = local_frame(
        spark, [("1", "App CRASHED, crashed again!", 1.0, 0.0), ("2", "love the app", 2.0, 1.0), ("3", None, 3.0, 0.0),
         ("4", "crashed: a bill", 4.0, 1.0)], "id string, note string, t double, y double")
    features = FeaturesConfig(numeric=["t"], text_tfidf=["note"], text_tfidf_size=64)
    plan, model = _fit(df, features)
    assert plan.inputs == ["t", "note"]  # the text is an input of the model
    vec = {r["id"]: r["v"] for r in _vec(model, df).collect()}
    assert all(len(v) == 1 + 64 for v in vec.values())  # t | 64 hashed word slots
    slot = {w: 1 + HashingTF(numFeatures=64).indexOf(w) for w in ("crashed", "app", "love", "bill")}
    idf = {w: m.log((4 + 1) / (n + 1)) for w, n in (("crashed", 2), ("app", 2), ("love", 1), ("bill", 1))}
    # lower-cased words of 2+ letters; counts x IDF; minDocFreq 2: a word of one row weighs 0
    assert vec["1"][slot["crashed"]] == pytest.approx(2 * idf["crashed"])
    assert vec["1"][slot["app"]] == pytest.approx(idf["app"]) and vec["2"][slot["love"]] == 0.0
    assert sum(vec["3"][1:]) == 0.0  # no text, no words
    names = slot_names(model, df)
    assert names[0] == ("t", "t") and names[slot["app"]] == (f"note words #{slot['app'] - 1}", "note")
    assert {source for _, source in names[1:]} == {"note"}  # importances sum up to the column


def test_fixed_and_quantile_buckets_and_interactions(spark):
    df = local_frame(spark, [("1", 1.0, 10.0, "a", 0.0), ("2", 15.0, 20.0, "b", 1.0), ("3", 30.0, 30.0, "a", 1.0),
                                ("4", 50.0, 40.0, "b", 0.0)], "id string, t double, m double, c string, y double")
    features = FeaturesConfig(numeric=["t", "m"], categorical=["c"],
                              buckets={"t": {"splits": [12, 24], "keep_numeric": False}, "m": {"quantiles": 2}},
                              interactions=[["m", "c"]])
    plan, model = _fit(df, features)
    # layout: m | c=a c=b c=unknown | t buckets (3) | m buckets (2: split at the median, 20) | m * c (3)
    expected = _rows(spark, [
        ("1", [10.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 10.0, 0.0, 0.0]),
        ("2", [20.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 20.0, 0.0]),
        ("3", [30.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 30.0, 0.0, 0.0]),
        ("4", [40.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 40.0, 0.0]),
    ])
    assert_df_equality(_vec(model, df), expected, ignore_nullable=True)
    names = [n for n, _ in slot_names(model, df)]
    assert names == ["m", "c=a", "c=b", "c=__unknown", "t in [-Infinity, 12.0)", "t in [12.0, 24.0)", "t in [24.0, Infinity)",
                     "m in [-Infinity, 20.0)", "m in [20.0, Infinity)", "m_x_c[m * c=a]", "m_x_c[m * c=b]", "m_x_c[m * c=__unknown]"]


# --- feature selection -----------------------------------------------------------------------


def _selection_frame(spark):
    # a tracks y; b = 2a (redundant); z is constant; n is noise
    rows = [(str(i), float(i % 2) + 0.1 * (i % 3), 2 * (float(i % 2) + 0.1 * (i % 3)), 1.0, float((i * 7) % 5), float(i % 2))
            for i in range(12)]
    return local_frame(spark, rows, "id string, a double, b double, z double, n double, y double")


def test_variance_and_correlation_filters_are_ranked_and_fitted_as_slicers(spark):
    df = _selection_frame(spark)
    selection = FeatureSelectionConfig(variance_threshold=0.0, correlation_threshold=0.95)
    plan, model = _fit(df, FeaturesConfig(numeric=["a", "b", "z", "n"]), selection=selection)
    ranking = [(r["step"], r["method"], r["feature"], r["kept"], r["selected"]) for r in plan.report.ranking]
    assert ranking == [
        (1, "variance", "a", True, True), (1, "variance", "b", True, False), (1, "variance", "z", False, False),
        (1, "variance", "n", True, True),
        (2, "correlation", "a", True, True), (2, "correlation", "b", False, False), (2, "correlation", "n", True, True),
    ]
    assert plan.report.ranking[5]["note"].startswith("r = 1.000 with a")
    assert_df_equality(model.transform(df).select("id", vector_to_array("features").alias("v")),
                       df.select("id", F.array("a", "n").alias("v")), ignore_nullable=True)


def test_univariate_and_model_based_selection_keep_the_informative_feature(spark):
    df = _selection_frame(spark)
    selection = FeatureSelectionConfig(univariate={"test": "anova", "mode": "top", "threshold": 2}, model={"method": "lasso", "top": 1})
    plan, model = _fit(df, FeaturesConfig(numeric=["a", "n"], categorical=[]), selection=selection)
    uni = [r for r in plan.report.ranking if r["method"] == "anova"]
    assert [(r["feature"], r["rank"], r["kept"]) for r in uni] == [("a", 1, True), ("n", 2, True)]
    assert uni[0]["p_value"] < 0.001 < uni[1]["p_value"]
    lasso = [(r["feature"], r["rank"], r["kept"]) for r in plan.report.ranking if r["method"] == "lasso"]
    assert lasso == [("a", 1, True), ("n", 2, False)]
    assert_df_equality(model.transform(df).select("id", vector_to_array("features").alias("v")),
                       df.select("id", F.array("a").alias("v")), ignore_nullable=True)


def test_pca_projects_onto_the_requested_components(spark):
    df = _selection_frame(spark)
    plan, model = _fit(df, FeaturesConfig(numeric=["a", "b"]), selection=FeatureSelectionConfig(pca=1))
    assert [(r["feature"], r["method"]) for r in plan.report.ranking] == [("pc1", "pca")]
    assert plan.report.ranking[0]["score"] == pytest.approx(1.0)  # b = 2a: one component explains everything
    assert slot_names(model, df) == [("pc1", "pca")]


# --- the fitted model ------------------------------------------------------------------------


def _everything(spark):
    df = local_frame(
        spark, [("1", "10.5", 3, "a", "Yes", "2024-01-31", "x", 1.0), ("2", " ", 0, "b", "No", "2024-02-01", None, 0.0),
         ("3", "30", 12, "a", "No", None, "yy", 1.0), ("4", "5", 30, "c", "Yes", "2024-03-05", "x", 0.0),
         ("5", "80", 48, "a", "no", "2024-05-01", "zz", 1.0), ("6", "8", 70, "b", "yes", "2024-07-11", "x", 0.0)],
        "id string, total string, tenure int, plan string, partner string, signup string, note string, y double")
    features = FeaturesConfig(numeric=["total", "tenure", "partner"], categorical=["plan", "note"],
                              derived={"per_month": "try_cast(total AS DOUBLE) / NULLIF(tenure, 0)"},
                              dates={"signup": {"parts": ["month", "days_since"]}}, text_length=["note"],
                              buckets={"tenure": {"splits": [12, 24]}}, interactions=[["tenure", "plan"]])
    prep = PreprocessingConfig(scale="robust", types={"partner": "boolean"}, missing_indicators=["total"], log=["total"],
                               clip={"columns": ["per_month"], "lower": 0.1, "upper": 0.9}, rare_levels={"min_count": 2},
                               target_encoding={"columns": ["note"], "smoothing": 1}, categorical_impute="mode")
    selection = FeatureSelectionConfig(variance_threshold=0.0, correlation_threshold=0.99)
    return df, features, prep, selection


def test_fitted_pipeline_round_trips_through_save_and_load_and_holds_only_spark_ml_stages(spark, tmp_path):
    df, features, prep, selection = _everything(spark)
    plan, model = _fit(df, features, prep, selection)
    # the fitted model is plain pyspark.ml: no lakeforge class, no Python UDF
    assert all(type(s).__module__.startswith("pyspark.ml.") for s in model.stages), [type(s) for s in model.stages]
    assert "SQLTransformer" in {type(s).__name__ for s in model.stages}
    for s in model.stages:
        if type(s).__name__ == "SQLTransformer":
            assert "udf" not in s.getStatement().lower()
    model.write().overwrite().save(str(tmp_path / "m"))
    loaded = PipelineModel.load(str(tmp_path / "m"))
    assert [type(s) for s in loaded.stages] == [type(s) for s in model.stages]
    new = df.union(local_frame(spark, [("7", "abc", 5, "zzz", "maybe", "bad", "unseen", None)], df.schema))
    assert_df_equality(_vec(loaded, new), _vec(model, new))
    assert _vec(model, new).where(F.exists("v", lambda x: F.isnan(x))).count() == 0


def test_gold_feature_table_has_the_key_and_one_named_column_per_slot(spark):
    df = local_frame(spark, [("1", 1.0, "a b", 0.0), ("2", 3.0, "c", 1.0)], "id string, x double, c string, y double")
    _, model = _fit(df, FeaturesConfig(numeric=["x"], categorical=["c"]))
    expected = local_frame(spark, [("1", 1.0, 1.0, 0.0, 0.0), ("2", 3.0, 0.0, 1.0, 0.0)],
                                     "id string, x double, c_a_b double, c_c double, c_unknown double")
    assert_df_equality(feature_table(model, df, "id"), expected, ignore_nullable=True)


def test_boolean_and_date_categoricals_are_one_hot_encoded_as_text(spark):
    # StringIndexer takes text and numbers only: a boolean column (is_member) failed the training
    df = local_frame(
        spark, [("1", True, dt.date(2024, 1, 1), 1.0), ("2", False, dt.date(2024, 1, 1), 0.0),
         ("3", None, dt.date(2024, 2, 1), 1.0), ("4", True, None, 0.0)],
        "id string, member boolean, day date, y double")
    plan, model = _fit(df, FeaturesConfig(categorical=["member", "day"]))
    assert plan.as_text == {"member", "day"}
    # layout: member=true, member=false, member unknown; day=2024-01-01, day=2024-02-01, day unknown
    expected = _rows(spark, [("1", [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]), ("2", [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]),
                             ("3", [0.0, 0.0, 1.0, 0.0, 1.0, 0.0]), ("4", [1.0, 0.0, 0.0, 0.0, 0.0, 1.0])])
    assert_df_equality(_vec(model, df), expected, ignore_nullable=True)
    assert [s for _, s in slot_names(model, df)] == ["member"] * 3 + ["day"] * 3


def test_default_plan_keeps_the_original_stages_plus_empty_levels_as_null(spark):
    df = local_frame(spark, [("1", "1", "a", 0.0), ("2", "3", "b", 1.0)], "id string, t string, c string, y double")
    plan, model = _fit(df, FeaturesConfig(numeric=["t"], categorical=["c"]), PreprocessingConfig())
    legacy = preprocessing_pipeline(FeatureRoles(["t"], ["c"]), PreprocessingConfig()).fit(df)
    assert [type(s).__name__ for s in model.stages] == [
        "SQLTransformer", "ImputerModel", "SQLTransformer", "StringIndexerModel", "OneHotEncoderModel", "VectorAssembler",
        "StandardScalerModel", "VectorAssembler"]
    assert model.stages[0].getStatement() == "SELECT *, try_cast(`t` AS DOUBLE) AS `t__num` FROM __THIS__"
    # the one stage added since: an empty text level is missing (Spark's OneHotEncoder cannot name a level '')
    assert model.stages[2].getStatement() == "SELECT *, NULLIF(`c`, '') AS `c__lvl` FROM __THIS__"
    assert_df_equality(_vec(model, df), _vec(legacy, df))
    assert [s for _, s in slot_names(model, df)] == ["t", "c", "c", "c"]


# --- bad input -------------------------------------------------------------------------------


def test_a_config_naming_an_absent_column_names_the_key_the_column_and_the_fix(spark):
    df = local_frame(spark, [("1", 1.0, 0.0)], "id string, x double, y double")
    with pytest.raises(MissingColumnError, match=r"t: preprocessing\.log: column\(s\) 'TotalCharge' not found; available columns: .*"
                                                 r"Fix the column name"):
        plan_features(df, FeaturesConfig(numeric=["x"]), PreprocessingConfig(log=["TotalCharge"]), "id", "y", "t")
    with pytest.raises(InputDataError, match=r"features\.derived\.r: cannot evaluate 'x / tenur'.*tenur.*Fix the expression"):
        plan_features(df, FeaturesConfig(numeric=["x"], derived={"r": "x / tenur"}), PreprocessingConfig(), "id", "y", "t")


def test_a_numeric_transform_on_a_text_column_is_refused(spark):
    df = local_frame(spark, [("1", "Female", 1.0, 0.0), ("2", "Male", 2.0, 1.0)], "id string, gender string, x double, y double")
    with pytest.raises(InputDataError, match=r"preprocessing\.log: column 'gender' is a categorical \(string\) feature; .*"
                                             r"list 'gender' under features\.numeric"):
        plan_features(df, FeaturesConfig(), PreprocessingConfig(log=["gender"]), "id", "y", "t")
    plan = plan_features(df, FeaturesConfig(numeric=["gender", "x"]), PreprocessingConfig(), "id", "y", "t")
    with pytest.raises(InputDataError, match=r"column 'gender' is used as a numeric feature but none of its 2 values is a number "
                                             r"\(e\.g\. '(Female|Male)'\); list it under features\.categorical"):
        feature_statistics(plan, df, "t")


def test_an_all_null_column_is_refused_unless_a_drop_rule_removes_it(spark):
    df = local_frame(spark, [("1", None, 1.0, 0.0), ("2", None, 2.0, 1.0)], "id string, empty string, x double, y double")
    plan = plan_features(df, FeaturesConfig(), PreprocessingConfig(), "id", "y", "t")
    with pytest.raises(InputDataError, match=r"feature 'empty' is null in all 2 training rows; .*preprocessing\.drop\.columns"):
        feature_statistics(plan, df, "t")
    prep = PreprocessingConfig(drop={"max_missing_fraction": 0.9})
    plan = feature_statistics(plan_features(df, FeaturesConfig(), prep, "id", "y", "t"), df, "t")
    assert [(d["column"], d["reason"]) for d in plan.report.dropped_columns] == [("empty", "too_many_missing")]


def test_a_target_with_one_class_is_refused(spark):
    df = local_frame(spark, [("1", 1.0, "Yes"), ("2", 2.0, "Yes")], "id string, x double, churn string")
    pipe = load_pipeline(ROOT / "conf" / "pipelines" / "telco_churn.yaml").model_copy(update={"target": "churn"})
    with pytest.raises(InputDataError, match=r"target 'churn' is constant \('Yes' in every row\); nothing to learn"):
        infer_target(df, pipe, "t")


def test_options_are_validated_at_start_up_with_their_key_path(tmp_path):
    import yaml

    data = yaml.safe_load((ROOT / "conf" / "pipelines" / "telco_churn.yaml").read_text())
    data["preprocessing"]["rare_levels"] = {"min_cont": 5}
    data["selection"] = {"univariate": {"mode": "fdr", "threshold": 5}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as exc:
        load_pipeline(path)
    assert "preprocessing.rare_levels.min_cont: unknown key" in str(exc.value)
    assert "selection.univariate: mode 'fdr' needs a threshold between 0 and 1" in str(exc.value)
    data = yaml.safe_load((ROOT / "conf" / "pipelines" / "telco_churn.yaml").read_text())
    data["preprocessing"]["log"] = ["Contract"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"log: 'Contract' is a categorical \(text\) feature"):
        load_pipeline(path)


def test_the_features_example_config_is_valid():
    pipe = load_pipeline(ROOT / "conf" / "pipelines" / "telco_churn_features.yaml")
    assert pipe.features.derived and pipe.features.buckets and pipe.preprocessing.rare_levels and pipe.selection.enabled


# --- wired into training ---------------------------------------------------------------------


@pytest.mark.slow
def test_training_logs_the_reports_writes_the_ranking_and_the_gold_feature_table(spark, settings, tmp_path):
    from mlflow import MlflowClient

    from conftest import write_pipeline
    from lakeforge.core.io import write_table
    from lakeforge.training.job import train

    rows = [(str(i), float(i % 10), ["a", "b", "c"][i % 3], " " if i % 17 == 0 else str(i * 3), "k",
             "yes" if (i % 10) + 3 * (i % 3 == 0) > 6 else "no") for i in range(90)]
    bronze = local_frame(spark, rows, "id string, x double, plan string, total string, const string, y string")
    write_table(bronze, settings.table("prep_e2e_bronze"))
    pipe = load_pipeline(write_pipeline(
        tmp_path, name="prep_e2e", key="id", target="y", positive_class="yes",
        **{"tables.bronze": "prep_e2e_bronze", "tables.predictions": "prep_e2e_predictions", "tables.leaderboard": None,
           "tables.features": "prep_e2e_gold", "model.registered_name": "prep_e2e", "model.folds": 2,
           "model.algorithms": {"logistic_regression": {"regParam": [0.01]}},
           "features": {"numeric": ["x", "total"], "categorical": ["plan", "const"]},
           "preprocessing": {"missing_indicators": ["total"], "drop": {"constant": True},
                             "target_encoding": {"columns": ["plan"], "smoothing": 5}},
           "selection": {"correlation_threshold": 0.99, "univariate": {"mode": "top", "threshold": 2}}}))
    res = train(spark, settings, pipe, "p1", dt.date(2026, 5, 1))
    prep = res.preprocessing
    assert prep["dropped_columns"] == [{"column": "const", "reason": "constant",
                                        "detail": f"one value in all {prep['rows_profiled']} non-missing training rows"}]
    assert prep["coerced_to_null"] == {"total": {"count": 6, "example": " ", "as": "number"}}
    ranking = spark.table(settings.table("feature_ranking_prep_e2e"))
    assert ranking.count() == len(prep["ranking"]) > 0
    assert {r.method for r in ranking.select("method").distinct().collect()} == {"correlation", "anova"}
    assert ranking.where("selected").select("feature").distinct().count() == 2
    gold = spark.table(settings.table("prep_e2e_gold"))
    # y depends on x and on plan 'a': the ANOVA step keeps those two (plan as its target encoding)
    assert [(r["feature"], r["rank"], r["kept"]) for r in prep["ranking"] if r["method"] == "anova"] == [
        ("x", 1, True), ("total", 4, False), ("plan", 2, True), ("total missing", 3, False)]
    assert gold.columns == ["id", "x", "plan"]
    assert gold.count() == 90
    client = MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(res.mlflow_run_id)}
    assert {"preprocessing.json", "feature_ranking.json"} <= artifacts
    assert "report/feature_ranking.png" in {a.path for a in client.list_artifacts(res.mlflow_run_id, "report")}
    assert client.get_run(res.mlflow_run_id).data.params["prep.dropped_columns"] == '{"const": "constant"}'
    import mlflow.spark

    model = mlflow.spark.load_model(res.model.uri)  # PipelineModel.load of the logged files (not the process's cached model)
    assert all(type(s).__module__.startswith("pyspark.ml.") for s in model.stages)
