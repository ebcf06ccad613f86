"""Transforms on inline rows with exact (chispa) assertions."""

import datetime as dt

import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F

from lakeforge.config import FeaturesConfig, PreprocessingConfig
from lakeforge.errors import InputDataError
from lakeforge.evaluation import evaluate_binary
from lakeforge.features import FeatureRoles, preprocessing_pipeline, resolve_roles
from lakeforge.ingest import with_ingest_metadata
from lakeforge.train import Target, label_column, split_by_key


def test_ingest_metadata_columns(spark, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,x\na,1\nb,2\n")
    df = spark.read.option("header", True).csv(str(src))
    out = df.transform(with_ingest_metadata("run-1", dt.date(2026, 1, 2)))
    assert out.columns == ["id", "x", "_ingested_at", "_source_file", "_run_id", "_run_date"]
    expected = spark.createDataFrame(
        [("a", "1", "run-1", dt.date(2026, 1, 2), True), ("b", "2", "run-1", dt.date(2026, 1, 2), True)],
        "id string, x string, _run_id string, _run_date date, from_file boolean",
    )
    actual = out.select("id", "x", "_run_id", "_run_date", F.col("_source_file").endswith("/in.csv").alias("from_file"))
    assert_df_equality(actual, expected, ignore_nullable=True, ignore_row_order=True)
    assert out.where(F.col("_ingested_at").isNull()).count() == 0


def test_ingest_metadata_refuses_to_overwrite_existing_columns(spark):
    df = spark.createDataFrame([("a", "x")], "id string, _run_id string")
    with pytest.raises(InputDataError, match=r"_run_id"):
        df.transform(with_ingest_metadata("r", dt.date(2026, 1, 1), "label"))


def test_with_label_maps_positive_class_and_drops_null_targets(spark):
    df = spark.createDataFrame([("a", "Yes"), ("b", "No"), ("c", None)], "id string, Churn string")
    expected = spark.createDataFrame([("a", "Yes", 1.0), ("b", "No", 0.0)], "id string, Churn string, label double")
    target = Target("binary", ["not Yes", "Yes"], "Yes")
    assert_df_equality(label_column(df, "Churn", target), expected, ignore_nullable=True)


def test_resolve_roles_by_type_when_not_configured(spark):
    df = spark.createDataFrame([("k", 1, 2.0, "x", "Yes", "r")], "id string, n int, d double, c string, y string, _run_id string")
    roles = resolve_roles(df, FeaturesConfig(), key="id", target="y")
    assert roles == FeatureRoles(numeric=["n", "d"], categorical=["c"])


def test_text_numbers_are_parsed_and_blanks_imputed_with_the_median(spark):
    # Telco's TotalCharges: text, blank for new customers.
    train = spark.createDataFrame(
        [("1", "10.0", "a"), ("2", " ", "a"), ("3", "30.5", "b"), ("4", "20", "b"), ("5", None, "a")],
        "id string, total string, plan string",
    )
    model = preprocessing_pipeline(FeatureRoles(["total"], ["plan"]), PreprocessingConfig(scale=False)).fit(train)
    out = model.transform(train).select("id", "total__num", "total__imp")
    expected = spark.createDataFrame(
        [("1", 10.0, 10.0), ("2", None, 20.0), ("3", 30.5, 30.5), ("4", 20.0, 20.0), ("5", None, 20.0)],
        "id string, total__num double, total__imp double",
    )
    assert_approx_df_equality(out, expected, 1e-9, ignore_nullable=True)


def test_feature_vector_layout_and_unseen_categories(spark):
    train = spark.createDataFrame([("1", 1.0, "a"), ("2", 3.0, "a"), ("3", 5.0, "b")], "id string, x double, c string")
    model = preprocessing_pipeline(FeatureRoles(["x"], ["c"]), PreprocessingConfig(scale=False)).fit(train)
    # Layout: [x, c=a, c=b, c=unknown]. 'a' is the most frequent level (index 0); 'z' was never
    # seen and null is missing: both go to the indexer's extra "unknown" slot. x's null -> median.
    new = spark.createDataFrame([("9", 2.0, "a"), ("10", 4.0, "z"), ("11", None, None)], "id string, x double, c string")
    out = model.transform(new).select("id", vector_to_array("features").alias("v"))
    expected = spark.createDataFrame(
        [("9", [2.0, 1.0, 0.0, 0.0]), ("10", [4.0, 0.0, 0.0, 1.0]), ("11", [3.0, 0.0, 0.0, 1.0])],
        "id string, v array<double>",
    )
    assert_df_equality(out, expected, ignore_nullable=True)


def test_scaling_divides_numerics_by_the_standard_deviation_and_keeps_one_hot_columns(spark):
    train = spark.createDataFrame([("1", 1.0, "a"), ("2", 3.0, "b")], "id string, x double, c string")
    model = preprocessing_pipeline(FeatureRoles(["x"], ["c"]), PreprocessingConfig(scale=True)).fit(train)
    out = model.transform(train).select("id", vector_to_array("features").alias("v"))
    std = 2 ** 0.5  # sample std of [1, 3]
    expected = spark.createDataFrame([("1", [1.0 / std, 1.0, 0.0, 0.0]), ("2", [3.0 / std, 0.0, 1.0, 0.0])],
                                     "id string, v array<double>")
    assert_approx_df_equality(out, expected, 1e-9, ignore_nullable=True)


def test_fitted_pipeline_round_trips_through_save_and_load(spark, tmp_path):
    train = spark.createDataFrame(
        [("1", " ", "a"), ("2", "2.5", "b"), ("3", "7", "a"), ("4", "1", "c")], "id string, t string, c string"
    )
    model = preprocessing_pipeline(FeatureRoles(["t"], ["c"]), PreprocessingConfig()).fit(train)
    model.write().overwrite().save(str(tmp_path / "m"))
    loaded = PipelineModel.load(str(tmp_path / "m"))
    cols = ["id", vector_to_array("features").alias("v")]
    assert_df_equality(loaded.transform(train).select(*cols), model.transform(train).select(*cols))


def test_split_by_key_is_deterministic_and_close_to_the_fraction(spark):
    df = spark.range(20000).select(F.col("id").cast("string").alias("k"))
    a = df.where(split_by_key("k", 0.2, 42)).select("k")
    b = df.where(split_by_key("k", 0.2, 42)).select("k")
    assert_df_equality(a, b, ignore_row_order=True)
    assert 0.19 < a.count() / 20000 < 0.21
    assert df.where(split_by_key("k", 0.2, 7)).select("k").exceptAll(a).count() > 0  # the seed matters


def test_binary_metrics_counts(spark):
    from pyspark.ml.linalg import Vectors

    rows = [  # label, rawPrediction (margin for class 1 = second entry), prediction
        (1.0, Vectors.dense([-2.0, 2.0]), 1.0),
        (1.0, Vectors.dense([1.0, -1.0]), 0.0),
        (0.0, Vectors.dense([-0.5, 0.5]), 1.0),
        (0.0, Vectors.dense([3.0, -3.0]), 0.0),
        (0.0, Vectors.dense([2.0, -2.0]), 0.0),
    ]
    df = spark.createDataFrame(rows, ["label", "rawPrediction", "prediction"])
    ev = evaluate_binary(df)  # no probability column (linear SVC): sigmoid of the margin
    m = ev.metrics
    assert ev.confusion == [[2, 1], [1, 1]]  # [[tn, fp], [fn, tp]]
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.5)
    # ranking: positives have scores 2 and -1; negatives 0.5, -3, -2 -> 5 of 6 pairs ordered
    assert m["roc_auc"] == pytest.approx(5 / 6)
