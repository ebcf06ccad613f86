"""Transforms on inline rows with exact (chispa) assertions."""

import datetime as dt

import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from lakeforge.core.config_features import FeaturesConfig, PreprocessingConfig
from lakeforge.core.config_model import ModelConfig
from lakeforge.core.config_source import SourceConfig
from lakeforge.core.frames import local_frame
from lakeforge.training.evaluation import evaluate_binary
from lakeforge.features.pipeline import preprocessing_pipeline
from lakeforge.features.plan import FeatureRoles, resolve_roles
from lakeforge.core.names import normalise_names
from lakeforge.ingest.types import typed_with_reason
from lakeforge.core.columns import FOLD_COL, LABEL_COL
from lakeforge.training.split import split_by_key, split_rows
from lakeforge.training.target import Target, label_column


def test_column_names_are_normalised_to_stable_identifiers():
    names = ["Customer ID", "monthly.charges", "2nd", "Total Charges", "total_charges", "ok_name", "a-b"]
    assert normalise_names(names) == {
        "Customer ID": "Customer_ID", "monthly.charges": "monthly_charges", "2nd": "_2nd",
        "Total Charges": "Total_Charges", "total_charges": "total_charges_2", "ok_name": "ok_name", "a-b": "a_b",
    }
    assert normalise_names(["CustomerID", "MonthlyCharges", "Total Charges", "tenure"], "snake") == {
        "CustomerID": "customer_id", "MonthlyCharges": "monthly_charges", "Total Charges": "total_charges", "tenure": "tenure"}
    # accents folded, other scripts kept, so the names stay readable and distinct
    assert normalise_names(["kündigt", "Größe (cm)", "naïve café", "Возраст", "年龄", "हिन्दी नाम", "m²"]) == {
        "kündigt": "kundigt", "Größe (cm)": "Grosse_cm", "naïve café": "naive_cafe", "Возраст": "Возраст",
        "年龄": "年龄", "हिन्दी नाम": "हिन्दी_नाम", "m²": "m2"}
    assert normalise_names(["cafe\u0301"]) == {"cafe\u0301": "cafe"}  # a decomposed accent too


def test_typed_with_reason_names_the_column_and_value(spark):
    raw = local_frame(
        spark, [("1", "2.5", "2024-01-01", None, "f.csv"), ("x", "3", "2024-13-01", None, "f.csv"),
         ("2", " ", None, None, "f.csv"), (None, None, None, "1,2,3,4", "f.csv")],
        "id string, amount string, day string, _corrupt_record string, _source string",
    ).withColumn("_position", F.lit(None).cast("long"))
    src = SourceConfig(format="csv", path="f.csv")
    out = typed_with_reason(raw, StructType.fromDDL("id int, amount double, day date"), src, text=True)
    expected = local_frame(
        spark, [(1, 2.5, dt.date(2024, 1, 1), None),
         (None, 3.0, None, "column id: 'x' is not a valid int; column day: '2024-13-01' is not a valid date"),
         (2, None, None, None),
         (None, None, None, "malformed CSV record (wrong number of fields or unbalanced quotes)")],
        "id int, amount double, day date, _reason string",
    )
    assert_df_equality(out.select("id", "amount", "day", "_reason"), expected, ignore_nullable=True)
    raws = [r["_raw"] for r in out.collect()]
    assert raws[3] == "1,2,3,4" and '"id":"x"' in raws[1]


def test_default_positive_class_is_a_yes_word_else_the_minority():
    from lakeforge.profiling.frame import default_positive

    assert default_positive(["nein", "ja"], dict) == "ja"
    assert default_positive(["f", "t"], dict) == "t"
    assert default_positive(["No", "Yes"], dict) == "Yes"
    assert default_positive(["b", "a"], lambda: {"a": 10, "b": 3}) == "b"


def test_with_label_maps_positive_class_and_drops_null_targets(spark):
    df = local_frame(spark, [("a", "Yes"), ("b", "No"), ("c", None)], "id string, Churn string")
    expected = local_frame(spark, [("a", "Yes", 1.0), ("b", "No", 0.0)], "id string, Churn string, label double")
    target = Target("binary", ["not Yes", "Yes"], "Yes")
    assert_df_equality(label_column(df, "Churn", target), expected, ignore_nullable=True)


def test_resolve_roles_by_type_when_not_configured(spark):
    df = local_frame(spark, [("k", 1, 2.0, "x", "Yes", "r")], "id string, n int, d double, c string, y string, _run_id string")
    roles = resolve_roles(df, FeaturesConfig(), key="id", target="y")
    assert roles == FeatureRoles(numeric=["n", "d"], categorical=["c"])


def test_text_numbers_are_parsed_and_blanks_imputed_with_the_median(spark):
    # Telco's TotalCharges: text, blank for new customers.
    train = local_frame(
        spark, [("1", "10.0", "a"), ("2", " ", "a"), ("3", "30.5", "b"), ("4", "20", "b"), ("5", None, "a")],
        "id string, total string, plan string",
    )
    model = preprocessing_pipeline(FeatureRoles(["total"], ["plan"]), PreprocessingConfig(scale=False)).fit(train)
    out = model.transform(train).select("id", "total__num", "total__imp")
    expected = local_frame(
        spark, [("1", 10.0, 10.0), ("2", None, 20.0), ("3", 30.5, 30.5), ("4", 20.0, 20.0), ("5", None, 20.0)],
        "id string, total__num double, total__imp double",
    )
    assert_approx_df_equality(out, expected, 1e-9, ignore_nullable=True)


