"""Configuration: the environment settings (conf/base.yaml + overlays) and pipeline configs.

Both are validated once, at start-up, by pydantic models that forbid unknown keys. Every
problem is reported with the file and the key path, e.g.
``conf/pipelines/x.yaml: model.folds: expected an integer >= 2 (got 'three')``.

Relative paths in the settings are resolved against the project root: ``$LAKEFORGE_HOME`` if
set, else the folder that holds ``conf/``. Run from a folder without ``conf/`` (and no
``$LAKEFORGE_HOME``), lakeforge uses the settings and jars of the project it is installed from
and keeps its tables, MLflow runs and reports under the current folder.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lakeforge.core.errors import ConfigError
from lakeforge.core.tasks import ALL_METRICS, METRICS

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TABLE_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*$")

def is_column_name(name: str) -> bool:
    """A name as ingest normalises columns: letters of any script (with their marks), digits and
    '_', not starting with a digit (``tenure``, ``Возраст``, ``теги_count``)."""
    return bool(name) and not name[0].isdigit() and all(
        c == "_" or c.isalnum() or unicodedata.category(c)[0] == "M" for c in name)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# Environment settings (conf/base.yaml, conf/<env>.yaml)
# ---------------------------------------------------------------------------------------------


class SparkSettings(_Strict):
    master: str = "local[*]"
    app_name: str = "lakeforge"
    shuffle_partitions: int = Field(8, ge=1)
    driver_memory: str | None = "4g"
    ui: bool = False
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "WARN"
    # Folder with the Delta jars (scripts/fetch_jars.sh). null: the jars come from
    # spark-submit's --jars/--packages or the cluster's classpath.
    jars_dir: str | None = "jars"
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)


class CatalogSettings(_Strict):
    database: str = "lakeforge"
    warehouse_dir: str = "warehouse"
    # derby:        embedded Hive metastore in <warehouse>/metastore_db (one process at a time).
    # derby-server: the same database served by a Derby network server (scripts/metastore.sh) so
    #               several processes share the catalog: jobs, `lakeforge sql`, `sql-server`.
    # external:     any other metastore, configured through spark.conf (spark.hadoop.javax.jdo.*
    #               for a database such as PostgreSQL, or spark.hadoop.hive.metastore.uris).
    metastore: Literal["derby", "derby-server", "external"] = "derby"
    metastore_host: str = "127.0.0.1"
    metastore_port: int = Field(1527, ge=1, le=65535)

    @field_validator("database")
    @classmethod
    def _db_identifier(cls, v: str) -> str:
        if not IDENTIFIER.match(v):
            raise ValueError("expected a SQL identifier (letters, digits, underscore)")
        return v


class MlflowSettings(_Strict):
    # sqlite:///relative/path is resolved against the project root.
    tracking_uri: str = "sqlite:///mlflow/mlflow.db"
    registry_uri: str | None = None
    artifact_root: str = "mlflow/artifacts"
    experiment: str = "lakeforge"


class Settings(_Strict):
    spark: SparkSettings = SparkSettings()
    catalog: CatalogSettings = CatalogSettings()
    mlflow: MlflowSettings = MlflowSettings()
    # HTML reports and their PNG plots (also logged to MLflow); null: MLflow only.
    reports_dir: str | None = "reports"
    # Set by the loader, not by YAML.
    root: Path = Field(default=Path("."), exclude=True)
    # The folder whose conf/ was read (and whose jars/ are the fallback): the root, or the
    # project lakeforge is installed from when the current folder has no conf/.
    home: Path = Field(default=Path("."), exclude=True)
    sources: tuple[str, ...] = Field(default=(), exclude=True)

    def path(self, p: str | os.PathLike) -> Path:
        """Resolve a configured path against the project root."""
        q = Path(os.path.expanduser(str(p)))
        return q if q.is_absolute() else (self.root / q).resolve()

    def uri(self, p: str) -> str:
        """A path or URI: URIs with a scheme (s3a://, hdfs://, file:) are kept as they are."""
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", p):
            return p
        return str(self.path(p))

    @property
    def warehouse(self) -> str:
        return self.uri(self.catalog.warehouse_dir)

    @property
    def tracking_uri(self) -> str:
        return _resolve_sqlite(self.mlflow.tracking_uri, self.root)

    @property
    def registry_uri(self) -> str:
        return _resolve_sqlite(self.mlflow.registry_uri or self.mlflow.tracking_uri, self.root)

    def table(self, name: str) -> str:
        """Qualify a table name with the project database unless it names one."""
        return name if "." in name else f"{self.catalog.database}.{name}"


def _resolve_sqlite(uri: str, root: Path) -> str:
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str((root / uri[len(prefix):]).resolve())
    return uri


# ---------------------------------------------------------------------------------------------
# Pipeline config (conf/pipelines/*.yaml)
# ---------------------------------------------------------------------------------------------


class JdbcConfig(_Strict):
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


class HttpConfig(_Strict):
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


class CheckConfig(_Strict):
    """One data-quality expectation, evaluated on the loaded rows (lakeforge.quality)."""

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


class DedupeConfig(_Strict):
    key: list[str]                        # rows with the same key ...
    order_by: str                         # ... keep the one with the largest value of this column


FILE_FORMATS = ("csv", "json", "parquet", "excel")


class SourceConfig(_Strict):
    """One source loaded into one bronze Delta table."""

    # csv, json (JSON lines), parquet, excel (.xlsx): ``path`` is a file, a glob or a folder.
    # delta: ``path`` is a table name or a Delta folder. jdbc: see ``jdbc``. http: see ``http``.
    format: Literal["csv", "json", "parquet", "excel", "delta", "jdbc", "http"] = "csv"
    path: str | None = None
    # Reader options: csv (header, sep, quote, escape, encoding, dateFormat, timestampFormat,
    # multiLine...), json (multiLine...).
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)
    sheets: list[str] | None = None       # excel: sheet names; null: the first sheet; ["*"]: all
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


