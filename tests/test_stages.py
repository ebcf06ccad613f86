"""Stages against real Delta tables in the session's warehouse: idempotent writes, and bad
input that fails before anything is written."""

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from lakeforge.core.config import load_pipeline
from lakeforge.core.errors import InputDataError, MissingColumnError
from lakeforge.core.frames import local_frame
from lakeforge.ingest.job import ingest
from lakeforge.core.io import latest_version, write_table

from conftest import write_pipeline

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)


def _pipeline(tmp_path, table, **changes):
    return load_pipeline(write_pipeline(tmp_path, **{"tables.bronze": table, **changes}))


def test_ingest_telco_adds_metadata_and_reruns_without_duplicates(spark, settings, tmp_path):
    p = _pipeline(tmp_path, "t_ingest_rerun")
    [first] = ingest(spark, settings, p, "run-a", D1)
    [second] = ingest(spark, settings, p, "run-b", D1)
    assert (first.write.rows_written, second.write.rows_written) == (7043, 7043)
    assert second.write.version == first.write.version + 1
    df = spark.table("lakeforge.t_ingest_rerun")
    assert df.count() == 7043
    assert df.select("customerID").distinct().count() == 7043
    meta = df.groupBy("_run_id", "_run_date").count().collect()
    assert [(r["_run_id"], r["_run_date"], r["count"]) for r in meta] == [("run-b", D1, 7043)]
    assert df.where(~F.col("_source").endswith("Telco-Customer-Churn.csv")).count() == 0
    # the raw text column is kept as read: blanks included
    assert df.where(F.trim("TotalCharges") == "").count() == 11


def test_append_mode_keeps_dates_and_replaces_a_rerun_date(spark, settings, tmp_path):
    p = _pipeline(tmp_path, "t_ingest_append", **{"ingest.mode": "append"})
    ingest(spark, settings, p, "r1", D1)
    ingest(spark, settings, p, "r2", D2)
    ingest(spark, settings, p, "r3", D1)  # rerun of D1
    counts = {r["_run_date"]: (r["_run_id"], r["count"]) for r in
              spark.table("lakeforge.t_ingest_append").groupBy("_run_date", "_run_id").count().collect()}
    assert counts == {D1: ("r3", 7043), D2: ("r2", 7043)}


def test_write_table_backfills_an_older_date_after_a_newer_one(spark):
    table = "lakeforge.t_backfill"
    schema = "k string, v int, run_date date"
    write_table(local_frame(spark, [("a", 1, D2)], schema), table, partition_col="run_date", partition_value=D2)
    write_table(local_frame(spark, [("a", 0, D1), ("b", 0, D1)], schema), table, partition_col="run_date", partition_value=D1)
    write_table(local_frame(spark, [("b", 5, D1)], schema), table, partition_col="run_date", partition_value=D1)
    expected = local_frame(spark, [("a", 1, D2), ("b", 5, D1)], schema)
    assert_df_equality(spark.table(table), expected, ignore_row_order=True, ignore_nullable=True)


def test_write_table_reports_each_commit_and_an_empty_write_as_no_commit(spark):
    table = "lakeforge.t_write_result"
    schema = "k string, v int"
    first = write_table(local_frame(spark, [("a", 1), ("b", 2)], schema), table, append=True)
    second = write_table(local_frame(spark, [("c", 3)], schema), table, append=True)
    assert (first.version, first.rows_written, first.operation) == (1, 2, "WRITE")  # version 0: the created table
    assert (second.version, second.rows_written) == (2, 1)
    # Delta commits nothing for a write that adds and removes no file: the version stays
    empty = write_table(local_frame(spark, [], schema), table, append=True)
    assert (empty.version, empty.rows_written, empty.operation) == (2, 0, "NONE")
    assert latest_version(spark, table) == 2


def test_missing_input_path_writes_nothing(spark, settings, tmp_path):
    p = _pipeline(tmp_path, "t_missing_path", **{"source.path": str(tmp_path / "nope.csv")})
    with pytest.raises(InputDataError, match=r"source\.path: nothing found at .*nope\.csv"):
        ingest(spark, settings, p, "r", D1)
    assert not spark.catalog.tableExists("lakeforge.t_missing_path")


def test_absent_target_column_is_named_and_nothing_is_written(spark, settings, tmp_path):
    p = _pipeline(tmp_path, "t_no_target", target="churned")
    with pytest.raises(MissingColumnError, match=r"column\(s\) 'churned' not found; available columns: customerID"):
        ingest(spark, settings, p, "r", D1)
    assert not spark.catalog.tableExists("lakeforge.t_no_target")


def test_empty_input_never_replaces_existing_data(spark, settings, tmp_path):
    good = _pipeline(tmp_path / "good", "t_empty")
    ingest(spark, settings, good, "r1", D1)
    version = latest_version(spark, "lakeforge.t_empty")
    header_only = tmp_path / "empty.csv"
    header_only.write_text(open(good.source.path).readline())
    empty = _pipeline(tmp_path / "empty", "t_empty", **{"source.path": str(header_only)})
    with pytest.raises(InputDataError, match=r"has no rows; refusing to replace lakeforge\.t_empty"):
        ingest(spark, settings, empty, "r2", D1)
    assert latest_version(spark, "lakeforge.t_empty") == version
    assert spark.table("lakeforge.t_empty").count() == 7043
