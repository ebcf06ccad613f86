"""MLflow: the training's run (params, metrics, artifacts, one child run per candidate, the
report), the model logged with a signature and input example and registered, equipped with what
scoring and monitoring read from it, then aliased ``challenger``, and the promotion gate that makes
it ``champion`` when it beats the current one (aliases move last: lakeforge.training.job).

lakeforge.training.job calls ``log_and_register`` once per training; ``promote`` is the gate on
its own (the champion is scored on the same test rows as the new version).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame

from lakeforge.core import tracking
from lakeforge.core.columns import LABEL_COL
from lakeforge.core.config import PipelineConfig
from lakeforge.core.config_model import ModelConfig
from lakeforge.core.settings import Settings
from lakeforge.core.tasks import METRICS, higher_is_better
from lakeforge.training import evaluation
from lakeforge.training.report import ReportInput, training_report
from lakeforge.training.search import Candidate
from lakeforge.training.signature import input_signature, without_decimals
from lakeforge.training.target import Target

if TYPE_CHECKING:
    from lakeforge.features.report import PreprocessingReport


@dataclass
class TrainResult:
    """What a training returns, whatever its task (lakeforge.training.job, .unsupervised)."""

    model: tracking.ModelRef
    mlflow_run_id: str
    table: str
    table_version: int
    rows_train: int
    rows_test: int
    task: str
    metric: str
    test_metrics: dict[str, float]
    leaderboard: list[dict]
    promoted: bool
    decision: str
    champion_version: str | None
    threshold: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    report: str | None = None
    preprocessing: dict | None = None  # lakeforge.features.report.PreprocessingReport as a dict
    notes: list[str] = field(default_factory=list)  # warnings the command line prints after the stage


@dataclass(frozen=True)
class Lineage:
    """Which data and which run a training belongs to."""

    table: str
    version: int  # the Delta version of ``table`` trained on
    run_id: str
    run_date: dt.date


@dataclass
class Trained:
    """A finished training, as logged: the model, how it was chosen and how it scored."""

    model: PipelineModel
    inputs: DataFrame  # the model's input columns: its signature and input example
    target: Target
    metric: str
    candidates: list[Candidate]
    best: Candidate
    refit_params: dict
    threshold: float | None
    test_eval: evaluation.Evaluation
    test_df: DataFrame  # the held-out rows, on which the champion is scored too
    leaderboard: list[dict]
    importances: list[tuple[str, float]]
    split_info: dict
    timings: dict[str, float]
    prep_report: PreprocessingReport | None = None


@dataclass(frozen=True)
class Promotion:
    promoted: bool
    decision: str
    champion_version: str | None  # after the decision
    champion_score: float | None  # the old champion's test score, when it was scored


@dataclass(frozen=True)
class Registration:
    model: tracking.ModelRef
    mlflow_run_id: str
    promoted: bool
    decision: str
    champion_version: str | None
    report: str | None  # the HTML report's path (none without reports_dir)


def log_and_register(settings: Settings, pipeline: PipelineConfig, lineage: Lineage, t: Trained,
                     equip: Callable[[tracking.ModelRef], None] | None = None) -> Registration:
    """Log the training as an MLflow run (a child run per candidate), register the model, give the
    version everything later stages read from it (its tags, then ``equip``: the null shares and the
    monitoring reference), and only then alias it ``challenger`` and pass it through the promotion
    gate, and write the report. A process killed anywhere in between leaves at most a version
    without an alias: never a champion or challenger that scoring or monitoring cannot use."""
    import mlflow

    cfg = pipeline.model
    experiment_id = tracking.configure(settings)
    client = mlflow.MlflowClient()
    tags = _run_tags(settings, pipeline, lineage, t.target)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{pipeline.name}-{lineage.run_date.isoformat()}") as run:
        mlflow.set_tags({**tags, "lakeforge.selection": t.best.selected_by[:5000]})
        _log_training(settings, pipeline, lineage, t)
        for c in t.candidates:  # one child run per candidate
            _log_candidate(experiment_id, tags, c, t.target.task)
        new_version = log_model(cfg.registered_name, t.model, t.inputs)
        for k, v in {"lakeforge.task": t.target.task, "lakeforge.metric": t.metric,
                     f"lakeforge.test_{t.metric}": f"{t.test_eval.metrics[t.metric]:.6f}",
                     **({"lakeforge.threshold": f"{t.threshold:.6f}"} if t.threshold is not None else {})}.items():
            client.set_model_version_tag(cfg.registered_name, new_version, k, v)
        ref = tracking.ModelRef(cfg.registered_name, new_version, "challenger")
        if equip is not None:
            equip(ref)
        gate = promote(client, cfg, t.target, t.metric, t.test_eval.metrics[t.metric], t.test_df, new_version)
        mlflow.set_tags({"lakeforge.decision": gate.decision, "lakeforge.promoted": str(gate.promoted)})
        if gate.champion_score is not None:
            mlflow.log_metric(f"champion_test_{t.metric}", gate.champion_score)
        report_path = _report(settings, pipeline, lineage.run_date, t, gate.decision, new_version)
    client.set_model_version_tag(cfg.registered_name, new_version, "lakeforge.decision", gate.decision)
    return Registration(ref, run.info.run_id, gate.promoted, gate.decision, gate.champion_version,
                        str(report_path) if report_path else None)


def _run_tags(settings: Settings, pipeline: PipelineConfig, lineage: Lineage, target: Target) -> dict[str, str]:
    """Provenance tags of the run and of each child run."""
    return {
        "lakeforge.pipeline": pipeline.name,
        "lakeforge.run_id": lineage.run_id,
        "lakeforge.run_date": lineage.run_date.isoformat(),
        "lakeforge.task": target.task,
        "git_commit": tracking.git_commit(settings.root),
        "config_hash": pipeline.config_hash,
        "data.table": lineage.table,
        "data.table_version": str(lineage.version),
        "seed": str(pipeline.model.seed),
    }


def _log_training(settings: Settings, pipeline: PipelineConfig, lineage: Lineage, t: Trained) -> None:
    """The parent run's params, metrics and JSON artifacts (config, split, leaderboard, ...)."""
    import mlflow

    cfg, best, task, split_info = pipeline.model, t.best, t.target.task, t.split_info
    refit = t.refit_params
    mlflow.log_params({
        "task": task,
        "selection": cfg.selection,
        "search": cfg.search,
        "folds": cfg.folds,
        "metric": t.metric,
        "seed": cfg.seed,
        "test_fraction": cfg.test_fraction,
        "split": json.dumps(split_info, sort_keys=True)[:6000],
        "algorithms": json.dumps(sorted({c.algorithm for c in t.candidates})),
        "rows_train": split_info["rows_train"],
        "rows_test": split_info["rows_test"],
        "data_table": lineage.table,
        "data_table_version": lineage.version,
        "best.algorithm": best.algorithm,
        **{f"best.{k}": json.dumps(v) if isinstance(v, list) else v for k, v in best.params.items()},
        **({"refit.regParam": refit["regParam"]} if refit and refit != best.params else {}),
        **({"threshold": round(t.threshold, 6), "threshold_strategy": cfg.threshold.strategy} if t.threshold is not None else {}),
        **({"class_labels": json.dumps(t.target.labels)} if task != "regression" else {}),
    })
    mlflow.log_metrics(finite({f"test_{k}": v for k, v in t.test_eval.metrics.items()}))
    mlflow.log_metrics(finite({f"cv_{m}_mean": best.mean(m) for m in METRICS[task]}))
    mlflow.log_metrics(finite({f"cv_{m}_std": best.std(m) for m in METRICS[task]}))
    mlflow.log_metrics({f"seconds_{k}": v for k, v in t.timings.items()})
    mlflow.log_dict(pipeline.model_dump(mode="json"), "config/pipeline.json")
    mlflow.log_dict(settings.model_dump(mode="json"), "config/settings.json")
    mlflow.log_dict({"split": split_info}, "split.json")
    mlflow.log_dict({"leaderboard": t.leaderboard}, "leaderboard.json")
    if t.importances:
        mlflow.log_dict({"importances": t.importances}, "feature_importances.json")
    prep = t.prep_report
    if prep is not None:  # dropped columns, coerced-to-null counts, feature ranking
        mlflow.log_params(prep.params())
        mlflow.log_dict(prep.to_dict(), "preprocessing.json")
        if prep.ranking:
            mlflow.log_dict({"ranking": prep.ranking}, "feature_ranking.json")


