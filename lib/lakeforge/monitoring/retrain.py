"""lakeforge retrain: when a confirmed alert is open (or with ``force``), train a challenger on the
recent labelled rows, compare champion and challenger on the SAME most recent labelled window
(held out of the challenger's training rows), and promote only when the challenger is better by
``monitoring.retrain.margin``. The decision, both scores and the alert it answers are recorded in
``<pipeline>_alerts`` (alert_type retrain), on the challenger's MLflow run, and in job_runs.

The challenger is trained by lakeforge.training.job on a table of the recent rows
(``<pipeline>_retrain_data``: the input rows the recent windows scored, with the true label as the
target), with training's own promotion gate turned off: only this comparison promotes. Binary
models only (the labels are compared as the positive class).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.core import tracking
from lakeforge.core.columns import LABEL_COL
from lakeforge.core.config import PipelineConfig
from lakeforge.core.errors import InputDataError
from lakeforge.core.io import read_version, write_table
from lakeforge.core.settings import Settings
from lakeforge.core.sql import q
from lakeforge.monitoring import alerts as al
from lakeforge.monitoring.performance import labelled_predictions
from lakeforge.monitoring.windows import score_inputs
from lakeforge.training import evaluation

NEVER = 1e9  # a promotion margin no test score beats: training's gate never promotes a challenger


@dataclass(frozen=True)
class RetrainResult:
    decision: str  # "skipped", "promoted", "kept"
    message: str
    alert: dict | None = None
    challenger: tracking.ModelRef | None = None
    champion: tracking.ModelRef | None = None
    champion_score: float | None = None
    challenger_score: float | None = None
    metric: str | None = None
    rows_train: int = 0
    rows_compared: int = 0


def retrain(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, run_id: str, run_date: dt.date,
            force: bool = False, progress: Callable[[str], None] | None = None) -> RetrainResult:
    from lakeforge.training.job import train  # the training job, as 'lakeforge train' runs it

    say = progress or (lambda _m: None)
    cfg = pipeline.monitoring
    alerts_table = settings.table(al.alerts_table(pipeline.name))
    started = dt.datetime.now()  # the alerts open now are the ones this decision answers
    alert = al.open_alert(spark, alerts_table, pipeline.name)
    if alert is None and not force:
        return RetrainResult("skipped", "no confirmed alert is open; nothing to retrain (--force retrains anyway)")
    if cfg.actuals is None:
        raise InputDataError(f"{pipeline.file}: retrain needs monitoring.actuals (the true labels of recent rows)")
    since = run_date - dt.timedelta(days=cfg.retrain.recent_windows * cfg.granularity_days - 1)
    labelled = labelled_predictions(spark, settings, pipeline, since, run_date).where(F.col("__y").isNotNull())
    dates = sorted(r[0] for r in labelled.select("run_date").distinct().collect())
    if len(dates) < 2:
        raise InputDataError(f"retrain needs labelled predictions on at least two run dates since {since} "
                             f"(found {len(dates)}); wait for labels or widen monitoring.retrain.recent_windows")
    latest = dates[-1]
    rows = _with_inputs(spark, settings, pipeline, labelled, dates)
    table = settings.table(f"{pipeline.name}_retrain_data")
    write_table(rows.where(F.col("run_date") < F.lit(latest)).drop("run_date", "__y"), table, overwrite_schema=True)
    compare = rows.where(F.col("run_date") == F.lit(latest)).withColumn(LABEL_COL, F.col("__y")).cache()
    try:
        champion = tracking.resolve_model(pipeline.model.registered_name, "champion")
        trial = pipeline.model_copy(update={
            "tables": pipeline.tables.model_copy(update={"bronze": table.split(".")[-1], "features": None}),
            "model": pipeline.model.model_copy(update={"promotion_margin": NEVER})})
        say(f"training a challenger on {table} (labelled rows before {latest})")
        trained = train(spark, settings, trial, run_id, run_date, progress=say)
        metric = trained.metric
        scores = {v: _score(tracking.load_spark_model(ref), compare, metric)
                  for v, ref in (("champion", champion), ("challenger", trained.model))}
        n = compare.count()
    finally:
        compare.unpersist()
    better = evaluation_better(metric, scores["challenger"], scores["champion"], cfg.retrain.margin)
    if better:
        tracking.set_alias(champion.name, "champion", trained.model.version)
    decision = "promoted" if better else "kept"
    message = (f"challenger v{trained.model.version} {metric} {scores['challenger']:.4f} vs champion v{champion.version} "
               f"{scores['champion']:.4f} on {n:,} labelled rows of run date {latest} (margin {cfg.retrain.margin}): "
               + ("challenger promoted to champion" if better else "champion kept"))
    result = RetrainResult(decision, message, alert, trained.model, champion, scores["champion"], scores["challenger"],
                           metric, trained.rows_train + trained.rows_test, n)
    _record(spark, settings, pipeline, result, run_date, started)
    return result


def evaluation_better(metric: str, challenger: float, champion: float, margin: float) -> bool:
    from lakeforge.core.tasks import higher_is_better

    if higher_is_better("binary", metric):
        return challenger > champion + margin
    return challenger < champion - margin


def _with_inputs(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, labelled: DataFrame,
                 dates: list[dt.date]) -> DataFrame:
    """The input rows each date's score run read (the input version job_runs recorded for it),
    joined with that date's labelled predictions; the true label as the target."""
    inputs = score_inputs(spark, settings, pipeline.name, dates)
    missing = [str(d) for d in dates if d not in inputs]
    if missing:
        raise InputDataError(f"retrain: job_runs records no successful score run with its input version for run "
                             f"date(s) {', '.join(missing)}; rescore them ('lakeforge score {pipeline.file} "
                             f"--run-date ...') so their inputs are known; nothing was written")
    parts = [read_version(spark, table, version).withColumn("run_date", F.lit(d))
             for d, (table, version) in sorted(inputs.items()) if d in dates]
    source = parts[0]
    for p in parts[1:]:
        source = source.unionByName(p, allowMissingColumns=True)
    keys = labelled.select(F.col(q(pipeline.key)), "run_date", "__y")
    label = _label_as_target(source, pipeline)
    return source.drop(pipeline.target).join(keys, [pipeline.key, "run_date"]).withColumn(pipeline.target, label)


