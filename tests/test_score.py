"""Scoring's pure steps (lakeforge.scoring.transforms) on inline rows, with exact assertions: the
prediction columns per task, passthrough columns, the incremental filter and the signature
check. The model is a stand-in that adds the columns a fitted PipelineModel's last stages add;
the scoring job end to end (registry, Delta writes, backfills) is in test_scheduling.py."""

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.ml.functions import array_to_vector
from pyspark.sql import functions as F

from lakeforge.core.errors import InputDataError
from lakeforge.core.tracking import ModelRef
from lakeforge.scoring.transforms import changed_since, check_signature, with_predictions

REF = ModelRef("churn", "7", "champion")
DAY = dt.date(2026, 5, 1)


class _Model:
    """A fitted model's stand-in: ``transform`` adds (or replaces) the given columns."""

    def __init__(self, **columns):
        self.columns = columns

    def transform(self, df):
        for name, column in self.columns.items():
            df = df.withColumn(name, column)
        return df


def _scored(spark, rows, model, task, passthrough=()):
    df = spark.createDataFrame(rows, "id string, p double, tenure int")
    out = df.transform(with_predictions(model, "id", REF, DAY, list(passthrough), task))
    assert dict(out.dtypes)["scored_at"] == "timestamp"
    return out.drop("scored_at")


def test_binary_score_is_p_positive_and_the_label_comes_from_the_models_prediction(spark):
    model = _Model(probability=array_to_vector(F.array(1 - F.col("p"), F.col("p"))),
                   prediction=(F.col("p") > 0.6).cast("double"))
    out = _scored(spark, [("a", 0.25, 1), ("b", 0.75, 2)], model, "binary")
    expected = spark.createDataFrame(
        [("a", 0.25, 0, "churn", "7", DAY), ("b", 0.75, 1, "churn", "7", DAY)],
        "id string, score double, predicted_label int, model_name string, model_version string, run_date date")
    assert_df_equality(out, expected, ignore_nullable=True)


def test_binary_score_without_probability_is_the_sigmoid_of_the_margin(spark):
    # linear SVC: only a raw margin
    model = _Model(rawPrediction=array_to_vector(F.array(-F.col("p"), F.col("p"))), prediction=F.lit(1.0))
    out = _scored(spark, [("a", 0.0, 1)], model, "binary")
    assert [tuple(r) for r in out.select("score", "predicted_label").collect()] == [(0.5, 1)]


def test_multiclass_score_is_the_predicted_class_probability_and_the_label_its_name(spark):
    model = _Model(probability=array_to_vector(F.array(F.lit(0.25), F.col("p"), 0.75 - F.col("p"))),
                   predicted_class=F.when(F.col("p") > 0.25, "b").otherwise("c"))
    out = _scored(spark, [("a", 0.5, 1), ("b", 0.125, 2)], model, "multiclass")
    expected = spark.createDataFrame(
        [("a", 0.5, "b", "churn", "7", DAY), ("b", 0.625, "c", "churn", "7", DAY)],
        "id string, score double, predicted_label string, model_name string, model_version string, run_date date")
    assert_df_equality(out, expected, ignore_nullable=True)
    # a classifier without probabilities: no score, the label still
    out = _scored(spark, [("a", 0.5, 1)], _Model(predicted_class=F.lit("b")), "multiclass")
    assert [tuple(r) for r in out.select("score", "predicted_label").collect()] == [(None, "b")]


def test_regression_score_is_the_prediction_and_there_is_no_label(spark):
    out = _scored(spark, [("a", 0.5, 3)], _Model(prediction=F.col("tenure") * 2.5), "regression")
    expected = spark.createDataFrame([("a", 7.5, "churn", "7", DAY)],
                                     "id string, score double, model_name string, model_version string, run_date date")
    assert_df_equality(out, expected, ignore_nullable=True)


def test_passthrough_columns_are_the_input_values_even_when_the_model_rewrites_them(spark):
    # a preprocessing stage that rewrites an input column (e.g. imputation, clipping) in place
    model = _Model(tenure=F.lit(0), prediction=F.lit(1.5))
    out = _scored(spark, [("a", 0.5, 3), ("b", 0.5, None)], model, "regression", passthrough=["tenure", "p"])
    expected = spark.createDataFrame(
        [("a", 3, 0.5, 1.5, "churn", "7", DAY), ("b", None, 0.5, 1.5, "churn", "7", DAY)],
        "id string, tenure int, p double, score double, model_name string, model_version string, run_date date")
    assert_df_equality(out, expected, ignore_nullable=True)


def test_changed_since_keeps_new_and_changed_rows_and_ignores_ingestion_metadata(spark):
    schema = "id string, x int, y string, _ingested_at timestamp, _run_id string"
    t1, t2 = dt.datetime(2026, 1, 1), dt.datetime(2026, 2, 1)
    base = spark.createDataFrame([("a", 1, "u", t1, "r1"), ("b", 2, "v", t1, "r1"), ("c", 3, None, t1, "r1")], schema)
    now = spark.createDataFrame(
        [("a", 1, "u", t2, "r2"),     # only reloaded: metadata differs, content does not
         ("b", 5, "v", t2, "r2"),     # changed
         ("c", 3, "w", t2, "r2"),     # null -> value: changed
         ("d", 4, "x", t2, "r2")],    # new
        schema)
    out = now.transform(changed_since(base, "id"))
    assert_df_equality(out, now.where("id IN ('b', 'c', 'd')"), ignore_row_order=True)
    assert now.transform(changed_since(now, "id")).count() == 0  # nothing changed


def test_changed_since_counts_everything_as_changed_after_a_schema_change(spark):
    base = spark.createDataFrame([("a", 1)], "id string, x int")
    now = spark.createDataFrame([("a", 1, "new")], "id string, x int, z string")
    assert_df_equality(now.transform(changed_since(base, "id")), now)


def test_signature_check_names_the_missing_columns(spark):
    df = spark.createDataFrame([("a", 1, "x")], "id string, tenure int, extra string")
    check_signature(df, ["tenure"], REF, "lakeforge.t", ["id"])  # extra columns are fine
    check_signature(df, None, REF, "lakeforge.t", ["id"])  # a model logged without a signature
    with pytest.raises(InputDataError) as exc:
        check_signature(df, ["tenure", "Contract", "gender"], REF, "lakeforge.t", ["id", "segment"])
    assert str(exc.value) == ("input table lakeforge.t lacks column(s) ['segment', 'Contract', 'gender'] that model "
                              "churn version 7 needs; nothing was written")
