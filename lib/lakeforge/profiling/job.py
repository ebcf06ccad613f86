"""The ``lakeforge profile`` job: read the pipeline's bronze table (or its source when the table
does not exist yet), compute the EDA profile (lakeforge.profiling.eda), and write it: the Delta
tables ``profile_columns`` and ``profile_correlations`` (this pipeline's rows replaced), the
HTML report (lakeforge.profiling.page) under the reports folder, and an MLflow run with the
report and the numbers as JSON.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from pyspark.sql import DataFrame

from lakeforge.core.errors import InputDataError
from lakeforge.core.frames import local_frame
from lakeforge.profiling.eda import FLAG_THRESHOLD, ProfileSpec, Progress, eda_profile
from lakeforge.profiling.page import profile_report
from lakeforge.profiling.result import ProfileResult

FILE_FORMATS = ("csv", "json", "parquet", "delta")  # read directly when the bronze table does not exist
COLUMNS_TABLE = "profile_columns"
CORRELATIONS_TABLE = "profile_correlations"

_TOP_TYPE = "array<struct<value:string,count:bigint,share:double>>"
COLUMNS_SCHEMA = (
    "pipeline string, run_id string, profiled_at timestamp, source string, position int, `column` string, "
    "dtype string, role string, role_reason string, rows bigint, `count` bigint, missing bigint, missing_share double, "
    "distinct_approx bigint, mean double, std double, min double, q1 double, median double, q3 double, max double, "
    "skew double, outliers_low bigint, outliers_high bigint, outlier_share double, iqr_low double, iqr_high double, "
    f"min_text string, max_text string, top_values {_TOP_TYPE}, target_measure string, target_association double, "
    "target_pearson double, target_spearman double, predictive_power double, predictive_measure string, "
    "leakage string, warnings array<string>"
)
CORRELATIONS_SCHEMA = (
    "pipeline string, run_id string, profiled_at timestamp, column_a string, column_b string, method string, "
    "value double, flagged boolean, involves_target boolean"
)


@dataclass
class ProfileRun:
    result: ProfileResult
    source: str
    report_path: str | None
    tables: dict[str, int]      # table -> Delta version written
    mlflow_run_id: str
    seconds: float


@dataclass
class _Input:
    df: DataFrame
    source: str                 # what was read, for people
    tags: dict[str, str]        # what was read, for MLflow


def run_profile(spark, settings, pipeline, run_id: str, *, threshold: float = FLAG_THRESHOLD,
                progress: Progress | None = None) -> ProfileRun:
    """Profile the pipeline's bronze table (or its source when the table does not exist yet).

    Writes one row per column to ``profile_columns`` and one per pair to ``profile_correlations``
    (each run replaces only this pipeline's rows), the HTML report to
    ``<reports_dir>/<pipeline>/profile.html``, and logs the report and the numbers (JSON) to an
    MLflow run in the configured experiment.
    """
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    data = _read_input(spark, settings, pipeline)
    say(f"profiling {data.source}")
    spec = ProfileSpec(
        pipeline.target, pipeline.key, task=pipeline.model.task, positive_class=pipeline.positive_class,
        numeric=list(pipeline.features.numeric), categorical=list(pipeline.features.categorical), threshold=threshold,
    )
    result = eda_profile(data.df, spec, what=f"{pipeline.file}: {data.source}", progress=say)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    say("writing the report, the profile tables and the MLflow run")
    page = profile_report(result, pipeline.name, data.source, now.strftime("%Y-%m-%d %H:%M UTC"))
    report_path = _write_page(settings, pipeline.name, page.html)
    tables = _write_tables(spark, settings, result, pipeline.name, run_id, now, data.source)
    mlflow_run_id = _log_run(settings, pipeline, run_id, result, data, page.html)
    return ProfileRun(result, data.source, report_path, tables, mlflow_run_id, round(time.perf_counter() - t0, 3))


def _read_input(spark, settings, pipeline) -> _Input:
    """The bronze table's latest version, else the source when it is a file format."""
    from lakeforge.core.io import latest_version, read_source, read_version, table_exists

    bronze = settings.table(pipeline.tables.bronze)
    if table_exists(spark, bronze):
        version = latest_version(spark, bronze)
        return _Input(read_version(spark, bronze, version), f"table {bronze} (Delta version {version})",
                      {"data.table": bronze, "data.table_version": str(version)})
    if pipeline.source.format in FILE_FORMATS:
        df = read_source(spark, pipeline.source, settings, where=f"{pipeline.file}: source")
        return _Input(df, f"{pipeline.source.format} source {pipeline.source.path} (no table {bronze} yet)",
                      {"data.source": pipeline.source.path})
    raise InputDataError(f"{pipeline.file}: no table {bronze} yet, and a {pipeline.source.format} source is read by "
                         f"ingest only: run 'lakeforge ingest {pipeline.file}' first")


def _write_page(settings, name: str, html: str) -> str | None:
    """Write ``<reports_dir>/<name>/profile.html`` (no reports folder configured: nothing)."""
    if not settings.reports_dir:
        return None
    folder = settings.path(settings.reports_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "profile.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)  # readers never see half a page
    return str(path)


def _write_tables(spark, settings, result: ProfileResult, pipeline: str, run_id: str, now: dt.datetime,
                  source: str) -> dict[str, int]:
    """Replace this pipeline's rows of the profile tables. Returns {table: Delta version written}."""
    tables = {}
    cols_df = local_frame(spark, _column_rows(result, pipeline, run_id, now, source), COLUMNS_SCHEMA)
    tables[settings.table(COLUMNS_TABLE)] = write_for_pipeline(cols_df, settings.table(COLUMNS_TABLE), pipeline)
    corr_rows = [(pipeline, run_id, now, r["column_a"], r["column_b"], r["method"], r["value"], r["flagged"],
                  r["involves_target"]) for r in result.correlations]
    corr_df = local_frame(spark, corr_rows, CORRELATIONS_SCHEMA)
    tables[settings.table(CORRELATIONS_TABLE)] = write_for_pipeline(corr_df, settings.table(CORRELATIONS_TABLE), pipeline)
    return tables


def _log_run(settings, pipeline, run_id: str, result: ProfileResult, data: _Input, html: str) -> str:
    """The MLflow run: tags, parameters, counts and timings, the report and the numbers (JSON)."""
    import mlflow

    from lakeforge.core import tracking

    experiment_id = tracking.configure(settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{pipeline.name}-profile") as run:
        mlflow.set_tags({
            "lakeforge.pipeline": pipeline.name, "lakeforge.run_id": run_id, "lakeforge.stage": "profile",
            "git_commit": tracking.git_commit(settings.root), "config_hash": pipeline.config_hash, **data.tags,
        })
        t = result.target
        mlflow.log_params({"target": t.name, "task": t.task, "positive_class": t.positive_class, "threshold": result.threshold,
                           "passes": result.passes, "source": data.source[:500]})
        mlflow.log_metrics({"rows": result.rows, "columns": len(result.columns), "passes": result.passes,
                            "flagged_pairs": len(result.flagged), "leakage_suspects": len(result.leakage),
                            **{f"seconds_{k}": v for k, v in result.seconds.items()}})
        mlflow.log_text(html, "profile/profile.html")
        mlflow.log_dict(result.to_dict(), "profile/profile.json")
    return run.info.run_id


def write_for_pipeline(df: DataFrame, table: str, pipeline_name: str) -> int:
    """Replace this pipeline's rows of ``table`` (partitioned by ``pipeline``) in one Delta commit;
    other pipelines' rows stay. Returns the table version written."""
    from lakeforge.core.io import write_table

    # pipeline names are identifiers (config validation): safe inside the predicate
    return write_table(df, table, partition_col="pipeline", replace_where=f"pipeline = '{pipeline_name}'").version


def _column_rows(result: ProfileResult, pipeline: str, run_id: str, now, source: str) -> list[tuple]:
    rows = []
    for pos, c in enumerate(result.columns):
        top = [(v, n, n / result.rows if result.rows else None) for v, n in c.top]
        rows.append((
            pipeline, run_id, now, source, pos, c.name, c.dtype, c.role, c.reason, result.rows, c.count, c.missing,
            c.missing / result.rows if result.rows else None, c.distinct, c.mean, c.std, c.min, c.q1, c.median, c.q3,
            c.max, c.skew, c.outliers_low, c.outliers_high, c.outliers / c.count if c.count and c.role == "numeric" else None,
            c.iqr_low, c.iqr_high, c.min_text, c.max_text, top, c.association_measure, c.association, c.target_pearson,
            c.target_spearman, c.predictive, c.predictive_measure, c.leakage, list(c.warnings),
        ))
    return rows