class IngestConfig(_Strict):
    # The main source's mode when ``source.mode`` is not set:
    # overwrite: each load is a full snapshot that atomically replaces the table (older
    #            snapshots stay reachable by Delta time travel).
    # append:    each run date adds its own partition; rerunning a date replaces that partition.
    mode: Literal["overwrite", "append", "incremental"] = "overwrite"


class TablesConfig(_Strict):
    bronze: str
    predictions: str
    leaderboard: str | None = None
    # Gold feature table: the transformed features keyed by the entity id, replaced each training
    # run (one Delta version per run); not written when absent.
    features: str | None = None
    # Feature-selection ranking (with selection configured); default feature_ranking_<name>.
    feature_ranking: str | None = None

    @field_validator("bronze", "predictions", "leaderboard", "features", "feature_ranking")
    @classmethod
    def _table_name(cls, v: str | None) -> str | None:
        if v is not None and not TABLE_NAME.match(v):
            raise ValueError("expected a table name like 'bronze_x' or 'db.bronze_x'")
        return v


class DerivedFeature(_Strict):
    # A Spark SQL expression over the input table's columns as they are (text stays text: use
    # try_cast(x AS DOUBLE) for numbers stored as text), evaluated by a SQLTransformer.
    expr: str
    role: Literal["numeric", "categorical"] = "numeric"


DATE_PARTS = ("year", "month", "day", "day_of_week", "hour", "days_since")


