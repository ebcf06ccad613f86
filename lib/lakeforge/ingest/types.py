"""Types for ingest: type families, the cast of raw (text) records to a table's types with a
reason for every value that does not cast, and type inference for string columns.

Pure steps: DataFrames and schemas in, DataFrames, schemas or values out (no table reads or writes).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegralType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from lakeforge.core.config_source import SourceConfig
from lakeforge.core.errors import InputDataError
from lakeforge.core.sql import lit, q
from lakeforge.ingest.readers import CORRUPT, POSITION, SOURCE

REASON = "_reason"  # why a record is bad (null for a good one)
RAW = "_raw"  # a bad record as text, for the quarantine


def family(t: DataType) -> str:
    """The kind of values of ``t``: integral, fractional, boolean, date, timestamp or string
    (everything else, nested types included)."""
    if isinstance(t, IntegralType):
        return "integral"
    if isinstance(t, (DoubleType, FloatType, DecimalType)):
        return "fractional"
    if isinstance(t, BooleanType):
        return "boolean"
    if isinstance(t, DateType):
        return "date"
    if isinstance(t, (TimestampType, TimestampNTZType)):
        return "timestamp"
    return "string"


def accepts(table_type: DataType, seen: DataType) -> bool:
    """Values of type ``seen`` load into a column of ``table_type`` without loss."""
    a, b = family(table_type), family(seen)
    return a == b or a == "string" or (a == "fractional" and b == "integral") or (a == "timestamp" and b == "date")


def option(src: SourceConfig, name: str) -> str | None:
    """The source's reader option ``name`` (any case), as text; None when not set."""
    for k, v in src.options.items():
        if k.lower() == name.lower():
            return str(v)
    return None


def cast_text(c: str, t: DataType, src: SourceConfig) -> str:
    """SQL: the text column ``c`` as ``t`` (blank -> null; a value that does not cast -> null)."""
    col, ts = q(c), t.simpleString()
    if isinstance(t, StringType):
        return col
    if isinstance(t, DateType) and option(src, "dateFormat"):
        typed = f"try_to_date(trim({col}), {lit(option(src, 'dateFormat'))})"
    elif isinstance(t, (TimestampType, TimestampNTZType)) and option(src, "timestampFormat"):
        typed = f"CAST(try_to_timestamp(trim({col}), {lit(option(src, 'timestampFormat'))}) AS {ts})"
    else:
        typed = f"try_cast(trim({col}) AS {ts})"
    return f"CASE WHEN {col} IS NULL OR trim({col}) = '' THEN CAST(NULL AS {ts}) ELSE {typed} END"


def typed_with_reason(raw: DataFrame, target: StructType, src: SourceConfig, text: bool, keep: tuple[str, ...] = ()) -> DataFrame:
    """``raw`` cast to ``target``, plus ``_reason`` (null for a good row) and ``_raw`` (the record
    as text, for the quarantine). Built as SQL text: one call, not a dozen per column."""
    raw_types = {f.name: f.dataType for f in raw.schema.fields}
    exprs, bad_parts = [], []
    for f in target.fields:
        c, qc, ts = f.name, q(f.name), f.dataType.simpleString()
        if c not in raw_types:  # a missing column (schema evolution): null
            exprs.append(f"CAST(NULL AS {ts}) AS {qc}")
            continue
        rt = raw_types[c]
        if rt == f.dataType:
            exprs.append(qc)
            continue
        texty = text and isinstance(rt, StringType)
        typed = cast_text(c, f.dataType, src) if texty else f"try_cast({qc} AS {ts})"
        exprs.append(f"{typed} AS {qc}")
        present = f"nullif(trim({qc}), '')" if texty else qc
        bad_parts.append(f"CASE WHEN {present} IS NOT NULL AND ({typed}) IS NULL THEN concat("
                         f"{lit(f'column {c}: ' + chr(39))}, substring(CAST({qc} AS STRING), 1, 60), "
                         f"{lit(chr(39) + ' is not a valid ' + ts)}) END")
    kind = {"csv": "malformed CSV record (wrong number of fields or unbalanced quotes)",
            "json": "malformed JSON record", "excel": "more cells than header columns",
            "http": "record is not a JSON object"}.get(src.format, "malformed record")
    reason = f"CASE WHEN {q(CORRUPT)} IS NOT NULL THEN {lit(kind)} END"
    if bad_parts:
        reason = f"coalesce({reason}, nullif(concat_ws('; ', {', '.join(bad_parts)}), ''))"
    data_raw = [c for c in raw.columns if c not in (CORRUPT, SOURCE, POSITION, *keep)]
    as_text = ", ".join(f"CAST({q(c)} AS STRING) AS {q(c)}" for c in data_raw)
    record = f"coalesce({q(CORRUPT)}, to_json(struct({as_text})))"
    return raw.selectExpr(*exprs, q(SOURCE), q(POSITION), f"{reason} AS {REASON}", f"{record} AS {RAW}",
                          *[q(k) for k in keep])


def infer_strings(df: DataFrame, columns: list[str]) -> StructType:
    """Types for string columns (Excel, API records): the narrowest of long, double, boolean,
    date, timestamp that every non-blank value casts to; else string. One aggregation."""
    order = [("long", LongType()), ("double", DoubleType()), ("boolean", BooleanType()),
             ("date", DateType()), ("timestamp", TimestampType())]
    aggs = []
    for i, c in enumerate(columns):
        v = F.nullif(F.trim(F.col(f"`{c}`")), F.lit(""))
        aggs.append(F.count(v).alias(f"n{i}"))
        for name, _t in order:
            aggs.append(F.count(F.expr(f"try_cast(nullif(trim(`{c}`), '') AS {name})")).alias(f"{name}{i}"))
    row = df.agg(*aggs).first()
    fields = []
    for i, c in enumerate(columns):
        n = row[f"n{i}"]
        chosen: DataType = StringType()
        if n:
            for name, t in order:
                if row[f"{name}{i}"] == n and not (name == "boolean" and n < 2):
                    chosen = t
                    break
        fields.append(StructField(c, chosen))
    return StructType(fields)


def nested_as_text(target: StructType) -> StructType:
    """``target`` with nested types (objects, arrays, maps) as strings: in text sources nested
    JSON values stay JSON text."""
    return StructType([StructField(f.name, f.dataType if family(f.dataType) != "string" or isinstance(f.dataType, StringType)
                                   else StringType()) for f in target.fields])


def parse_ddl(spark: SparkSession, ddl: str, where: str) -> StructType:
    """The configured ``schema`` (DDL text) as a StructType; InputDataError naming ``where``."""
    try:
        return spark.createDataFrame([], ddl).schema
    except Exception as exc:  # noqa: BLE001
        raise InputDataError(f"{where}.schema: not valid DDL ({str(exc).splitlines()[0][:200]}); "
                             "expected e.g. 'id INT, name STRING, ts TIMESTAMP'") from None
