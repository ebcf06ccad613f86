"""Raw reads of every source kind, before typing: files (CSV, JSON lines, Parquet, Excel), Delta,
JDBC databases and HTTP/JSON APIs.

Each reader returns a DataFrame with the source's own column names plus ``_source`` (file path /
table / URL), ``_position`` (Excel row, API page; null where Spark cannot tell) and
``_corrupt_record`` (the raw text of a record that could not be parsed at all); the load's raw
read (lakeforge.ingest.raw) picks the reader. Text formats (CSV, JSON, Excel, HTTP) deliver every
column as a string, so that lakeforge.ingest casts them itself and can say which value of which
column failed; typed formats (Parquet, Delta, JDBC) deliver their own types.
"""

from __future__ import annotations

import glob
import json
import os
import re
import time
from collections.abc import Iterator
from urllib.parse import urlparse

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from lakeforge.core.config_source import SourceConfig
from lakeforge.core.frames import local_frame
from lakeforge.core.settings import Settings
from lakeforge.core.errors import InputDataError, SourceError

CORRUPT = "_corrupt_record"
SOURCE = "_source"
POSITION = "_position"
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Reader options lakeforge sets itself (typing and bad-record handling are its job).
_OWNED_OPTIONS = {"inferschema", "mode", "columnnameofcorruptrecord", "enforceschema", "samplingratio"}


def norm_path(p: str) -> str:
    """One spelling per file, the one of ``input_file_name()`` and ``inputFiles()``
    (``file:///x``; Spark writes ``file:/x`` in other places)."""
    if p.startswith("file:"):
        p = "file:///" + p[len("file:"):].lstrip("/")
    elif p.startswith("/"):
        p = "file://" + p
    return p


def source_file() -> Column:
    """The file of each row, spelled as norm_path() does. input_file_name() rather than
    ``_metadata.file_path``: measured on 5M CSV rows, the metadata column cost 1-2 s per load
    (it is joined to every row), input_file_name() about a third of that."""
    return F.input_file_name()


def resolve_path(settings: Settings, src: SourceConfig, where: str) -> str:
    """The source's path: a URI as it is, else resolved against the project root; InputDataError
    when nothing is there."""
    path = str(src.path)
    if _URI.match(path):
        return path
    resolved = str(settings.path(path))
    if not glob.glob(resolved):
        raise InputDataError(
            f"{where}.path: nothing found at {resolved} — check the path (relative paths are "
            f"resolved against {settings.root})"
        )
    return resolved


