"""A class-data sharing (CDS) archive for the test suite's JVMs.

The suite starts about 40 JVMs (the session's, each `lakeforge` process, spark-submit, the
Thrift and metastore servers, the cluster, beeline). Each loads and verifies some 20,000 classes
of Spark, Delta, Hive and MLlib from their jars before it does any work. A dynamic CDS archive
(`-XX:ArchiveClassesAtExit`, JDK 13+) holds those classes parsed and verified, and later JVMs map
it instead: measured on this 2-core machine, a plain local session with one query 7 -> 3.5
CPU-seconds, a `lakeforge run` of 1,000 Telco rows 76 -> 67 CPU-seconds.

``ensure_archive()`` makes it once per Java and pyspark version (under the virtualenv, so it goes
with the packages it was made from) by running a small workload of the kinds of classes the tests
use (a Delta table in the Hive catalog, SQL aggregates, an ML pipeline fitted, evaluated,
saved, loaded and scored into a partitioned table) in a JVM launched with ``-XX:ArchiveClassesAtExit``. ``java_options()``
returns the options that use it. A JVM whose class path differs from the one the archive was
made with (e.g. with an extra driver class path) just loads its classes from the jars, silently
(`-Xlog:cds*=off`: CDS warnings would otherwise go to the JVM's standard output).

The product's JVMs do not use it: this is a cost of the suite's many short-lived JVMs.

    python tests/jvm_archive.py      # make it now (the suite's first session does it otherwise)
    LAKEFORGE_TEST_JVM_ARCHIVE=0 scripts/test.sh ...   # neither make nor use one
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TELCO_CSV = ROOT / "data" / "telco-customer-churn" / "Telco-Customer-Churn.csv"
QUIET = "-Xlog:cds*=off"


def _java_version() -> str:
    out = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    line = next((x for x in out.splitlines() if "Runtime Environment" in x), out.strip().splitlines()[0] if out.strip() else "")
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in line.split("(build")[-1].strip(" )"))


def archive_path() -> Path:
    import pyspark

    return Path(sys.prefix) / f"lakeforge-test-classes-spark{pyspark.__version__}-java{_java_version()}.jsa"


def _disabled() -> bool:
    return os.environ.get("LAKEFORGE_TEST_JVM_ARCHIVE") == "0"


def java_options(base: str) -> str:
    """``base`` JVM options plus the archive's, when it exists."""
    path = archive_path()
    return f"{base} -XX:SharedArchiveFile={path} {QUIET}" if path.is_file() and not _disabled() else base


def _workload(folder: Path) -> None:
    import yaml
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.classification import LogisticRegression, RandomForestClassifier
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.feature import Imputer, OneHotEncoder, StandardScaler, StringIndexer, VectorAssembler
    from pyspark.sql import functions as F

    from lakeforge.core.settings import load_settings
    from lakeforge.core.spark import get_spark

    overlay = folder / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({
        "spark": {"master": "local[2]", "shuffle_partitions": 2, "ui": False},
        "catalog": {"warehouse_dir": str(folder / "warehouse")},
    }))
    spark = get_spark(load_settings(overlays=[overlay], conf_dir=ROOT / "conf"))
    raw = spark.read.option("header", True).option("inferSchema", True).csv(str(TELCO_CSV)).limit(300)
    raw.withColumn("TotalCharges", F.col("TotalCharges").cast("double")).write.format("delta") \
        .mode("overwrite").saveAsTable("lakeforge.archive_bronze")
    data = spark.table("lakeforge.archive_bronze").withColumn("label", (F.col("Churn") == "Yes").cast("double"))
    data.groupBy("Contract").agg(F.count("*"), F.avg("MonthlyCharges"), F.percentile_approx("tenure", [0.5, 0.9])).collect()
    cats, nums = ["Contract", "PaymentMethod"], ["tenure", "MonthlyCharges", "TotalCharges"]
    stages = [StringIndexer(inputCols=cats, outputCols=[f"{c}_i" for c in cats], handleInvalid="keep"),
              OneHotEncoder(inputCols=[f"{c}_i" for c in cats], outputCols=[f"{c}_v" for c in cats]),
              Imputer(inputCols=nums, outputCols=[f"{c}_n" for c in nums], strategy="median"),
              VectorAssembler(inputCols=[f"{c}_v" for c in cats] + [f"{c}_n" for c in nums], outputCol="raw"),
              StandardScaler(inputCol="raw", outputCol="features"), LogisticRegression(maxIter=5)]
    model = Pipeline(stages=stages).fit(data)
    BinaryClassificationEvaluator().evaluate(model.transform(data))
    Pipeline(stages=[*stages[:-1], RandomForestClassifier(numTrees=2, maxDepth=2)]).fit(data)
    model.write().overwrite().save(str(folder / "model"))
    scored = PipelineModel.load(str(folder / "model")).transform(data)
    scored.select("customerID", "prediction", F.current_date().alias("run_date")).write.format("delta") \
        .partitionBy("run_date").mode("overwrite").saveAsTable("lakeforge.archive_predictions")
    spark.stop()


def ensure_archive(base_options: str) -> Path | None:
    """Make the archive unless it exists; its path, or None when the JVM could not make one."""
    path = archive_path()
    if path.is_file() or _disabled():
        return path
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    started = time.time()
    env = {**os.environ, "LAKEFORGE_ARCHIVE_OPTIONS": f"{base_options} -XX:ArchiveClassesAtExit={part}"}
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "archive.log"
        with open(log, "w") as out:
            done = subprocess.run([sys.executable, __file__, "--workload", folder], stdout=out, stderr=subprocess.STDOUT,
                                  env=env, cwd=ROOT, timeout=600)
        if done.returncode != 0 or not part.is_file():
            print(f"jvm_archive: no class archive made (exit {done.returncode}); the JVMs load classes from the jars\n"
                  + log.read_text()[-2000:], file=sys.stderr)
            part.unlink(missing_ok=True)
            return None
    os.replace(part, path)  # atomic: a half-written archive is never used
    print(f"jvm_archive: {path.name} ({path.stat().st_size / 2**20:.0f} MB) made in {time.time() - started:.0f} s")
    return path


def _run_workload(folder: str) -> None:
    """The workload in this process, its JVM dumping the classes it loaded when it exits."""
    os.environ["SPARK_SUBMIT_OPTS"] = os.environ["LAKEFORGE_ARCHIVE_OPTIONS"]
    _workload(Path(folder))
    from pyspark import SparkContext

    proc = SparkContext._gateway.proc  # noqa: SLF001 - the JVM dumps when its stdin closes (it exits)
    proc.stdin.close()
    proc.wait(timeout=300)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--workload"]:
        _run_workload(sys.argv[2])
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        from conftest import TEST_JVM_OPTIONS

        sys.exit(0 if ensure_archive(TEST_JVM_OPTIONS) else 1)
