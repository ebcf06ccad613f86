"""The environment settings: conf/base.yaml, then conf/<env>.yaml and overlay files, merged and
validated at start-up (lakeforge.core.config_base reports every problem with the file and key path).

Relative paths in the settings are resolved against the project root: ``$LAKEFORGE_HOME`` if
set, else the folder that holds ``conf/``. Run from a folder without ``conf/`` (and no
``$LAKEFORGE_HOME``), lakeforge uses the settings and jars of the project it is installed from
and keeps its tables, MLflow runs and reports under the current folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from lakeforge.core.config_base import IDENTIFIER, StrictModel, deep_merge, format_validation_error, read_yaml
from lakeforge.core.errors import ConfigError


class SparkSettings(StrictModel):
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


class CatalogSettings(StrictModel):
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


class MlflowSettings(StrictModel):
    # sqlite:///relative/path is resolved against the project root.
    tracking_uri: str = "sqlite:///mlflow/mlflow.db"
    registry_uri: str | None = None
    artifact_root: str = "mlflow/artifacts"
    experiment: str = "lakeforge"


class ServingConfig(StrictModel):
    """``lakeforge serve``: the HTTP server of a registered model (lakeforge.serving.app)."""

    host: str = "127.0.0.1"  # loopback unless you mean otherwise
    port: int = Field(8000, ge=1, le=65535)
    reload_interval_s: float = Field(30.0, ge=0)  # re-check the alias this often (0: only POST /reload)
    max_records: int = Field(10_000, ge=1)  # records per request (more: 413)
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)  # request body (more: 413)
    ignore_unknown_fields: bool = False  # false: a field that is not a model input (or the key) is a 422
    allow_non_finite: bool = False  # NaN/Infinity in float columns (never in other columns)
    token_env: str | None = None  # name of the environment variable holding the bearer token (null: no auth)
    log_dir: str | None = "logs/predictions"  # JSON-lines prediction log, <log_dir>/<pipeline>/ (null: off)
    log_max_bytes: int = Field(64 * 1024 * 1024, ge=1024)  # finish a log file at this size
    log_max_age_s: float = Field(3600.0, gt=0)  # ... or this age (then it is ingestable)
    log_queue: int = Field(100_000, ge=1)  # records waiting to be written (more: dropped and counted)


class Settings(StrictModel):
    spark: SparkSettings = SparkSettings()
    catalog: CatalogSettings = CatalogSettings()
    mlflow: MlflowSettings = MlflowSettings()
    serving: ServingConfig = ServingConfig()
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
