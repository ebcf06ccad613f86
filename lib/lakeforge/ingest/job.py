"""Ingest: every configured source -> its bronze Delta table, with quarantine, schema enforcement,
data-quality checks and exactly-once loads.

One load of one source, in order:

1. Read the raw records (lakeforge.readers): text formats as strings, typed formats as they
   are; every row knows its ``_source`` (file / table / URL).
2. Normalise column names to stable identifiers (mapping recorded).
3. Decide the schema: the config's ``schema``; else the bronze table's (enforced); else inferred
   on the first load. A new, missing or retyped column fails the load with the differences
   listed, unless ``schema_evolution`` (then Delta mergeSchema; the change is recorded).
4. Cast every column; a record that does not parse or whose value does not cast gets a reason.
   ONE pass writes the good rows to bronze while an Observation on the scan counts read N and
   bad Q and collects the bad records (CSV / JSON: their reason is worked out afterwards from
   their text, naming the column and value). Only when they are too many to collect, a second
   pass over the files that had bad rows writes them. They go to ``<table>_quarantine`` (raw
   record, reason, source, position, run id). N = M + Q (+ rows removed by ``dedupe``, reported
   separately).
5. Record the load in ``ingest_runs`` (counts, files, column mapping, schema changes), then run
   the data-quality checks on the committed rows (lakeforge.quality).

Exactly once: ``overwrite`` replaces the table, ``append`` replaces the run date's partition,
``incremental`` loads only files absent from ``ingest_runs`` (replacing rows of those files, so a
load interrupted after its commit is redone without duplicates) or, for JDBC, only rows above
the table's largest watermark value. A failed load commits nothing to bronze.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, Observation, SparkSession
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
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from lakeforge.ingest import quality
from lakeforge.ingest import readers
from lakeforge.core.config import PipelineConfig, Settings, SourceConfig
from lakeforge.core.errors import InputDataError, LakeforgeError, MissingColumnError, delimiter_hint, wrong_delimiter
from lakeforge.core.columns import METADATA_COLUMNS, OLD_METADATA_COLUMNS
from lakeforge.core.names import normalise_names
from lakeforge.core.io import WriteResult, table_exists, write_table
from lakeforge.core.sql import lit, q
from lakeforge.ingest.readers import CORRUPT, POSITION, SOURCE

REASON = "_reason"
RAW = "_raw"
INGEST_RUNS_TABLE = "ingest_runs"
INGEST_RUNS_SCHEMA = (
    "run_id string, run_date date, pipeline string, source_name string, source string, table_name string, "
    "mode string, status string, rows_read long, rows_loaded long, rows_quarantined long, rows_dropped long, "
    "rows_deduplicated long, table_version long, files array<string>, column_mapping string, "
    "schema_changes string, message string, started_at timestamp, finished_at timestamp"
)
_FAIL_TAG = "lakeforge-bad-record"
_RAW_MAX = 10_000  # characters of a bad record kept in the quarantine


@dataclass
class IngestResult:
    name: str
    table: str
    source: str
    mode: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_dropped: int = 0
    rows_deduplicated: int = 0
    version: int | None = None
    files: list[str] = field(default_factory=list)
    column_mapping: dict[str, str] = field(default_factory=dict)
    schema_changes: list[str] = field(default_factory=list)
    checks: list[quality.CheckResult] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0
    write: WriteResult | None = None

    @property
    def counts_add_up(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_quarantined + self.rows_dropped + self.rows_deduplicated


# ------------------------------------------------------------------------------------------
# Column names
# ------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------
# Types and casting
# ------------------------------------------------------------------------------------------


def _family(t: DataType) -> str:
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


def _accepts(table_type: DataType, seen: DataType) -> bool:
    """Values of type ``seen`` load into a column of ``table_type`` without loss."""
    a, b = _family(table_type), _family(seen)
    return a == b or a == "string" or (a == "fractional" and b == "integral") or (a == "timestamp" and b == "date")


def _opt(src: SourceConfig, name: str) -> str | None:
    for k, v in src.options.items():
        if k.lower() == name.lower():
            return str(v)
    return None


def _cast_text(c: str, t: DataType, src: SourceConfig) -> str:
    """SQL: the text column ``c`` as ``t`` (blank -> null; a value that does not cast -> null)."""
    col, ts = q(c), t.simpleString()
    if isinstance(t, StringType):
        return col
    if isinstance(t, DateType) and _opt(src, "dateFormat"):
        typed = f"try_to_date(trim({col}), {lit(_opt(src, 'dateFormat'))})"
    elif isinstance(t, (TimestampType, TimestampNTZType)) and _opt(src, "timestampFormat"):
        typed = f"CAST(try_to_timestamp(trim({col}), {lit(_opt(src, 'timestampFormat'))}) AS {ts})"
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
        typed = _cast_text(c, f.dataType, src) if texty else f"try_cast({qc} AS {ts})"
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


_PENDING = "bad record"  # replaced by explain_bad()


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
    reader = (spark.read.schema(schema).options(**readers._reader_options(src)).option("mode", "PERMISSIVE")
              .option("columnNameOfCorruptRecord", CORRUPT))
    scan = (reader.option("enforceSchema", str(not check_header).lower()).csv(files) if src.format == "csv"
            else reader.json(files))
    # the file as a column before the Observation (observed metrics may not call input_file_name())
    scan = scan.select("*", readers.source_file().alias(SOURCE))
    present = {mapping[c] for c in columns}
    out = [F.col(f"`{c}`").alias(mapping[c]) for c in columns if mapping[c] in types]
    out += [F.lit(None).cast(f.dataType).alias(f.name) for f in target.fields if f.name not in present]
    bad = F.col(CORRUPT).isNotNull()

    def project(df: DataFrame) -> DataFrame:
        return df.select(*out, SOURCE, F.lit(None).cast("long").alias(POSITION),
                         F.when(bad, F.lit(_PENDING)).alias(REASON), F.col(CORRUPT).alias(RAW))
    return scan, project


def explain_bad(bad: DataFrame, src: SourceConfig, columns: list[str], mapping: dict[str, str],
                target: StructType) -> DataFrame:
    """The reason of each bad record (``_raw``, ``_source``, ``_position``): the record parsed
    again with every column as text, then cast column by column (typed_with_reason)."""
    strings = StructType([StructField(c, StringType()) for c in columns] + [StructField(CORRUPT, StringType())])
    opts = {**{k: v for k, v in readers._reader_options(src).items() if k.lower() not in ("header", "multiline")},
            "mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
    parse = F.from_csv if src.format == "csv" else F.from_json
    parsed = bad.select(parse(F.col(RAW), strings.simpleString() if src.format == "csv" else strings, opts).alias("p"),
                        F.col(RAW).alias("__line"), SOURCE, POSITION)
    raw = parsed.select(*[F.col(f"p.`{c}`").alias(mapping[c]) for c in columns], F.col(f"p.{CORRUPT}").alias(CORRUPT),
                        SOURCE, POSITION, "__line")
    return typed_with_reason(raw, target, src, text=True, keep=("__line",)).select(
        F.col("__line").alias(RAW), F.coalesce(F.col(REASON), F.lit("malformed record")).alias(REASON), SOURCE, POSITION)


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


def _parse_ddl(spark: SparkSession, ddl: str, where: str) -> StructType:
    try:
        return spark.createDataFrame([], ddl).schema
    except Exception as exc:  # noqa: BLE001
        raise InputDataError(f"{where}.schema: not valid DDL ({str(exc).splitlines()[0][:200]}); "
                             "expected e.g. 'id INT, name STRING, ts TIMESTAMP'") from None


# ------------------------------------------------------------------------------------------
# Schema drift
# ------------------------------------------------------------------------------------------


def schema_diff(table: StructType, seen: StructType) -> tuple[list[str], list[str], list[str]]:
    """(new, missing, retyped) columns of the incoming data against the table."""
    have = {f.name.lower(): f for f in table.fields}
    got = {f.name.lower(): f for f in seen.fields}
    new = [f.name for k, f in got.items() if k not in have]
    missing = [f.name for k, f in have.items() if k not in got]
    retyped = [f"{f.name} ({have[k].dataType.simpleString()} -> {f.dataType.simpleString()})"
               for k, f in got.items() if k in have and not _accepts(have[k].dataType, f.dataType)]
    return new, missing, retyped


def sample_cast_failures(raw: DataFrame, table: StructType, src: SourceConfig, rows: int = 1000) -> list[str]:
    """Columns of the table whose values, in the first ``rows`` records, mostly (at least half)
    do not cast to the table's type — a retyped column, e.g. ``amount (double -> text, e.g.
    'n/a')``. Fewer failures are bad records, quarantined by the load. One small job."""
    cols = [f for f in table.fields if f.name in raw.columns and not isinstance(f.dataType, StringType)]
    if not cols:
        return []
    head = raw.limit(rows)
    aggs = []
    for i, f in enumerate(cols):
        present = F.nullif(F.trim(F.col(f"`{f.name}`")), F.lit(""))
        failed = present.isNotNull() & F.expr(_cast_text(f.name, f.dataType, src)).isNull()
        aggs += [F.first(F.when(failed, F.col(f"`{f.name}`")), ignorenulls=True).alias(f"v{i}"),
                 F.count(present).alias(f"n{i}"), F.sum(failed.cast("int")).alias(f"f{i}")]
    row = head.agg(*aggs).first()
    return [f"{f.name} ({f.dataType.simpleString()} -> text, e.g. {row[f'v{i}']!r})"
            for i, f in enumerate(cols) if row[f"n{i}"] and 2 * (row[f"f{i}"] or 0) >= row[f"n{i}"]]


# ------------------------------------------------------------------------------------------
# State
# ------------------------------------------------------------------------------------------


def loaded_files(spark: SparkSession, settings: Settings, table: str) -> set[str]:
    """Files already loaded into ``table`` by successful incremental loads (the manifest)."""
    runs = settings.table(INGEST_RUNS_TABLE)
    if not table_exists(spark, runs):
        return set()
    rows = (spark.table(runs).where((F.col("table_name") == table) & (F.col("status") == "succeeded"))
            .select(F.explode("files").alias("f")).distinct().collect())
    return {readers.norm_path(r["f"]) for r in rows}


def _record_run(spark: SparkSession, settings: Settings, res: IngestResult, *, run_id: str, run_date: dt.date,
                pipeline: str, status: str, started: dt.datetime) -> None:
    row = (run_id, run_date, pipeline, res.name, res.source, res.table, res.mode, status, res.rows_read, res.rows_loaded,
           res.rows_quarantined, res.rows_dropped, res.rows_deduplicated, res.version, res.files,
           json.dumps(res.column_mapping), json.dumps(res.schema_changes), res.message[:2000] or None,
           started, dt.datetime.now())
    spark.createDataFrame([row], INGEST_RUNS_SCHEMA).write.format("delta").mode("append").saveAsTable(
        settings.table(INGEST_RUNS_TABLE))


# ------------------------------------------------------------------------------------------
# Progress
# ------------------------------------------------------------------------------------------


class SparkProgress:
    """Prints the share of finished tasks of the running Spark stages every few seconds."""

    def __init__(self, spark: SparkSession, label: str, say: Callable[[str], None] | None, every: float = 5.0):
        self.tracker = spark.sparkContext.statusTracker()
        try:
            self.store = spark.sparkContext._jsc.sc().statusStore()  # noqa: SLF001
        except Exception:  # noqa: BLE001
            self.store = None
        self.label, self.say, self.every = label, say, every
        self._stop = threading.Event()

    def __enter__(self):
        if self.say:
            threading.Thread(target=self._run, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            done = total = 0
            rows = None
            try:  # rows read so far by finished tasks, from Spark's status store
                for st in self.store.activeStages():
                    done += st.numCompleteTasks()
                    total += st.numTasks()
                    rows = (rows or 0) + st.inputRecords()
            except Exception:  # noqa: BLE001 - the status API is not public: fall back
                rows = None
                for sid in self.tracker.getActiveStageIds():
                    info = self.tracker.getStageInfo(sid)
                    if info:
                        done += info.numCompletedTasks
                        total += info.numTasks
            if total:
                extra = f", {rows:,} rows read so far" if rows else ""
                self.say(f"{self.label}: {done}/{total} file splits done{extra}")


# ------------------------------------------------------------------------------------------
# One source
# ------------------------------------------------------------------------------------------


def with_row_id(name: str, data: StructType) -> Callable[[DataFrame], DataFrame]:
    """Add ``name``: 32 hex digits of two 64-bit hashes of the row's data columns (and of which
    of them are null: xxhash64 skips nulls, so (1, null) and (null, 1) would collide), the same for
    the same values on every load and in any session time zone. Identical rows are numbered
    (``<hash>-2``, ``-3``...) so the id is unique within a load: a grouping by the hash (one
    shuffle), which copy gets which number does not matter, they are identical."""
    from pyspark.sql.window import Window

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


def _where(pipeline: PipelineConfig, name: str) -> str:
    return f"{pipeline.file.name}: source" if name == "main" else f"{pipeline.file.name}: sources.{name}"


def _data_schema(spark: SparkSession, table: str, row_id: str | None = None) -> StructType:
    """The table's columns that come from the source (not the load metadata, not a row id)."""
    skip = set(METADATA_COLUMNS) | set(OLD_METADATA_COLUMNS) | {row_id}
    return StructType([f for f in spark.table(table).schema.fields if f.name not in skip])


