"""Scoring's pure steps (lakeforge.scoring.transforms) on inline rows, with exact assertions: the
prediction columns per task, passthrough columns, the incremental filter, the signature
check and the null-input check. The model is a stand-in that adds the columns a fitted PipelineModel's last stages add;
the scoring job end to end (registry, Delta writes, backfills) is in test_scheduling.py."""

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.ml.functions import array_to_vector
from pyspark.sql import functions as F

from lakeforge.core.errors import InputDataError
from lakeforge.core.frames import local_frame
from lakeforge.core.tracking import ModelRef
from lakeforge.scoring.transforms import (
    changed_since,
    check_signature,
    input_null_counts,
    null_input_problem,
    with_predictions,
)

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
    df = local_frame(spark, rows, "id string, p double, tenure int")
    out = df.transform(with_predictions(model, "id", REF, DAY, list(passthrough), task))
    assert dict(out.dtypes)["scored_at"] == "timestamp"
    return out.drop("scored_at")


def test_binary_score_is_p_positive_and_the_label_comes_from_the_models_prediction(spark):
    model = _Model(probability=array_to_vector(F.array(1 - F.col("p"), F.col("p"))),
                   prediction=(F.col("p") > 0.6).cast("double"))
    out = _scored(spark, [("a", 0.25, 1), ("b", 0.75, 2)], model, "binary")
    expected = local_frame(
        spark, [("a", 0.25, 0, "churn", "7", DAY), ("b", 0.75, 1, "churn", "7", DAY)],
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
    expected = local_frame(
        spark, [("a", 0.5, "b", "churn", "7", DAY), ("b", 0.625, "c", "churn", "7", DAY)],
        "id string, score double, predicted_label string, model_name string, model_version string, run_date date")
    assert_df_equality(out, expected, ignore_nullable=True)
    # a classifier without probabilities: no score, the label still
    out = _scored(spark, [("a", 0.5, 1)], _Model(predicted_class=F.lit("b")), "multiclass")
    assert [tuple(r) for r in out.select("score", "predicted_label").collect()] == [(None, "b")]


def test_regression_score_is_the_prediction_and_there_is_no_label(spark):
    out = _scored(spark, [("a", 0.5, 3)], _Model(prediction=F.col("tenure") * 2.5), "regression")
    expected = local_frame(spark, [("a", 7.5, "churn", "7", DAY)],
                                     "id string, score double, model_name string, model_version string, run_date date")
    assert_df_equality(out, expected, ignore_nullable=True)


def test_passthrough_columns_are_the_input_values_even_when_the_model_rewrites_them(spark):
    # a preprocessing stage that rewrites an input column (e.g. imputation, clipping) in place
    model = _Model(tenure=F.lit(0), prediction=F.lit(1.5))
    out = _scored(spark, [("a", 0.5, 3), ("b", 0.5, None)], model, "regression", passthrough=["tenure", "p"])
    expected = local_frame(
        spark, [("a", 3, 0.5, 1.5, "churn", "7", DAY), ("b", None, 0.5, 1.5, "churn", "7", DAY)],
        "id string, tenure int, p double, score double, model_name string, model_version string, run_date date")
    assert_df_equality(out, expected, ignore_nullable=True)


def test_changed_since_keeps_new_and_changed_rows_and_ignores_ingestion_metadata(spark):
    schema = "id string, x int, y string, _ingested_at timestamp, _run_id string"
    t1, t2 = dt.datetime(2026, 1, 1), dt.datetime(2026, 2, 1)
    base = local_frame(spark, [("a", 1, "u", t1, "r1"), ("b", 2, "v", t1, "r1"), ("c", 3, None, t1, "r1")], schema)
    now = local_frame(
        spark, [("a", 1, "u", t2, "r2"),     # only reloaded: metadata differs, content does not
         ("b", 5, "v", t2, "r2"),     # changed
         ("c", 3, "w", t2, "r2"),     # null -> value: changed
         ("d", 4, "x", t2, "r2")],    # new
        schema)
    out = now.transform(changed_since(base, "id"))
    assert_df_equality(out, now.where("id IN ('b', 'c', 'd')"), ignore_row_order=True)
    assert now.transform(changed_since(now, "id")).count() == 0  # nothing changed


def test_changed_since_counts_everything_as_changed_after_a_schema_change(spark):
    base = local_frame(spark, [("a", 1)], "id string, x int")
    now = local_frame(spark, [("a", 1, "new")], "id string, x int, z string")
    assert_df_equality(now.transform(changed_since(base, "id")), now)


def test_signature_check_names_the_missing_columns(spark):
    df = local_frame(spark, [("a", 1, "x")], "id string, tenure int, extra string")
    check_signature(df, ["tenure"], REF, "lakeforge.t", ["id"])  # extra columns are fine
    check_signature(df, None, REF, "lakeforge.t", ["id"])  # a model logged without a signature
    with pytest.raises(InputDataError) as exc:
        check_signature(df, ["tenure", "Contract", "gender"], REF, "lakeforge.t", ["id", "segment"])
    assert str(exc.value) == ("input table lakeforge.t lacks column(s) ['segment', 'Contract', 'gender'] that model "
                              "churn version 7 needs; nothing was written")


def test_input_null_counts_count_nulls_and_nans_in_one_aggregation(spark):
    df = local_frame(
        spark, [("a", None, float("nan"), None), ("b", 2, 1.0, None), ("c", None, None, "x")],
        "id string, tenure int, charges double, `odd name` string")
    assert input_null_counts(df, ["tenure", "charges", "odd name"]) == (3, {"tenure": 2, "charges": 2, "odd name": 2})
    assert input_null_counts(df.where("false"), ["tenure"]) == (0, {"tenure": 0})


def test_a_column_null_in_every_row_is_a_problem_when_training_had_it():
    # the finding: a renamed column under schema_evolution, null in all rows of the new version
    training = {"tenure": 0.0, "Contract": 0.0, "TotalCharges": 0.0016}
    assert null_input_problem(7043, {"tenure": 7043, "Contract": 0, "TotalCharges": 11}, training) == (
        "model input column(s) null in all 7,043 rows to score: tenure (training: 0.0%)")
    # without the training shares (a model trained before they were kept): all-null still counts
    assert null_input_problem(7043, {"tenure": 7043, "Contract": 0}, None) == (
        "model input column(s) null in all 7,043 rows to score: tenure")
    assert null_input_problem(100, {"tenure": 100}, {"Contract": 0.0}) == (
        "model input column(s) null in all 100 rows to score: tenure")
    assert null_input_problem(7043, {"tenure": 0, "Contract": 12}, training) is None


def test_a_null_share_far_above_trainings_is_a_problem_and_a_small_rise_is_not():
    training = {"tenure": 0.05, "Contract": 0.30, "notes": 0.9}
    assert null_input_problem(1000, {"tenure": 560, "Contract": 790, "notes": 1000}, training) == (
        "null far more often than in training: tenure 56.0% of 1,000 rows (training: 5.0%)")
    # exactly 0.5 above is not "more than 0.5 above"; a column mostly null in training may be all null
    assert null_input_problem(1000, {"tenure": 550, "Contract": 800, "notes": 1000}, training) is None
    both = null_input_problem(40, {"tenure": 40, "Contract": 40}, {"tenure": 0.0, "Contract": 0.2})
    assert both == "model input column(s) null in all 40 rows to score: tenure (training: 0.0%), Contract (training: 20.0%)"
    both = null_input_problem(40, {"tenure": 40, "Contract": 32}, {"tenure": 0.0, "Contract": 0.2})
    assert both == ("model input column(s) null in all 40 rows to score: tenure (training: 0.0%); "
                    "null far more often than in training: Contract 80.0% of 40 rows (training: 20.0%)")


def test_too_few_rows_to_score_give_no_verdict():
    assert null_input_problem(19, {"tenure": 19}, {"tenure": 0.0}) is None
    assert null_input_problem(0, {"tenure": 0}, None) is None
    assert null_input_problem(20, {"tenure": 20}, {"tenure": 0.0}) is not None
