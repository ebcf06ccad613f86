"""Data-quality expectations, evaluated in Spark on the rows a load committed.

All checks of a table are computed in ONE aggregation (one pass over the loaded rows): not
null, unique key (rows minus distinct keys, of the rows without a null in the key), allowed
values, numeric range, regex, row count bounds, freshness of a timestamp column and duplicate
rows (rows minus distinct rows). Each result says how many rows fail; ``warn`` results are
recorded, ``error`` results fail the stage. Results are appended to the Delta table ``dq_results``.

Plain Spark rather than a library: PyDeequ's deequ jar has builds for Spark 3.x only (none for
Spark 4.1 on Maven Central); Great Expectations and Soda Core add large dependency trees and
evaluate one Spark job per expectation, where a single aggregation does them all.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.core.config_source import CheckConfig
from lakeforge.core.frames import local_frame
from lakeforge.core.settings import Settings
from lakeforge.core.errors import LakeforgeError, MissingColumnError

DQ_TABLE = "dq_results"
DQ_SCHEMA = (
    "run_id string, run_date date, pipeline string, table_name string, check_name string, check_type string, "
    "column_name string, severity string, passed boolean, failing_rows long, total_rows long, detail string, "
    "checked_at timestamp"
)


class DataQualityError(LakeforgeError):
    """An ``error``-severity expectation failed; later stages do not run."""


@dataclass(frozen=True)
class CheckResult:
    check: CheckConfig
    passed: bool
    failing_rows: int
    total_rows: int
    detail: str


def _q(c: str) -> Column:
    return F.col(f"`{c}`")


def _count_if(cond: Column) -> Column:
    return F.sum(F.when(cond, 1).otherwise(0))


def evaluate(df: DataFrame, checks: list[CheckConfig], data_columns: list[str], where: str,
             now: dt.datetime | None = None) -> list[CheckResult]:
    """Every check in one aggregation over ``df``."""
    if not checks:
        return []
    missing = sorted({c for chk in checks for c in chk.target_columns if c not in df.columns})
    if missing:
        raise MissingColumnError(f"{where}.checks", missing, data_columns)
    now = now or dt.datetime.now()
    aggs: list[Column] = [F.count(F.lit(1)).alias("__rows")]
    for i, chk in enumerate(checks):
        cols = chk.target_columns
        t = chk.type
        if t == "not_null":
            aggs.append(_count_if(F.greatest(*[_q(c).isNull().cast("int") for c in cols]) == 1
                                  if len(cols) > 1 else _q(cols[0]).isNull()).alias(f"c{i}"))
        elif t == "unique":
            # rows with a whole key (no column null: a null is not_null's business) minus such keys
            whole = functools.reduce(lambda a, b: a & b, [_q(c).isNotNull() for c in cols])
            key = F.struct(*[_q(c) for c in cols]) if len(cols) > 1 else _q(cols[0])
            aggs.append((F.count(F.when(whole, 1)) - F.count_distinct(F.when(whole, key))).alias(f"c{i}"))
        elif t == "allowed_values":
            aggs.append(_count_if(_q(cols[0]).isNotNull() & ~_q(cols[0]).cast("string").isin([str(v) for v in chk.values])).alias(f"c{i}"))
        elif t == "range":
            v = F.expr(f"try_cast(`{cols[0]}` AS DOUBLE)")
            bad = F.lit(False)
            if chk.min is not None:
                bad = bad | (v < chk.min)
            if chk.max is not None:
                bad = bad | (v > chk.max)
            aggs.append(_count_if(_q(cols[0]).isNotNull() & (bad | v.isNull())).alias(f"c{i}"))
        elif t == "regex":
            aggs.append(_count_if(_q(cols[0]).isNotNull() & ~_q(cols[0]).cast("string").rlike(chk.pattern)).alias(f"c{i}"))
        elif t == "freshness":
            aggs.append(F.max(F.expr(f"try_cast(`{cols[0]}` AS TIMESTAMP)")).alias(f"c{i}"))
        elif t == "duplicate_rows":
            aggs.append((F.count(F.lit(1)) - F.count_distinct(F.struct(*[_q(c) for c in data_columns]))).alias(f"c{i}"))
        elif t == "row_count":
            aggs.append(F.lit(0).alias(f"c{i}"))
    row = df.agg(*aggs).first()
    total = int(row["__rows"])
    results = []
    for i, chk in enumerate(checks):
        value = row[f"c{i}"]
        if chk.type == "row_count":
            ok = (chk.min is None or total >= chk.min) and (chk.max is None or total <= chk.max)
            results.append(CheckResult(chk, ok, 0 if ok else total, total,
                                       f"{total} rows; expected {_bounds(chk)}"))
        elif chk.type == "freshness":
            age_h = None if value is None else (now - value).total_seconds() / 3600
            ok = age_h is not None and age_h <= chk.max_age_hours
            detail = (f"no timestamp in {chk.column}" if value is None
                      else f"newest {chk.column} {value} is {age_h:.1f} h old (max {chk.max_age_hours:g} h)")
            results.append(CheckResult(chk, ok, 0 if ok else total, total, detail))
        else:
            failing = int(value or 0)
            results.append(CheckResult(chk, failing == 0, failing, total, _detail(chk, failing, total)))
    return results


def _bounds(chk: CheckConfig) -> str:
    lo = f">= {chk.min:g}" if chk.min is not None else ""
    hi = f"<= {chk.max:g}" if chk.max is not None else ""
    return " and ".join(p for p in (lo, hi) if p)


def _detail(chk: CheckConfig, failing: int, total: int) -> str:
    share = f"{failing} of {total} rows"
    return {
        "not_null": f"{share} null",
        "unique": f"{failing} rows repeat a key already seen",
        "allowed_values": f"{share} outside {chk.values}",
        "range": f"{share} not {_bounds(chk)} (or not numeric)",
        "regex": f"{share} do not match {chk.pattern!r}",
        "duplicate_rows": f"{failing} rows duplicate another row",
    }.get(chk.type, share)


def record(spark: SparkSession, settings: Settings, results: list[CheckResult], *, run_id: str,
           run_date: dt.date, pipeline: str, table: str) -> None:
    """Append the results to ``dq_results`` (one atomic commit)."""
    if not results:
        return
    now = dt.datetime.now()
    rows = [(run_id, run_date, pipeline, table, r.check.label, r.check.type, ", ".join(r.check.target_columns) or None,
             r.check.severity, r.passed, r.failing_rows, r.total_rows, r.detail, now) for r in results]
    df = local_frame(spark, rows, DQ_SCHEMA)
    df.write.format("delta").mode("append").option("mergeSchema", "true").saveAsTable(settings.table(DQ_TABLE))


def raise_on_errors(results: list[CheckResult], table: str) -> None:
    failed = [r for r in results if not r.passed and r.check.severity == "error"]
    if failed:
        what = "; ".join(f"{r.check.label}: {r.detail}" for r in failed)
        raise DataQualityError(
            f"data-quality check(s) failed on {table}: {what}. The results are in table {DQ_TABLE}; "
            "fix the source data or relax the check (severity: warn) in the pipeline config."
        )
