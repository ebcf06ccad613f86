"""Step 4 of a load, the records: cast to the target schema with a reason for each bad one,
the good ones deduplicated and given their provenance columns (and a row id), the bad ones
explained for the quarantine.

CSV and JSON lines are typed by Spark's own parser (as fast as a plain ``spark.read``); a bad
record keeps its text and gets its reason afterwards (explain_bad: which column, which value).
Other formats are cast by typed_with_reason, which gives the reason at once. With
``on_bad_records: fail`` the first bad record stops the load; the error names its file, line
(row, page) and reason, and quotes only its first characters.

Pure steps: DataFrames in, DataFrames or values out (no table reads or writes).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StringType, StructField, StructType
from pyspark.sql.window import Window

from lakeforge.core.config_source import SourceConfig
from lakeforge.core.errors import InputDataError
from lakeforge.core.frames import local_frame
from lakeforge.core.sql import q
from lakeforge.ingest import readers
from lakeforge.ingest.context import LoadContext
from lakeforge.ingest.raw import RawRead
from lakeforge.ingest.readers import CORRUPT, POSITION, SOURCE
from lakeforge.ingest.types import RAW, REASON, cast_text, markers_as_null, null_markers, typed_with_reason, without_markers

FAIL_TAG = "lakeforge-bad-record"  # in the error raised for a bad record with on_bad_records: fail
RAW_MAX = 10_000  # characters of a bad record kept in the quarantine
SHOWN = 60  # characters of a bad record an error quotes (Spark logs it too; it may hold personal data)
PENDING = "bad record"  # a reason not known yet: replaced by explain_bad()
QUARANTINE_ROW = f"{RAW} string, {REASON} string, {SOURCE} string, {POSITION} long"


# ------------------------------------------------------------------------------------------
# Casting
# ------------------------------------------------------------------------------------------


def parsed_typed(spark: SparkSession, src: SourceConfig, files: list[str], columns: list[str], mapping: dict[str, str],
                 target: StructType, check_header: bool = True) -> tuple[DataFrame, Callable[[DataFrame], DataFrame]]:
    """CSV / JSON lines typed by Spark's own parser (as fast as a plain ``spark.read``): a record
    with a value that does not parse, or the wrong number of fields, keeps its text in the
    corrupt-record column; explain_bad() later says which column and value.

    Returns the scan with ``_source`` (an Observation placed there costs least: its rows are
    already materialised once) and the projection to the target columns + ``_source``, ``_position``,
    ``_reason``, ``_raw``."""
    types = {f.name: f.dataType for f in target.fields}
    schema = StructType([StructField(c, types.get(mapping[c], StringType())) for c in columns]
                        + [StructField(CORRUPT, StringType())])
    reader = (spark.read.schema(schema).options(**readers.reader_options(src)).option("mode", "PERMISSIVE")
              .option("columnNameOfCorruptRecord", CORRUPT))
    scan = (reader.option("enforceSchema", str(not check_header).lower()).csv(files) if src.format == "csv"
            else reader.json(files))
    # the file as a column before the Observation (observed metrics may not call input_file_name())
    scan = scan.select("*", readers.source_file().alias(SOURCE))
    if src.format == "csv":
        scan = markers_rescued(scan, src, schema)
    present = {mapping[c] for c in columns}
    out = [F.col(f"`{c}`").alias(mapping[c]) for c in columns if mapping[c] in types]
    out += [F.lit(None).cast(f.dataType).alias(f.name) for f in target.fields if f.name not in present]
    bad = F.col(CORRUPT).isNotNull()

    def project(df: DataFrame) -> DataFrame:
        return df.select(*out, SOURCE, F.lit(None).cast("long").alias(POSITION),
                         F.when(bad, F.lit(PENDING)).alias(REASON), F.col(CORRUPT).alias(RAW))
    return scan, project


def markers_rescued(scan: DataFrame, src: SourceConfig, schema: StructType) -> DataFrame:
    """``scan`` (CSV typed by Spark's parser, ``schema``) with the missing-value markers as null:
    in text columns at once; a record that failed to parse only because a typed column holds a
    marker (Spark's parser knows one ``nullValue``) is parsed again as text and cast, and is good
    (its corrupt-record column cleared). Only such records pay for the second parse."""
    markers = null_markers(src)
    fields = [f for f in schema.fields if f.name != CORRUPT]
    typed = [f for f in fields if not isinstance(f.dataType, StringType)]
    if not markers:
        return scan
    if not typed:
        return markers_as_null(scan, [f.name for f in fields], markers)
    bad = F.col(CORRUPT).isNotNull()
    again = scan.select("*", F.when(bad, F.from_csv(F.col(CORRUPT), _strings_ddl([f.name for f in fields]),
                                                    _reparse_options(src))).alias("__again"))
    texts = again.select("*", *[F.expr(without_markers(f"__again.{q(f.name)}", markers)).alias(f"__t{i}")
                                for i, f in enumerate(typed)])
    cast = texts.select("*", *[F.expr(cast_text(f"__t{i}", f.dataType, src)).alias(f"__c{i}") for i, f in enumerate(typed)])
    fails = " OR ".join(f"(__t{i} IS NOT NULL AND trim(__t{i}) <> '' AND __c{i} IS NULL)" for i in range(len(typed)))
    rescued = cast.select("*", F.expr(f"{q(CORRUPT)} IS NOT NULL AND __again.{q(CORRUPT)} IS NULL AND NOT ({fails})")
                          .alias("__rescued"))
    index = {f.name: i for i, f in enumerate(typed)}
    out = [F.expr(f"CASE WHEN __rescued THEN __c{index[f.name]} ELSE {q(f.name)} END")
           if f.name in index else F.expr(without_markers(q(f.name), markers)) for f in fields]
    return rescued.select(*[c.alias(f.name) for c, f in zip(out, fields)],
                          F.when(~F.col("__rescued"), F.col(CORRUPT)).alias(CORRUPT), SOURCE)


def _strings_ddl(columns: list[str]) -> str:
    """DDL of ``columns`` and the corrupt-record column as text, for ``from_csv`` (names quoted:
    a header's names may hold spaces, dots or nothing)."""
    return ", ".join(f"{q(c)} STRING" for c in [*columns, CORRUPT])


def _reparse_options(src: SourceConfig) -> dict[str, str]:
    """The source's CSV options for ``from_csv`` of one record (no header, no multi-line reading)."""
    return {**{k: v for k, v in readers.reader_options(src).items() if k.lower() not in ("header", "multiline")},
            "mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}


def explain_bad(bad: DataFrame, src: SourceConfig, columns: list[str], mapping: dict[str, str],
                target: StructType) -> DataFrame:
    """The reason of each bad record (``_raw``, ``_source``, ``_position``): the record parsed
    again with every column as text, then cast column by column (typed_with_reason)."""
    strings = StructType([StructField(c, StringType()) for c in columns] + [StructField(CORRUPT, StringType())])
    parse = F.from_csv if src.format == "csv" else F.from_json
    parsed = bad.select(parse(F.col(RAW), _strings_ddl(columns) if src.format == "csv" else strings, _reparse_options(src)).alias("p"),
                        F.col(RAW).alias("__line"), SOURCE, POSITION)
    raw = parsed.select(*[F.col(f"p.`{c}`").alias(mapping[c]) for c in columns], F.col(f"p.{CORRUPT}").alias(CORRUPT),
                        SOURCE, POSITION, "__line")
    raw = markers_as_null(raw, [mapping[c] for c in columns], null_markers(src))
    return typed_with_reason(raw, target, src, text=True, keep=("__line",)).select(
        F.col("__line").alias(RAW), F.coalesce(F.col(REASON), F.lit("malformed record")).alias(REASON), SOURCE, POSITION)


@dataclass
class TypedRecords:
    """The records of one load cast to ``target``. ``scan`` is where the load's Observation goes;
    ``project`` turns it into the target columns + ``_source``, ``_position``, ``_reason``, ``_raw``;
    ``bad`` (a bad record) and ``bad_row`` (its quarantine row) are columns of the scan."""

    scan: DataFrame
    project: Callable[[DataFrame], DataFrame]
    bad: Column
    bad_row: Column
    fast: bool  # typed by Spark's parser (CSV, JSON): the reasons come from explain()
    src: SourceConfig
    columns: list[str]  # the source's column names
    mapping: dict[str, str]  # source name -> column name
    target: StructType

    @property
    def typed(self) -> DataFrame:
        return self.project(self.scan)

    def finish(self, df: DataFrame) -> DataFrame:
        """``df`` (the scan, observed) projected; with ``on_bad_records: fail``, a bad record
        raises an error: FAIL_TAG and fail_info() as JSON (load_error() reads it back)."""
        df = self.project(df)
        if self.src.on_bad_records == "fail":
            df = df.withColumn(REASON, F.when(F.col(REASON).isNotNull(), F.raise_error(
                F.concat(F.lit(f"{FAIL_TAG}: "), F.to_json(fail_info())))))
        return df

    def explain(self, bad: DataFrame) -> DataFrame:
        return explain_bad(bad, self.src, self.columns, self.mapping, self.target)


def cast_records(spark: SparkSession, raw: RawRead, mapping: dict[str, str], target: StructType,
                 src: SourceConfig) -> TypedRecords:
    """The records cast to ``target``: CSV / JSON read again by Spark's parser with the target
    types, other formats cast from the raw read."""
    if src.format in ("csv", "json"):  # Spark's own parser types the values; bad records are explained afterwards
        scan, project = parsed_typed(spark, src, raw.files, raw.columns, mapping, target, raw.check_header)
        bad_row = F.struct(F.substring(F.col(CORRUPT), 1, RAW_MAX).alias(RAW), F.lit(PENDING).alias(REASON),
                           F.col(SOURCE), F.lit(None).cast("long").alias(POSITION))
        return TypedRecords(scan, project, F.col(CORRUPT).isNotNull(), bad_row, True, src, raw.columns, mapping, target)
    scan = typed_with_reason(raw.df, target, src, raw.text)
    bad_row = F.struct(F.substring(F.col(RAW), 1, RAW_MAX).alias(RAW), F.col(REASON), F.col(SOURCE), F.col(POSITION))
    return TypedRecords(scan, lambda d: d, F.col(REASON).isNotNull(), bad_row, False, src, raw.columns, mapping, target)


def load_metrics(t: TypedRecords, collect_bad: bool) -> list[Column]:
    """The Observation's metrics: rows read ``n``, bad rows ``q`` and their files
    ``bad_sources``; with ``collect_bad`` also the bad rows themselves (``bad_rows``)."""
    metrics = [F.count(F.lit(1)).alias("n"), F.count(F.when(t.bad, F.lit(1))).alias("q"),
               F.array_sort(F.collect_set(F.when(t.bad, F.col(SOURCE)))).alias("bad_sources")]
    if collect_bad:
        metrics.append(F.collect_list(F.when(t.bad, t.bad_row)).alias("bad_rows"))
    return metrics


def observed_counts(spark: SparkSession, obs, collect_bad: bool) -> dict:
    """The observed metrics ``n``, ``q``, ``bad_sources``; with ``collect_bad`` the bad rows as a
    DataFrame made in the JVM from the collected rows (``bad_rows``). They never become Python
    objects: 748,052 bad records of 50M rows took 3.7 GB in the Python process as a list."""
    jrow = obs._jo.getRow()  # noqa: SLF001 - Observation.get would convert every collected row to Python
    jvm = spark._jvm  # noqa: SLF001
    to_java = jvm.scala.jdk.javaapi.CollectionConverters.asJava
    observed = {"n": int(jrow.getAs("n")), "q": int(jrow.getAs("q")),
                "bad_sources": sorted(str(f) for f in to_java(jrow.getAs("bad_sources")))}
    if collect_bad:
        schema = jvm.org.apache.spark.sql.types.StructType.fromDDL(QUARANTINE_ROW)
        jdf = spark._jsparkSession.createDataFrame(to_java(jrow.getAs("bad_rows")), schema)  # noqa: SLF001
        observed["bad_rows"] = DataFrame(jdf, spark)
    return observed


# ------------------------------------------------------------------------------------------
# Good rows
# ------------------------------------------------------------------------------------------


def provenance(run_id: str, run_date: dt.date) -> list[Column]:
    """The load metadata columns of every bronze row."""
    return [F.current_timestamp().alias("_ingested_at"), F.col(SOURCE).alias("_source"),
            F.lit(run_id).alias("_run_id"), F.lit(run_date).cast("date").alias("_run_date")]


def check_dedupe(src: SourceConfig, target: StructType, where: str) -> None:
    if src.dedupe:
        missing_cols = [c for c in [*src.dedupe.key, src.dedupe.order_by] if c not in target.fieldNames()]
        if missing_cols:
            raise InputDataError(f"{where}.dedupe: column(s) {missing_cols} not in the data; available: {', '.join(target.fieldNames())}")


def good_rows(checked: DataFrame, target: StructType, src: SourceConfig, run_id: str, run_date: dt.date) -> DataFrame:
    """The good records (no ``_reason``) with their provenance; with ``dedupe``, the latest of
    each key; with ``row_id``, an id column."""
    bad = F.col(REASON).isNotNull()
    good = checked.where(~bad).select(*[F.col(f"`{f.name}`") for f in target.fields], *provenance(run_id, run_date))
    if src.dedupe:
        w = Window.partitionBy(*[F.col(f"`{k}`") for k in src.dedupe.key]).orderBy(F.col(f"`{src.dedupe.order_by}`").desc_nulls_last())
        good = good.withColumn("__rn", F.row_number().over(w)).where("__rn = 1").drop("__rn")
    if src.row_id:
        good = good.transform(with_row_id(src.row_id, target))
    return good


def with_row_id(name: str, data: StructType) -> Callable[[DataFrame], DataFrame]:
    """Add ``name``: 32 hex digits of two 64-bit hashes of the row's data columns (and of which
    of them are null: xxhash64 skips nulls, so (1, null) and (null, 1) would collide), the same for
    the same values on every load and in any session time zone. Identical rows are numbered
    (``<hash>-2``, ``-3``...) so the id is unique within a load: a grouping by the hash (one
    shuffle), which copy gets which number does not matter, they are identical."""

    def hashable(f: StructField) -> Column:
        c = F.col(f"`{f.name}`")
        return F.to_json(c) if isinstance(f.dataType, MapType) else c  # (Spark does not hash maps)

    def add(df: DataFrame) -> DataFrame:
        cols = [hashable(f) for f in data.fields]
        nulls = F.concat(*[F.when(F.col(f"`{f.name}`").isNull(), F.lit("0")).otherwise(F.lit("1")) for f in data.fields])
        h = F.concat(*[F.lpad(F.lower(F.hex(F.xxhash64(F.lit(salt), nulls, *cols))), 16, "0") for salt in ("lakeforge-a", "lakeforge-b")])
        n = F.row_number().over(Window.partitionBy("__row_hash").orderBy("__row_hash"))
        return (df.withColumn("__row_hash", h)
                .withColumn(name, F.when(n == 1, F.col("__row_hash")).otherwise(F.concat(F.col("__row_hash"), F.lit("-"), n.cast("string"))))
                .drop("__row_hash"))
    return add


def stats_columns(ctx: LoadContext, target: StructType) -> list[str]:
    """The columns Delta keeps per-file statistics for (data skipping): only the key and the load
    metadata; on all columns they cost a large share of the write (measured on the predictions
    table: ~40 %). (_source: for the file-scoped replace of incremental loads; _run_date is a
    partition column in append mode.)"""
    return ([c for c in ([ctx.key] if ctx.key is not None else []) if c in target.fieldNames() or c == ctx.src.row_id]
            + (["_source"] if ctx.mode == "incremental" else []) + ["_run_id"])


def in_list(column: str, values: list[str]) -> str:
    """SQL: ``column IN ('a', 'b')``."""
    return f"{column} IN (" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


# ------------------------------------------------------------------------------------------
# Bad rows
# ------------------------------------------------------------------------------------------


def quarantine_rows(t: TypedRecords, metrics: dict, files: list[str]) -> DataFrame:
    """The bad records with their reasons (``_raw``, ``_reason``, ``_source``,
    ``_position``): the ones the load collected, else a second pass over the files that had bad
    records (``metrics``: the load's observed metrics)."""
    collected = metrics.get("bad_rows")
    if collected is not None:  # from the one pass
        qdf = collected
    else:  # a second pass, over the files that had bad records
        bad_sources = metrics.get("bad_sources") or []
        qsrc = t.typed
        if t.src.format in ("csv", "json", "excel", "parquet") and 0 < len(bad_sources) <= 1000 and len(bad_sources) < len(files):
            qsrc = qsrc.where(F.col(SOURCE).isin(bad_sources))
        qdf = qsrc.where(F.col(REASON).isNotNull()).select(
            F.substring(F.col(RAW), 1, RAW_MAX).alias(RAW), F.col(REASON), F.col(SOURCE), F.col(POSITION))
    if t.fast:
        qdf = t.explain(qdf)
    return qdf.select(RAW, REASON, F.col(SOURCE).alias("_source"), POSITION)


def quarantine_columns(qdf: DataFrame, run_id: str, run_date: dt.date) -> DataFrame:
    """The quarantine rows with the load's run id, run date and time."""
    return qdf.select("*", F.lit(run_id).alias("_run_id"), F.lit(run_date).cast("date").alias("_run_date"),
                      F.current_timestamp().alias("_ingested_at"))


def load_error(spark: SparkSession, t: TypedRecords, message: str, data_cols: list[str], ctx: LoadContext,
               files: list[str]) -> InputDataError | None:
    """The InputDataError for a failed load's error ``message``, when it is a known cause: a bad
    record with ``on_bad_records: fail`` (bad_record_text: where, why and its first characters)
    or a CSV file whose header differs from the first file's. None otherwise."""
    if FAIL_TAG in message:
        return InputDataError(f"{ctx.where}: bad record with on_bad_records: fail — {bad_record_text(spark, t, message, files)}. "
                              f"Nothing was committed to {ctx.table}; fix the source or use on_bad_records: quarantine")
    if "CSV header does not conform" in message or "does not conform to the schema" in message:
        return InputDataError(f"{ctx.where}: a file's CSV header does not match the columns {data_cols} "
                              f"(of {files[0]}); every file of one source needs the same header")
    return None


# ------------------------------------------------------------------------------------------
# A bad record with on_bad_records: fail
# ------------------------------------------------------------------------------------------


def fail_info() -> Column:
    """What the error of a bad record with ``on_bad_records: fail`` carries (as JSON): its file,
    position, reason (CSV / JSON: not known yet), length, a hash of it, and its first SHOWN
    characters only: Spark logs the error, and the record may hold personal data."""
    return F.struct(F.col(SOURCE).alias("source"), F.col(POSITION).alias("position"), F.col(REASON).alias("reason"),
                    F.length(F.col(RAW)).alias("length"), F.xxhash64(F.col(RAW)).alias("hash"),
                    F.substring(F.col(RAW), 1, SHOWN).alias("shown"))


def bad_record_text(spark: SparkSession, t: TypedRecords, message: str, files: list[str]) -> str:
    """``line 3 of file:///x.csv: column amount: 'x' is not a valid double; the record: '2,ab'...
    (273 characters)`` from the error ``message`` of a bad record with ``on_bad_records: fail``.
    CSV / JSON lines: the record (in its file, by its hash) read again for its reason and line."""
    try:
        info = json.JSONDecoder().raw_decode(message[message.index(FAIL_TAG) + len(FAIL_TAG) + 2:])[0]
    except ValueError:
        return "a record that is not valid (load it with on_bad_records: quarantine to see which)"
    source, position, reason = info.get("source"), info.get("position"), info.get("reason")
    if t.fast and source in files:
        try:
            reason, position = _reason_and_line(spark, t, source, info.get("hash"))
        except Exception:  # noqa: BLE001 - the error without them is still right
            pass
    shown = info.get("shown") or ""
    record = f"{shown!r}" + (f"... ({info['length']} characters)" if (info.get("length") or 0) > len(shown) else "")
    unit = "line" if t.fast else {"excel": "row", "http": "page"}.get(t.src.format)
    where = f"{unit} {position} of {source}" if unit and position is not None else f"in {source or 'the source'}"
    why = reason if reason and reason != PENDING else "not valid"
    return f"{where}: {why}; the record: {record}"


def _reason_and_line(spark: SparkSession, t: TypedRecords, file: str, raw_hash: int | None) -> tuple[str | None, int | None]:
    """The reason and line of the bad CSV / JSON record of ``file`` with this hash (None, None: not found)."""
    scan, _ = parsed_typed(spark, t.src, [file], t.columns, t.mapping, t.target, check_header=False)
    # (every column: Spark's CSV parser checks only the columns a query reads)
    hit = (scan.where(F.col(CORRUPT).isNotNull() & (F.xxhash64(F.col(CORRUPT)) == F.lit(raw_hash)))
           .select(F.col(CORRUPT).alias(RAW), SOURCE, F.lit(None).cast("long").alias(POSITION), *[F.col(f"`{c}`") for c in t.columns])
           .limit(1).collect())
    if not hit:
        return None, None
    row = t.explain(local_frame(spark, [tuple(hit[0])[:3]], f"{RAW} string, {SOURCE} string, {POSITION} long")).first()
    return row[REASON], line_number(spark, file, hit[0][RAW])


def line_number(spark: SparkSession, file: str, record: str) -> int | None:
    """The line of ``file`` (1 = the first) where ``record`` begins: one pass over the file (only
    when a load failed). Its lines are numbered by partition (monotonically_increasing_id holds
    the partition in its upper bits and the row within it in the lower 33)."""
    first = record.splitlines()[0] if record else ""
    rows = (spark.read.text(file).select(F.monotonically_increasing_id().alias("id"), "value")
            .groupBy(F.shiftright(F.col("id"), 33).alias("p"))
            .agg(F.count(F.lit(1)).alias("n"), F.min(F.when(F.col("value") == first, F.col("id"))).alias("hit"))
            .orderBy("p").collect())
    before = 0
    for r in rows:
        if r["hit"] is not None:
            return before + (r["hit"] & ((1 << 33) - 1)) + 1
        before += r["n"]
    return None