class DateFeature(_Strict):
    # Numeric features <column>_<part>; text is parsed with ``format`` (Spark datetime pattern,
    # null: ISO dates/timestamps); values that do not parse are counted and become null (imputed).
    parts: list[Literal[DATE_PARTS]] = Field(default_factory=lambda: ["year", "month", "day_of_week"])  # type: ignore[valid-type]
    format: str | None = None
    # days_since: days from the date to ``reference``: 'YYYY-MM-DD', 'today' (the day the model
    # runs), or null: the latest date in the training data (fixed at fit time).
    reference: str | None = None

    @field_validator("parts")
    @classmethod
    def _parts(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("expected at least one of " + ", ".join(DATE_PARTS))
        if len(set(v)) != len(v):
            raise ValueError("a part is listed twice")
        return v

    @field_validator("reference")
    @classmethod
    def _reference(cls, v: str | None) -> str | None:
        if v is not None and v != "today" and not re.match(r"^\d{4}-\d{2}-\d{2}$", v):
            raise ValueError("expected 'YYYY-MM-DD', 'today' or null (the latest training date)")
        return v


class BucketFeature(_Strict):
    # Fixed ``splits`` (Bucketizer; -inf/+inf are added at the ends) or ``quantiles`` equal-count
    # buckets (QuantileDiscretizer); the bucket is one-hot encoded as feature <column>_bucket.
    splits: list[float] | None = None
    quantiles: int | None = Field(None, ge=2, le=1000)
    # false: the bucket replaces the numeric column in the feature vector.
    keep_numeric: bool = True

    @model_validator(mode="after")
    def _one(self) -> "BucketFeature":
        if (self.splits is None) == (self.quantiles is None):
            raise ValueError("give exactly one of splits (fixed edges) or quantiles (number of buckets)")
        if self.splits is not None:
            if not self.splits or any(b <= a for a, b in zip(self.splits, self.splits[1:])):
                raise ValueError("splits must be strictly increasing numbers")
        return self


class FeaturesConfig(_Strict):
    # Columns parsed as numbers (text such as " " becomes null, then imputed).
    numeric: list[str] = Field(default_factory=list)
    # Columns indexed and one-hot encoded (unseen values at scoring time get their own slot).
    categorical: list[str] = Field(default_factory=list)
    # With both lists empty, lakeforge takes every column but key, target and excluded ones:
    # numeric types as numeric, the rest as categorical.
    exclude: list[str] = Field(default_factory=list)
    # Feature engineering (each compiles to Spark ML stages inside the fitted model):
    # name: SQL expression (a numeric feature) or {expr, role}.
    derived: dict[str, str | DerivedFeature] = Field(default_factory=dict)
    # date/timestamp (or text) column: {parts, format, reference}.
    dates: dict[str, DateFeature] = Field(default_factory=dict)
    # numeric feature: {splits} or {quantiles}.
    buckets: dict[str, BucketFeature] = Field(default_factory=dict)
    # products of features (Interaction): each a list of 2+ feature names (numeric values,
    # one-hot vectors of categorical ones).
    interactions: list[list[str]] = Field(default_factory=list)
    # text columns whose length (characters, 0 for null) is a numeric feature <column>_length.
    text_length: list[str] = Field(default_factory=list)
    # free-text columns as TF-IDF word weights: words (letters and digits, lower-cased, 2+
    # characters) hashed into text_tfidf_size slots per column (HashingTF), weighted by IDF.
    text_tfidf: list[str] = Field(default_factory=list)
    text_tfidf_size: int = Field(256, ge=2, le=1 << 18)

    @model_validator(mode="after")
    def _no_overlap(self) -> "FeaturesConfig":
        both = sorted(set(self.numeric) & set(self.categorical))
        if both:
            raise ValueError(f"column(s) {both} listed as both numeric and categorical")
        for name in self.derived:
            if not is_column_name(name):
                raise ValueError(f"derived.{name}: expected an identifier (letters, digits, underscore) as the feature name")
            if name in self.numeric or name in self.categorical:
                raise ValueError(f"derived.{name}: the name is already a listed column; pick another name")
        for i, group in enumerate(self.interactions):
            if len(group) < 2 or len(set(group)) != len(group):
                raise ValueError(f"interactions[{i}]: expected 2 or more different feature names (got {group})")
        return self

    @property
    def derived_specs(self) -> dict[str, DerivedFeature]:
        return {k: v if isinstance(v, DerivedFeature) else DerivedFeature(expr=v) for k, v in self.derived.items()}


class ImputeSpec(_Strict):
    # keep: categorical nulls stay null (the indexer's unknown slot); mode / constant fill them.
    strategy: Literal["mean", "median", "mode", "constant", "keep"]
    value: float | str | None = None

    @model_validator(mode="after")
    def _value(self) -> "ImputeSpec":
        if self.strategy == "constant" and self.value is None:
            raise ValueError("strategy 'constant' needs 'value'")
        if self.strategy != "constant" and self.value is not None:
            raise ValueError(f"'value' is only for strategy 'constant' (got strategy {self.strategy!r})")
        return self


class RareLevelsConfig(_Strict):
    # Levels of one-hot encoded columns seen fewer than ``min_count`` times or in less than
    # ``min_fraction`` of the training rows, and levels beyond the ``max_levels`` most frequent,
    # become one level ``label`` (so do levels first seen at scoring time).
    min_count: int = Field(0, ge=0)
    min_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    max_levels: int | None = Field(None, ge=1)
    columns: list[str] | None = None  # null: every one-hot encoded column
    label: str = "__rare__"

    @model_validator(mode="after")
    def _rule(self) -> "RareLevelsConfig":
        if not self.min_count and not self.min_fraction and self.max_levels is None:
            raise ValueError("set at least one of min_count, min_fraction, max_levels")
        return self


class ClipConfig(_Strict):
    # Numeric features clipped to their ``lower`` / ``upper`` quantiles (computed at fit time).
    columns: list[str] = Field(min_length=1)
    lower: float | None = Field(0.01, ge=0.0, lt=1.0)
    upper: float | None = Field(0.99, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _order(self) -> "ClipConfig":
        if self.lower is None and self.upper is None:
            raise ValueError("set lower and/or upper")
        if self.lower is not None and self.upper is not None and self.lower >= self.upper:
            raise ValueError(f"lower ({self.lower}) must be below upper ({self.upper})")
        return self


class TargetEncodingConfig(_Strict):
    # Categorical columns replaced by the smoothed target mean per level:
    # (sum + smoothing * prior) / (count + smoothing); unseen levels get the prior. Fitted per CV
    # fold (no leakage into the validation folds); the ``max_levels`` most frequent levels get
    # their own value.
    columns: list[str] = Field(min_length=1)
    smoothing: float = Field(10.0, ge=0.0)
    max_levels: int = Field(1000, ge=1)


class DropConfig(_Strict):
    columns: list[str] = Field(default_factory=list)  # always dropped (reported as user-listed)
    constant: bool = False  # one value in every training row (nulls aside)
    near_constant: float | None = Field(None, gt=0.5, lt=1.0)  # the top value covers at least this share
    id_like: bool = False  # text or integer columns with a distinct value in (almost) every row
    max_missing_fraction: float | None = Field(None, ge=0.0, lt=1.0)  # dropped above this missing share


class PreprocessingConfig(_Strict):
    numeric_impute: Literal["mean", "median", "mode", "constant"] = "median"
    numeric_fill_value: float = 0.0  # numeric_impute: constant
    # keep: nulls get the indexer's unknown slot; mode: the most frequent level; constant: the value.
    categorical_impute: Literal["keep", "mode", "constant"] = "keep"
    categorical_fill_value: str = "missing"
    # Per-column strategy: column -> mean | median | mode | constant | keep, or {strategy, value}.
    impute: dict[str, ImputeSpec] = Field(default_factory=dict)
    # 0/1 "was missing" features <column>__missing: a list, or true for every feature column with
    # a missing value in the training rows.
    missing_indicators: bool | list[str] = False
    # true: divide numeric features by their standard deviation (StandardScaler without centering);
    # standard: center and divide; minmax: to [0, 1]; robust: median/IQR (RobustScaler); false: none.
    scale: bool | Literal["standard", "minmax", "robust"] = True
    log: list[str] = Field(default_factory=list)  # log1p of these numeric features (values <= -1: missing)
    clip: ClipConfig | None = None
    # Type repair of text columns: number (try_cast) or boolean (yes/no, true/false, y/n, 1/0 -> 1/0).
    types: dict[str, Literal["number", "boolean"]] = Field(default_factory=dict)
    rare_levels: RareLevelsConfig | None = None
    # Ordinal encoding: column -> its levels in order (-> 0, 1, 2...; unknown levels: missing).
    ordinal: dict[str, list[str]] = Field(default_factory=dict)
    target_encoding: TargetEncodingConfig | None = None
    # Training rows only (scoring scores every row): rows (identical but for ingestion metadata)
    # or key (one row per key: the latest ingested).
    deduplicate: Literal["none", "rows", "key"] = "none"
    drop: DropConfig = DropConfig()

    @field_validator("impute", mode="before")
    @classmethod
    def _impute_shorthand(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: {"strategy": s} if isinstance(s, str) else s for k, s in v.items()}
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "PreprocessingConfig":
        for col, levels in self.ordinal.items():
            if not levels or len(set(levels)) != len(levels):
                raise ValueError(f"ordinal.{col}: expected the column's levels in order, each once")
        te = set(self.target_encoding.columns) if self.target_encoding else set()
        both = sorted(te & set(self.ordinal))
        if both:
            raise ValueError(f"column(s) {both} are both ordinal and target encoded; pick one encoding")
        return self

    @property
    def supervised(self) -> bool:
        return self.target_encoding is not None


class UnivariateSelection(_Strict):
    # auto: ANOVA F for class targets, F-regression for numeric targets; chi2 suits 0/1 (one-hot)
    # features.
    test: Literal["auto", "chi2", "anova", "f_regression"] = "auto"
    # top: the ``threshold`` best features; percentile: that share of them; fpr / fdr / fwe: a
    # p-value bound (false positive rate, Benjamini-Hochberg, Bonferroni).
    mode: Literal["top", "percentile", "fpr", "fdr", "fwe"] = "top"
    threshold: float = Field(20, gt=0)

    @model_validator(mode="after")
    def _threshold(self) -> "UnivariateSelection":
        if self.mode == "top" and self.threshold != int(self.threshold):
            raise ValueError("mode 'top' needs a whole number of features as threshold")
        if self.mode != "top" and self.threshold > 1:
            raise ValueError(f"mode {self.mode!r} needs a threshold between 0 and 1")
        return self


class ModelSelection(_Strict):
    # random_forest: feature importances; lasso: |coefficients| of an L1 (elasticNetParam=1) model.
    method: Literal["random_forest", "lasso"] = "random_forest"
    top: int | None = Field(None, ge=1)  # keep the ``top`` most important features, or
    min_importance: float | None = Field(None, ge=0.0)  # those with this share of the total; default: > 0
    reg_param: float = Field(0.01, gt=0.0)  # lasso
    num_trees: int = Field(50, ge=1, le=1000)  # random_forest
    max_depth: int = Field(5, ge=1, le=30)


class SelectionConfig(_Strict):
    # Applied in this order to the assembled feature vector (after scaling); every step is
    # reported (score, rank, kept/dropped) in the feature ranking.
    variance_threshold: float | None = Field(None, ge=0.0)  # drop features with variance <= this
    correlation_threshold: float | None = Field(None, gt=0.0, le=1.0)  # drop one of each pair with |r| above
    univariate: UnivariateSelection | None = None
    model: ModelSelection | None = None
    pca: int | None = Field(None, ge=1)  # project onto this many principal components

    @property
    def enabled(self) -> bool:
        return any(v is not None for v in (self.variance_threshold, self.correlation_threshold,
                                           self.univariate, self.model, self.pca))

    @property
    def supervised(self) -> bool:
        return self.univariate is not None or self.model is not None


class SplitConfig(_Strict):
    # key:  a hash of the key column (stable across runs and partitionings);
    # time: the latest rows by ``column`` form the test set.
    by: Literal["key", "time"] = "key"
    column: str | None = None

    @model_validator(mode="after")
    def _column(self) -> "SplitConfig":
        if self.by == "time" and not self.column:
            raise ValueError("split.by 'time' needs split.column (a timestamp or date column)")
        return self


class ThresholdConfig(_Strict):
    # max_f1:    the threshold on P(positive) that maximises F1 on the validation folds;
    # precision: the lowest threshold whose precision reaches ``value`` (the most recall);
    # recall:    the highest threshold whose recall reaches ``value``;
    # fixed:     ``value`` itself.
    strategy: Literal["max_f1", "precision", "recall", "fixed"] = "max_f1"
    value: float | None = Field(None, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _value(self) -> "ThresholdConfig":
        if self.strategy != "max_f1" and self.value is None:
            raise ValueError(f"threshold.strategy {self.strategy!r} needs threshold.value (between 0 and 1)")
        return self


class ModelConfig(_Strict):
    registered_name: str
    # auto: binary for two target values, regression for a numeric target with many values,
    # multiclass otherwise.
    task: Literal["auto", "binary", "multiclass", "regression"] = "auto"
    # Algorithms to search, each with a grid {MLlib param: [values]} merged over its default
    # grid; null: the task's default algorithms (lakeforge.models).
    algorithms: dict[str, dict[str, list[Any]] | None] | None = None
    search: Literal["cross_validation", "train_validation_split"] = "cross_validation"
    # best_mean: the best CV mean wins; one_standard_error: the simplest algorithm within one
    # standard error of the best (differences below the fold noise do not buy complexity).
    selection: Literal["best_mean", "one_standard_error"] = "one_standard_error"
    # Successive halving across folds: all candidates on the first fold; on the rest the best
    # third and the best of each algorithm.
    halving: bool = False
    folds: int = Field(3, ge=2, le=20)
    train_ratio: float = Field(0.75, gt=0.0, lt=1.0)  # train_validation_split only
    # null: roc_auc (binary), f1_macro (multiclass), rmse (regression)
    metric: Literal[ALL_METRICS] | None = None  # type: ignore[valid-type]
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split: SplitConfig = SplitConfig()
    seed: int = 42
    max_iter: int = Field(100, ge=1)
    # Candidates fitted at once; null: twice the cores Spark has, at most 4.
    parallelism: int | None = Field(None, ge=1)
    # After this many minutes from the start of training no new algorithm starts (started ones
    # finish; the first always runs); the leaderboard lists the skipped candidates.
    max_minutes: float | None = Field(None, gt=0)
    # Weight classes inversely to their frequency (algorithms that take a weight column).
    class_weights: bool = False
    threshold: ThresholdConfig = ThresholdConfig()
    # The new version becomes champion only if its test metric beats the champion's by more.
    promotion_margin: float = Field(0.0, ge=0.0)

    @field_validator("registered_name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9_.-]+$", v):
            raise ValueError("expected letters, digits, '_', '.' or '-'")
        return v

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, v: dict[str, dict[str, list[Any]] | None] | None) -> dict[str, dict[str, list[Any]]] | None:
        from lakeforge.training.algorithms import validate_grid

        if v is None:
            return None
        if not v:
            raise ValueError("expected at least one algorithm (or null for the defaults)")
        return {name: validate_grid(name, grid or {}) for name, grid in v.items()}

    @model_validator(mode="after")
    def _metric_fits_task(self) -> "ModelConfig":
        if self.metric and self.task != "auto" and self.metric not in METRICS[self.task]:
            raise ValueError(f"metric {self.metric!r} does not apply to task {self.task!r}; use one of {', '.join(METRICS[self.task])}")
        if self.algorithms and self.task != "auto":
            from lakeforge.training.algorithms import ALGORITHMS

            for name in self.algorithms:
                if self.task not in ALGORITHMS[name].tasks:
                    raise ValueError(f"algorithm {name!r} does not do {self.task}")
        return self

    @property
    def n_folds(self) -> int:
        """Folds the search fits each candidate on: ``folds`` for cross-validation, else 1 (one
        train/validation split)."""
        return self.folds if self.search == "cross_validation" else 1

    @property
    def search_label(self) -> str:
        """The search in words: "3-fold cross-validation" or "train/validation split"."""
        return f"{self.folds}-fold cross-validation" if self.search == "cross_validation" else "train/validation split"


class ScoringConfig(_Strict):
    # Table to score; default: the bronze table.
    input_table: str | None = None
    model_alias: str = "champion"
    # Input columns copied to the predictions table as they are (e.g. a segment for dashboards).
    passthrough: list[str] = Field(default_factory=list)
    # full:        every input row is scored for the run date.
    # incremental: only rows that are new or changed (any non-metadata column) since the input
    #              version scored by the last successful run of an earlier date; `score --full`
    #              forces a full rescore.
    mode: Literal["full", "incremental"] = "full"


class PipelineConfig(_Strict):
    name: str
    # The main source: loaded into tables.bronze, which training and scoring read.
    source: SourceConfig
    # More named sources, each into its own table (``table`` required); `ingest --source NAME`.
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    key: str
    target: str
    # binary targets: the class predicted as 1; null: 1/true/yes if present, else the minority class
    positive_class: str | int | bool | None = None
    tables: TablesConfig
    ingest: IngestConfig = IngestConfig()
    features: FeaturesConfig = FeaturesConfig()
    preprocessing: PreprocessingConfig = PreprocessingConfig()
    selection: SelectionConfig = SelectionConfig()
    model: ModelConfig
    scoring: ScoringConfig = ScoringConfig()
    # Set by the loader.
    file: Path = Field(default=Path("."), exclude=True)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not IDENTIFIER.match(v):
            raise ValueError("expected an identifier (letters, digits, underscore)")
        return v

    @model_validator(mode="after")
    def _sources(self) -> "PipelineConfig":
        for name, src in self.sources.items():
            if not IDENTIFIER.match(name):
                raise ValueError(f"source name {name!r}: expected an identifier (letters, digits, underscore)")
            if name == "main":
                raise ValueError("source name 'main' is the pipeline's 'source'; pick another name")
            if not src.table:
                raise ValueError(f"sources.{name}.table: required (the bronze table this source loads into)")
        tables = [t for _, t, _ in self.ingest_plan()]
        dup = sorted({t for t in tables if tables.count(t) > 1})
        if dup:
            raise ValueError(f"two sources load into the same table {dup}; give each its own 'table'")
        return self

    def ingest_plan(self) -> list[tuple[str, str, SourceConfig]]:
        """(name, table, source) for every source: 'main' first, then the named ones."""
        main_mode = self.source.mode or self.ingest.mode
        main = self.source.model_copy(update={"mode": main_mode})
        plan = [("main", main.table or self.tables.bronze, main)]
        for name, src in self.sources.items():
            plan.append((name, src.table, src.model_copy(update={"mode": src.mode or "overwrite"})))
        return plan

    @model_validator(mode="after")
    def _roles(self) -> "PipelineConfig":
        listed = set(self.features.numeric) | set(self.features.categorical)
        for role in ("key", "target"):
            if getattr(self, role) in listed:
                raise ValueError(f"the {role} column {getattr(self, role)!r} cannot also be a feature")
            if getattr(self, role) in self.features.derived:
                raise ValueError(f"features.derived.{getattr(self, role)}: the name is the {role} column; pick another name")
        return self

    @model_validator(mode="after")
    def _feature_roles(self) -> "PipelineConfig":
        prep, feats = self.preprocessing, self.features
        categorical, numeric = set(feats.categorical), set(feats.numeric)
        for col, kind in prep.types.items():
            if col in categorical:
                raise ValueError(f"preprocessing.types.{col}: a {kind} column becomes one numeric feature; "
                                 f"move {col!r} from features.categorical to features.numeric")
        encoded = {**{c: "ordinal" for c in prep.ordinal},
                   **{c: "target_encoding" for c in (prep.target_encoding.columns if prep.target_encoding else [])}}
        for col, key in encoded.items():
            if col in numeric:
                raise ValueError(f"preprocessing.{key}: {col!r} is listed in features.numeric; "
                                 f"encodings apply to categorical columns (list it in features.categorical)")
        numeric_keys = {"log": prep.log, "clip.columns": prep.clip.columns if prep.clip else [], "features.buckets": list(feats.buckets)}
        for key, cols in numeric_keys.items():
            for col in cols:
                if col in categorical:
                    raise ValueError(f"{key}: {col!r} is a categorical (text) feature; numeric transforms apply to "
                                     f"numeric features (list it in features.numeric or remove it from {key})")
        return self

    @property
    def scoring_input(self) -> str:
        """The table scoring reads (short name): ``scoring.input_table``, else the bronze table."""
        return self.scoring.input_table or self.tables.bronze

    @property
    def feature_ranking_table(self) -> str:
        """Where training writes the feature-selection ranking (default feature_ranking_<name>)."""
        return self.tables.feature_ranking or f"feature_ranking_{self.name}"

    @property
    def config_hash(self) -> str:
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Overlay wins; mappings are merged key by key, everything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def format_validation_error(source: str, exc: ValidationError, model: type[BaseModel]) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = _model_at(model, err["loc"][:-1])
            allowed = ", ".join(sorted(parent.model_fields)) if parent else "see the README"
            lines.append(f"{source}: {loc}: unknown key (allowed here: {allowed})")
        elif kind == "missing":
            lines.append(f"{source}: {loc}: required key is missing")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{source}: {loc}: {msg} (got {err.get('input')!r})")
    return "\n".join(lines)


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return None
        current = field.annotation
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def project_root(conf_dir: Path | None = None) -> Path:
    env = os.environ.get("LAKEFORGE_HOME")
    if env:
        return Path(env).resolve()
    if conf_dir is not None:
        return conf_dir.resolve().parent
    return Path.cwd().resolve()


def default_conf_dir() -> Path:
    env = os.environ.get("LAKEFORGE_HOME")
    return (Path(env) if env else Path.cwd()) / "conf"


# The project folder lakeforge is installed from (an editable install: lib/lakeforge/ in it).
INSTALL_HOME = Path(__file__).resolve().parents[3]


def load_settings(env: str | None = None, overlays: list[str | Path] = (), conf_dir: Path | None = None) -> Settings:
    """conf/base.yaml, then conf/<env>.yaml, then each overlay file, merged in that order."""
    chosen = conf_dir is not None or bool(os.environ.get("LAKEFORGE_HOME"))
    conf_dir = conf_dir or default_conf_dir()
    root = project_root(conf_dir)
    if not chosen and not (conf_dir / "base.yaml").exists() and (INSTALL_HOME / "conf" / "base.yaml").is_file():
        conf_dir = INSTALL_HOME / "conf"  # no project here: the installed one's settings, this folder's data
    files = [conf_dir / "base.yaml"]
    env = env or os.environ.get("LAKEFORGE_ENV") or None
    if env:
        if not IDENTIFIER.match(env.replace("-", "_")):
            raise ConfigError(f"--env {env!r}: expected the name of a file conf/<name>.yaml")
        files.append(conf_dir / f"{env}.yaml")
    files += [Path(p) for p in overlays]
    merged: dict[str, Any] = {}
    for f in files:
        if f == conf_dir / "base.yaml" and not f.exists():
            raise ConfigError(
                f"config file not found: {f} (run lakeforge from the project folder, "
                "or set LAKEFORGE_HOME to it)"
            )
        merged = deep_merge(merged, read_yaml(f))
    source = " + ".join(str(f) for f in files)
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc, Settings)) from None
    return settings.model_copy(update={"root": root, "home": conf_dir.resolve().parent, "sources": tuple(map(str, files))})


def load_pipeline(path: str | Path) -> PipelineConfig:
    path = Path(path)
    data = read_yaml(path)
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(path), exc, PipelineConfig)) from None
    return cfg.model_copy(update={"file": path.resolve()})
