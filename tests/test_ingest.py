"""Ingest against the real things: files (CSV, JSON lines, Parquet, Excel), a PostgreSQL server,
a local HTTP API. Bad records, N = M + Q, exactly-once reruns, schema drift, data quality."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import openpyxl
import pytest
import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.core.config import PipelineConfig
from lakeforge.core.errors import InputDataError, SourceError
from lakeforge.core.frames import local_frame
from lakeforge.ingest.job import ingest
from lakeforge.ingest.quality import DataQualityError

D1, D2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)

BAD_CSV = """id,name,amount,day
1,alpha,1.5,2024-01-01
2,beta,not-a-number,2024-01-02
3,"gamma, with comma",2.5
4,delta,3.5,2024-01-04,extra
5,epsilon,4.5,2024-13-45
6,zeta,5.5,2024-01-06
7,eta,,2024-01-07
8,theta,6,2024-01-08
"""


def pipeline(tmp_path: Path, source: dict, name: str = "ing", sources: dict | None = None, **extra) -> PipelineConfig:
    data = {
        "name": name, "source": source, "key": "id", "target": "id",
        "tables": {"bronze": f"bronze_{name}", "predictions": f"pred_{name}"},
        "model": {"registered_name": name}, **extra,
    }
    if sources:
        data["sources"] = sources
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return PipelineConfig.model_validate(data).model_copy(update={"file": path})


def counts(res) -> tuple[int, int, int]:
    return res.rows_read, res.rows_loaded, res.rows_quarantined


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def test_csv_bad_records_are_quarantined_with_reasons_and_counts_add_up(spark, settings, tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text(BAD_CSV)
    p = pipeline(tmp_path, {"format": "csv", "path": str(f), "options": {"header": True},
                            "schema": "id INT, name STRING, amount DOUBLE, day DATE"}, name="ing_bad")
    [res] = ingest(spark, settings, p, "r1", D1)
    assert counts(res) == (8, 4, 4) and res.counts_add_up
    # the loads ran in a child session (its Observation would break MLlib models trained in it);
    # the caller's session is the active one again, so the next stage does not pick up the child
    assert SparkSession.getActiveSession()._jsparkSession.equals(spark._jsparkSession)
    bronze = spark.table("lakeforge.bronze_ing_bad")
    assert sorted(r["id"] for r in bronze.collect()) == [1, 6, 7, 8]
    row7 = bronze.where("id = 7").first()
    assert row7["amount"] is None and row7["day"] == dt.date(2024, 1, 7)  # blank = missing, not bad
    assert bronze.where(~F.col("_source").endswith("/bad.csv")).count() == 0
    assert set(bronze.columns) >= {"_ingested_at", "_source", "_run_id", "_run_date"}
    q = {r["_raw"].split(",")[0].lstrip('{"id":').strip('"'): r for r in spark.table("lakeforge.bronze_ing_bad_quarantine").collect()}
    reasons = sorted(r["_reason"] for r in spark.table("lakeforge.bronze_ing_bad_quarantine").collect())
    assert reasons == [
        "column amount: 'not-a-number' is not a valid double",
        "column day: '2024-13-45' is not a valid date",
        "malformed CSV record (wrong number of fields or unbalanced quotes)",
        "malformed CSV record (wrong number of fields or unbalanced quotes)",
    ]
    raws = sorted(r["_raw"] for r in spark.table("lakeforge.bronze_ing_bad_quarantine").collect())
    assert '3,"gamma, with comma",2.5' in raws and "4,delta,3.5,2024-01-04,extra" in raws
    assert q  # every quarantined row has its source and run id
    assert spark.table("lakeforge.bronze_ing_bad_quarantine").where("_run_id != 'r1' OR _source IS NULL").count() == 0

    # the same load again: nothing doubled, in bronze or in quarantine
    [again] = ingest(spark, settings, p, "r2", D1)
    assert counts(again) == (8, 4, 4)
    assert spark.table("lakeforge.bronze_ing_bad").count() == 4
    assert spark.table("lakeforge.bronze_ing_bad_quarantine").count() == 4
    runs = spark.table("lakeforge.ingest_runs").where("table_name = 'lakeforge.bronze_ing_bad'").collect()
    assert sorted((r["rows_read"], r["rows_loaded"], r["rows_quarantined"], r["status"]) for r in runs) == [
        (8, 4, 4, "succeeded"), (8, 4, 4, "succeeded")]


def test_on_bad_records_fail_commits_nothing_and_drop_counts(spark, settings, tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text(BAD_CSV)
    src = {"format": "csv", "path": str(f), "options": {"header": True},
           "schema": "id INT, name STRING, amount DOUBLE, day DATE"}
    p = pipeline(tmp_path, {**src, "on_bad_records": "fail"}, name="ing_fail")
    with pytest.raises(InputDataError, match=r"bad record with on_bad_records: fail — .*Nothing was committed to lakeforge\.bronze_ing_fail"):
        ingest(spark, settings, p, "r1", D1)
    assert not spark.catalog.tableExists("lakeforge.bronze_ing_fail")
    assert not spark.catalog.tableExists("lakeforge.bronze_ing_fail_quarantine")

    p = pipeline(tmp_path, {**src, "on_bad_records": "drop"}, name="ing_drop")
    [res] = ingest(spark, settings, p, "r1", D1)
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined, res.rows_dropped) == (8, 4, 0, 4)
    assert res.counts_add_up
    assert not spark.catalog.tableExists("lakeforge.bronze_ing_drop_quarantine")


def test_many_csv_files_load_as_one_table_and_incremental_loads_only_new_files(spark, settings, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(3):
        (folder / f"part-{i}.csv").write_text("id;value\n" + "".join(f"{i * 10 + j};{j}\n" for j in range(5)))
    p = pipeline(tmp_path, {"format": "csv", "path": str(folder / "*.csv"), "mode": "incremental",
                            "options": {"header": True, "sep": ";"}}, name="ing_inc")
    [first] = ingest(spark, settings, p, "r1", D1)
    assert counts(first) == (15, 15, 0) and len(first.files) == 3
    [rerun] = ingest(spark, settings, p, "r2", D1)
    assert rerun.rows_read == 0 and "no new files" in rerun.message
    (folder / "part-3.csv").write_text("id;value\n30;0\n31;1\n")
    [more] = ingest(spark, settings, p, "r3", D2)
    assert counts(more) == (2, 2, 0) and [Path(f).name for f in more.files] == ["part-3.csv"]
    bronze = spark.table("lakeforge.bronze_ing_inc")
    assert bronze.count() == 17 and bronze.select("id").distinct().count() == 17
    assert dict(bronze.groupBy("_run_id").count().collect()) == {"r1": 15, "r3": 2}
    assert dict(zip(bronze.columns[:2], [t for _, t in bronze.dtypes[:2]])) == {"id": "int", "value": "int"}


def test_schema_drift_fails_with_the_differences_unless_evolution_is_allowed(spark, settings, tmp_path):
    f = tmp_path / "v1.csv"
    f.write_text("id,amount\n1,1.5\n2,2.5\n")
    p = pipeline(tmp_path, {"format": "csv", "path": str(f), "options": {"header": True}}, name="ing_drift")
    ingest(spark, settings, p, "r1", D1)
    f.write_text("id,amount,colour\n3,unknown,red\n4,4.5,blue\n")
    with pytest.raises(InputDataError) as exc:
        ingest(spark, settings, p, "r2", D1)
    msg = str(exc.value)
    assert "new column colour" in msg and "retyped column amount (double -> text, e.g. 'unknown')" in msg
    assert "schema_evolution: true" in msg
    assert spark.table("lakeforge.bronze_ing_drift").count() == 2  # untouched
    f.write_text("id\n5\n")
    with pytest.raises(InputDataError, match="missing column amount"):
        ingest(spark, settings, p, "r3", D1)

    f.write_text("id,amount,colour\n3,unknown,red\n4,4.5,blue\n")
    p2 = pipeline(tmp_path, {"format": "csv", "path": str(f), "options": {"header": True}, "schema_evolution": True},
                  name="ing_drift")
    [res] = ingest(spark, settings, p2, "r4", D1)
    assert counts(res) == (2, 1, 1)  # 'unknown' does not cast to the table's double: quarantined
    assert res.schema_changes == ["new column colour", "retyped column amount (double -> text, e.g. 'unknown')"]
    rows = spark.table("lakeforge.bronze_ing_drift").select("id", "amount", "colour").collect()
    assert [tuple(r) for r in rows] == [(4, 4.5, "blue")]
    logged = spark.table("lakeforge.ingest_runs").where("run_id = 'r4'").first()
    assert json.loads(logged["schema_changes"]) == res.schema_changes


def test_a_table_with_an_earlier_versions_load_metadata_is_replaced_in_full_or_refused(spark, settings, tmp_path):
    """Bronze tables of earlier lakeforge versions named the file column _source_file: a full
    load replaces the layout; an append would mix two layouts, so it stops with the fix."""
    (local_frame(spark, [(9, 9.5, "old.csv", "r0")], "id int, amount double, _source_file string, _run_id string")
     .withColumn("_ingested_at", F.current_timestamp()).withColumn("_run_date", F.lit(D1))
     .write.format("delta").saveAsTable("lakeforge.bronze_ing_old"))
    f = tmp_path / "v.csv"
    f.write_text("id,amount\n1,1.5\n2,2.5\n")
    source = {"format": "csv", "path": str(f), "options": {"header": True}}
    with pytest.raises(InputDataError, match=r"bronze_ing_old was written by an earlier lakeforge version \(old column "
                                             r"_source_file, no column _source; .*an append load cannot add to it. Load it in full once"):
        ingest(spark, settings, pipeline(tmp_path, {**source, "mode": "append"}, name="ing_old"), "r1", D1)
    assert spark.table("lakeforge.bronze_ing_old").count() == 1  # untouched

    [res] = ingest(spark, settings, pipeline(tmp_path, source, name="ing_old"), "r2", D1)
    assert counts(res) == (2, 2, 0)
    table = spark.table("lakeforge.bronze_ing_old")
    assert "_source_file" not in table.columns and {"_source", "_run_id", "_ingested_at", "_run_date"} <= set(table.columns)
    assert sorted(r["id"] for r in table.select("id").collect()) == [1, 2]


def test_column_names_are_normalised_and_the_mapping_recorded(spark, settings, tmp_path):
    f = tmp_path / "names.csv"
    f.write_text("Customer ID,Monthly.Charges,2nd value\nA,1.5,x\n")
    p = pipeline(tmp_path, {"format": "csv", "path": str(f), "options": {"header": True}, "column_names": "snake"},
                 name="ing_names", key="customer_id", target="monthly_charges")
    [res] = ingest(spark, settings, p, "r1", D1)
    assert res.column_mapping == {"Customer ID": "customer_id", "Monthly.Charges": "monthly_charges", "2nd value": "_2nd_value"}
    assert spark.table("lakeforge.bronze_ing_names").columns[:3] == ["customer_id", "monthly_charges", "_2nd_value"]
    logged = spark.table("lakeforge.ingest_runs").where("table_name = 'lakeforge.bronze_ing_names'").first()
    assert json.loads(logged["column_mapping"]) == res.column_mapping


def test_a_header_that_repeats_a_name_loads_by_position_and_a_reordered_header_stops(spark, settings, tmp_path):
    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / "a.csv").write_text("id,Value,value,amount\n1,10,20,1.5\n2,11,21,2.5\n")
    (rep / "b.csv").write_text("id,Value,value,amount\n3,12,22,3.5\n")
    p = pipeline(tmp_path, {"format": "csv", "path": str(rep), "options": {"header": True}}, name="ing_rep", target="amount")
    said = []
    [res] = ingest(spark, settings, p, "r1", D1, progress=said.append)
    assert counts(res) == (3, 3, 0)
    assert any("the header repeats 'Value', 'value' (Spark numbers them: Value1, value2)" in m for m in said), said
    rows = spark.table("lakeforge.bronze_ing_rep").orderBy("id").select("id", "Value1", "value2", "amount").collect()
    assert [tuple(r) for r in rows] == [(1, 10, 20, 1.5), (2, 11, 21, 2.5), (3, 12, 22, 3.5)]

    swapped = tmp_path / "swapped"
    swapped.mkdir()
    (swapped / "a.csv").write_text("id,x,amount\n1,10,1.5\n")
    (swapped / "b.csv").write_text("id,amount,x\n2,2.5,11\n")  # same names, another order
    p = pipeline(tmp_path, {"format": "csv", "path": str(swapped), "options": {"header": True}}, name="ing_swap", target="amount")
    with pytest.raises(InputDataError, match=r"a file's CSV header does not match the columns \['id', 'x', 'amount'\]"):
        ingest(spark, settings, p, "r1", D1)
    assert not spark.catalog.tableExists("lakeforge.bronze_ing_swap")


def test_a_header_with_an_empty_name_loads_by_position(spark, settings, tmp_path):
    """R's write.csv and pandas' to_csv write the row names' column with an empty name."""
    f = tmp_path / "rnames.csv"
    more = "".join(f'"{i}",{i % 7}.5,"setosa"\n' for i in range(4, 204))
    f.write_text('"","Sepal.Length","Species"\n"1",5.1,"setosa"\n"2",4.9,"virginica"\n"3",abc,"setosa"\n' + more)
    p = pipeline(tmp_path, {"format": "csv", "path": str(f), "options": {"header": True}}, name="ing_rnames",
                 key="c0", target="Species")
    said = []
    [res] = ingest(spark, settings, p, "r1", D1, progress=said.append)
    assert counts(res) == (203, 202, 1)
    assert any("the header has no name for column(s) 1 (named _c0)" in m for m in said), said
    rows = spark.table("lakeforge.bronze_ing_rnames").orderBy("c0").select("c0", "Sepal_Length", "Species").limit(2).collect()
    assert [tuple(r) for r in rows] == [(1, 5.1, "setosa"), (2, 4.9, "virginica")]
    # the bad record's reason names the column (its source name has a dot)
    [bad] = spark.table("lakeforge.bronze_ing_rnames_quarantine").collect()
    assert bad["_reason"] == "column Sepal_Length: 'abc' is not a valid double"


