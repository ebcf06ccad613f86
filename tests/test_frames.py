"""lakeforge.core.frames.local_frame: the rows lakeforge writes from Python (run records,
metrics, profiles, the server's Spark fallback) as a frame built in the JVM, equal to what
PySpark's createDataFrame makes of the same rows, and read without Python worker processes."""

import datetime as dt
import os
import time
from decimal import Decimal

import pytest
from chispa import assert_df_equality

from lakeforge.core.frames import local_frame

DDL = ("id long, name string, score double, flag boolean, day date, at timestamp, amount decimal(10,2), "
       "tags array<string>, weights map<string,double>, point struct<x: int, seen: timestamp>")
NAIVE = dt.datetime(2026, 3, 29, 1, 30)  # the night clocks move in Europe
AWARE = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
ROWS = [
    (1, "a", 0.5, True, dt.date(2026, 1, 2), NAIVE, Decimal("12.50"), ["x", None], {"k": 1.5}, (3, NAIVE)),
    (2, None, float("nan"), False, None, AWARE, None, [], {}, (None, AWARE)),
    (3, "é", None, None, dt.date(1970, 1, 1), None, Decimal("-0.01"), None, None, None),
]


def _plan(df) -> str:
    return df._jdf.queryExecution().executedPlan().toString()  # noqa: SLF001


@pytest.fixture
def local_time_zone():
    """Python's local time zone set to one that is not UTC for the test (naive datetimes are
    local time in PySpark's row path)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    yield
    if saved is None:
        os.environ.pop("TZ")
    else:
        os.environ["TZ"] = saved
    time.tzset()


def test_equals_create_data_frame_on_every_type_and_reads_in_the_jvm(spark, local_time_zone):
    expected = spark.createDataFrame(ROWS, DDL)
    got = local_frame(spark, ROWS, DDL)
    assert got.schema == expected.schema
    assert_df_equality(got, expected, allow_nan_equality=True)
    assert "LocalTableScan" in _plan(got)
    assert "PythonRDD" in _plan(expected) or "ExistingRDD" in _plan(expected)  # the row path PySpark takes


def test_dict_rows_by_name_and_a_missing_key_is_null(spark):
    got = local_frame(spark, [{"b": "x", "a": 1}, {"a": 2}], "a int, b string").collect()
    assert [tuple(r) for r in got] == [(1, "x"), (2, None)]
    assert local_frame(spark, [], "a int").count() == 0


def test_a_row_of_the_wrong_width_and_a_null_in_a_not_null_column_are_refused(spark):
    with pytest.raises(ValueError, match=r"row 1 has 1 values for the 2 columns \['a', 'b'\]"):
        local_frame(spark, [(1, "x"), (2,)], "a int, b string")
    with pytest.raises(ValueError, match="column 'a' is NOT NULL"):
        local_frame(spark, [(None,)], "a int NOT NULL")