def reader_options(src: SourceConfig) -> dict[str, str]:
    """The source's Spark reader options as text, without those lakeforge sets itself."""
    return {k: (str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in src.options.items() if k.lower() not in _OWNED_OPTIONS}


def parquet_hint(message: str, paths: list[str]) -> str:
    """The fix for a Parquet source Spark cannot read, when it is a known one: nanosecond
    timestamps (what pandas writes for datetime64[ns]), naming the file and columns when the
    files are local (``paths``: files or folders)."""
    if "PARQUET_TYPE_ILLEGAL" not in message or "NANOS" not in message:
        return ""
    return (f"; it holds nanosecond timestamps{_nanos_columns(paths)}, pandas' default for datetime64[ns], which "
            "Spark does not read: write it with df.to_parquet(path, coerce_timestamps='us', allow_truncated_timestamps=True)")


def _nanos_columns(paths: list[str]) -> str:
    """`` (file: column(s) 'a', 'b')`` for the first local Parquet file with nanosecond timestamps, else ''."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for p in paths[:100]:
        local = urlparse(p).path if p.startswith("file:") else p
        for f in sorted(glob.glob(os.path.join(local, "**", "*.parquet"), recursive=True)) if os.path.isdir(local) else [local]:
            try:
                names = [x.name for x in pq.read_schema(f) if pa.types.is_timestamp(x.type) and x.type.unit == "ns"]
            except Exception:  # noqa: BLE001 - not local, or not readable here: look no further
                return ""
            if names:
                return f" ({f}: column(s) {', '.join(repr(n) for n in names)})"
    return ""


def error_text(exc: Exception) -> str:
    """An AnalysisException's message. Spark's getMessage() fails on Delta's own error classes
    (INTERNAL_ERROR: Cannot find main error class 'DELTA_TABLE_NOT_FOUND'): then str(exc)."""
    try:
        return exc.getMessage()
    except Exception:  # noqa: BLE001
        return str(exc)


def list_files(spark: SparkSession, src: SourceConfig, path: str) -> list[str]:
    """The files a read of ``path`` would load (globs and folders expanded, by Spark's own rules)."""
    fmt = {"excel": "binaryFile"}.get(src.format, "text")
    try:
        reader = spark.read.format(fmt)
        if src.format == "excel":
            reader = reader.option("pathGlobFilter", "*.xlsx")
        return sorted(norm_path(f) for f in reader.load(path).inputFiles())
    except AnalysisException as exc:
        raise InputDataError(f"cannot list files at {path}: {error_text(exc)}") from None


def csv_header(spark: SparkSession, opts: dict[str, str], files: list[str]) -> list[str]:
    """Column names from the header line (reads one line of one file)."""
    return spark.read.options(**opts).csv(files[:1]).columns


def unusual_header(spark: SparkSession, opts: dict[str, str], files: list[str], columns: list[str]) -> tuple[list[str], list[str]]:
    """(The names a CSV header repeats, ignoring case; the columns whose header cell is empty.)
    Spark renames both (``Value``, ``value`` -> ``Value1``, ``value2``; an empty cell, as R's and
    pandas' row-name column has, -> ``_c0``), so such a header can't be checked against the
    columns. Reads one line only when a name looks renamed (ends with its position)."""
    if not any(c.endswith(str(i)) for i, c in enumerate(columns)):
        return [], []
    first = list(spark.read.options(**{**opts, "header": "false"}).csv(files[:1]).first() or [])
    names = [str(v).lower() for v in first]
    repeated = list(dict.fromkeys(v for v in first if v is not None and names.count(str(v).lower()) > 1))
    empty = (None, "", opts.get("nullValue"))
    blank = [c for i, c in enumerate(columns) if c == f"_c{i}" and (i >= len(first) or first[i] in empty)]
    return repeated, blank


def infer_schema(spark: SparkSession, src: SourceConfig, files: list[str], sample_lines: int | None = None) -> StructType:
    """Spark's type inference for CSV / JSON: over all files (one extra pass), or over the first
    ``sample_lines`` lines only (cheap; used to spot retyped columns on later loads)."""
    opts = reader_options(src)
    if src.format == "csv":
        opts = {**opts, "inferSchema": "true"}
    if sample_lines is None:
        reader = spark.read.options(**opts)
        return (reader.csv(files) if src.format == "csv" else reader.json(files)).schema
    lines = spark.read.text(files[:1]).limit(sample_lines).rdd.map(lambda r: r[0])
    reader = spark.read.options(**opts)
    return reader.csv(lines).schema if src.format == "csv" else reader.json(lines).schema


def read_text_files(spark: SparkSession, src: SourceConfig, files: list[str], columns: list[str],
                    check_header: bool = True) -> DataFrame:
    """CSV / JSON lines as strings, with a corrupt-record column and the file of every row.
    ``check_header=False``: CSV columns by position (a header that repeats a name)."""
    opts = reader_options(src)
    schema = StructType([StructField(c, StringType()) for c in columns] + [StructField(CORRUPT, StringType())])
    reader = spark.read.schema(schema).options(**opts).option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT)
    if src.format == "csv":
        # Each file's header must match the columns (a reordered file fails instead of loading
        # values into the wrong columns).
        df = reader.option("enforceSchema", str(not check_header).lower()).csv(files)
    else:
        df = reader.json(files)
    return df.select(*[F.col(f"`{c}`") for c in columns], CORRUPT,
                     source_file().alias(SOURCE), F.lit(None).cast("long").alias(POSITION))


# ------------------------------------------------------------------------------------------
# Excel
# ------------------------------------------------------------------------------------------


def _excel_rows(content: bytes, sheets: list[str] | None) -> Iterator[tuple[str, int, list]]:
    """(sheet, row number, cells) for every row after the header of each chosen sheet."""
    import io

    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    names = book.sheetnames if sheets == ["*"] else (sheets or book.sheetnames[:1])
    for name in names:
        if name not in book.sheetnames:
            raise ValueError(f"sheet {name!r} not found (sheets: {', '.join(book.sheetnames)})")
        for i, row in enumerate(book[name].iter_rows(values_only=True), start=1):
            yield name, i, list(row)


def _cell_text(v) -> str | None:
    import datetime as dt

    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ") if (v.hour, v.minute, v.second, v.microsecond) != (0, 0, 0, 0) else v.date().isoformat()
    return str(v)


def excel_header(path: str, sheets: list[str] | None) -> list[str]:
    local = urlparse(path).path if path.startswith("file:") else path
    with open(local, "rb") as fh:
        for _sheet, _i, cells in _excel_rows(fh.read(), sheets):
            return [str(c) if c is not None else f"_c{j}" for j, c in enumerate(cells)]
    raise InputDataError(f"{path}: the sheet is empty (no header row)")


def read_excel(spark: SparkSession, src: SourceConfig, files: list[str], columns: list[str]) -> DataFrame:
    """.xlsx files read in parallel (one task per file) with openpyxl: every cell as text; a row
    whose cell count differs from the header's is kept as a corrupt record."""
    sheets = src.sheets
    n = len(columns)
    out_schema = StructType([StructField(c, StringType()) for c in columns]
                            + [StructField(CORRUPT, StringType()), StructField(SOURCE, StringType()),
                               StructField(POSITION, LongType())])
    multi = sheets == ["*"] or (sheets is not None and len(sheets) > 1)

    def convert(batches):
        import pandas as pd

        for pdf in batches:
            rows = []
            for path, content in zip(pdf["path"], pdf["content"]):
                header_seen: set[str] = set()
                for sheet, i, cells in _excel_rows(content, sheets):
                    if i == 1:
                        header_seen.add(sheet)
                        continue
                    while cells and cells[-1] is None and len(cells) > n:
                        cells.pop()
                    if all(c is None for c in cells):
                        continue  # blank line
                    label = f"{norm_path(path)}#{sheet}" if multi else norm_path(path)
                    texts = [_cell_text(c) for c in cells]
                    if len(texts) > n:
                        rows.append([None] * n + [json.dumps(texts), label, i])
                    else:
                        rows.append(texts + [None] * (n - len(texts)) + [None, label, i])
            yield pd.DataFrame(rows, columns=[f.name for f in out_schema.fields])

    raw = spark.read.format("binaryFile").load(files).repartition(max(1, min(len(files), 64)))
    return raw.select("path", "content").mapInPandas(convert, out_schema)


# ------------------------------------------------------------------------------------------
# JDBC
# ------------------------------------------------------------------------------------------

_DRIVERS = {"postgresql": "org.postgresql.Driver", "mysql": "com.mysql.cj.jdbc.Driver",
            "sqlserver": "com.microsoft.sqlserver.jdbc.SQLServerDriver", "oracle": "oracle.jdbc.OracleDriver",
            "derby": "org.apache.derby.jdbc.ClientDriver"}


def _env(name: str | None, what: str, where: str) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise InputDataError(f"{where}: environment variable {name} (the {what}) is not set; export it before running")
    return value


def jdbc_host(url: str) -> str:
    m = re.match(r"^jdbc:[a-z0-9]+://([^/;?]+)", url)
    return m.group(1) if m else url.split("?")[0]


def scrub(text: str, *secrets: str | None) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


def read_jdbc(spark: SparkSession, src: SourceConfig, where: str, after: object = None) -> DataFrame:
    """A table or query over JDBC (partitioned reads when configured); with ``after``, only rows
    whose watermark column is above it. Connection failures are retried, then reported with
    host:port — never with the password."""
    j = src.jdbc
    assert j is not None
    user = _env(j.user_env, "database user", f"{where}.jdbc.user_env")
    password = _env(j.password_env, "database password", f"{where}.jdbc.password_env")
    base = f"({j.query}) AS lakeforge_q" if j.query else j.table
    if after is not None:
        lit = (str(after) if isinstance(after, (int, float)) and not isinstance(after, bool)
               else "'" + str(after).replace("'", "''") + "'")
        inner = f"SELECT * FROM {base} WHERE {j.watermark_column} > {lit}"
        base = f"({inner}) AS lakeforge_inc"
    kind = j.url.split(":")[1]
    opts = {"url": j.url, "dbtable": base, "fetchsize": str(j.fetch_size),
            "driver": j.driver or _DRIVERS.get(kind, ""), "connectTimeout": str(j.timeout_s),
            "loginTimeout": str(j.timeout_s)}
    if not opts["driver"]:
        del opts["driver"]
    if user:
        opts["user"] = user
    if password:
        opts["password"] = password
    if j.partition_column:
        opts.update(partitionColumn=j.partition_column, lowerBound=str(j.lower_bound),
                    upperBound=str(j.upper_bound), numPartitions=str(j.num_partitions))
    last, connecting = "", False
    for attempt in range(j.retries + 1):
        try:
            df = spark.read.format("jdbc").options(**opts).load()  # connects to read the schema
            return df.select("*", F.lit(f"{j.url}/{j.table or 'query'}").alias(SOURCE),
                             F.lit(None).cast("long").alias(POSITION), F.lit(None).cast("string").alias(CORRUPT))
        except Exception as exc:  # noqa: BLE001 - py4j / analysis errors alike
            last, connecting = jdbc_failure(exc, j.timeout_s)
            last = scrub(last, password)
            if attempt < j.retries:
                time.sleep(min(2 ** attempt, 10))
    fix = ("Check that the server is up and that jdbc.url names its host and port" if connecting else
           f"Check that the server is up and reachable, and the credentials in ${j.user_env or '?'} / ${j.password_env or '?'}")
    raise SourceError(f"{where}: cannot read {j.table or 'the query'} from the database at {jdbc_host(j.url)} "
                      f"after {j.retries + 1} attempt(s): {last}. {fix}.")


def jdbc_failure(exc: Exception, timeout_s: float) -> tuple[str, bool]:
    """What went wrong in a JDBC read, in a few words, and whether it was the connection itself:
    from the Java exception and its causes (py4j's own first line, "An error occurred while
    calling o108.load.", says nothing). Worded as the HTTP source does ("connection refused")."""
    causes: list[tuple[str, str]] = []  # (Java class, message), outermost first
    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    try:
        while java is not None and len(causes) < 20:
            causes.append((java.getClass().getName(), java.getMessage() or ""))
            java = java.getCause()
    except Exception:  # noqa: BLE001 - the JVM's answer is a bonus
        pass
    names = {c for c, _ in causes}
    if "java.net.ConnectException" in names or "Connection refused" in str(exc):
        return "connection refused (nothing accepts connections at that host and port)", True
    if "java.net.UnknownHostException" in names:
        host = next(m for c, m in causes if c == "java.net.UnknownHostException")
        return f"connection failed: unknown host {host}", True
    if "java.net.SocketTimeoutException" in names:
        return f"no answer within {timeout_s:g} s (timeout)", True
    if causes:
        cls, message = causes[0]
        return f"{cls.rsplit('.', 1)[-1]}: {(message.splitlines() or [''])[0][:300]}", False
    return (str(exc).splitlines() or [""])[0][:300], False


# ------------------------------------------------------------------------------------------
# HTTP API
# ------------------------------------------------------------------------------------------


def _text(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def read_http(spark: SparkSession, src: SourceConfig, progress=None) -> DataFrame:
    """Every page of a JSON API (lakeforge.ingest.http_source: pagination, retries, timeout, token),
    as string columns; the records are held by the driver, so this is for API-sized data."""
    from lakeforge.ingest.http_source import ApiSpec, fetch_pages

    h = src.http
    assert h is not None
    columns: dict[str, None] = {}
    rows: list[tuple] = []
    pages = fetch_pages(ApiSpec.from_config(h))
    records: list[tuple[str, int, dict]] = []
    for page in pages:
        for rec in page.records:
            if isinstance(rec, dict):
                for k in rec:
                    columns.setdefault(str(k), None)
            records.append((page.url, page.number, rec))
        if progress:
            progress(f"page {page.number}: {len(records)} records so far")
    names = list(columns)
    for url, number, rec in records:
        if isinstance(rec, dict):
            rows.append(tuple(_text(rec.get(c)) for c in names) + (None, url, number))
        else:  # not an object: nothing to map to columns
            rows.append(tuple([None] * len(names)) + (json.dumps(rec), url, number))
    schema = StructType([StructField(c, StringType()) for c in names]
                        + [StructField(CORRUPT, StringType()), StructField(SOURCE, StringType()),
                           StructField(POSITION, LongType())])
    return local_frame(spark, rows, schema)
