"""The numpy scorer's feature stages equal Spark's: lakeforge's real preprocessing pipelines
(every stage kind switched on) are fitted, saved, loaded by lakeforge.serving.scorer and compared
with Spark's transform on every output column of every row, including nulls, unseen
categories, empty strings (at fit time too: a level "" is missing, not a level), extreme numbers,
dates and text."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.feature import Normalizer, SQLTransformer
from pyspark.ml.linalg import Vector
from pyspark.sql import functions as F

from conftest import TELCO_CSV, TELCO_PIPELINE
from lakeforge.core.config import load_pipeline as load_config
from lakeforge.core.config_features import FeatureSelectionConfig, FeaturesConfig, PreprocessingConfig
from lakeforge.core.frames import local_frame
from lakeforge.features.pipeline import preprocessing_pipeline
from lakeforge.features.plan import plan_features
from lakeforge.serving.scorer import UnsupportedStage, load_pipeline

SCHEMA = ("rid int, id string, total string, tenure int, charge double, plan string, senior int, ratio double, "
          "partner string, level string, signup string, seen timestamp, born date, note string, city string, flag boolean, "
          "addr struct<city:string,zip:int>, tags array<string>, y double")

TOTALS = ["10.5", " 12 ", "", " ", "abc", "1e300", "-0", "3.25", None, "1e-300", "7", "NaN", "0x1p3", "+4.", "2d"]
NOTES = ["App CRASHED, crashed again!", "", None, "love the app", "Ünïcödé wörds ok", "x y z", "a1 b2 c3 1234", "𝐀𝐁 test app",
         "bill: late; bill again", "crashed"]
SIGNUPS = ["2024-01-31", "2024-02-01 10:11:12", None, "bad", "2023-12-31T23:59:59", " 2024-03-05 ", "2024-2-5",
           "2024-01-31 08:30:00.123456", "2024-13-01", "2024"]


def _row(i: int, unseen: bool = False) -> tuple:
    seen = dt.datetime(2024, 1 + i % 12, 1 + i % 28, i % 24, i % 60, i % 7)
    return (i, f"c{i}", TOTALS[i % len(TOTALS)], [0, 1, 5, 12, 30, 72, None][i % 7],
            [29.85, 1e-12, 1e15, -5.5, None, 0.0, 70.35, 118.75][i % 8],
            ["a", "b", "c", None, "a", "", "a", "d"][i % 8] if not unseen else ["zzz", "", None][i % 3],  # "" at fit time too
            [0, 1, 0, None][i % 4] if not unseen else 2,
            [0.5, 1.0, 1e7, 1e-4, 123456.789, None][i % 6] if not unseen else 3.0e-9,
            ["Yes", "no", " TRUE ", "maybe", None, "1", "f", "\tyes\n"][i % 8],
            ["low", "mid", "high", None, "other"][i % 5],
            SIGNUPS[i % len(SIGNUPS)], seen if i % 9 else None, dt.date(2020, 1 + i % 3, 1) if i % 5 else None,
            NOTES[i % len(NOTES)], ["x", "y", "z", None, "x", "w"][i % 6] if not unseen else "q",
            [True, False, None][i % 3],
            {"city": ["Oslo", None, "Lima"][i % 3], "zip": [1000 + i, None][i % 2]} if i % 4 else None,
            [["a", "b"], [], None, ["c"]][i % 4], float(i % 2))


@pytest.fixture(scope="module")
def frames(spark):
    train = local_frame(spark, [_row(i) for i in range(160)], SCHEMA)
    extremes = [(200, "x200", "1e309", None, 1.7e308, "a", 1, 0.5, "yes", "high", "1999-12-31", None, None, "", "x", True, None, None, 1.0),
                (201, "x201", "-1e309", 2**31 - 1, -1e308, "b", 0, 1.0, "no", "low", "2024-02-29", None, None, "A B C", "y", False,
                 {"city": None, "zip": None}, ["z"], 0.0),
                (202, "x202", "-2", -3, float("nan"), "c", None, None, None, None, None, None, None, None, None, None, None, None, 1.0)]
    score = local_frame(spark, [_row(i) for i in range(0, 160, 3)] + [_row(i, unseen=True) for i in range(300, 309)] + extremes,
                                  SCHEMA)
    return train, score


def _fit(train, features, prep, selection=None, key="id", label="y"):
    plan = plan_features(train, features, prep, key, label, "t")
    return preprocessing_pipeline(plan, selection=selection, label_col=label, task="binary").fit(train)


def _py(v):
    """A Spark value as the scorer's frame holds it."""
    if isinstance(v, Vector):
        return v.toArray()
    if hasattr(v, "asDict"):
        return {k: _py(x) for k, x in v.asDict().items()}
    return v


def _frame(score, order: str = "rid") -> tuple[dict, list]:
    rows = score.orderBy(order).collect()
    frame = {}
    for c in score.columns:
        col = np.empty(len(rows), dtype=object)
        col[:] = [_py(r[c]) for r in rows]
        frame[c] = col
    return frame, rows