def _old_metadata(spark: SparkSession, table: str, mode: str, where: str, say: Callable[[str], None]) -> bool:
    """True when ``table`` has the load metadata columns of an earlier lakeforge version and
    this load may replace them (a full ``overwrite`` load replaces the table's schema; the data
    columns are checked for drift as usual). Append and incremental loads would mix two layouts
    in one table: they stop with the fix."""
    have = spark.table(table).schema.fieldNames()
    old = [c for c in OLD_METADATA_COLUMNS if c in have]
    missing = [c for c in METADATA_COLUMNS if c not in have]
    if not old and not missing:
        return False
    what = ", ".join([f"old column {c}" for c in old] + [f"no column {c}" for c in missing])
    if mode == "overwrite":
        say(f"{table} has the load metadata of an earlier lakeforge ({what}): this full load replaces "
            f"them with {', '.join(METADATA_COLUMNS)}")
        return True
    raise InputDataError(
        f"{where}: {table} was written by an earlier lakeforge version ({what}; the load metadata columns are now "
        f"{', '.join(METADATA_COLUMNS)}), so an {mode} load cannot add to it. Load it in full once with mode: "
        f"overwrite, or drop it (lakeforge sql \"DROP TABLE {table}\") and load again; nothing was written")


def _in_list(column: str, values: list[str]) -> str:
    return f"{column} IN (" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def ingest_source(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, name: str, table_name: str,
                  src: SourceConfig, run_id: str, run_date: dt.date,
                  progress: Callable[[str], None] | None = None) -> IngestResult:
    where = _where(pipeline, name)
    table = settings.table(table_name)
    qtable = table + "_quarantine"
    mode = src.mode or "overwrite"
    res = IngestResult(name, table, src.label, mode)
    started = dt.datetime.now()
    t0 = time.perf_counter()
    say = progress or (lambda _m: None)
    exists = table_exists(spark, table)
    table_schema = _data_schema(spark, table, src.row_id) if exists else None
    migrate = exists and _old_metadata(spark, table, mode, where, say)
    explicit = _parse_ddl(spark, src.schema_, where) if src.schema_ else None

    # 1. raw read ---------------------------------------------------------------------------
    text = src.format in ("csv", "json", "excel", "http")
    sample: StructType | None = None  # what the incoming data looks like (for drift checks)
    check_header = True  # CSV: each file's header must name the columns in order
    if src.format in ("csv", "json", "parquet", "excel"):
        path = readers._resolve(settings, src, where)
        files = readers.list_files(spark, src, path)
        if mode == "incremental":
            done = loaded_files(spark, settings, table)
            files = [f for f in files if f not in done]
        if not files:
            return _nothing(res, src, where, "no new files" if mode == "incremental" else f"no files at {path}", t0)
        res.files = files
        say(f"{name}: {len(files)} file(s) to load")
        if src.format == "csv":
            opts = readers._reader_options(src)
            header = str(opts.get("header", "false")).lower() == "true"
            if header:
                columns = readers.csv_header(spark, opts, files)
                if not columns:
                    raise InputDataError(f"{where}.path: {files[0]} is empty (no header, no rows); nothing was written")
            elif explicit is not None:
                columns = explicit.fieldNames()
            elif table_schema is not None:
                columns = table_schema.fieldNames()
            else:
                columns = readers.infer_schema(spark, src, files, sample_lines=1000).fieldNames()
            repeated = readers.repeated_header_names(spark, opts, files, columns) if header else []
            if repeated:
                say(f"{name}: the header repeats {', '.join(map(repr, repeated))} (Spark numbers them: "
                    f"{', '.join(c for i, c in enumerate(columns) if c.endswith(str(i)) and c[:-len(str(i))].lower() in {r.lower() for r in repeated})}); "
                    "files are read by column position, without checking each file's header")
            check_header = not repeated
            raw = readers.read_text_files(spark, src, files, columns, check_header)
        elif src.format == "json":
            if explicit is not None:
                columns = explicit.fieldNames()
            else:
                sample = readers.infer_schema(spark, src, files, sample_lines=1000 if exists else None)
                sample = StructType([f for f in sample.fields if f.name != CORRUPT])
                columns = sample.fieldNames()
                if table_schema is not None:  # keep the table's columns a sample did not show
                    columns += [c for c in table_schema.fieldNames() if c.lower() not in {x.lower() for x in columns}]
            raw = readers.read_text_files(spark, src, files, columns)
        elif src.format == "excel":
            columns = readers.excel_header(files[0], src.sheets)
            raw = readers.read_excel(spark, src, files, columns)
        else:
            try:
                parquet = spark.read.options(**readers._reader_options(src)).parquet(*files)
            except AnalysisException as exc:
                hint = readers.parquet_hint(readers.error_text(exc), files)
                if not hint:
                    raise
                raise InputDataError(f"{where}.path: cannot read {path}{hint}; nothing was written") from None
            raw = parquet.select(
                "*", readers.source_file().alias(SOURCE), F.lit(None).cast("long").alias(POSITION),
                F.lit(None).cast("string").alias(CORRUPT))
    elif src.format == "delta":
        base = spark.table(settings.table(src.path)) if "/" not in str(src.path) else spark.read.format("delta").load(str(settings.path(src.path)))
        raw = base.select("*", F.lit(str(src.path)).alias(SOURCE), F.lit(None).cast("long").alias(POSITION),
                          F.lit(None).cast("string").alias(CORRUPT))
    elif src.format == "jdbc":
        after = None
        wm = src.jdbc.watermark_column if src.jdbc else None
        if mode == "incremental" and exists and wm:
            after = spark.table(table).agg(F.max(F.col(f"`{wm}`"))).first()[0]
        raw = readers.read_jdbc(spark, src, where, after)
        if after is not None:
            say(f"{name}: rows with {wm} > {after}")
    else:  # http
        raw = readers.read_http(spark, src, progress=lambda m: say(f"{name}: {m}"))
    raw = raw.drop(*[c for c in METADATA_COLUMNS if c in raw.columns and c != SOURCE])

    # 2. column names ---------------------------------------------------------------------
    data_cols = [c for c in raw.columns if c not in (CORRUPT, SOURCE, POSITION)]
    sep = delimiter_hint(data_cols) if src.format == "csv" else None
    if sep and sep not in (_opt(src, "sep"), _opt(src, "delimiter")):
        raise InputDataError(f"{where}: {files[0]} was read as one column {data_cols[0][:80]!r}. {wrong_delimiter(sep)} "
                             "Nothing was written")
    mapping = normalise_names(data_cols, src.column_names)
    res.column_mapping = {k: v for k, v in mapping.items() if k != v}
    if res.column_mapping:
        raw = raw.select(*[F.col(f"`{c}`").alias(mapping[c]) for c in data_cols], CORRUPT, SOURCE, POSITION)
        if sample is not None:
            sample = StructType([StructField(mapping.get(f.name, f.name), f.dataType) for f in sample.fields])
    data_cols = [mapping[c] for c in data_cols]
    if explicit is not None:
        explicit = StructType([StructField(normalise_names([f.name], src.column_names)[f.name], f.dataType) for f in explicit.fields])
    if src.row_id is not None and src.row_id.lower() in {c.lower() for c in data_cols}:
        raise InputDataError(f"{where}.row_id: {src.row_id!r} is already a column of {src.label}; pick another "
                             "name for the generated id, or use that column as the key and drop row_id")

    # 3. schema ---------------------------------------------------------------------------
    if raw.isEmpty():
        if mode == "incremental":
            return _nothing(res, src, where, "no new rows", t0, table)
        return _nothing(res, src, where, f"source {src.label} has no rows", t0, table)
    if not text:
        sample = StructType([f for f in raw.schema.fields if f.name in data_cols])
    strings_only = text and not (src.format == "json" and table_schema is None)

    if explicit is not None:
        target = explicit
        extra = [c for c in data_cols if c.lower() not in {f.name.lower() for f in explicit.fields}]
        if extra and not src.schema_evolution:
            raise InputDataError(f"{where}: the data has column(s) {extra} that the configured schema does not list; "
                                 "add them to 'schema' or set schema_evolution: true")
    elif table_schema is not None:
        if strings_only:  # text: retyped = sample values that do not cast to the table's type
            seen = StructType([StructField(c, table_schema[c].dataType if c in table_schema.fieldNames() else StringType())
                               for c in data_cols])
            new, missing, _ = schema_diff(table_schema, seen)
            retyped = sample_cast_failures(raw, table_schema, src)
        else:
            seen = sample
            new, missing, retyped = schema_diff(table_schema, seen)
        changes = ([f"new column {c}" for c in new] + [f"missing column {c}" for c in missing]
                   + [f"retyped column {c}" for c in retyped])
        if changes and not src.schema_evolution:
            raise InputDataError(
                f"{where}: the schema of {src.label} differs from table {table}: {'; '.join(changes)}. "
                "Fix the source, or set schema_evolution: true in the source config to accept it "
                "(new columns are added, missing ones load as null, retyped values that do not cast "
                "are quarantined)."
            )
        res.schema_changes = changes
        target = StructType(list(table_schema.fields) + [f for f in seen.fields if f.name in new])
    else:
        if src.format == "csv":
            say(f"{name}: inferring the schema (one pass; give 'schema' in the config to skip it)")
            inferred = readers.infer_schema(spark, src, files)
            target = StructType([StructField(mapping.get(f.name, f.name), f.dataType) for f in inferred.fields])
        elif src.format in ("excel", "http"):
            target = infer_strings(raw, data_cols)
        else:
            target = StructType([f for f in raw.schema.fields if f.name in data_cols])
            if src.format == "json" and sample is not None:
                target = sample
    # nested JSON values (objects, arrays) stay JSON text
    if text:
        target = StructType([StructField(f.name, f.dataType if _family(f.dataType) != "string" or isinstance(f.dataType, StringType)
                                         else StringType()) for f in target.fields])
    missing_in_data = [f.name for f in target.fields if f.name not in data_cols]
    if missing_in_data and explicit is not None and not src.schema_evolution:
        raise InputDataError(f"{where}: column(s) {missing_in_data} of the configured schema are not in {src.label}")

    if name == "main":  # training and scoring read these
        wanted = [pipeline.key, pipeline.target, *pipeline.features.numeric, *pipeline.features.categorical]
        missing = [c for c in wanted if c not in target.fieldNames() and c != src.row_id]
        if missing:
            raise MissingColumnError(f"{where} {src.label}", missing, target.fieldNames())

    # 4. the load ------------------------------------------------------------------------
    fast = src.format in ("csv", "json")
    if fast:  # Spark's own parser types the values; bad records are explained afterwards
        scan, project = parsed_typed(spark, src, files, columns, mapping, target, check_header)
        typed = project(scan)
        base_bad = F.col(CORRUPT).isNotNull()
        bad_row = F.struct(F.substring(F.col(CORRUPT), 1, _RAW_MAX).alias(RAW), F.lit(_PENDING).alias(REASON),
                           F.col(SOURCE), F.lit(None).cast("long").alias(POSITION))
    else:
        scan, project = typed_with_reason(raw, target, src, text), (lambda d: d)
        typed = scan
        base_bad = F.col(REASON).isNotNull()
        bad_row = F.struct(F.substring(F.col(RAW), 1, _RAW_MAX).alias(RAW), F.col(REASON), F.col(SOURCE), F.col(POSITION))

    def finish(df: DataFrame) -> DataFrame:
        df = project(df)
        if src.on_bad_records == "fail":
            df = df.withColumn(REASON, F.when(F.col(REASON).isNotNull(), F.raise_error(F.format_string(
                f"{_FAIL_TAG}: %s (in %s)", F.substring(F.coalesce(F.col(RAW), F.col(REASON)), 1, 500), F.col(SOURCE)))))
        return df

    meta = [F.current_timestamp().alias("_ingested_at"), F.col(SOURCE).alias("_source"),
            F.lit(run_id).alias("_run_id"), F.lit(run_date).cast("date").alias("_run_date")]
    bad = F.col(REASON).isNotNull()
    if src.dedupe:
        missing_cols = [c for c in [*src.dedupe.key, src.dedupe.order_by] if c not in target.fieldNames()]
        if missing_cols:
            raise InputDataError(f"{where}.dedupe: column(s) {missing_cols} not in the data; available: {', '.join(target.fieldNames())}")

    # Delta's per-file statistics (data skipping) only for the key and the load metadata: on all
    # columns they cost a large share of the write (measured on the predictions table: ~40 %).
    # (_source: for the file-scoped replace of incremental loads; _run_date is a partition column in append mode)
    stats = ([c for c in ([pipeline.key] if name == "main" else []) if c in target.fieldNames() or c == src.row_id]
             + (["_source"] if mode == "incremental" else []) + ["_run_id"])

    def load(collect_bad: bool) -> tuple[WriteResult, dict]:
        """The one pass: good rows to bronze, counted by an Observation that also collects the
        bad rows (few, as a rule: then the quarantine needs no second pass)."""
        obs = Observation(f"ingest_{name}_{int(collect_bad)}")
        metrics = [F.count(F.lit(1)).alias("n")]
        if collect_bad:  # (the count and the files of the bad rows follow from the rows themselves)
            metrics.append(F.collect_list(F.when(base_bad, bad_row)).alias("bad_rows"))
        else:
            metrics += [F.count(F.when(base_bad, F.lit(1))).alias("q"),
                        F.array_sort(F.collect_set(F.when(base_bad, F.col(SOURCE)))).alias("bad_sources")]
        counted = finish(scan.observe(obs, *metrics))
        good = counted.where(~bad).select(*[F.col(f"`{f.name}`") for f in target.fields], *meta)
        if src.dedupe:
            from pyspark.sql.window import Window

            w = Window.partitionBy(*[F.col(f"`{k}`") for k in src.dedupe.key]).orderBy(F.col(f"`{src.dedupe.order_by}`").desc_nulls_last())
            good = good.withColumn("__rn", F.row_number().over(w)).where("__rn = 1").drop("__rn")
        if src.row_id:
            good = good.transform(with_row_id(src.row_id, target))
        with SparkProgress(spark, f"{name}", progress):
            if mode == "append":
                wr = write_table(good, table, partition_col="_run_date", partition_value=run_date, merge_schema=src.schema_evolution, stats_columns=stats)
            elif mode == "incremental" and res.files:
                wr = write_table(good, table, replace_where=_in_list("_source", res.files),
                                 merge_schema=src.schema_evolution, stats_columns=stats)
            elif mode == "incremental":
                wr = write_table(good, table, append=True, merge_schema=src.schema_evolution, stats_columns=stats)
            else:
                wr = write_table(good, table, merge_schema=src.schema_evolution and not migrate, stats_columns=stats,
                                 overwrite_schema=migrate)
        observed = dict(obs.get)  # (write_table creates a new table first: CTAS would return no metrics)
        if collect_bad:
            rows = observed["bad_rows"] or []
            observed["q"] = len(rows)
            observed["bad_sources"] = sorted({r[SOURCE] for r in rows if r[SOURCE] is not None})
        return wr, observed

    say(f"{name}: loading into {table}")
    try:
        try:
            wr, metrics = load(collect_bad=src.on_bad_records == "quarantine")
        except Exception as exc:  # noqa: BLE001
            if not any(m in str(exc) for m in ("maxResultSize", "OutOfMemory", "Java heap space")):
                raise
            say(f"{name}: too many bad records to collect in one pass; loading again, then a quarantine pass")
            wr, metrics = load(collect_bad=False)  # nothing was committed by the failed attempt
    except Exception as exc:  # noqa: BLE001
        if not exists:  # the load created the table first: leave nothing behind
            spark.sql(f"DROP TABLE IF EXISTS {table}")
        msg = str(exc)
        if _FAIL_TAG in msg:
            detail = msg[msg.index(_FAIL_TAG) + len(_FAIL_TAG) + 2:].splitlines()[0].split(" SQLSTATE")[0].rstrip(". ")
            if fast and " (in " in detail:  # name the column and value, not just the line
                line, _, origin = detail.rpartition(" (in ")
                why = explain_bad(spark.createDataFrame([(line, origin.rstrip(")"), None)], f"{RAW} string, {SOURCE} string, {POSITION} long"),
                                  src, columns, mapping, target).first()[REASON]
                detail = f"{why}: {line!r} (in {origin.rstrip(')')})"
            raise InputDataError(f"{where}: bad record with on_bad_records: fail — {detail}. Nothing was "
                                 f"committed to {table}; fix the source or use on_bad_records: quarantine") from None
        if "CSV header does not conform" in msg or "does not conform to the schema" in msg:
            raise InputDataError(f"{where}: a file's CSV header does not match the columns {data_cols} "
                                 f"(of {files[0]}); every file of one source needs the same header") from None
        raise
    res.write, res.version = wr, wr.version
    prev_version = wr.version - 1 if exists else None  # the load is one commit
    res.rows_read = int(metrics.get("n") or 0)
    res.rows_quarantined = int(metrics.get("q") or 0)
    res.rows_loaded = wr.rows_written
    res.rows_deduplicated = res.rows_read - res.rows_quarantined - res.rows_loaded
    if src.on_bad_records == "drop":
        res.rows_dropped, res.rows_quarantined = res.rows_quarantined, 0

    if res.rows_loaded == 0 and res.rows_read > 0 and mode == "overwrite" and prev_version is not None:
        DeltaTable.forName(spark, table).restoreToVersion(prev_version)
        raise InputDataError(f"{where}: none of the {res.rows_read} records of {src.label} is valid (see the "
                             f"reasons in {qtable}); {table} was restored to version {prev_version}")

    # quarantine ---------------------------------------------------------------------------
    q_scope = (_in_list("_source", res.files) if mode == "incremental" and res.files
               else f"_run_date = DATE'{run_date.isoformat()}'")
    if res.rows_quarantined > 0:
        say(f"{name}: {res.rows_quarantined} bad record(s) -> {qtable}")
        collected = metrics.get("bad_rows")
        if collected is not None and len(collected) == res.rows_quarantined:  # from the one pass
            qdf = spark.createDataFrame([tuple(r) for r in collected], f"{RAW} string, {REASON} string, {SOURCE} string, {POSITION} long")
        else:  # a second pass, over the files that had bad records
            bad_sources = metrics.get("bad_sources") or []
            qsrc = typed
            if src.format in ("csv", "json", "excel", "parquet") and 0 < len(bad_sources) <= 1000 and len(bad_sources) < len(res.files):
                qsrc = typed.where(F.col(SOURCE).isin(bad_sources))
            qdf = qsrc.where(F.col(REASON).isNotNull()).select(
                F.substring(F.col(RAW), 1, _RAW_MAX).alias(RAW), F.col(REASON), F.col(SOURCE), F.col(POSITION))
        if fast:
            qdf = explain_bad(qdf, src, columns, mapping, target)
        qdf = qdf.select(RAW, REASON, F.col(SOURCE).alias("_source"), POSITION)
        qdf = qdf.select("*", F.lit(run_id).alias("_run_id"), F.lit(run_date).cast("date").alias("_run_date"),
                         F.current_timestamp().alias("_ingested_at"))
        write_table(qdf, qtable, partition_col="_run_date", replace_where=q_scope if table_exists(spark, qtable) else None,
                    partition_value=run_date)
    elif table_exists(spark, qtable):  # a rerun with the source fixed: no stale bad records
        DeltaTable.forName(spark, qtable).delete(q_scope)

    res.seconds = time.perf_counter() - t0
    res.message = f"read {res.rows_read}, loaded {res.rows_loaded}, quarantined {res.rows_quarantined}"
    # checks -------------------------------------------------------------------------------
    if src.checks:
        loaded = spark.table(table)
        if mode == "append":
            loaded = loaded.where(F.col("_run_date") == F.lit(run_date).cast("date"))
        elif mode == "incremental":
            loaded = loaded.where(F.col("_run_id") == run_id)
        res.checks = quality.evaluate(loaded, src.checks, target.fieldNames() + ([src.row_id] if src.row_id else []), where)
        quality.record(spark, settings, res.checks, run_id=run_id, run_date=run_date, pipeline=pipeline.name, table=table)
    _record_run(spark, settings, res, run_id=run_id, run_date=run_date, pipeline=pipeline.name,
                status="succeeded", started=started)
    return res