def test_feature_vector_layout_and_unseen_categories(spark):
    train = local_frame(spark, [("1", 1.0, "a"), ("2", 3.0, "a"), ("3", 5.0, "b")], "id string, x double, c string")
    model = preprocessing_pipeline(FeatureRoles(["x"], ["c"]), PreprocessingConfig(scale=False)).fit(train)
    # Layout: [x, c=a, c=b, c=unknown]. 'a' is the most frequent level (index 0); 'z' was never
    # seen and null is missing: both go to the indexer's extra "unknown" slot. x's null -> median.
    new = local_frame(spark, [("9", 2.0, "a"), ("10", 4.0, "z"), ("11", None, None)], "id string, x double, c string")
    out = model.transform(new).select("id", vector_to_array("features").alias("v"))
    expected = local_frame(
        spark, [("9", [2.0, 1.0, 0.0, 0.0]), ("10", [4.0, 0.0, 0.0, 1.0]), ("11", [3.0, 0.0, 0.0, 1.0])],
        "id string, v array<double>",
    )
    assert_df_equality(out, expected, ignore_nullable=True)


def test_scaling_divides_numerics_by_the_standard_deviation_and_keeps_one_hot_columns(spark):
    train = local_frame(spark, [("1", 1.0, "a"), ("2", 3.0, "b")], "id string, x double, c string")
    model = preprocessing_pipeline(FeatureRoles(["x"], ["c"]), PreprocessingConfig(scale=True)).fit(train)
    out = model.transform(train).select("id", vector_to_array("features").alias("v"))
    std = 2 ** 0.5  # sample std of [1, 3]
    expected = local_frame(spark, [("1", [1.0 / std, 1.0, 0.0, 0.0]), ("2", [3.0 / std, 0.0, 1.0, 0.0])],
                                     "id string, v array<double>")
    assert_approx_df_equality(out, expected, 1e-9, ignore_nullable=True)


def test_fitted_pipeline_round_trips_through_save_and_load(spark, tmp_path):
    train = local_frame(
        spark, [("1", " ", "a"), ("2", "2.5", "b"), ("3", "7", "a"), ("4", "1", "c")], "id string, t string, c string"
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


def test_classification_split_and_folds_are_stratified(spark):
    # classes of 1, 2, 7, 40 and 3,000 rows; the hash order puts rows anywhere
    sizes = {0.0: 3000, 1.0: 40, 2.0: 7, 3.0: 2, 4.0: 1}
    rows = [(f"k{c:.0f}-{i}", c) for c, n in sizes.items() for i in range(n)]
    labelled = local_frame(spark, rows, f"k string, {LABEL_COL} double").cache()

    def counts(df, *cols):
        return {tuple(r[:-1]): r[-1] for r in df.groupBy(*cols).count().collect()}

    cv = ModelConfig(registered_name="m", folds=3, test_fraction=0.2)
    data, info = split_rows(labelled, cv, "k", "multiclass", "t")
    assert info["stratified"] == "test and folds"
    test = counts(data, LABEL_COL, "_is_test")
    for c, n in sizes.items():  # exactly round(0.2 n) test rows per class; a single row stays in training
        assert test.get((c, True), 0) == int(n * 0.2 + 0.5), c
    folds = counts(data.where(~F.col("_is_test")), LABEL_COL, FOLD_COL)
    assert {f for (_, f) in folds} == {0, 1, 2}
    for c in (0.0, 1.0, 2.0):  # each class's training rows in three runs of equal size (+-1)
        per_fold = [folds.get((c, f), 0) for f in range(3)]
        assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == sizes[c] - int(sizes[c] * 0.2 + 0.5), (c, per_fold)
    again, _ = split_rows(labelled, cv, "k", "multiclass", "t")  # the same rows in the same places
    assert_df_equality(again.select("k", "_is_test", FOLD_COL), data.select("k", "_is_test", FOLD_COL), ignore_row_order=True)
    other, _ = split_rows(labelled, cv.model_copy(update={"seed": 7}), "k", "multiclass", "t")
    assert other.where("_is_test").select("k").exceptAll(data.where("_is_test").select("k")).count() > 0

    # past the quantiles' exact range (n > accuracy): still exact, and the same cut points
    # however the rows are partitioned
    big = local_frame(spark, [(f"b{i}", float(i % 2)) for i in range(50_000)], f"k string, {LABEL_COL} double")
    one, _ = split_rows(big.repartition(1).cache(), cv, "k", "binary", "t")
    seven, _ = split_rows(big.repartition(7).cache(), cv, "k", "binary", "t")
    assert counts(one.where("_is_test"), LABEL_COL) == {(0.0,): 5000, (1.0,): 5000}
    assert counts(one.where("NOT _is_test"), FOLD_COL) == {(0,): 13334, (1,): 13332, (2,): 13334}
    assert_df_equality(one.select("k", "_is_test", FOLD_COL), seven.select("k", "_is_test", FOLD_COL), ignore_row_order=True)

    tvs = ModelConfig(registered_name="m", search="train_validation_split", train_ratio=0.75)
    data, _ = split_rows(labelled, tvs, "k", "multiclass", "t")
    valid = counts(data.where(~F.col("_is_test")), LABEL_COL, FOLD_COL)
    assert {f for (_, f) in valid} == {0, -1}
    assert valid[(0.0, 0)] == 2400 - 1800 and valid[(1.0, 0)] == 32 - 24  # a quarter of each class's training rows


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
