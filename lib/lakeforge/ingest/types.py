"""Types for ingest: type families, the cast of raw (text) records to a table's types with a
reason for every value that does not cast, and type inference for string columns (tolerant of
a few values that do not parse: ``tolerant_type``).

Pure steps: DataFrames and schemas in, DataFrames, schemas or values out (no table reads or writes).
"""

from __future__ import annotations

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
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
# On a first load (types inferred), up to this share of a text column's non-blank values may
# fail to parse as the type the others have: they are bad records (quarantined with the usual
# reason), not a reason to make the whole column text.
TOLERATED = 0.01
PROBE_ROWS = 1000  # the first rows that tell which text columns may be typed (tolerate_bad_values)
_DIGITS = ", ".join(f"'{d}'" for d in range(10))
TOLERANT_TYPES = {"int": IntegerType(), "bigint": LongType(), "long": LongType(), "double": DoubleType(),
                  "date": DateType(), "timestamp": TimestampType()}


# Text read as missing in CSV and Excel sources unless ``source.null_values`` says otherwise:
# pandas' read_csv defaults (R's NA, Excel's #N/A, Python's None...) and the '?' of UCI's files.
NULL_MARKERS = ("NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "#N/A", "#NA", "<NA>", "?")


def null_markers(src: SourceConfig) -> tuple[str, ...]:
    """The values of ``src`` read as missing: its ``null_values`` (CSV and Excel sources only)."""
    if src.format not in ("csv", "excel"):
        return ()
    return NULL_MARKERS if src.null_values is None else tuple(src.null_values)


def without_markers(value: str, markers: tuple[str, ...]) -> str:
    """SQL: the text expression ``value``, null when it is one of ``markers`` (after trimming)."""
    if not markers:
        return value
    return f"CASE WHEN trim({value}) IN ({', '.join(lit(m) for m in markers)}) THEN NULL ELSE {value} END"


def markers_as_null(df: DataFrame, columns: list[str], markers: tuple[str, ...]) -> DataFrame:
    """``df`` with the values of its text ``columns`` that are missing-value markers as null."""
    text = {f.name for f in df.schema.fields if isinstance(f.dataType, StringType)} & set(columns)
    if not markers or not text:
        return df
    return df.select(*[F.expr(without_markers(q(c), markers)).alias(c) if c in text else F.col(q(c)) for c in df.columns])


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
    date, timestamp that every non-blank value casts to; else the type that at least 99 % of
    them cast to (``tolerant_type``: the others are bad records); else string. One aggregation."""
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
            else:
                tolerated = tolerant_type(n, {name: row[f"{name}{i}"] for name, _t in order if name != "boolean"})
                chosen = TOLERANT_TYPES[tolerated] if tolerated else chosen
        fields.append(StructField(c, chosen))
    return StructType(fields)


def tolerant_type(n: int, parsed: dict[str, int], share: float = TOLERATED) -> str | None:
    """The type of a text column whose ``n`` non-blank values parse as ``parsed`` says ({type:
    how many values parse as it}: ``double`` and the integral types ``int`` / ``bigint`` /
    ``long``, ``timestamp`` and ``date``) when some of them do not parse, but at most ``share``:
    numbers (the narrowest integral type that takes every number, else double) before times (date
    when every time is a plain date, else timestamp). None: every value parses (the caller's
    inference decides), or too many do not (text)."""
    least = (1 - share) * n
    for widest, narrower in (("double", ("int", "bigint", "long")), ("timestamp", ("date",))):
        ok = parsed.get(widest, 0)
        if n and least <= ok < n:
            return next((t for t in narrower if parsed.get(t) == ok), widest)
    return None


def every_value_type(n: int, parsed: dict[str, int]) -> str | None:
    """The narrowest type every one of a text column's ``n`` non-blank values parses as (``parsed``
    as for ``tolerant_type``, with ``blank``: values of spaces only): Spark's inference made the
    column text for its missing-value markers alone (R's ``NA``). None: some do not parse, or
    some are spaces (Telco's ``TotalCharges``: the table keeps such a column as text, and the
    features cast it)."""
    if not n or parsed.get("blank"):
        return None
    order = ("int", "bigint", "double") if parsed.get("double") == n else ("date", "timestamp")
    return next((t for t in order if parsed.get(t) == n), None)


def tolerate_bad_values(df: DataFrame, inferred: StructType, share: float = TOLERATED) -> tuple[StructType, list[str]]:
    """``inferred`` (Spark's CSV inference, where one value that does not parse makes a column
    text) with its text columns typed by ``tolerant_type`` over the values of ``df`` (the raw
    text), and what was retyped (``tenure int: 1 of 200 values do not parse``).

    One aggregation over ``df``, of the columns that may be typed: those whose values in the
    first PROBE_ROWS rows (a small job) are at least half numbers or times, or all blank. None
    when no column may be typed. (Over every text column, the pass cost 3.4 s on Telco x 100
    (704,300 rows, 18 text columns; a plain read: 1.3 s); the probe 0.6 s and the pass over the
    one candidate 0.9 s.)"""
    text = [f.name for f in inferred.fields if isinstance(f.dataType, StringType) and f.name in df.columns]
    if not text:
        return inferred, []
    try:
        head = _parse_counts(df.limit(PROBE_ROWS), text)
        maybe = [c for c in text if 2 * max(head[c][1]["double"], head[c][1]["timestamp"]) >= head[c][0]]
        counts = _parse_counts(df, maybe) if maybe else {}
    except (Py4JJavaError, PySparkException):  # the read fails (a file's CSV header differs...): Spark's
        return inferred, []  # types; the load reads the files again and says what is wrong
    types, notes = {}, []
    for c, (n, parsed) in counts.items():
        chosen = tolerant_type(n, parsed, share) or every_value_type(n, parsed)
        if chosen:
            types[c] = TOLERANT_TYPES[chosen]
            bad = n - parsed["double" if chosen in ("int", "bigint", "double") else "timestamp"]
            if bad:
                notes.append(f"{c} {chosen}: {bad:,} of {n:,} values do not parse")
    return StructType([StructField(f.name, types.get(f.name, f.dataType)) for f in inferred.fields]), notes


def _parse_counts(df: DataFrame, columns: list[str]) -> dict[str, tuple[int, dict[str, int]]]:
    """{column: (non-blank values, {type: how many parse as it})} for ``tolerant_type``: int,
    bigint, double, timestamp and date (without a time of day); ``blank``: values of spaces only
    (or empty). One aggregation."""
    # Casts only of values that start like a number or a date (a cast that fails costs an
    # exception: 5.0 s instead of 3.4 s for the pass above), and as strictly as Spark's CSV parser
    # ('1.0' is no int)
    looks = [F.expr(f"CASE WHEN substr({q(c)}, 1, 1) IN ('+', '-', '.', {_DIGITS}) THEN {q(c)} END").alias(f"v{i}")
             for i, c in enumerate(columns)]
    filled = [F.expr(f"nullif(trim({q(c)}), '') IS NOT NULL").alias(f"f{i}") for i, c in enumerate(columns)]
    aggs = []
    for i in range(len(columns)):
        v = f"v{i}"
        parses = {"int": f"CASE WHEN {v} RLIKE '^[+-]?[0-9]+$' THEN try_cast({v} AS INT) END",
                  "bigint": f"CASE WHEN {v} RLIKE '^[+-]?[0-9]+$' THEN try_cast({v} AS BIGINT) END",
                  "double": f"try_cast({v} AS DOUBLE)", "timestamp": f"try_cast({v} AS TIMESTAMP)",
                  # a date without a time of day (a time makes the column a timestamp)
                  "date": f"CASE WHEN NOT contains({v}, ':') THEN try_cast({v} AS DATE) END"}
        aggs.append(F.count_if(F.col(f"f{i}")).alias(f"n{i}"))
        aggs += [F.count(F.expr(e)).alias(f"{t}{i}") for t, e in parses.items()]
        aggs.append(F.count_if(F.col(f"b{i}")).alias(f"blank{i}"))
    spaces = [F.expr(f"{q(c)} IS NOT NULL AND trim({q(c)}) = ''").alias(f"b{i}") for i, c in enumerate(columns)]
    row = df.select(*looks, *filled, *spaces).agg(*aggs).first()
    return {c: (row[f"n{i}"], {t: row[f"{t}{i}"] for t in ("int", "bigint", "double", "timestamp", "date", "blank")})
            for i, c in enumerate(columns)}


def typed_like_a_first_load(df: DataFrame, src: SourceConfig) -> DataFrame:
    """``df`` (CSV read with Spark's inference, or Excel's text) with the types a first load gives
    the bronze table: missing-value markers as null, then text columns whose non-blank values (99 %
    or more) parse as numbers or times get that type (the others: null). For lakeforge frame."""
    df = markers_as_null(df, df.columns, null_markers(src))
    if src.format == "csv":
        schema, _ = tolerate_bad_values(df, df.schema)
    elif src.format == "excel":
        schema = infer_strings(df, df.columns)
    else:
        return df
    return df.select(*[F.col(q(f.name)) if f.dataType == df.schema[f.name].dataType
                       else F.expr(cast_text(f.name, f.dataType, src)).alias(f.name) for f in schema.fields])


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