def _same(expected, got) -> bool:
    """Equal, or within 1e-9 (relative beyond 1: PCA of values near 1e308 sums in another order)."""
    if expected is None or got is None:
        return expected is None and got is None
    if isinstance(expected, np.ndarray):
        got = np.asarray(got, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return got.shape == expected.shape and bool(np.all((np.abs(got - expected) <= 1e-9 * np.maximum(1.0, np.abs(expected)))
                                                               | (got == expected)
                                                               | (np.isnan(got) & np.isnan(expected))))
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(expected) is type(got) and expected == got
    if isinstance(expected, (int, float)):
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            return False
        e, g = float(expected), float(got)
        return (math.isnan(e) and math.isnan(g)) or e == g or abs(e - g) <= 1e-9 * max(1.0, abs(e))
    return type(expected) is type(got) and expected == got


def assert_parity(model, score, tmp_path, order: str = "rid") -> dict:
    """Every output column of every row of Spark's transform equals the numpy scorer's."""
    path = str(tmp_path / "model")
    model.write().overwrite().save(path)
    scorer = load_pipeline(tmp_path / "model")
    frame, _ = _frame(score, order)
    got = scorer.transform(frame)
    expected = model.transform(score).orderBy(order).collect()
    mismatches = []
    for col in expected[0].asDict():
        assert col in got, f"the scorer has no column {col!r}"
        for i, row in enumerate(expected):
            e, g = _py(row[col]), got[col][i]
            if not _same(e, g):
                mismatches.append(f"{col} {order}={row[order]}: spark {e!r} numpy {g!r}")
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:40])
    return got


def test_everything_pipeline_equals_spark(frames, tmp_path):
    train, score = frames
    features = FeaturesConfig(
        numeric=["total", "tenure", "charge", "partner", "level"], categorical=["plan", "senior", "ratio", "city", "flag", "born"],
        derived={"per_month": "try_cast(total AS DOUBLE) / NULLIF(tenure, 0)",
                 "big": {"expr": "CASE WHEN tenure > 5 THEN 'yes' WHEN tenure IS NULL THEN NULL ELSE 'no' END", "role": "categorical"},
                 "spread": "GREATEST(charge, 0.5D) - LEAST(tenure, 10) + COALESCE(addr.zip, -1) % 7",
                 "ntags": "size(tags)",
                 "curve": "ln(charge + 1) + sqrt(abs(charge)) + round(charge * 1.5, 1) + pow(tenure, 2) / 100",
                 "town": {"expr": "lower(coalesce(addr.city, 'none')) || '-' || substring(note, 1, 3)", "role": "categorical"},
                 "flags": "CASE WHEN flag AND tenure BETWEEN 1 AND 30 THEN 1 WHEN NOT flag OR plan IN ('a', 'b') THEN 2 ELSE 0 END"},
        dates={"signup": {"parts": ["year", "month", "day", "day_of_week", "hour", "days_since"]},
               "seen": {"parts": ["day_of_week", "hour", "days_since"], "reference": "2024-06-30"}},
        text_length=["note"], text_tfidf=["note"], text_tfidf_size=32,
        buckets={"charge": {"splits": [0, 50, 100]}, "per_month": {"quantiles": 3}},
        interactions=[["tenure", "plan"], ["charge", "flag"]])
    prep = PreprocessingConfig(
        scale="robust", types={"partner": "boolean"}, ordinal={"level": ["low", "mid", "high"]}, missing_indicators=["total", "plan"],
        log=["curve"], clip={"columns": ["per_month", "spread"], "lower": 0.1, "upper": 0.9}, rare_levels={"min_count": 12},
        target_encoding={"columns": ["city"], "smoothing": 2}, categorical_impute="mode",
        impute={"tenure": "mean", "total": {"strategy": "constant", "value": -1}, "charge": "mode", "ratio": "keep",
                "senior": "keep", "flag": {"strategy": "constant", "value": "unknown"}})
    selection = FeatureSelectionConfig(variance_threshold=0.0, correlation_threshold=0.98,
                                       univariate={"test": "anova", "mode": "percentile", "threshold": 0.9}, pca=4)
    model = _fit(train, features, prep, selection)
    got = assert_parity(model, score, tmp_path)
    assert got["features"].shape[1] == 4


def test_telco_default_pipeline_equals_spark_on_every_row(spark, tmp_path):
    """The shipped Telco config (try_cast, median Imputer, StringIndexer keep, one-hot, assembler,
    StandardScaler): all 7,043 rows plus unseen categories and unparsable numbers."""
    cfg = load_config(TELCO_PIPELINE)
    telco = spark.read.csv(str(TELCO_CSV), header=True, inferSchema=True)
    model = _fit(telco, cfg.features, cfg.preprocessing, key=cfg.key, label=cfg.target)
    odd = telco.limit(3).withColumn("customerID", F.concat(F.lit("zz-"), "customerID")) \
        .withColumn("Contract", F.lit("Ten years")).withColumn("TotalCharges", F.lit("n/a")) \
        .withColumn("SeniorCitizen", F.lit(None).cast("int")).withColumn("gender", F.lit(""))
    got = assert_parity(model, telco.unionByName(odd), tmp_path, order="customerID")
    assert got["features"].shape[0] == 7046


