"""lakeforge monitor and retrain end to end, in process on the session's Spark: ten daily batches
of the Telco data scored by one trained model; covariate drift from day 6 (MonthlyCharges +30 %,
a third of month-to-month contracts become two-year), a concept change from day 8 (labels of the
month-to-month segment flipped), labels arriving two days late."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from conftest import write_pipeline
from lakeforge.core.config import load_pipeline
from lakeforge.core.errors import InputDataError
from lakeforge.core.frames import local_frame
from lakeforge.core.io import write_table
from lakeforge.core.runs import RunRecord, record_run
from lakeforge.monitoring.alerts import confirmed, open_alert
from lakeforge.monitoring.job import monitor, table_names
from lakeforge.monitoring.reference import load_reference

DAY0 = dt.date(2026, 3, 1)
DAYS = [DAY0 + dt.timedelta(days=i) for i in range(1, 11)]
NAME = "mon_telco"


@pytest.fixture(scope="module")
def world(spark, settings, tmp_path_factory):
    from lakeforge.ingest.job import ingest
    from lakeforge.scoring.job import score
    from lakeforge.training.job import train

    folder = tmp_path_factory.mktemp("monitor")
    pipe = load_pipeline(write_pipeline(
        folder, name=NAME, **{"tables": {"bronze": f"bronze_{NAME}", "predictions": f"predictions_{NAME}"},
                              "model.registered_name": NAME, "model.search": "train_validation_split",
                              "model.max_iter": 15, "source.checks": [], "features.numeric": ["tenure", "MonthlyCharges"],
                              "features.categorical": ["SeniorCitizen", "Contract", "InternetService", "PaymentMethod",
                                                       "TechSupport", "PaperlessBilling"],
                              "model.algorithms": {"logistic_regression": {"regParam": [0.01], "elasticNetParam": [0.0]}},
                              "scoring.input_table": f"inputs_{NAME}",
                              "monitoring": {"min_rows": 300, "dataset_drift_share": 0.2, "performance_lookback_days": 10,
                                             "actuals": {"table": f"actuals_{NAME}"}}}))
    ingest(spark, settings, pipe, "i1", DAY0)
    trained = train(spark, settings, pipe, "t1", DAY0)
    bronze = spark.table(settings.table(pipe.tables.bronze)).withColumn("__slice", F.abs(F.xxhash64("customerID")) % 10)
    labels = []
    for i, day in enumerate(DAYS, start=1):
        rows = bronze.where(F.col("__slice") == i - 1).drop("__slice")
        if i >= 6:  # covariate drift
            shifted = (F.col("Contract") == "Month-to-month") & (F.abs(F.xxhash64("customerID", F.lit(1))) % 3 == 0)
            rows = (rows.withColumn("MonthlyCharges", F.col("MonthlyCharges") * 1.3)
                    .withColumn("Contract", F.when(shifted, F.lit("Two year")).otherwise(F.col("Contract"))))
        write_table(rows, settings.table(pipe.scoring_input), overwrite_schema=True)
        res = score(spark, settings, pipe, day, model=trained.model)
        record = RunRecord(f"s{i}", "score", pipe.name, day, input_table=res.input_table, input_version=res.input_version)
        record_run(spark, settings, record.finish("succeeded"))
        churn = F.col("Churn")
        if i >= 8:  # concept change: the month-to-month segment's outcomes flip
            churn = F.when(F.col("Contract") == "Month-to-month",
                           F.when(churn == "Yes", "No").otherwise("Yes")).otherwise(churn)
        labels.append(rows.select("customerID", churn.alias("Churn"), F.lit(day + dt.timedelta(days=2)).alias("label_date")))
    return {"pipe": pipe, "trained": trained, "labels": labels}


def _arrive(spark, settings, world, today: dt.date) -> None:
    """The actuals table as of ``today``: the labels whose date has come."""
    arrived = world["labels"][0]
    for part in world["labels"][1:]:
        arrived = arrived.unionByName(part)
    write_table(arrived.where(F.col("label_date") <= F.lit(today)), settings.table(f"actuals_{NAME}"))


def _counts(spark, settings, pipe) -> dict:
    return {k: spark.table(settings.table(t)).count() for k, t in table_names(pipe).items()
            if spark.catalog.tableExists(settings.table(t))}


def test_reference_is_stored_at_training_for_inputs_and_score(spark, settings, world):
    pipe, model = world["pipe"], world["trained"].model
    reference = load_reference(spark, settings, pipe, model.name, model.version)
    assert {"MonthlyCharges", "Contract", "tenure", "score", "predicted_label"} <= set(reference)
    assert reference["score"].n == world["trained"].rows_test and not reference["score"].exact
    assert reference["SeniorCitizen"].exact or not hasattr(reference["SeniorCitizen"], "edges")


def test_ten_days_drift_alert_performance_and_reruns(spark, settings, world):
    pipe = world["pipe"]
    _arrive(spark, settings, world, DAYS[4])
    first = monitor(spark, settings, pipe, DAYS[:5])  # days 1-5 in one aggregation
    assert first.passes == 3 and len(first.windows) == 5 and not first.alerts
    assert all(w.dataset[0] is False for w in first.windows), [w.dataset for w in first.windows]
    day6 = monitor(spark, settings, pipe, [DAYS[5]])
    assert day6.windows[0].dataset[0] is True and not day6.alerts  # one breach is not an alert
    drifting = {r.column for r in day6.windows[0].baseline if r.drifted}
    assert {"MonthlyCharges", "Contract"} <= drifting
    _arrive(spark, settings, world, DAYS[6])
    day7 = monitor(spark, settings, pipe, [DAYS[6]])
    assert [a.alert_type for a in day7.alerts] == ["drift"] and day7.alerts[0].breaches == 2
    before = _counts(spark, settings, pipe)
    again = monitor(spark, settings, pipe, [DAYS[6]])  # a rerun changes no counts
    assert _counts(spark, settings, pipe) == before and len(again.alerts) == 1
    consecutive = (spark.table(settings.table(table_names(pipe)["drift"]))
                   .where((F.col("drift_type") == "CONSECUTIVE") & (F.col("window_start") == F.lit(DAYS[6]))).count())
    assert consecutive == len(day7.windows[0].baseline) + 1
    _arrive(spark, settings, world, DAYS[9])
    last = monitor(spark, settings, pipe, DAYS[7:])
    perf = {(r["window_start"], r["metric"]): r for r in last.performance}
    auc = {d: perf[(d, "roc_auc")] for d in DAYS if (d, "roc_auc") in perf}
    assert auc[DAYS[0]]["realised"] > 0.75 and auc[DAYS[7]]["realised"] < auc[DAYS[0]]["realised"] - 0.1
    assert auc[DAYS[9]]["realised"] is None and auc[DAYS[9]]["estimated"] is not None  # labels not arrived yet
    assert auc[DAYS[0]]["labelled_rows"] == auc[DAYS[0]]["rows"]


def test_retrain_answers_the_open_alert_and_records_the_decision(spark, settings, world):
    from lakeforge.core import tracking
    from lakeforge.monitoring.retrain import retrain

    pipe = world["pipe"]
    alerts = settings.table(table_names(pipe)["alerts"])
    assert open_alert(spark, alerts, pipe.name) is not None
    res = retrain(spark, settings, pipe, "r1", DAYS[9])
    assert res.decision in ("promoted", "kept") and res.rows_compared > 300
    champion = tracking.resolve_model(pipe.model.registered_name, "champion")
    assert (champion.version == res.challenger.version) == (res.decision == "promoted")
    assert (res.challenger_score > res.champion_score + pipe.monitoring.retrain.margin) == (res.decision == "promoted")
    row = spark.table(alerts).where("alert_type = 'retrain'").collect()
    assert len(row) == 1 and row[0]["status"] == res.decision and "answers drift alert" in row[0]["detail"]
    assert open_alert(spark, alerts, pipe.name) is None
    assert retrain(spark, settings, pipe, "r2", DAYS[9]).decision == "skipped"
    # rerunning monitor on an answered window neither re-dates nor reopens its alert
    drift = F.col("alert_type") == "drift"
    first = {r["window_start"]: (r["status"], r["created_at"]) for r in spark.table(alerts).where(drift).collect()}
    assert first and {s for s, _ in first.values()} == {"answered"}
    assert len(monitor(spark, settings, pipe, [DAYS[6]]).alerts) == 1
    again = {r["window_start"]: (r["status"], r["created_at"]) for r in spark.table(alerts).where(drift).collect()}
    assert again == first and open_alert(spark, alerts, pipe.name) is None


def test_bad_input_is_one_line_and_writes_nothing(spark, settings, world):
    pipe = world["pipe"]
    before = _counts(spark, settings, pipe)
    with pytest.raises(InputDataError, match="no scored rows for run date"):
        monitor(spark, settings, pipe, [DAYS[-1] + dt.timedelta(days=1)])
    with pytest.raises(InputDataError, match=r"monitoring.columns \['nope'\] are not in the reference"):
        monitor(spark, settings, pipe.model_copy(update={"monitoring": pipe.monitoring.model_copy(update={"columns": ["nope"]})}), [DAYS[0]])
    bad = local_frame(spark, [("x", 0.5, DAYS[0])], "id string, Churn double, label_date date")
    write_table(bad, settings.table("actuals_bad_monitor"))
    actuals = pipe.monitoring.actuals.model_copy(update={"table": "actuals_bad_monitor"})
    no_key = pipe.model_copy(update={"monitoring": pipe.monitoring.model_copy(update={"actuals": actuals})})
    with pytest.raises(InputDataError, match=r"lacks column\(s\) \['customerID'\]"):
        monitor(spark, settings, no_key, [DAYS[0]])
    wrong = no_key.model_copy(update={"monitoring": no_key.monitoring.model_copy(
        update={"actuals": actuals.model_copy(update={"key": "id"})})})
    with pytest.raises(InputDataError, match="the label column is double"):
        monitor(spark, settings, wrong, [DAYS[0]])
    after = _counts(spark, settings, pipe)
    assert after == before


def test_alert_rule_m_of_n():
    assert confirmed([True, None, False, True], 2, 5) == (True, 2)
    assert confirmed([True, True, False], 2, 5) == (False, 2)  # the latest must breach
    assert confirmed([True, False, False, False, False, True], 2, 5) == (False, 1)  # the first fell out of the last 5