def _nothing(res: IngestResult, src: SourceConfig, where: str, why: str, t0: float, table: str | None = None) -> IngestResult:
    if not src.allow_empty:
        if why in ("no new files", "no new rows"):
            res.message = f"{why} since the last load: nothing to do"
            res.seconds = time.perf_counter() - t0
            return res
        keep = f"; refusing to replace {table} with nothing" if table else ""
        raise InputDataError(f"{where}: {why}{keep}. Set allow_empty: true to make an empty load a no-op.")
    res.message = f"{why}: nothing loaded (allow_empty)"
    res.seconds = time.perf_counter() - t0
    return res


# ------------------------------------------------------------------------------------------
# All sources of a pipeline
# ------------------------------------------------------------------------------------------


def ingest(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, run_id: str, run_date: dt.date,
           only: str | None = None, progress: Callable[[str], None] | None = None) -> list[IngestResult]:
    """Load every source of the pipeline (or only ``only``), each into its own table."""
    plan = pipeline.ingest_plan()
    if only is not None:
        names = [n for n, _, _ in plan]
        if only not in names:
            raise InputDataError(f"{pipeline.file.name}: no source named {only!r}; sources: {', '.join(names)}")
        plan = [p for p in plan if p[0] == only]
    # The loads run in a child session (same context, catalog and cache): an Observation leaves
    # an ObservationManager on its session that is not serializable, and MLlib models trained
    # later in that session (their summaries hold it) would then fail to transform.
    session = spark.newSession()
    try:
        return _ingest_plan(spark, session, settings, pipeline, plan, run_id, run_date, progress)
    finally:
        # PySpark's createDataFrame (the quarantine rows) makes the child session the thread's
        # active one, which get_spark() would then hand to the next stage (e.g. training):
        # the caller's session is made active again.
        _make_active(spark)


def _make_active(spark: SparkSession) -> None:
    SparkSession._activeSession = spark  # noqa: SLF001 - PySpark has no public setter
    spark._jvm.SparkSession.setActiveSession(spark._jsparkSession)  # noqa: SLF001


def _ingest_plan(spark: SparkSession, session: SparkSession, settings: Settings, pipeline: PipelineConfig, plan: list,
                 run_id: str, run_date: dt.date, progress: Callable[[str], None] | None) -> list[IngestResult]:
    results: list[IngestResult] = []
    for name, table, src in plan:
        try:
            res = ingest_source(session, settings, pipeline, name, table, src, run_id, run_date, progress)
        except LakeforgeError as exc:
            failed = IngestResult(name, settings.table(table), src.label, src.mode or "overwrite", message=str(exc))
            try:
                _record_run(spark, settings, failed, run_id=run_id, run_date=run_date, pipeline=pipeline.name,
                            status="failed", started=dt.datetime.now())
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
            exc.results = results  # type: ignore[attr-defined] - what did load, for the summary
            raise
        results.append(res)
        try:
            quality.raise_on_errors(res.checks, res.table)
        except quality.DataQualityError as exc:
            exc.results = results  # type: ignore[attr-defined]
            raise
    return results
