"""Pipeline config, the data sources: files, Delta, JDBC and HTTP sources (``source``,
``sources``), their data-quality checks, and the main source's load mode (``ingest``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from lakeforge.core.config_base import IDENTIFIER, StrictModel


class JdbcConfig(StrictModel):
    # jdbc:postgresql://host:5432/db — no credentials in the URL: they come from the environment.
    url: str
    table: str | None = None              # a table, or
    query: str | None = None              # a SELECT (pushed down as a subquery)
    user_env: str | None = None           # name of the env var holding the user
    password_env: str | None = None       # name of the env var holding the password
    driver: str | None = None             # default: from the URL (postgresql)
    # Parallel reads: numeric/date column split into num_partitions ranges.
    partition_column: str | None = None
    lower_bound: int | float | str | None = None
    upper_bound: int | float | str | None = None
    num_partitions: int | None = Field(None, ge=1, le=256)
    fetch_size: int = Field(10_000, ge=1)
    # Incremental loads: only rows whose watermark column is above the largest one loaded.
    watermark_column: str | None = None
    retries: int = Field(2, ge=0)         # connection attempts after the first
    timeout_s: int = Field(30, ge=1)      # connect / login timeout

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith("jdbc:"):
            raise ValueError("expected a JDBC URL such as jdbc:postgresql://127.0.0.1:5432/db")
        if re.search(r"password=", v, re.IGNORECASE) or re.match(r"^jdbc:[a-z]+://[^/@]+:[^/@]+@", v):
            raise ValueError("credentials do not belong in the URL; name env vars in user_env/password_env")
        return v

    @model_validator(mode="after")
    def _what(self) -> "JdbcConfig":
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of jdbc.table or jdbc.query")
        bounds = (self.partition_column, self.lower_bound, self.upper_bound, self.num_partitions)
        if any(b is not None for b in bounds) and not all(b is not None for b in bounds):
            raise ValueError("partitioned reads need all of partition_column, lower_bound, upper_bound, num_partitions")
        return self


class HttpConfig(StrictModel):
    url: str
    records_path: str | None = None       # dotted path to the list of records; null: the body is the list
    pagination: Literal["none", "page", "offset", "cursor", "next_link"] = "none"
    page_param: str = "page"
    size_param: str = "per_page"
    page_size: int = Field(100, ge=1)
    first_page: int = 1
    offset_param: str = "offset"
    limit_param: str = "limit"
    cursor_param: str = "cursor"
    cursor_path: str = "next_cursor"
    next_path: str | None = None          # null: the Link header's rel="next"
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    token_env: str | None = None          # env var holding a bearer token
    timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(3, ge=0)
    backoff_s: float = Field(1.0, ge=0)
    max_pages: int | None = Field(None, ge=1)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://", v):
            raise ValueError("expected an http:// or https:// URL")
        return v

    @field_validator("headers")
    @classmethod
    def _no_secret_headers(cls, v: dict[str, str]) -> dict[str, str]:
        if any(k.lower() in ("authorization", "x-api-key", "api-key") for k in v):
            raise ValueError("secrets do not belong in the YAML; put the token in an env var named by token_env")
        return v


CHECK_TYPES = ("not_null", "unique", "allowed_values", "range", "regex", "row_count", "freshness", "duplicate_rows")


class CheckConfig(StrictModel):
    """One data-quality expectation, evaluated on the loaded rows (lakeforge.ingest.quality)."""

    type: Literal[CHECK_TYPES]  # type: ignore[valid-type]
    column: str | None = None             # not_null, allowed_values, range, regex, freshness
    columns: list[str] = Field(default_factory=list)  # unique (a key of one or more columns), not_null
    values: list[str | int | float | bool] = Field(default_factory=list)  # allowed_values
    min: float | None = None              # range, row_count
    max: float | None = None
    pattern: str | None = None            # regex
    max_age_hours: float | None = Field(None, gt=0)   # freshness
    severity: Literal["warn", "error"] = "error"
    name: str | None = None

    @model_validator(mode="after")
    def _needs(self) -> "CheckConfig":
        t = self.type
        if t in ("allowed_values", "range", "regex", "freshness") and not self.column:
            raise ValueError(f"check {t!r} needs 'column'")
        if t in ("not_null", "unique") and not (self.column or self.columns):
            raise ValueError(f"check {t!r} needs 'column' or 'columns'")
        if t == "allowed_values" and not self.values:
            raise ValueError("check 'allowed_values' needs 'values'")
        if t in ("range", "row_count") and self.min is None and self.max is None:
            raise ValueError(f"check {t!r} needs 'min' and/or 'max'")
        if t == "regex":
            if not self.pattern:
                raise ValueError("check 'regex' needs 'pattern'")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r} is not a valid regular expression: {exc}") from None
        if t == "freshness" and self.max_age_hours is None:
            raise ValueError("check 'freshness' needs 'max_age_hours'")
        return self

    @property
    def target_columns(self) -> list[str]:
        return list(self.columns) or ([self.column] if self.column else [])

    @property
    def label(self) -> str:
        return self.name or f"{self.type}({', '.join(self.target_columns)})" if self.target_columns else (self.name or self.type)


class DedupeConfig(StrictModel):
    key: list[str]                        # rows with the same key ...
    order_by: str                         # ... keep the one with the largest value of this column


FILE_FORMATS = ("csv", "json", "parquet", "excel")


class SourceConfig(StrictModel):
    """One source loaded into one bronze Delta table."""

    # csv, json (JSON lines), parquet, excel (.xlsx): ``path`` is a file, a glob or a folder.
    # delta: ``path`` is a table name or a Delta folder. jdbc: see ``jdbc``. http: see ``http``.
    format: Literal["csv", "json", "parquet", "excel", "delta", "jdbc", "http"] = "csv"
    path: str | None = None
    # Reader options: csv (header, sep, quote, escape, encoding, dateFormat, timestampFormat,
    # multiLine...), json (multiLine...).
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)
    sheets: list[str] | None = None       # excel: sheet names; null: the first sheet; ["*"]: all
    # csv, excel: values read as missing (null) in every column, after trimming spaces. null: the
    # usual markers (NA, N/A, n/a, NaN, nan, NULL, null, None, #N/A, #NA, <NA>, ?: pandas'
    # defaults and the '?' of UCI's files); []: only empty values are missing.
    null_values: list[str] | None = None
    jdbc: JdbcConfig | None = None
    http: HttpConfig | None = None
    # Target table; default: tables.bronze for the pipeline's main source.
    table: str | None = None
    # Explicit schema as DDL ("id INT, name STRING, ts TIMESTAMP"); null: inferred on the first
    # load, then the table's schema is enforced on every later load.
    schema_: str | None = Field(None, alias="schema")
    # overwrite:   each load is a full snapshot that atomically replaces the table;
    # append:      each run date has its own partition; rerunning a date replaces it;
    # incremental: files: only files not loaded before; jdbc: rows above the watermark.
    mode: Literal["overwrite", "append", "incremental"] | None = None
    # A record that cannot be parsed or cast: quarantine (to <table>_quarantine), drop (counted),
    # or fail (nothing is committed).
    on_bad_records: Literal["quarantine", "fail", "drop"] = "quarantine"
    # An empty source (or no new files) fails the run unless this is true (then: a no-op).
    allow_empty: bool = False
    # New / missing / retyped columns fail the load unless true (then Delta mergeSchema; recorded).
    schema_evolution: bool = False
    # keep: only characters that are not letters, digits or '_' are replaced; snake: also
    # lower_snake_case (CustomerID -> customer_id).
    column_names: Literal["keep", "snake"] = "keep"
    dedupe: DedupeConfig | None = None
    checks: list[CheckConfig] = Field(default_factory=list)
    # For data without a key column: add a column of this name holding a stable id made from the
    # row's content (a 128-bit hash of every data column, as 32 hex digits; identical rows of one
    # load get -2, -3... suffixes). The same rows get the same ids on every load.
    row_id: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _shape(self) -> "SourceConfig":
        if self.format in FILE_FORMATS + ("delta",) and not self.path:
            raise ValueError(f"format {self.format!r} needs 'path'")
        if self.format == "jdbc" and self.jdbc is None:
            raise ValueError("format 'jdbc' needs a 'jdbc' section (url, table or query, user_env, password_env)")
        if self.format == "http" and self.http is None:
            raise ValueError("format 'http' needs an 'http' section (url, pagination...)")
        if self.mode == "incremental" and self.format in ("delta", "http"):
            raise ValueError(f"mode 'incremental' works for files and jdbc (watermark_column), not {self.format!r}")
        if self.mode == "incremental" and self.format == "jdbc" and not (self.jdbc and self.jdbc.watermark_column):
            raise ValueError("mode 'incremental' with jdbc needs jdbc.watermark_column")
        if self.row_id is not None and not IDENTIFIER.match(self.row_id):
            raise ValueError(f"row_id: {self.row_id!r} is not an identifier (letters, digits, underscore)")
        return self

    @property
    def label(self) -> str:
        """Where the data comes from, for messages (never with credentials)."""
        if self.format == "jdbc" and self.jdbc:
            return f"{self.jdbc.url} ({self.jdbc.table or 'query'})"
        if self.format == "http" and self.http:
            return self.http.url
        return str(self.path)


class IngestConfig(StrictModel):
    # The main source's mode when ``source.mode`` is not set:
    # overwrite: each load is a full snapshot that atomically replaces the table (older
    #            snapshots stay reachable by Delta time travel).
    # append:    each run date adds its own partition; rerunning a date replaces that partition.
    mode: Literal["overwrite", "append", "incremental"] = "overwrite"