def test_missing_value_markers_load_as_null_and_other_values_are_still_bad(spark, settings, tmp_path):
    f = tmp_path / "marked.csv"
    f.write_text("id,amount,colour,since\n1,NA,red,2024-01-02\n2,2.5,NA,N/A\n3,?,blue,2024-01-03\n4, null ,green,\n")
    p = pipeline(tmp_path, {"format": "csv", "path": str(f), "options": {"header": True}}, name="ing_marked")
    [res] = ingest(spark, settings, p, "m1", D1)
    assert counts(res) == (4, 4, 0)
    bronze = spark.table("lakeforge.bronze_ing_marked")
    assert (dict(bronze.dtypes)["amount"], dict(bronze.dtypes)["since"]) == ("double", "date")
    rows = bronze.orderBy("id").select("id", "amount", "colour", "since").collect()
    assert [tuple(r) for r in rows] == [(1, None, "red", dt.date(2024, 1, 2)), (2, 2.5, None, None),
                                        (3, None, "blue", dt.date(2024, 1, 3)), (4, None, "green", None)]

    # a later load is typed by Spark's parser with the table's types: a record whose typed value
    # is a marker is parsed again and loaded; a value that is no marker is still a bad record
    more = "".join(f"{i},{i}.5,w,2024-02-{i:02d}\n" for i in range(10, 20))  # (mostly valid: not a retyped column)
    f.write_text("id,amount,colour,since\n5,NA,x,2024-01-05\n6,abc,y,NA\n7,#N/A,None,2024-01-07\n8,8.5,z,x\n" + more)
    [res] = ingest(spark, settings, p, "m2", D1)
    assert counts(res) == (14, 12, 2)
    rows = spark.table("lakeforge.bronze_ing_marked").where("id < 10").orderBy("id").select("id", "amount", "colour", "since").collect()
    assert [tuple(r) for r in rows] == [(5, None, "x", dt.date(2024, 1, 5)), (7, None, None, dt.date(2024, 1, 7))]
    reasons = sorted(r["_reason"] for r in spark.table("lakeforge.bronze_ing_marked_quarantine").collect())
    assert reasons == ["column amount: 'abc' is not a valid double", "column since: 'x' is not a valid date"]

    # null_values: [] -> only empty values are missing (Spark's inference makes 'NA' text)
    p = pipeline(tmp_path, {"format": "csv", "path": str(f), "options": {"header": True}, "null_values": []},
                 name="ing_unmarked")
    f.write_text("id,amount,colour\n1,NA,red\n2,2.5,NA\n")
    [res] = ingest(spark, settings, p, "m3", D1)
    plain = spark.table("lakeforge.bronze_ing_unmarked")
    assert dict(plain.dtypes)["amount"] == "string" and plain.where("colour = 'NA'").count() == 1