def _log_candidate(experiment_id: str, tags: dict[str, str], c: Candidate, task: str) -> None:
    """A nested run for one candidate: its params, CV metrics, status and fit seconds."""
    import mlflow

    with mlflow.start_run(experiment_id=experiment_id, run_name=c.label[:250], nested=True):
        mlflow.set_tags({**tags, "lakeforge.status": c.status[:5000]})
        mlflow.log_params({"algorithm": c.algorithm, **{k: json.dumps(v) if isinstance(v, list) else v for k, v in c.params.items()}})
        if c.status == "ok":
            mlflow.log_metrics(finite({f"cv_{m}_mean": c.mean(m) for m in METRICS[task]}))
            mlflow.log_metrics(finite({f"cv_{m}_std": c.std(m) for m in METRICS[task]}))
        mlflow.log_metric("fit_seconds", c.fit_seconds)


def log_model(registered_name: str, model: PipelineModel, inputs: DataFrame) -> str:
    """Log the Spark model with a signature (the input columns' types from ``inputs``' schema:
    lakeforge.training.signature) and a 2-row input example, registered under
    ``registered_name``; returns the new version. Every task registers through it."""
    import mlflow
    import mlflow.spark
    import pyspark

    signature = input_signature(inputs)
    example = without_decimals(inputs.limit(2)).toPandas()  # MLflow can't store Python Decimal values
    with _no_serving_validation():
        info = mlflow.spark.log_model(
            model,
            "model",
            registered_model_name=registered_name,
            signature=signature,
            input_example=example,
            # Passing requirements avoids MLflow's slow inference of them (~15 s).
            pip_requirements=[f"pyspark=={pyspark.__version__}", f"mlflow=={mlflow.__version__}"],
        )
    version = str(info.registered_model_version)
    tracking.remember_spark_model(tracking.ModelRef(registered_name, version), model)  # no reload to compare or score it
    return version


