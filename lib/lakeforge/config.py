"""Configuration: the environment settings (conf/base.yaml + overlays) and pipeline configs.

Both are validated once, at start-up, by pydantic models that forbid unknown keys. Every
problem is reported with the file and the key path, e.g.
``conf/pipelines/x.yaml: model.folds: expected an integer >= 2 (got 'three')``.

Relative paths in the settings are resolved against the project root: ``$LAKEFORGE_HOME`` if
set, else the folder that holds ``conf/``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lakeforge.errors import ConfigError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TABLE_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*$")

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


class SourceConfig(_Strict):
    format: Literal["csv", "json", "parquet", "delta"] = "csv"
    path: str
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)


class IngestConfig(_Strict):
    # overwrite: each load is a full snapshot that atomically replaces the table (older
    #            snapshots stay reachable by Delta time travel).
    # append:    each run date adds its own partition; rerunning a date replaces that partition.
    mode: Literal["overwrite", "append"] = "overwrite"


class TablesConfig(_Strict):
    bronze: str
    predictions: str
    leaderboard: str | None = None

    @field_validator("bronze", "predictions", "leaderboard")
    @classmethod
    def _table_name(cls, v: str | None) -> str | None:
        if v is not None and not TABLE_NAME.match(v):
            raise ValueError("expected a table name like 'bronze_x' or 'db.bronze_x'")
        return v


class FeaturesConfig(_Strict):
    # Columns parsed as numbers (text such as " " becomes null, then imputed).
    numeric: list[str] = Field(default_factory=list)
    # Columns indexed and one-hot encoded (unseen values at scoring time get their own slot).
    categorical: list[str] = Field(default_factory=list)
    # With both lists empty, lakeforge takes every column but key, target and excluded ones:
    # numeric types as numeric, the rest as categorical.
    exclude: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _no_overlap(self) -> "FeaturesConfig":
        both = sorted(set(self.numeric) & set(self.categorical))
        if both:
            raise ValueError(f"column(s) {both} listed as both numeric and categorical")
        return self


class PreprocessingConfig(_Strict):
    numeric_impute: Literal["mean", "median", "mode"] = "median"
    scale: bool = True


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


ALL_METRICS = ("roc_auc", "pr_auc", "f1", "accuracy", "precision", "recall", "log_loss",
               "f1_macro", "f1_weighted", "rmse", "mae", "r2", "mape")


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
    # Stop starting new candidates after this many minutes (the leaderboard lists the skipped).
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
        from lakeforge.models import validate_grid

        if v is None:
            return None
        if not v:
            raise ValueError("expected at least one algorithm (or null for the defaults)")
        return {name: validate_grid(name, grid or {}) for name, grid in v.items()}

    @model_validator(mode="after")
    def _metric_fits_task(self) -> "ModelConfig":
        from lakeforge.models import METRICS

        if self.metric and self.task != "auto" and self.metric not in METRICS[self.task]:
            raise ValueError(f"metric {self.metric!r} does not apply to task {self.task!r}; use one of {', '.join(METRICS[self.task])}")
        if self.algorithms and self.task != "auto":
            from lakeforge.models import ALGORITHMS

            for name in self.algorithms:
                if self.task not in ALGORITHMS[name].tasks:
                    raise ValueError(f"algorithm {name!r} does not do {self.task}")
        return self


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
    source: SourceConfig
    key: str
    target: str
    # binary targets: the class predicted as 1; null: 1/true/yes if present, else the minority class
    positive_class: str | int | bool | None = None
    tables: TablesConfig
    ingest: IngestConfig = IngestConfig()
    features: FeaturesConfig = FeaturesConfig()
    preprocessing: PreprocessingConfig = PreprocessingConfig()
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
    def _roles(self) -> "PipelineConfig":
        listed = set(self.features.numeric) | set(self.features.categorical)
        for role in ("key", "target"):
            if getattr(self, role) in listed:
                raise ValueError(f"the {role} column {getattr(self, role)!r} cannot also be a feature")
        return self

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


def load_settings(env: str | None = None, overlays: list[str | Path] = (), conf_dir: Path | None = None) -> Settings:
    """conf/base.yaml, then conf/<env>.yaml, then each overlay file, merged in that order."""
    conf_dir = conf_dir or default_conf_dir()
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
    return settings.model_copy(update={"root": project_root(conf_dir), "sources": tuple(map(str, files))})


def load_pipeline(path: str | Path) -> PipelineConfig:
    path = Path(path)
    data = read_yaml(path)
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(path), exc, PipelineConfig)) from None
    return cfg.model_copy(update={"file": path.resolve()})