def test_json_lines_parquet_and_excel_sources(spark, settings, tmp_path):
    jl = tmp_path / "events.jsonl"
    jl.write_text('{"id": 1, "kind": "a", "n": 2, "meta": {"x": 1}}\n{"id": 2, "kind": "b", "n": 3}\n'
                  '{"id": 3, "kind": broken\n{"id": 4, "kind": "c", "n": 4}\n')
    pq = tmp_path / "pq"
    local_frame(spark, [(1, "x", 1.5), (2, "y", 2.5)], "id long, s string, v double").write.parquet(str(pq))
    book = openpyxl.Workbook()
    s1 = book.active
    s1.title = "north"
    s1.append(["id", "city", "sales", "opened"])
    s1.append([1, "Oslo", 10.5, dt.datetime(2024, 1, 2)])
    s1.append([2, "Bergen", "unknown", dt.datetime(2024, 2, 3)])
    s2 = book.create_sheet("south")
    s2.append(["id", "city", "sales", "opened"])
    s2.append([3, "Kristiansand", 7, dt.datetime(2024, 3, 4)])
    s2.append([4, "Arendal", 8.25, None, "stray cell"])
    xlsx = tmp_path / "sales.xlsx"
    book.save(xlsx)

    p = pipeline(
        tmp_path, {"format": "json", "path": str(jl)}, name="ing_multi",
        sources={
            "pq": {"format": "parquet", "path": str(pq), "table": "bronze_ing_pq"},
            "xl": {"format": "excel", "path": str(xlsx), "sheets": ["*"], "table": "bronze_ing_xl",
                   "schema": "id INT, city STRING, sales DOUBLE, opened DATE"},
        },
    )
    res = {r.name: r for r in ingest(spark, settings, p, "r1", D1)}
    assert counts(res["main"]) == (4, 3, 1)  # the first load infers the types
    main = spark.table("lakeforge.bronze_ing_multi")
    assert dict(main.dtypes)["id"] == "bigint" and dict(main.dtypes)["meta"] == "string"
    assert main.where("id = 1").first()["meta"] == '{"x": 1}'
    assert [r["_reason"] for r in spark.table("lakeforge.bronze_ing_multi_quarantine").collect()] == ["malformed JSON record"]
    assert counts(res["pq"]) == (2, 2, 0)
    assert counts(res["xl"]) == (4, 2, 2)
    xl = spark.table("lakeforge.bronze_ing_xl").orderBy("id").select("id", "city", "sales", "opened", "_source").collect()
    assert [(r["id"], r["city"], r["sales"], r["opened"]) for r in xl] == [
        (1, "Oslo", 10.5, dt.date(2024, 1, 2)), (3, "Kristiansand", 7.0, dt.date(2024, 3, 4))]
    assert xl[1]["_source"].endswith("sales.xlsx#south")
    q = spark.table("lakeforge.bronze_ing_xl_quarantine").orderBy("_position").collect()
    assert [(r["_reason"], r["_position"]) for r in q] == [
        ("column sales: 'unknown' is not a valid double", 3), ("more cells than header columns", 3)]

    # --source: one source only; later loads enforce the table's types
    jl.write_text('{"id": 5, "kind": "a", "n": 2}\n{"id": 6, "kind": "b", "n": 3}\n{"id": "seven", "kind": "c", "n": 1}\n')
    [only] = ingest(spark, settings, p, "r2", D1, only="main")
    assert only.name == "main" and counts(only) == (3, 2, 1)
    assert [r["_reason"] for r in spark.table("lakeforge.bronze_ing_multi_quarantine").collect()] == [
        "column id: 'seven' is not a valid bigint"]
    with pytest.raises(InputDataError, match="no source named 'nope'; sources: main, pq, xl"):
        ingest(spark, settings, p, "r3", D1, only="nope")


