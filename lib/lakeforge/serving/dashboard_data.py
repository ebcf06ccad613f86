"""What the dashboard shows, read without a JVM: lakeforge's Delta tables through the ``deltalake``
package (only the needed columns, filtered, aggregated with pyarrow) and the model registry
through the MLflow client.

Where the tables are: a table ``db.name`` of the project's catalog lives at
``<warehouse>/<db>.db/<name>`` (Spark's managed-table layout; ``default`` tables directly under
the warehouse). A table that does not exist yet is ``None``, never an error: the page says what
has not run.

The predictions table can be large: its row count per run date comes from the Delta log (the
``num_records`` of each data file, no data read) and the score distribution is computed one
run-date partition at a time, reading the ``score`` column only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from lakeforge.core.config import PipelineConfig
from lakeforge.core.settings import Settings

# The shared tables lakeforge's jobs append to (lakeforge.core.runs, lakeforge.ingest.job,
# lakeforge.ingest.quality): named here again because those modules import pyspark.
JOB_RUNS_TABLE = "job_runs"
INGEST_RUNS_TABLE = "ingest_runs"
DQ_TABLE = "dq_results"
HISTOGRAM_BINS = 20
MAX_SCORE_DATES = 90  # the score distribution of the latest dates (the volume covers them all)


def table_path(settings: Settings, name: str) -> str:
    """The folder of the catalog table ``name`` (qualified with the project database if bare)."""
    database, _, table = settings.table(name).partition(".")
    base = settings.warehouse.rstrip("/")
    folder = table.lower() if database.lower() == "default" else f"{database.lower()}.db/{table.lower()}"
    return f"{base}/{folder}"


def open_table(settings: Settings, name: str):
    """The Delta table ``name`` as a deltalake.DeltaTable, or None when it does not exist (yet)."""
    from deltalake import DeltaTable

    path = table_path(settings, name)
    if "://" not in path and not os.path.isdir(os.path.join(path, "_delta_log")):
        return None
    try:
        return DeltaTable(path)
    except Exception:  # noqa: BLE001 - not a Delta table (or an unreachable store): nothing to show
        return None


def arrow_schema(table) -> pa.Schema:
    """The Delta table's schema as a pyarrow schema."""
    return pa.schema(table.schema().to_arrow())


def read_rows(settings: Settings, name: str, columns: list[str], filters: list | None = None) -> pa.Table | None:
    """The listed columns (those the table has) of the rows matching ``filters``, or None."""
    table = open_table(settings, name)
    if table is None:
        return None
    present = set(arrow_schema(table).names)
    keep = [c for c in columns if c in present]
    usable = [f for f in (filters or []) if f[0] in present]
    return table.to_pyarrow_table(columns=keep, filters=usable or None)


def _latest_first(rows: pa.Table, by: str, limit: int) -> list[dict]:
    if rows is None or rows.num_rows == 0:
        return []
    if by in rows.column_names:
        rows = rows.take(pc.sort_indices(rows, sort_keys=[(by, "descending")]))
    return rows.slice(0, limit).to_pylist()


# ------------------------------------------------------------------------------------------
# The last training's leaderboard
# ------------------------------------------------------------------------------------------


@dataclass
class Leaderboard:
    run_date: dt.date
    run_id: str
    metric: str
    rows: list[dict]  # rank order: rank, algorithm, params, status, cv_mean, cv_std, fit_seconds, is_best, model_version

    @property
    def best(self) -> dict | None:
        return next((r for r in self.rows if r.get("is_best")), None)


def last_leaderboard(settings: Settings, pipeline: PipelineConfig) -> Leaderboard | None:
    """The leaderboard partition of the latest training date (a rerun of a date replaces it)."""
    if not pipeline.tables.leaderboard:
        return None
    table = open_table(settings, pipeline.tables.leaderboard)
    if table is None:
        return None
    dates = partition_counts(table, "run_date")
    if not dates:
        return None
    last = max(dates)
    cols = ["run_date", "run_id", "rank", "algorithm", "params", "status", "metric", "cv_mean", "cv_std",
            "fit_seconds", "is_best", "model_version"]
    rows = table.to_pyarrow_table(columns=cols, filters=[("run_date", "=", last)])
    rows = rows.take(pc.sort_indices(rows, sort_keys=[("rank", "ascending")])).to_pylist()
    if not rows:
        return None
    return Leaderboard(last, rows[0]["run_id"], rows[0]["metric"], rows)


# ------------------------------------------------------------------------------------------
# Predictions per run date
# ------------------------------------------------------------------------------------------


