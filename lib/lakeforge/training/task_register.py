"""What clustering and recommendation share after their search: the MLflow run, the model
registered as ``challenger`` and the promotion gate (the champion is scored on the same held-out
rows), the leaderboard Delta table (the same schema as the supervised tasks') and the HTML report.

lakeforge.training.clustering and lakeforge.training.recommend build a ``TaskRun`` and call
``register_task``; their result is the same ``TrainResult`` every training returns.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, Row, SparkSession

from lakeforge.core import tracking
from lakeforge.core.config import PipelineConfig
from lakeforge.core.errors import InputDataError
from lakeforge.core.frames import local_frame
from lakeforge.core.io import read_version, write_table
from lakeforge.core.settings import Settings
from lakeforge.core.tasks import higher_is_better
from lakeforge.ingest.job import checked_version
from lakeforge.training.register import Lineage, Promotion, Registration, finite, log_model


@dataclass
class TaskRun:
    """A finished clustering or recommendation search, as it is logged and registered."""

    task: str
    metric: str  # the primary metric (higher or lower is better per lakeforge.core.tasks)
    model: PipelineModel
    inputs: DataFrame  # the model's input columns: its signature
    leaderboard: list[dict]  # rank, algorithm, params (JSON), status, cv_mean, cv_std, fit_seconds, is_best, cv_<m>
    test_metrics: dict[str, float]
    rows_train: int
    rows_test: int
    champion_score: Callable[[PipelineModel], float]  # the primary metric of another model on the same held-out rows
    params: dict = field(default_factory=dict)  # more MLflow params
    tags: dict[str, str] = field(default_factory=dict)  # more tags of the run and the model version
    sections: list[tuple[str, str]] = field(default_factory=list)  # report sections: (title, HTML)
    images: dict[str, bytes] = field(default_factory=dict)  # report plots: name -> PNG
    timings: dict[str, float] = field(default_factory=dict)


def read_input(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, allow_failed_checks: bool,
               say: Callable[[str], None]) -> tuple[str, int, DataFrame]:
    """(table, version, rows) of the bronze version the data-quality gate allows."""
    table = settings.table(pipeline.tables.bronze)
    if not spark.catalog.tableExists(table):
        raise InputDataError(f"table {table} does not exist; run 'lakeforge ingest {pipeline.file}' first")
    choice = checked_version(spark, settings, table, "training", allow_failed_checks)
    if choice.note:
        say(choice.note)
    return table, choice.version, read_version(spark, table, choice.version)


def register_task(settings: Settings, pipeline: PipelineConfig, lineage: Lineage, run: TaskRun) -> Registration:
    """Log the run (params, metrics, leaderboard, report), register the model with its tags, then
    alias it ``challenger`` and pass it through the promotion gate (aliases move last)."""
    import mlflow

    cfg = pipeline.model
    experiment_id = tracking.configure(settings)
    tags = {"lakeforge.pipeline": pipeline.name, "lakeforge.run_id": lineage.run_id,
            "lakeforge.run_date": lineage.run_date.isoformat(), "lakeforge.task": run.task,
            "git_commit": tracking.git_commit(settings.root), "config_hash": pipeline.config_hash,
            "data.table": lineage.table, "data.table_version": str(lineage.version), "seed": str(cfg.seed), **run.tags}
    best = next(r for r in run.leaderboard if r["is_best"])
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{pipeline.name}-{lineage.run_date.isoformat()}") as mrun:
        mlflow.set_tags(tags)
        mlflow.log_params({"task": run.task, "metric": run.metric, "seed": cfg.seed, "rows_train": run.rows_train,
                           "rows_test": run.rows_test, "data_table": lineage.table, "data_table_version": lineage.version,
                           "best.algorithm": best["algorithm"], "best.params": best["params"], **run.params})
        mlflow.log_metrics(finite({f"test_{k}": v for k, v in run.test_metrics.items()}))
        mlflow.log_metrics({f"seconds_{k}": v for k, v in run.timings.items()})
        mlflow.log_dict(pipeline.model_dump(mode="json"), "config/pipeline.json")
        mlflow.log_dict({"leaderboard": run.leaderboard}, "leaderboard.json")
        version = log_model(cfg.registered_name, run.model, run.inputs)
        client = tracking.MlflowClient()
        for k, v in {"lakeforge.task": run.task, "lakeforge.metric": run.metric,  # before any alias points at it
                     f"lakeforge.test_{run.metric}": f"{run.test_metrics[run.metric]:.6f}", **run.tags}.items():
            client.set_model_version_tag(cfg.registered_name, version, k, v)
        gate = promote_task(cfg.registered_name, run, version, cfg.promotion_margin)
        mlflow.set_tags({"lakeforge.decision": gate.decision, "lakeforge.promoted": str(gate.promoted)})
        report = _report(settings, pipeline, lineage, run, gate.decision, version)
    client.set_model_version_tag(cfg.registered_name, version, "lakeforge.decision", gate.decision)
    ref = tracking.ModelRef(cfg.registered_name, version, "challenger")
    return Registration(ref, mrun.info.run_id, gate.promoted, gate.decision, gate.champion_version, report)


def promote_task(name: str, run: TaskRun, new_version: str, margin: float) -> Promotion:
    """``challenger`` always; ``champion`` when there is none, when the champion is of another
    task or cannot be scored, or when the new version beats it on the same held-out rows by more
    than ``margin``."""
    from mlflow.exceptions import MlflowException

    tracking.set_alias(name, "challenger", new_version)
    try:
        current = tracking.MlflowClient().get_model_version_by_alias(name, "champion")
    except MlflowException:
        current = None
    if current is None or str(current.version) == new_version:
        tracking.set_alias(name, "champion", new_version)
        return Promotion(True, f"version {new_version} is the first model: champion", new_version, None)
    try:
        if current.tags.get("lakeforge.task") != run.task:
            raise ValueError(f"champion is a {current.tags.get('lakeforge.task', 'binary')} model")
        old = run.champion_score(tracking.load_spark_model(tracking.ModelRef(name, str(current.version))))
    except Exception as exc:  # the champion cannot score today's data: the new model replaces it
        tracking.set_alias(name, "champion", new_version)
        return Promotion(True, (f"champion v{current.version} could not be scored on the held-out rows "
                                f"({str(exc).splitlines()[0][:160]}): v{new_version} promoted"), new_version, None)
    new = run.test_metrics[run.metric]
    gain = (new - old) if higher_is_better(run.task, run.metric) else (old - new)
    verdict = (f"test {run.metric}: challenger v{new_version} {new:.4f} vs champion v{current.version} {old:.4f} "
               f"(margin {margin})")
    if gain > margin:
        tracking.set_alias(name, "champion", new_version)
        return Promotion(True, verdict + f": v{new_version} promoted to champion", new_version, old)
    return Promotion(False, verdict + f": champion v{current.version} kept", str(current.version), old)


def write_leaderboard(spark: SparkSession, table: str, board: list[dict], lineage: Lineage, mlflow_run_id: str,
                      metric: str) -> None:
    """The leaderboard rows of this run date (partition replaced), same schema as the supervised tasks'."""
    rows = [Row(run_date=lineage.run_date, run_id=lineage.run_id, mlflow_run_id=mlflow_run_id, rank=r["rank"],
                algorithm=r["algorithm"], params=r["params"], status=r["status"], metric=metric, cv_mean=r["cv_mean"],
                cv_std=r["cv_std"], metrics=json.dumps({k[3:]: v for k, v in r.items()
                                                         if k.startswith("cv_") and k not in ("cv_mean", "cv_std")}),
                fit_seconds=float(r["fit_seconds"]), is_best=r["is_best"], model_version=r.get("model_version"))
            for r in board]
    schema = ("run_date date, run_id string, mlflow_run_id string, rank int, algorithm string, params string, "
              "status string, metric string, cv_mean double, cv_std double, metrics string, fit_seconds double, "
              "is_best boolean, model_version string")
    write_table(local_frame(spark, rows, schema), table, partition_col="run_date", partition_value=lineage.run_date,
                merge_schema=True)


