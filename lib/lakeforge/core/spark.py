"""The one SparkSession factory used by jobs, the CLI and the tests.

It applies the Delta extension and catalog, a persistent catalog (an embedded Derby Hive
metastore under the warehouse by default, so tables are registered by name and any later
process can query them), small shuffle partitions in local mode, the UI setting and the Delta
jars from ``jars/``.

Under ``spark-submit`` the master, jars and driver options come from the command line; this
factory then only adds the session-level settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pyspark.sql import SparkSession

from lakeforge.core.settings import Settings
from lakeforge.core.errors import RuntimeSetupError
from lakeforge.core.jvm_output import launch_gateway_filtered

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
DELTA_PACKAGE = "io.delta:delta-spark_2.13:4.3.1"


def spark_home() -> str:
    """The Spark distribution lakeforge runs on (pyspark's package folder unless SPARK_HOME)."""
    import pyspark

    return os.environ.get("SPARK_HOME") or os.path.dirname(pyspark.__file__)


def launched_by_spark_submit() -> bool:
    """True inside a driver started by spark-submit (its JVM is already running)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def jars_folder(settings: Settings) -> Path | None:
    """spark.jars_dir under the project root; else, for a relative one, under the folder whose
    conf/ was read (running from a folder without a project of its own)."""
    if not settings.spark.jars_dir:
        return None
    folder = settings.path(settings.spark.jars_dir)
    fallback = (settings.home / settings.spark.jars_dir).resolve()
    if not any(folder.glob("*.jar")) and not Path(settings.spark.jars_dir).is_absolute() and any(fallback.glob("*.jar")):
        return fallback
    return folder


def jar_files(settings: Settings) -> list[str]:
    folder = jars_folder(settings)
    if folder is None:
        return []
    jars = sorted(str(p) for p in folder.glob("*.jar")) if folder.is_dir() else []
    if not jars:
        raise RuntimeSetupError(
            f"no Delta jars in {folder}: run scripts/fetch_jars.sh (or scripts/setup.sh), "
            f"or set spark.jars_dir: null and pass --packages {DELTA_PACKAGE} to spark-submit"
        )
    return jars


# Settings that only take effect when lakeforge itself launches the driver JVM; under
# spark-submit they come from its command line instead.
LAUNCH_KEYS = ("spark.jars", "spark.driver.memory", "spark.driver.extraJavaOptions", "spark.driver.extraClassPath")
DERBY_CLIENT_DRIVER = "org.apache.derby.client.ClientAutoloadedDriver"


def derby_client_jar(settings: Settings) -> str | None:
    folder = jars_folder(settings)
    found = sorted(folder.glob("derbyclient-*.jar")) if folder and folder.is_dir() else []
    return str(found[-1]) if found else None


_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(key: str, value: str) -> str:
    """Replace ``${env:NAME}`` with the environment variable NAME (for secrets: they stay out of
    the YAML, and the settings logged to MLflow keep the placeholder)."""

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise RuntimeSetupError(f"spark.conf.{key}: environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REF.sub(sub, value)


def hive_resources_dir() -> str:
    """Hive's client makes a folder for the resources a session downloads (ADD JAR/FILE, which
    lakeforge never does) and never removes it: by default one empty /tmp/<uuid>_resources per
    command, thousands a year from a daily schedule. One folder per user instead."""
    return str(Path(tempfile.gettempdir()) / f"lakeforge-hive-resources-{os.getuid()}")


def session_conf(settings: Settings, launching: bool = True) -> dict[str, str]:
    """Every Spark setting the factory applies, as plain strings. With ``launching=False`` (under
    spark-submit) the JVM launch settings are left out."""
    s = settings.spark
    warehouse = settings.warehouse
    conf: dict[str, str] = {
        "spark.app.name": s.app_name,
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.warehouse.dir": warehouse,
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.shuffle.partitions": str(s.shuffle_partitions),
        "spark.ui.enabled": str(s.ui).lower(),
        "spark.ui.showConsoleProgress": "false",
        # Delta replays a table's log in this many tasks whenever it loads a new version: 50 by
        # default, far too many for small tables (8 tasks: ~0.4 s more per load than 2). On a
        # cluster with tables of hundreds of thousands of files, raise it in spark.conf.
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.sql.sources.partitionOverwriteMode": "static",
        # Parallel file listing (VACUUM, partition discovery) uses 10000 tasks by default.
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(max(2, s.shuffle_partitions)),
        # Partitioned writes (predictions by run_date) keep one open file per partition value
        # instead of sorting every task's rows by the partition column first (measured: the
        # sort costs about 1 s per 10 M rows at 2 cores; see docs/benchmarks.md).
        "spark.sql.maxConcurrentOutputFileWriters": "4",
        "spark.hadoop.hive.downloaded.resources.dir": hive_resources_dir(),
    }
    java_opts = []
    log4j = settings.home / "conf" / "log4j2.properties"
    if log4j.is_file():
        java_opts.append(f"-Dlog4j.configurationFile={log4j.as_uri()}")
    cat = settings.catalog
    if cat.metastore == "derby":
        home = Path(warehouse)
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
            f"jdbc:derby:;databaseName={home / 'metastore_db'};create=true"
        )
        java_opts.append(f"-Dderby.system.home={home}")
    elif cat.metastore == "derby-server":
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
            f"jdbc:derby://{cat.metastore_host}:{cat.metastore_port}/{Path(warehouse) / 'metastore_db'};create=true"
        )
        conf["spark.hadoop.javax.jdo.option.ConnectionDriverName"] = DERBY_CLIENT_DRIVER
        # DataNucleus loads the JDBC driver from the JVM's own class path, not from spark.jars.
        client = derby_client_jar(settings)
        if client:
            conf["spark.driver.extraClassPath"] = client
    if java_opts:
        conf["spark.driver.extraJavaOptions"] = " ".join(java_opts)
    if s.driver_memory:
        conf["spark.driver.memory"] = s.driver_memory
    jars = jar_files(settings) if launching else []
    if jars:
        conf["spark.jars"] = ",".join(jars)
    conf.update({k: _expand_env(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in s.conf.items()})
    if not launching:
        for key in LAUNCH_KEYS:
            conf.pop(key, None)
    return conf


def metastore_in_use(settings: Settings, wait: float = 5.0) -> bool:
    """Another process holds the embedded Derby metastore of ``settings``' warehouse.

    Derby locks ``metastore_db/dbex.lck`` (FileChannel.tryLock, a POSIX record lock) while a JVM
    has the database open; a failed trial lock here says so at once, instead of Hive's retries
    (about 25 s and a dozen ERROR lines). The Python process never opens the database itself (the
    JVM is a child process), so taking and dropping the trial lock cannot release a lock of ours.
    A held lock is tried again for up to ``wait`` seconds: the JVM of a command that has just
    ended (``lakeforge frame`` then ``lakeforge run``, as the README goes) releases it about half
    a second after its Python process exits.
    """
    import fcntl

    if settings.catalog.metastore != "derby" or "://" in settings.warehouse:
        return False
    lock = Path(settings.warehouse) / "metastore_db" / "dbex.lck"
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:  # no database yet, or not ours to open: Spark will say what is wrong
            return False
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if time.monotonic() >= deadline:
                return True
        else:
            fcntl.lockf(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)
        time.sleep(0.2)


def metastore_busy_error(settings: Settings) -> RuntimeSetupError:
    return RuntimeSetupError(
        f"the embedded metastore {Path(settings.warehouse) / 'metastore_db'} is in use by "
        "another lakeforge process; wait for it to finish, or configure a shared metastore "
        "(catalog.metastore: external, see README)"
    )


def get_spark(settings: Settings) -> SparkSession:
    """Return the active session, or build one from the settings."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if metastore_in_use(settings):
        raise metastore_busy_error(settings)
    # Bind the driver to loopback unless the settings say otherwise (and silence the warning
    # about the hostname resolving to 127.0.0.1).
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers (Excel reading, pandas functions) run this interpreter, which has lakeforge
    # and its packages; a cluster sets PYSPARK_PYTHON / spark.pyspark.python itself.
    if settings.spark.master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    submitted = launched_by_spark_submit()
    conf = session_conf(settings, launching=not submitted)
    if settings.catalog.metastore.startswith("derby") and "://" not in settings.warehouse:
        Path(settings.warehouse).mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder
    if not submitted:  # under spark-submit, its --master decides
        builder = builder.master(settings.spark.master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        if not submitted:  # the JVM as the builder would start it, XGBoost's round lines filtered out
            launch_gateway_filtered({"spark.master": settings.spark.master, **conf,
                                     "spark.sql.catalogImplementation": "hive"})
        spark = builder.enableHiveSupport().getOrCreate()
    except Exception as exc:  # the JVM failed to start: name the usual causes
        raise RuntimeSetupError(f"Spark did not start: {exc}. Is Java 17 installed (java -version)?") from exc
    spark.sparkContext.setLogLevel(settings.spark.log_level)
    _check_delta(spark)
    try:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {settings.catalog.database}")
    except Exception as exc:
        if settings.catalog.metastore == "derby-server" and "Unable to instantiate" in str(exc):
            spark.stop()
            raise RuntimeSetupError(
                f"cannot reach the metastore server at {settings.catalog.metastore_host}:"
                f"{settings.catalog.metastore_port}; start it with scripts/metastore.sh start"
            ) from None
        lock = Path(settings.warehouse) / "metastore_db" / "db.lck"  # (the XSDB6 detail is only in the log)
        if "Another instance of Derby" in str(exc) or "XSDB6" in str(exc) or (
                settings.catalog.metastore == "derby" and "Unable to instantiate" in str(exc) and lock.exists()):
            spark.stop()
            raise metastore_busy_error(settings) from None
        raise
    return spark


def _check_delta(spark: SparkSession) -> None:
    try:
        spark._jvm.org.apache.spark.util.Utils.classForName(DELTA_EXTENSION, True, False)  # noqa: SLF001
    except Exception:
        spark.stop()
        raise RuntimeSetupError(
            "Delta Lake classes are not on Spark's classpath: run scripts/fetch_jars.sh, or pass "
            f"--jars jars/*.jar (or --packages {DELTA_PACKAGE}) to spark-submit"
        ) from None


@contextlib.contextmanager
def spark_session(settings: Settings) -> Iterator[SparkSession]:
    """A session for one command: stopped at the end only if this call created it."""
    existed = SparkSession.getActiveSession() is not None
    spark = get_spark(settings)
    try:
        yield spark
    finally:
        if not existed:
            spark.stop()