def partition_counts(table, column: str) -> dict:
    """Rows per value of the partition column ``column``, from the Delta log (no data read)."""
    actions = pa.table(table.get_add_actions(flatten=True))
    key = f"partition.{column}"
    if key not in actions.column_names or actions.num_rows == 0:
        return {}
    grouped = actions.group_by(key).aggregate([("num_records", "sum")])
    return {r[key]: int(r["num_records_sum"] or 0) for r in grouped.to_pylist() if r[key] is not None}


@dataclass
class ScoreDay:
    run_date: dt.date
    rows: int
    mean: float | None = None
    p10: float | None = None
    p50: float | None = None
    p90: float | None = None
    positive_share: float | None = None  # binary: the share predicted 1
    histogram: list[int] = field(default_factory=list)


@dataclass
class Predictions:
    table: str
    volume: dict[dt.date, int]  # every run date
    days: list[ScoreDay]  # the latest MAX_SCORE_DATES dates, oldest first
    bin_edges: list[float]
    probability: bool  # the score is a probability (classification) rather than a value


def predictions_by_date(settings: Settings, pipeline: PipelineConfig, max_dates: int = MAX_SCORE_DATES) -> Predictions | None:
    """Volume per run date (Delta log) and, per recent date, the score's mean, deciles and a
    histogram (one partition read at a time, the score column only)."""
    table = open_table(settings, pipeline.tables.predictions)
    if table is None:
        return None
    volume = partition_counts(table, "run_date")
    if not volume:
        return None
    schema = arrow_schema(table)
    probability = "predicted_label" in schema.names  # regression writes no label
    binary = probability and pa.types.is_integer(schema.field("predicted_label").type)  # multiclass: names
    recent = sorted(volume)[-max_dates:]
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1) if probability else _value_edges(table, recent)
    dataset = table.to_pyarrow_dataset()  # the snapshot's files, listed once
    cols = ["score", "predicted_label"] if binary else ["score"]
    days = [_score_day(day, dataset.to_table(columns=cols, filter=ds.field("run_date") == day), edges, binary)
            for day in recent]
    return Predictions(settings.table(pipeline.tables.predictions), dict(sorted(volume.items())), days,
                       [float(e) for e in edges], probability)


def _value_edges(table, days: list) -> np.ndarray:
    """Histogram edges for a regression score: its min and max over the shown dates, from the
    Delta log's file statistics when present, else from the data."""
    actions = pa.table(table.get_add_actions(flatten=True))
    lo = hi = None
    if "min.score" in actions.column_names and "max.score" in actions.column_names:
        shown = actions.filter(pc.is_in(actions["partition.run_date"], pa.array(days)))
        lo, hi = pc.min(shown["min.score"]).as_py(), pc.max(shown["max.score"]).as_py()
    if lo is None or hi is None:
        scores = table.to_pyarrow_table(columns=["score"], filters=[("run_date", "=", days[-1])])["score"]
        lo, hi = pc.min(scores).as_py() or 0.0, pc.max(scores).as_py() or 1.0
    if hi <= lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, HISTOGRAM_BINS + 1)


def _score_day(day: dt.date, part: pa.Table, edges: np.ndarray, binary: bool) -> ScoreDay:
    scores = pc.drop_null(part["score"])
    out = ScoreDay(day, part.num_rows)
    if len(scores) == 0:
        return out
    out.mean = pc.mean(scores).as_py()
    out.p10, out.p50, out.p90 = pc.quantile(scores, q=[0.1, 0.5, 0.9], interpolation="linear").to_pylist()
    values = scores.to_numpy()
    lo, hi = edges[0], edges[-1]  # equal bins given as a range: no sort
    counts, _ = np.histogram(np.clip(values, lo, hi), bins=len(edges) - 1, range=(lo, hi))
    out.histogram = [int(c) for c in counts]
    if binary:
        labels = pc.drop_null(part["predicted_label"])
        out.positive_share = pc.mean(pc.cast(labels, pa.float64())).as_py() if len(labels) else None
    return out


# ------------------------------------------------------------------------------------------
# Runs and data quality
# ------------------------------------------------------------------------------------------

JOB_COLUMNS = ["run_id", "job", "run_date", "status", "started_at", "duration_s", "rows_in", "rows_out",
               "model_version", "message"]
INGEST_COLUMNS = ["run_id", "run_date", "source_name", "table_name", "mode", "status", "rows_read", "rows_loaded",
                  "rows_quarantined", "table_version", "message", "started_at"]
DQ_COLUMNS = ["run_id", "run_date", "table_name", "check_name", "severity", "passed", "failing_rows", "total_rows",
              "detail", "checked_at"]