def html_table(rows: list[dict], columns: list[str]) -> str:
    """A small HTML table of ``rows`` (numbers to 4 decimals)."""
    def cell(v):
        return f"{v:.4f}" if isinstance(v, float) else html.escape("" if v is None else str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _report(settings: Settings, pipeline: PipelineConfig, lineage: Lineage, run: TaskRun, decision: str,
            version: str) -> str | None:
    """The HTML report: logged to the run, and written under ``reports_dir`` when set (its path)."""
    import mlflow

    metrics = html_table([{"metric": k, "value": v} for k, v in run.test_metrics.items()], ["metric", "value"])
    board = html_table(run.leaderboard, ["rank", "algorithm", "params", "status", "cv_mean", "cv_std", "fit_seconds"])
    images = "".join(f'<h2>{html.escape(n)}</h2><img src="data:image/png;base64,{base64.b64encode(p).decode()}">'
                     for n, p in run.images.items())
    sections = "".join(f"<h2>{html.escape(t)}</h2>{body}" for t, body in run.sections)
    page = (f"<html><head><meta charset='utf-8'><title>{html.escape(pipeline.name)}: {run.task}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}</style></head><body>"
            f"<h1>{html.escape(pipeline.name)}: {run.task} training, run date {lineage.run_date}</h1>"
            f"<p>Model {html.escape(pipeline.model.registered_name)} version {version}: {html.escape(decision)}</p>"
            f"<p>{run.rows_train:,} training rows, {run.rows_test:,} held-out rows; metric {run.metric}.</p>"
            f"<h2>Held-out metrics</h2>{metrics}<h2>Leaderboard</h2>{board}{sections}{images}</body></html>")
    mlflow.log_text(page, "report/training_report.html")
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in run.images.items():
            (Path(tmp) / f"{name}.png").write_bytes(data)
            mlflow.log_artifact(str(Path(tmp) / f"{name}.png"), "report")
    if not settings.reports_dir:
        return None
    folder = settings.path(settings.reports_dir) / pipeline.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"training_{lineage.run_date.isoformat()}.html"
    path.write_text(page)
    for name, data in run.images.items():
        (folder / f"training_{lineage.run_date.isoformat()}_{name}.png").write_bytes(data)
    return str(path)