@contextlib.contextmanager
def _no_serving_validation():
    """MLflow validates an input example by reloading the model and predicting with it (about
    2.7 s for a Spark model here); mlflow.spark.log_model offers no switch, so lakeforge skips
    that step: the example is still saved with the model."""
    # This patches a PRIVATE MLflow function (mlflow.models.utils._validate_serving_input), the
    # only way to skip the step: it is kept to this one context manager, used around
    # log_model only, and restored afterwards. Should a later MLflow drop or rename it, nothing
    # is patched and logging still works (the validation just runs).
    import mlflow.models.utils as mu

    original = getattr(mu, "_validate_serving_input", None)
    if original is None:
        yield
        return
    mu._validate_serving_input = lambda *a, **k: None
    try:
        yield
    finally:
        mu._validate_serving_input = original


def promote(client, cfg: ModelConfig, target: Target, metric: str, new_score: float, test_df: DataFrame,
            new_version: str) -> Promotion:
    """The promotion gate. Alias the new version ``challenger``; make it ``champion`` if there is
    none or if it beats the champion on the same test rows by ``promotion_margin``."""
    from mlflow.exceptions import MlflowException

    name = cfg.registered_name
    tracking.set_alias(name, "challenger", new_version)
    try:
        current = client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        current = None
    if current is None or str(current.version) == new_version:
        tracking.set_alias(name, "champion", new_version)
        return Promotion(True, f"version {new_version} is the first model: champion", new_version, None)
    hib = higher_is_better(target.task, metric)
    try:
        champ_task = current.tags.get("lakeforge.task", "binary")
        if champ_task != target.task:
            raise ValueError(f"champion is a {champ_task} model")
        champion = tracking.load_spark_model(tracking.ModelRef(name, str(current.version)))
        champ_score = evaluation.evaluate(target.task, champion.transform(test_df), LABEL_COL, target.labels).metrics[metric]
    except Exception as exc:  # the champion cannot score today's data: the new model replaces it
        tracking.set_alias(name, "champion", new_version)
        return Promotion(True, (f"champion v{current.version} could not be scored on the test rows "
                                f"({str(exc).splitlines()[0][:160]}): v{new_version} promoted"), new_version, None)
    gain = (new_score - champ_score) if hib else (champ_score - new_score)
    verdict = (f"test {metric}: challenger v{new_version} {new_score:.4f} vs champion v{current.version} "
               f"{champ_score:.4f} (margin {cfg.promotion_margin})")
    if gain > cfg.promotion_margin:
        tracking.set_alias(name, "champion", new_version)
        return Promotion(True, verdict + f": v{new_version} promoted to champion", new_version, champ_score)
    return Promotion(False, verdict + f": champion v{current.version} kept", str(current.version), champ_score)


def _report(settings: Settings, pipeline: PipelineConfig, run_date: dt.date, t: Trained, decision: str,
            version: str) -> Path | None:
    """The training report: logged to the run, and written under ``reports_dir`` when set
    (returns that path)."""
    import mlflow

    html = training_report(ReportInput(
        pipeline, t.target.task, t.metric, t.leaderboard, t.best, t.test_eval, t.importances, t.split_info,
        t.threshold, decision, version, t.timings, prep=t.prep_report))
    report_path = None
    if settings.reports_dir:
        folder = settings.path(settings.reports_dir) / pipeline.name
        folder.mkdir(parents=True, exist_ok=True)
        report_path = folder / f"training_{run_date.isoformat()}.html"
        report_path.write_text(html.html)
        for name, png in html.images.items():
            (folder / f"training_{run_date.isoformat()}_{name}.png").write_bytes(png)
    mlflow.log_text(html.html, "report/training_report.html")
    with tempfile.TemporaryDirectory() as tmp:
        for name, png in html.images.items():
            p = Path(tmp) / f"{name}.png"
            p.write_bytes(png)
            mlflow.log_artifact(str(p), "report")
    return report_path


def finite(metrics: dict[str, float]) -> dict[str, float]:
    """Finite values only, under MLflow-safe names (per-class metrics such as ``f1[a b]`` -> ``f1.a_b``)."""
    out = {}
    for k, v in metrics.items():
        if v is None or math.isnan(v) or math.isinf(v):
            continue
        key = re.sub(r"[^A-Za-z0-9_\-. /]", "_", k.replace("[", ".").rstrip("]"))
        out[key] = float(v)
    return out