def job_runs(settings: Settings, pipeline: PipelineConfig, limit: int = 500) -> list[dict]:
    """The pipeline's job runs (``job_runs``), latest first."""
    rows = read_rows(settings, JOB_RUNS_TABLE, JOB_COLUMNS, [("pipeline", "=", pipeline.name)])
    return _latest_first(rows, "started_at", limit)


def ingest_runs(settings: Settings, pipeline: PipelineConfig, limit: int = 50) -> list[dict]:
    """The pipeline's loads (``ingest_runs``), latest first."""
    rows = read_rows(settings, INGEST_RUNS_TABLE, INGEST_COLUMNS, [("pipeline", "=", pipeline.name)])
    return _latest_first(rows, "started_at", limit)


@dataclass
class Quality:
    loads: list[dict]  # per load (run_id): run_date, table_name, checks, failed_errors, failed_warnings
    latest: list[dict]  # the check results of the latest load


def quality_results(settings: Settings, pipeline: PipelineConfig, limit: int = 60) -> Quality | None:
    """Data-quality results (``dq_results``): a summary per load and the latest load's checks."""
    rows = read_rows(settings, DQ_TABLE, DQ_COLUMNS, [("pipeline", "=", pipeline.name)])
    if rows is None or rows.num_rows == 0:
        return None
    loads: dict[str, dict] = {}
    for r in rows.to_pylist():
        load = loads.setdefault(r["run_id"], {"run_id": r["run_id"], "run_date": r["run_date"], "table_name": r["table_name"],
                                             "checked_at": r["checked_at"], "checks": 0, "failed_errors": 0,
                                             "failed_warnings": 0})
        load["checks"] += 1
        if not r["passed"]:
            load["failed_errors" if r["severity"] == "error" else "failed_warnings"] += 1
        if r["checked_at"] is not None and (load["checked_at"] is None or r["checked_at"] > load["checked_at"]):
            load["checked_at"] = r["checked_at"]
    ordered = sorted(loads.values(), key=lambda d: (d["checked_at"] is not None, d["checked_at"] or dt.datetime.min))
    ordered = ordered[-limit:]
    last = ordered[-1]["run_id"]
    latest = [r for r in rows.to_pylist() if r["run_id"] == last]
    return Quality(ordered, latest)


# ------------------------------------------------------------------------------------------
# The model registry: champion / challenger history
# ------------------------------------------------------------------------------------------


@dataclass
class ModelVersion:
    version: int
    created: dt.datetime | None
    run_date: str | None
    aliases: list[str]
    metric: str | None
    test_score: float | None
    decision: str
    promoted: bool | None
    threshold: float | None


def registry_history(settings: Settings, pipeline: PipelineConfig, limit: int = 30) -> tuple[list[ModelVersion], str | None]:
    """The registered model's versions (newest ``limit``, oldest first) with their test score,
    aliases and promotion decision; or ([], why) when there is no registry or no model yet."""
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///") and not os.path.isfile(uri.removeprefix("sqlite:///")):
        return [], "no MLflow store yet (nothing trained)"
    name = pipeline.model.registered_name
    try:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient(tracking_uri=uri, registry_uri=settings.registry_uri)
        try:
            aliases = client.get_registered_model(name).aliases or {}
        except MlflowException:
            return [], f"no registered model {name!r} yet (nothing trained)"
        found = client.search_model_versions(f"name = '{name}'")
    except Exception as exc:  # noqa: BLE001 - the registry is down or unreadable: the rest of the page still works
        return [], f"the model registry could not be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    found = sorted(found, key=lambda v: int(v.version))[-limit:]
    return [_model_version(client, v, by_version.get(str(v.version), [])) for v in found], None


def _model_version(client, v, aliases: list[str]) -> ModelVersion:
    tags = v.tags or {}
    metric = tags.get("lakeforge.metric")
    score = tags.get(f"lakeforge.test_{metric}") if metric else None
    run_tags: dict = {}
    if v.run_id:
        try:
            run_tags = client.get_run(v.run_id).data.tags
        except Exception:  # noqa: BLE001 - a deleted run: the version's own tags are enough
            run_tags = {}
    promoted = run_tags.get("lakeforge.promoted")
    threshold = tags.get("lakeforge.threshold")
    created = dt.datetime.fromtimestamp(v.creation_timestamp / 1000) if v.creation_timestamp else None
    return ModelVersion(int(v.version), created, run_tags.get("lakeforge.run_date"), sorted(aliases), metric,
                        float(score) if score else None, tags.get("lakeforge.decision", ""),
                        None if promoted is None else promoted == "True", float(threshold) if threshold else None)


def to_json(value) -> str:
    """The dashboard's data as JSON (dates as ISO strings)."""
    return json.dumps(value, default=lambda o: o.isoformat() if hasattr(o, "isoformat") else str(o))