@pytest.mark.parametrize("scale", ["minmax", "standard"])
def test_the_other_scalers_equal_spark(frames, tmp_path, scale):
    train, score = frames
    features = FeaturesConfig(numeric=["total", "tenure", "charge"], categorical=["plan"])
    model = _fit(train, features, PreprocessingConfig(scale=scale, numeric_impute="median"))
    assert_parity(model, score, tmp_path)


TEXTS = ["1", " 2.5 ", "\t-3e2\n", "1e309", "-1e309", "1e-400", ".5", "5.", "+7", "1_000", "0x1p3", "0x1.8p1", "1.5f", "2D", "NaN",
         "nan", "-NaN", "Infinity", "-infinity", "inf", "+inf", "INF", "abc", "", " ", "1,5", "１２", "0.1e1x", "--1", "1e", "e1",
         "yes", " No ", "TRUE", "t", "y", "0", "2", "\tfalse\n",
         "2024-01-31", " 2024-01-31 ", "2024-1-5", "2024-01-31 08:30", "2024-01-31T08:30:15.5", "2024-01-31 08:30:15.1234567",
         "2024-02-30", "2024", "2024-03", "24-01-31", "2024-01-31Z", "2024-01-31 08:30:00Z", "2024-01-31T23:30:00+02:00",
         "2024-01-31 08:30:00 ", "31/01/2024", "2024/01/31", None]


def test_sql_casts_of_tricky_text_equal_spark(spark, tmp_path):
    """try_cast to double / boolean, try_to_timestamp with and without a pattern, date parts and
    CAST(double AS STRING) (Java's formatting) on edge-case inputs, through a saved SQLTransformer."""
    doubles = [0.1, 1e7, 9999999.0, 1e-3, 0.00099, 1e21, 1.5e-7, -0.0, 123456.789, 1e300, 5e-324, float("nan"), float("inf"),
               2.0 ** 53, 100.0, 0.30000000000000004, None]
    rng = np.random.default_rng(7)  # and doubles of every magnitude, as Java's Double.toString prints them
    doubles += [float(x) for x in rng.standard_normal(400) * 10.0 ** rng.integers(-30, 30, 400)]
    rows = [(i, TEXTS[i] if i < len(TEXTS) else None, doubles[i], i if i % 3 else None) for i in range(len(doubles))]
    df = local_frame(spark, rows, "rid int, s string, d double, n int")
    stmt = ("SELECT *, try_cast(s AS DOUBLE) AS dbl, try_cast(s AS BOOLEAN) AS b, CAST(try_cast(trim(s) AS BOOLEAN) AS DOUBLE) AS tb, "
            "try_to_timestamp(s) AS ts, try_to_timestamp(s, 'dd/MM/yyyy') AS tsf, CAST(d AS STRING) AS ds, CAST(n AS STRING) AS ns, "
            "CAST(hour(try_to_timestamp(s)) AS DOUBLE) AS h, dayofweek(try_to_timestamp(s)) AS dow, length(s) AS len, "
            "CASE WHEN d > 1 THEN 'big' WHEN isnan(d) THEN 'nan' WHEN d IS NULL THEN NULL ELSE 'small' END AS size, "
            "COALESCE(try_divide(d, n), -1.0D) AS ratio, GREATEST(d, n) AS g, LEAST(d, n, 0) AS l, n IN (1, 2, NULL) AS inn, "
            "s IN ('1', 'yes') AS ins, NULLIF(n, 4) AS nn, upper(trim(s)) AS u, concat(s, '|', n) AS c, d = d AS self, "
            "CAST(CASE WHEN n > 5 THEN 1 ELSE 0.5D END AS STRING) AS mix, CAST(COALESCE(n, 2.5D) AS STRING) AS co, "
            "CAST(IF(n > 3, n, n / 2) AS STRING) AS half "
            "FROM __THIS__")
    assert_parity(PipelineModel(stages=[SQLTransformer(statement=stmt)]), df, tmp_path)


def test_a_stage_or_sql_function_the_scorer_cannot_compute_is_refused_by_name(spark, tmp_path):
    PipelineModel(stages=[Normalizer(inputCol="v", outputCol="n")]).write().overwrite().save(str(tmp_path / "norm"))
    with pytest.raises(UnsupportedStage, match="org.apache.spark.ml.feature.Normalizer"):
        load_pipeline(tmp_path / "norm")
    stmt = "SELECT *, regexp_replace(s, 'a', 'b') AS r FROM __THIS__"
    PipelineModel(stages=[SQLTransformer(statement=stmt)]).write().overwrite().save(str(tmp_path / "sql"))
    with pytest.raises(UnsupportedStage, match="REGEXPREPLACE|regexp_replace"):
        load_pipeline(tmp_path / "sql")
