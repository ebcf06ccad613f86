"""Step 1 of a load: the raw records of one source, read by lakeforge.ingest.readers.

Files (CSV, JSON lines, Parquet, Excel) are listed first (for an ``incremental`` load, only those
not loaded yet); CSV columns come from the header, else the configured schema, else the table,
else a sample; JSON columns from the configured schema, else Spark's inference. Every raw frame
has the source's columns plus ``_source``, ``_position`` and ``_corrupt_record``; lakeforge's own
load metadata columns, should the source have them, are dropped. In CSV and Excel text, the
missing-value markers (``source.null_values``: NA, N/A, NULL, ? ...) are read as null.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from lakeforge.core.columns import METADATA_COLUMNS
from lakeforge.core.settings import Settings
from lakeforge.core.errors import InputDataError
from lakeforge.ingest import readers
from lakeforge.ingest.context import LoadContext
from lakeforge.ingest.readers import CORRUPT, POSITION, SOURCE
from lakeforge.ingest.types import markers_as_null, null_markers


@dataclass
class RawRead:
    df: DataFrame | None  # None: nothing to read (see ``nothing``)
    text: bool  # every data column is a string (CSV, JSON, Excel, HTTP): lakeforge casts
    files: list[str] = field(default_factory=list)  # the input files (normalised paths), file sources
    columns: list[str] = field(default_factory=list)  # the source's column names (CSV, JSON, Excel)
    check_header: bool = True  # CSV: each file's header must name the columns in order
    sample: StructType | None = None  # what the incoming data looks like (JSON: inferred types), for drift checks
    nothing: str = ""  # why there is nothing to read ("no new files", "no files at ...")


def read_raw(spark: SparkSession, settings: Settings, ctx: LoadContext,
             already_loaded: Callable[[], set[str]], after: object = None) -> RawRead:
    """The raw records of ``ctx.src``. ``already_loaded``: the files loaded before (asked only by
    incremental file loads); ``after``: the watermark of an incremental JDBC load."""
    src = ctx.src
    text = src.format in ("csv", "json", "excel", "http")
    if src.format in ("csv", "json", "parquet", "excel"):
        raw = _read_files(spark, settings, ctx, already_loaded)
        if raw.df is None:
            return raw
    elif src.format == "delta":
        base = (spark.table(settings.table(src.path)) if "/" not in str(src.path)
                else spark.read.format("delta").load(str(settings.path(src.path))))
        raw = RawRead(base.select("*", F.lit(str(src.path)).alias(SOURCE), F.lit(None).cast("long").alias(POSITION),
                                  F.lit(None).cast("string").alias(CORRUPT)), text)
    elif src.format == "jdbc":
        raw = RawRead(readers.read_jdbc(spark, src, ctx.where, after), text)
        if after is not None:
            ctx.say(f"{ctx.name}: rows with {src.jdbc.watermark_column} > {after}")
    else:  # http
        raw = RawRead(readers.read_http(spark, src, progress=lambda m: ctx.say(f"{ctx.name}: {m}")), text)
    raw.df = raw.df.drop(*[c for c in METADATA_COLUMNS if c in raw.df.columns and c != SOURCE])
    return raw


def _read_files(spark: SparkSession, settings: Settings, ctx: LoadContext,
                already_loaded: Callable[[], set[str]]) -> RawRead:
    src, where = ctx.src, ctx.where
    text = src.format != "parquet"
    path = readers.resolve_path(settings, src, where)
    files = readers.list_files(spark, src, path)
    if ctx.mode == "incremental":
        done = already_loaded()
        files = [f for f in files if f not in done]
    if not files:
        return RawRead(None, text, nothing="no new files" if ctx.mode == "incremental" else f"no files at {path}")
    ctx.say(f"{ctx.name}: {len(files)} file(s) to load")
    if src.format == "csv":
        columns, check_header = _csv_columns(spark, ctx, files)
        df = markers_as_null(readers.read_text_files(spark, src, files, columns, check_header), columns, null_markers(src))
        return RawRead(df, text, files, columns, check_header)
    if src.format == "json":
        columns, sample = _json_columns(spark, ctx, files)
        return RawRead(readers.read_text_files(spark, src, files, columns), text, files, columns, sample=sample)
    if src.format == "excel":
        columns = readers.excel_header(files[0], src.sheets)
        df = markers_as_null(readers.read_excel(spark, src, files, columns), columns, null_markers(src))
        return RawRead(df, text, files, columns)
    try:
        parquet = spark.read.options(**readers.reader_options(src)).parquet(*files)
    except AnalysisException as exc:
        hint = readers.parquet_hint(readers.error_text(exc), files)
        if not hint:
            raise
        raise InputDataError(f"{where}.path: cannot read {path}{hint}; nothing was written") from None
    df = parquet.select("*", readers.source_file().alias(SOURCE), F.lit(None).cast("long").alias(POSITION),
                        F.lit(None).cast("string").alias(CORRUPT))
    return RawRead(df, text, files)


def _csv_columns(spark: SparkSession, ctx: LoadContext, files: list[str]) -> tuple[list[str], bool]:
    """The CSV columns (header, else configured schema, else table, else a sample), and whether
    each file's header can be checked against them (not when the header repeats a name or has
    an empty cell)."""
    src = ctx.src
    opts = readers.reader_options(src)
    header = str(opts.get("header", "false")).lower() == "true"
    if header:
        columns = readers.csv_header(spark, opts, files)
        if not columns:
            raise InputDataError(f"{ctx.where}.path: {files[0]} is empty (no header, no rows); nothing was written")
    elif ctx.explicit is not None:
        columns = ctx.explicit.fieldNames()
    elif ctx.table_schema is not None:
        columns = ctx.table_schema.fieldNames()
    else:
        columns = readers.infer_schema(spark, src, files, sample_lines=1000).fieldNames()
    repeated, blank = readers.unusual_header(spark, opts, files, columns) if header else ([], [])
    by_position = "files are read by column position, without checking each file's header"
    if repeated:
        lowered = {r.lower() for r in repeated}
        renamed = [c for i, c in enumerate(columns) if c.endswith(str(i)) and c[:-len(str(i))].lower() in lowered]
        ctx.say(f"{ctx.name}: the header repeats {', '.join(map(repr, repeated))} (Spark numbers them: "
                f"{', '.join(renamed)}); {by_position}")
    if blank:
        ctx.say(f"{ctx.name}: the header has no name for column(s) {', '.join(str(columns.index(c) + 1) for c in blank)} "
                f"(named {', '.join(blank)}); {by_position}")
    return columns, not (repeated or blank)


def _json_columns(spark: SparkSession, ctx: LoadContext, files: list[str]) -> tuple[list[str], StructType | None]:
    """The JSON columns (configured schema, else inferred: over all files on the first load, over a
    sample later, plus the table's columns the sample did not show) and the inferred types."""
    if ctx.explicit is not None:
        return ctx.explicit.fieldNames(), None
    sample = readers.infer_schema(spark, ctx.src, files, sample_lines=1000 if ctx.exists else None)
    sample = StructType([f for f in sample.fields if f.name != CORRUPT])
    columns = sample.fieldNames()
    if ctx.table_schema is not None:  # keep the table's columns a sample did not show
        columns += [c for c in ctx.table_schema.fieldNames() if c.lower() not in {x.lower() for x in columns}]
    return columns, sample