def _label_as_target(source: DataFrame, pipeline: PipelineConfig):
    """The 0/1 label back in the target's own values (e.g. Yes / No)."""
    values = [r[0] for r in source.select(pipeline.target).distinct().limit(3).collect() if r[0] is not None]
    positive = pipeline.positive_class
    if len(values) == 2 and positive is not None:
        other = next(v for v in values if str(v) != str(positive))
        return F.when(F.col("__y") == 1, F.lit(positive)).otherwise(F.lit(other)).cast(dict(source.dtypes)[pipeline.target])
    return F.col("__y").cast(dict(source.dtypes)[pipeline.target])


def _score(model, rows: DataFrame, metric: str) -> float:
    return evaluation.evaluate_binary(model.transform(rows), LABEL_COL).metrics[metric]


def _record(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, r: RetrainResult, run_date: dt.date,
            started: dt.datetime) -> None:
    """The decision in the alerts table (replacing this run date's; the alerts open at ``started``
    become answered) and on the challenger's MLflow run."""
    answered = f"answers {r.alert['alert_type']} alert of window {r.alert['window_start']}; " if r.alert else "forced; "
    alert = al.Alert(pipeline.name, "retrain", run_date, r.challenger.name, r.challenger.version, r.decision, 0, 0,
                     answered + r.message)
    al.write_alerts(spark, settings.table(al.alerts_table(pipeline.name)), pipeline.name, "retrain", [run_date], [alert])
    al.mark_answered(spark, settings.table(al.alerts_table(pipeline.name)), pipeline.name, started)
    client = tracking.MlflowClient()
    run_id = client.get_model_version(r.challenger.name, r.challenger.version).run_id
    client.log_metric(run_id, f"retrain_challenger_{r.metric}", r.challenger_score)
    client.log_metric(run_id, f"retrain_champion_{r.metric}", r.champion_score)
    client.set_tag(run_id, "lakeforge.retrain_decision", answered + r.message)
