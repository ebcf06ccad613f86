"""The numpy scorer's feature stages equal Spark's: lakeforge's real preprocessing pipelines
(every stage kind switched on) are fitted, saved, loaded by lakeforge.serving.scorer and compared
with Spark's transform on every output column of every row, including nulls, unseen
categories, empty strings, extreme numbers, dates and text."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.feature import Normalizer, SQLTransformer
from pyspark.ml.linalg import Vector

from lakeforge.core.config_features import FeatureSelectionConfig, FeaturesConfig, PreprocessingConfig
from lakeforge.features.pipeline import preprocessing_pipeline
from lakeforge.features.plan import plan_features
from lakeforge.features.statistics import feature_statistics
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
            ["a", "b", "c", None, "a", "b", "a", "d"][i % 8] if not unseen else ["zzz", "", None][i % 3],
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
    train = spark.createDataFrame([_row(i) for i in range(160)], SCHEMA)
    extremes = [(200, "x200", "1e309", None, 1.7e308, "a", 1, 0.5, "yes", "high", "1999-12-31", None, None, "", "x", True, None, None, 1.0),
                (201, "x201", "-1e309", 2**31 - 1, -1e308, "b", 0, 1.0, "no", "low", "2024-02-29", None, None, "A B C", "y", False,
                 {"city": None, "zip": None}, ["z"], 0.0),
                (202, "x202", "-2", -3, float("nan"), "c", None, None, None, None, None, None, None, None, None, None, None, None, 1.0)]
    score = spark.createDataFrame([_row(i) for i in range(0, 160, 3)] + [_row(i, unseen=True) for i in range(300, 309)] + extremes,
                                  SCHEMA)
    return train, score


def _fit(train, features, prep, selection=None):
    plan = plan_features(train, features, prep, "id", "y", "t")
    plan = feature_statistics(plan, train, "t")
    return preprocessing_pipeline(plan, selection=selection, label_col="y", task="binary", ranking=plan.report.ranking).fit(train)


def _py(v):
    """A Spark value as the scorer's frame holds it."""
    if isinstance(v, Vector):
        return v.toArray()
    if hasattr(v, "asDict"):
        return {k: _py(x) for k, x in v.asDict().items()}
    return v


def _frame(score) -> tuple[dict, list]:
    rows = score.orderBy("rid").collect()
    frame = {}
    for c in score.columns:
        col = np.empty(len(rows), dtype=object)
        col[:] = [_py(r[c]) for r in rows]
        frame[c] = col
    return frame, rows


def _same(expected, got) -> bool:
    if expected is None or got is None:
        return expected is None and got is None
    if isinstance(expected, np.ndarray):
        got = np.asarray(got, dtype=np.float64)
        return got.shape == expected.shape and bool(np.all((np.abs(got - expected) <= 1e-9) | (np.isnan(got) & np.isnan(expected))
                                                           | (got == expected)))
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(expected) is type(got) and expected == got
    if isinstance(expected, (int, float)):
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            return False
        e, g = float(expected), float(got)
        return (math.isnan(e) and math.isnan(g)) or e == g or abs(e - g) <= 1e-9
    return type(expected) is type(got) and expected == got


def assert_parity(model, score, tmp_path) -> dict:
    """Every output column of every row of Spark's transform equals the numpy scorer's."""
    path = str(tmp_path / "model")
    model.write().overwrite().save(path)
    scorer = load_pipeline(tmp_path / "model")
    frame, _ = _frame(score)
    got = scorer.transform(frame)
    expected = model.transform(score).orderBy("rid").collect()
    mismatches = []
    for col in expected[0].asDict():
        assert col in got, f"the scorer has no column {col!r}"
        for i, row in enumerate(expected):
            e, g = _py(row[col]), got[col][i]
            if not _same(e, g):
                mismatches.append(f"{col} rid={row['rid']}: spark {e!r} numpy {g!r}")
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
        scale="standard", types={"partner": "boolean"}, ordinal={"level": ["low", "mid", "high"]}, missing_indicators=["total", "plan"],
        log=["curve"], clip={"columns": ["per_month", "spread"], "lower": 0.1, "upper": 0.9}, rare_levels={"min_count": 12},
        target_encoding={"columns": ["city"], "smoothing": 2}, categorical_impute="mode",
        impute={"tenure": "mean", "total": {"strategy": "constant", "value": -1}, "charge": "mode", "ratio": "keep",
                "senior": "keep", "flag": {"strategy": "constant", "value": "unknown"}})
    selection = FeatureSelectionConfig(variance_threshold=0.0, correlation_threshold=0.98,
                                       univariate={"test": "anova", "mode": "percentile", "threshold": 0.9}, pca=4)
    model = _fit(train, features, prep, selection)
    got = assert_parity(model, score, tmp_path)
    assert got["features"].shape[1] == 4