def test_empty_source_and_missing_path_never_replace_data(spark, settings, tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("id,v\n1,2\n")
    p = pipeline(tmp_path, {"format": "csv", "path": str(f), "options": {"header": True}}, name="ing_empty")
    ingest(spark, settings, p, "r1", D1)
    f.write_text("id,v\n")
    with pytest.raises(InputDataError, match="has no rows; refusing to replace lakeforge.bronze_ing_empty"):
        ingest(spark, settings, p, "r2", D1)
    ok = pipeline(tmp_path, {"format": "csv", "path": str(f), "options": {"header": True}, "allow_empty": True}, name="ing_empty")
    [res] = ingest(spark, settings, ok, "r3", D1)
    assert "nothing loaded (allow_empty)" in res.message
    gone = pipeline(tmp_path, {"format": "csv", "path": str(tmp_path / "gone" / "*.csv")}, name="ing_empty")
    with pytest.raises(InputDataError, match="nothing found at .*gone"):
        ingest(spark, settings, gone, "r4", D1)
    assert spark.table("lakeforge.bronze_ing_empty").count() == 1



def test_pandas_nanosecond_parquet_gets_the_fix_naming_the_column(spark, settings, tmp_path):
    import pandas as pd

    from lakeforge.core.config_source import SourceConfig
    from lakeforge.core.io import read_source

    f = tmp_path / "events.parquet"
    pd.DataFrame({"id": [1, 2], "seen at": pd.to_datetime(["2026-01-01 10:00", "2026-01-02 11:30"])}).to_parquet(f)
    p = pipeline(tmp_path, {"format": "parquet", "path": str(f)}, name="ing_nanos")
    fix = r"nanosecond timestamps \(.*events\.parquet: column\(s\) 'seen at'\).*coerce_timestamps='us'"
    with pytest.raises(InputDataError, match=r"events\.parquet; it holds " + fix + ".*nothing was written"):
        ingest(spark, settings, p, "r1", D1)
    assert not spark.catalog.tableExists("lakeforge.bronze_ing_nanos")
    with pytest.raises(InputDataError, match=r"--input: cannot read .*events\.parquet as parquet: .*" + fix):
        read_source(spark, SourceConfig(format="parquet", path=str(f)), settings, "--input")
    # written as the message says, it loads
    pd.read_parquet(f).to_parquet(f, coerce_timestamps="us", allow_truncated_timestamps=True)
    [res] = ingest(spark, settings, p, "r2", D1)
    assert res.rows_loaded == 2 and dict(spark.table("lakeforge.bronze_ing_nanos").dtypes)["seen_at"] == "timestamp_ntz"


# ---------------------------------------------------------------------------------------------
# Data quality
# ---------------------------------------------------------------------------------------------


def test_data_quality_checks_are_recorded_and_errors_fail_the_stage(spark, settings, tmp_path):
    f = tmp_path / "dq.csv"
    f.write_text("id,plan,age,email,updated\n1,basic,30,a@x.io,2026-03-01 10:00:00\n2,gold,130,b@x.io,2026-03-01 11:00:00\n"
                 "2,gold,130,b@x.io,2026-03-01 11:00:00\n3,silver,,nope,2026-02-01 09:00:00\n")
    checks = [
        {"type": "not_null", "column": "age", "severity": "warn"},
        {"type": "unique", "columns": ["id"], "severity": "warn"},
        {"type": "allowed_values", "column": "plan", "values": ["basic", "gold"], "severity": "warn"},
        {"type": "range", "column": "age", "min": 0, "max": 120, "severity": "warn"},
        {"type": "regex", "column": "email", "pattern": "^[^@]+@[^@]+$", "severity": "warn"},
        {"type": "row_count", "min": 1, "max": 100, "severity": "warn"},
        {"type": "freshness", "column": "updated", "max_age_hours": 24 * 365 * 100, "severity": "warn"},
        {"type": "duplicate_rows", "severity": "warn"},
    ]
    p = pipeline(tmp_path, {"format": "csv", "path": str(f), "options": {"header": True}, "checks": checks}, name="ing_dq")
    [res] = ingest(spark, settings, p, "dq1", D1)
    got = {c.check.type: (c.passed, c.failing_rows) for c in res.checks}
    assert got == {"not_null": (False, 1), "unique": (False, 1), "allowed_values": (False, 1), "range": (False, 2),
                   "regex": (False, 1), "row_count": (True, 0), "freshness": (True, 0), "duplicate_rows": (False, 1)}
    stored = spark.table("lakeforge.dq_results").where("run_id = 'dq1'")
    assert stored.count() == 8 and stored.where("passed").count() == 2

    strict = pipeline(tmp_path, {"format": "csv", "path": str(f), "options": {"header": True},
                                 "checks": [{"type": "unique", "columns": ["id"]}]}, name="ing_dq")
    with pytest.raises(DataQualityError, match=r"unique\(id\): 1 rows repeat a key"):
        ingest(spark, settings, strict, "dq2", D1)
    assert spark.table("lakeforge.dq_results").where("run_id = 'dq2' AND NOT passed AND severity = 'error'").count() == 1

    dedup = pipeline(tmp_path, {"format": "csv", "path": str(f), "options": {"header": True},
                                "dedupe": {"key": ["id"], "order_by": "updated"},
                                "checks": [{"type": "unique", "columns": ["id"]}]}, name="ing_dq")
    [res] = ingest(spark, settings, dedup, "dq3", D1)
    assert (res.rows_read, res.rows_loaded, res.rows_deduplicated) == (4, 3, 1) and res.counts_add_up


# ---------------------------------------------------------------------------------------------
# PostgreSQL over JDBC
# ---------------------------------------------------------------------------------------------


@pytest.fixture()
def pg_env(postgres, monkeypatch):
    monkeypatch.setenv("LF_PG_USER", postgres.user)
    monkeypatch.setenv("LF_PG_PASSWORD", postgres.password)
    return postgres


@pytest.mark.integration
def test_postgres_table_partitioned_and_incremental_by_watermark(spark, settings, tmp_path, pg_env):
    pg = pg_env
    pg.sql("DROP TABLE IF EXISTS orders; CREATE TABLE orders (id int primary key, amount numeric(10,2), "
           "updated_at timestamp); INSERT INTO orders SELECT g, g * 1.5, timestamp '2026-01-01' + g * interval '1 hour' "
           "FROM generate_series(1, 200) g;")
    jdbc = {"url": pg.jdbc_url, "table": "orders", "user_env": "LF_PG_USER", "password_env": "LF_PG_PASSWORD",
            "partition_column": "id", "lower_bound": 1, "upper_bound": 200, "num_partitions": 4,
            "watermark_column": "updated_at"}
    p = pipeline(tmp_path, {"format": "jdbc", "jdbc": jdbc, "mode": "incremental"}, name="ing_pg")
    [res] = ingest(spark, settings, p, "p1", D1)
    assert counts(res) == (200, 200, 0)
    bronze = spark.table("lakeforge.bronze_ing_pg")
    assert bronze.agg(F.sum("id")).first()[0] == 20100
    assert bronze.where("_source NOT LIKE 'jdbc:postgresql://127.0.0.1:%/orders'").count() == 0
    [again] = ingest(spark, settings, p, "p2", D1)
    assert again.rows_read == 0 or again.rows_loaded == 0
    pg.sql("INSERT INTO orders SELECT g, g * 1.5, timestamp '2026-01-01' + g * interval '1 hour' FROM generate_series(201, 230) g;")
    [more] = ingest(spark, settings, p, "p3", D2)
    assert counts(more) == (30, 30, 0)
    assert bronze.count() == 230 and bronze.select("id").distinct().count() == 230

    q = pipeline(tmp_path, {"format": "jdbc", "jdbc": {"url": pg.jdbc_url, "query": "SELECT id, amount FROM orders WHERE id <= 10",
                                                       "user_env": "LF_PG_USER", "password_env": "LF_PG_PASSWORD"}},
                 name="ing_pgq")
    [res] = ingest(spark, settings, q, "p4", D1)
    assert counts(res) == (10, 10, 0)


@pytest.mark.integration
def test_postgres_errors_name_host_and_variable_never_the_password(spark, settings, tmp_path, pg_env, monkeypatch):
    pg = pg_env
    monkeypatch.setenv("LF_PG_PASSWORD", "wrong-secret-123")
    jdbc = {"url": pg.jdbc_url, "table": "orders", "user_env": "LF_PG_USER", "password_env": "LF_PG_PASSWORD", "retries": 1}
    p = pipeline(tmp_path, {"format": "jdbc", "jdbc": jdbc}, name="ing_pgbad")
    with pytest.raises(SourceError) as exc:
        ingest(spark, settings, p, "x1", D1)
    msg = str(exc.value)
    assert f"127.0.0.1:{pg.port}" in msg and "after 2 attempt(s)" in msg and "wrong-secret-123" not in msg
    monkeypatch.delenv("LF_PG_PASSWORD")
    with pytest.raises(InputDataError, match="environment variable LF_PG_PASSWORD .* is not set"):
        ingest(spark, settings, p, "x2", D1)
    closed = pipeline(tmp_path, {"format": "jdbc", "jdbc": {**jdbc, "url": "jdbc:postgresql://127.0.0.1:1/x",
                                                            "password_env": None, "retries": 0}}, name="ing_pgbad")
    with pytest.raises(SourceError, match=r"at 127\.0\.0\.1:1 after 1 attempt"):
        ingest(spark, settings, closed, "x3", D1)


# ---------------------------------------------------------------------------------------------
# HTTP API
# ---------------------------------------------------------------------------------------------


def test_http_api_pages_into_bronze(spark, settings, tmp_path, api_server):
    http = {"url": f"{api_server.url}/paged", "records_path": "items", "pagination": "page", "page_size": 5,
            "retries": 1, "backoff_s": 0}
    p = pipeline(tmp_path, {"format": "http", "http": http}, name="ing_api")
    [res] = ingest(spark, settings, p, "h1", D1)
    assert counts(res) == (23, 23, 0)
    bronze = spark.table("lakeforge.bronze_ing_api")
    types = dict(bronze.dtypes)
    assert (types["id"], types["price"], types["active"], types["tags"]) == ("bigint", "double", "boolean", "string")
    assert sorted(r["id"] for r in bronze.collect()) == list(range(1, 24))
    assert bronze.where("id = 2").first()["dims"] == '{"h": 4, "w": 2}'
    [again] = ingest(spark, settings, p, "h2", D1)  # a snapshot: replaced, not doubled
    assert again.rows_loaded == 23 and spark.table("lakeforge.bronze_ing_api").count() == 23

    down = pipeline(tmp_path, {"format": "http", "http": {**http, "url": f"{api_server.url}/error500", "retries": 1}},
                    name="ing_api_down")
    with pytest.raises(SourceError, match=r"error500.*2 attempt"):
        ingest(spark, settings, down, "h3", D1)
    assert not spark.catalog.tableExists("lakeforge.bronze_ing_api_down")


def test_a_first_load_keeps_a_columns_type_when_a_few_values_do_not_parse(spark, settings, tmp_path):
    from lakeforge.ingest.types import infer_strings, tolerant_type

    # at least 99 % of the non-blank values parse, some do not: the type, widened to cover every value that parses
    assert tolerant_type(200, {"int": 199, "bigint": 199, "double": 199, "date": 0, "timestamp": 0}) == "int"
    assert tolerant_type(200, {"int": 198, "bigint": 198, "double": 199, "date": 0, "timestamp": 0}) == "double"
    assert tolerant_type(200, {"int": 0, "bigint": 0, "double": 0, "date": 198, "timestamp": 199}) == "timestamp"
    assert tolerant_type(200, {"int": 197, "bigint": 197, "double": 197, "date": 0, "timestamp": 0}) is None  # 98.5 %
    assert tolerant_type(50, {"int": 49, "bigint": 49, "double": 49, "date": 0, "timestamp": 0}) is None  # 98 %
    assert tolerant_type(200, {"int": 200, "bigint": 200, "double": 200, "date": 0, "timestamp": 0}) is None  # all: Spark's call
    strings = local_frame(spark, [(str(i) if i != 5 else "n/a",) for i in range(150)], "v string")
    assert infer_strings(strings, ["v"])["v"].dataType.simpleString() == "bigint"  # Excel, HTTP: the same rule

    # one 'abc' among 200 integers: tenure is an int column, the row is a bad record with the usual reason
    f = tmp_path / "tenure.csv"
    f.write_text("id,tenure,plan\n" + "".join(f"{i},{'abc' if i == 57 else i % 72},{'ab'[i % 2]}\n" for i in range(200)))
    p = pipeline(tmp_path, {"format": "csv", "path": str(f), "options": {"header": True}}, name="ing_tolerant")
    said = []
    [res] = ingest(spark, settings, p, "t1", D1, progress=said.append)
    assert counts(res) == (200, 199, 1) and res.counts_add_up
    assert "main: tenure int: 1 of 200 values do not parse: they are bad records (on_bad_records: quarantine)" in said
    bronze = spark.table("lakeforge.bronze_ing_tolerant")
    assert dict(bronze.dtypes)["tenure"] == "int" and bronze.where("id = 57").count() == 0
    q = spark.table("lakeforge.bronze_ing_tolerant_quarantine").collect()
    assert [(r["_reason"], r["_raw"]) for r in q] == [("column tenure: 'abc' is not a valid int", "57,abc,b")]
    # the same file into the table, now of known schema: the same outcome
    [again] = ingest(spark, settings, p, "t2", D1)
    assert counts(again) == (200, 199, 1)
    # 3 of 200 (1.5 %) do not parse: too many to be bad records, the column is text
    f.write_text("id,tenure,plan\n" + "".join(f"{i},{'abc' if i in (1, 2, 3) else i},a\n" for i in range(200)))
    p = pipeline(tmp_path, {"format": "csv", "path": str(f), "options": {"header": True}}, name="ing_tolerant_text")
    [res] = ingest(spark, settings, p, "t3", D1)
    assert counts(res) == (200, 200, 0) and dict(spark.table("lakeforge.bronze_ing_tolerant_text").dtypes)["tenure"] == "string"


def test_unique_counts_repeated_whole_keys_only_nulls_are_not_nulls_business(spark):
    from lakeforge.core.config_source import CheckConfig
    from lakeforge.ingest.quality import evaluate

    unique = CheckConfig(type="unique", columns=["k"])
    [res] = evaluate(local_frame(spark, [(1,), (2,), (2,), (None,), (None,)], "k int"), [unique], ["k"], "t")
    assert (res.passed, res.failing_rows, res.detail) == (False, 1, "1 rows repeat a key already seen")
    [res] = evaluate(local_frame(spark, [(1,), (2,), (None,), (None,)], "k int"), [unique], ["k"], "t")
    assert (res.passed, res.failing_rows) == (True, 0)
    # a key of two columns: a row with either of them null has no key to repeat
    pair = CheckConfig(type="unique", columns=["a", "b"])
    rows = [(1, "x"), (1, "x"), (1, None), (1, None), (None, None), (None, None), (2, "x")]
    [res] = evaluate(local_frame(spark, rows, "a int, b string"), [pair], ["a", "b"], "t")
    assert (res.passed, res.failing_rows) == (False, 1)


def test_jdbc_source_on_a_closed_port_says_connection_refused(spark, settings, tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    jdbc = {"url": f"jdbc:postgresql://127.0.0.1:{port}/db", "table": "orders", "retries": 0}
    p = pipeline(tmp_path, {"format": "jdbc", "jdbc": jdbc}, name="ing_pgclosed")
    with pytest.raises(SourceError) as exc:
        ingest(spark, settings, p, "c1", D1)
    msg = str(exc.value)
    assert f"127.0.0.1:{port}" in msg and "connection refused" in msg, msg
    assert "An error occurred while calling" not in msg and "\n" not in msg
