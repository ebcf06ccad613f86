"""Model search end to end on real data: several algorithms on the same folds, the leaderboard,
threshold, MLflow parent/child runs, the champion/challenger gate, reproducibility, a time
budget, multiclass and regression targets, and bad input that registers nothing."""

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import telco_slice, write_pipeline
from lakeforge.core import tracking
from lakeforge.core.config import load_pipeline
from lakeforge.core.errors import InputDataError
from lakeforge.ingest.job import ingest
from lakeforge.scoring.job import score
from lakeforge.training.job import train

pytestmark = pytest.mark.slow
DAY = dt.date(2026, 5, 1)
SMALL_ZOO = {
    "logistic_regression": {"regParam": [0.001, 0.1]},
    "random_forest": {"numTrees": [20], "maxDepth": [5]},
    "gbt": {"maxIter": [10], "maxDepth": [3]},
}


def _pipeline(folder, name, **changes):
    base = {"name": name, "tables.bronze": f"{name}_bronze", "tables.predictions": f"{name}_predictions",
            "tables.leaderboard": f"{name}_leaderboard", "model.registered_name": name, "model.folds": 2}
    return load_pipeline(write_pipeline(folder, **{**base, **changes}))


@pytest.fixture(scope="module")
def telco(spark, settings, tmp_path_factory):
    """Two trainings of the same data, config and seed, and a third, weaker one."""
    folder = tmp_path_factory.mktemp("zoo")
    pipe = _pipeline(folder, "zoo", **{"model.algorithms": SMALL_ZOO})
    ingest(spark, settings, pipe, "r0", DAY)
    first = train(spark, settings, pipe, "r1", DAY)
    second = train(spark, settings, pipe, "r2", DAY)
    weak = _pipeline(folder / "weak", "zoo", **{"model.algorithms": {"logistic_regression": {"regParam": [0.001]}},
                                               "features.numeric": [], "features.categorical": ["gender"]})
    third = train(spark, settings, weak, "r3", DAY)
    return pipe, first, second, third


def test_all_algorithms_compete_on_the_same_folds(telco):
    _, first, _, _ = telco
    board = first.leaderboard
    assert [r["algorithm"] for r in board].count("logistic_regression") == 2
    assert {r["algorithm"] for r in board} == {"logistic_regression", "random_forest", "gbt"}
    assert [r["rank"] for r in board] == [1, 2, 3, 4]
    means = [r["cv_roc_auc_mean"] for r in board]
    assert means == sorted(means, reverse=True)
    for r in board:
        assert r["status"] == "ok"
        for m in ("roc_auc", "pr_auc", "f1", "accuracy", "log_loss"):
            assert 0 <= r[f"cv_{m}_mean"] and r[f"cv_{m}_std"] >= 0, (m, r)
    # a deliberately small, fast zoo here (the full Telco config reaches >= 0.84: test_pipeline_e2e)
    assert first.test_metrics["roc_auc"] >= 0.82
    assert first.task == "binary" and first.metric == "roc_auc"


def test_threshold_is_chosen_and_stored_in_the_model(telco):
    _, first, _, _ = telco
    assert first.threshold is not None and 0.05 < first.threshold < 0.7
    import mlflow.spark

    model = mlflow.spark.load_model(first.model.uri)  # the logged files, not this process's cached model
    clf = model.stages[-1]
    stored = clf.getThreshold() if clf.hasParam("threshold") and clf.isSet("threshold") else clf.getThresholds()[1]
    assert stored == pytest.approx(first.threshold)


def test_refit_keeps_the_searchs_total_penalty(telco):
    """The weak training's only candidate is logistic regression, regParam 0.001, chosen on
    2-fold CV (half the training rows): the model refitted on all rows has regParam 0.0005."""
    _, _, _, third = telco
    assert json.loads(next(r for r in third.leaderboard if r["is_best"])["params"])["regParam"] == 0.001
    clf = tracking.load_spark_model(third.model).stages[-1]
    assert clf.getRegParam() == pytest.approx(0.0005)
    assert MlflowClient().get_run(third.mlflow_run_id).data.params["refit.regParam"] == "0.0005"


def test_parent_run_with_a_child_run_per_candidate(telco):
    _, first, _, _ = telco
    client = MlflowClient()
    parent = client.get_run(first.mlflow_run_id)
    assert parent.data.tags["data.table"] == "lakeforge.zoo_bronze"
    assert parent.data.tags["lakeforge.task"] == "binary" and parent.data.tags["seed"] == "42"
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 4
    assert {c.data.params["algorithm"] for c in children} == {"logistic_regression", "random_forest", "gbt"}
    assert all("cv_roc_auc_mean" in c.data.metrics for c in children)
    # each candidate's fit seconds (summed over its folds: test_models) as logged, and as listed
    assert {c.info.run_name: round(c.data.metrics["fit_seconds"], 3) for c in children} == \
        {f"{r['algorithm']} {r['params']}": r["fit_seconds"] for r in first.leaderboard}
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/training_report.html", "report/roc.png", "report/confusion.png"} <= artifacts


def test_same_data_config_and_seed_give_the_same_metrics(telco):
    _, first, second, _ = telco
    assert second.test_metrics == first.test_metrics
    assert [(r["params"], r["cv_roc_auc_mean"]) for r in second.leaderboard] == \
           [(r["params"], r["cv_roc_auc_mean"]) for r in first.leaderboard]


def test_champion_challenger_gate(telco):
    _, first, second, third = telco
    client = MlflowClient()
    assert first.promoted and first.model.version == "1"
    # an equal score does not beat the champion; a weaker model does not either
    assert not second.promoted and "champion v1 kept" in second.decision
    assert not third.promoted and third.test_metrics["roc_auc"] < first.test_metrics["roc_auc"]
    assert str(client.get_model_version_by_alias("zoo", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("zoo", "challenger").version) == "3"
    tags = client.get_model_version("zoo", "3").tags
    assert "challenger v3" in tags["lakeforge.decision"] and "champion v1" in tags["lakeforge.decision"]


def test_a_champion_reading_other_columns_is_scored_on_the_same_rows(spark, settings, tmp_path):
    """A champion whose features read a column today's config does not use (here a load
    metadata column) is still scored on the same test rows, not replaced unscored."""
    lr = {"logistic_regression": {"regParam": [0.01]}}
    cols = {"features.numeric": ["tenure"], "features.categorical": ["Contract"], "model.algorithms": lr,
            "source.path": str(telco_slice(tmp_path, 1000))}  # the first 1,000 customers: the subject is the columns
    meta = _pipeline(tmp_path / "a", "metachamp", **cols, **{"features.derived": {"load_month": "month(_run_date)"}})
    ingest(spark, settings, meta, "m0", DAY)
    first = train(spark, settings, meta, "m1", DAY)
    second = train(spark, settings, _pipeline(tmp_path / "b", "metachamp", **cols), "m2", DAY)
    assert first.promoted
    assert f"vs champion v{first.model.version}" in second.decision and "could not be scored" not in second.decision


def test_leaderboard_table_and_report_file(spark, telco):
    _, _, _, third = telco
    rows = spark.sql("SELECT run_id, rank, algorithm, status, metrics FROM lakeforge.zoo_leaderboard").collect()
    assert {r.run_id for r in rows} == {"r3"}  # the run date's partition holds the last training
    assert "roc_auc_mean" in json.loads(rows[0].metrics)
    assert third.report and open(third.report).read().startswith("<!doctype html>")


def test_time_budget_skips_the_remaining_candidates(spark, settings, telco, tmp_path):
    pipe = _pipeline(tmp_path, "budget", **{"tables.bronze": "zoo_bronze", "model.algorithms": SMALL_ZOO,
                                            "model.max_minutes": 0.0001})
    res = train(spark, settings, pipe, "b1", DAY)
    status = {r["algorithm"]: r["status"] for r in res.leaderboard}
    assert status["logistic_regression"] == "ok"  # the first algorithm always runs
    assert status["random_forest"].startswith("skipped: time budget")
    assert status["gbt"].startswith("skipped: time budget")
    # the best model so far is the one registered
    assert res.model.version and [r["algorithm"] for r in res.leaderboard if r["is_best"]] == ["logistic_regression"]


def test_training_reads_a_sample_of_the_keys_when_the_table_is_larger_than_its_cap(spark, settings, telco, tmp_path):
    """model.max_train_rows: a hash-of-the-key sample (test rows a share of it), said and recorded;
    the gold feature table still holds every row."""
    from pyspark.sql import functions as F

    from lakeforge.training.sample import SAMPLE_BUCKETS

    pipe = _pipeline(tmp_path, "sampled", **{"tables.bronze": "zoo_bronze", "tables.features": "sampled_features",
                                             "model.algorithms": {"logistic_regression": {"regParam": [0.01]}},
                                             "model.max_train_rows": 2000})
    lines: list[str] = []
    res = train(spark, settings, pipe, "s1", DAY, progress=lines.append)
    bronze = spark.table("lakeforge.zoo_bronze")
    total = bronze.count()
    bucket = F.pmod(F.xxhash64(F.col("customerID").cast("string"), F.lit(42 + 7)), F.lit(SAMPLE_BUCKETS))
    expected = bronze.where(bucket < int(round(2000 / total * SAMPLE_BUCKETS))).count()
    assert res.rows_train + res.rows_test == expected and 1850 <= expected <= 2150
    assert 0.15 <= res.rows_test / expected <= 0.25  # the test rows are a share of the sample
    assert f"training on a {2000 / total:.1%} sample of the {total:,} rows: model.max_train_rows: 2,000" in lines
    split = json.loads(MlflowClient().get_run(res.mlflow_run_id).data.params["split"])
    assert split["sample"] == {"table_rows": total, "fraction": round(2000 / total, 6), "why": "model.max_train_rows: 2,000"}
    assert spark.table("lakeforge.sampled_features").count() == total


def test_the_automatic_row_cap_follows_spark_storage_memory():
    from lakeforge.training.sample import MIN_ROWS, row_cap

    gb = 2**30
    # 10M generated rows: 762 MB of files (about 1.5 GB cached) against a 4 GB driver's 2.2 GB
    cap, why = row_cap("auto", 10_000_000, 762 * 2**20, int(2.2 * gb))
    assert 1_700_000 < cap < 1_900_000 and "more than an eighth of Spark's 2.2 GB" in why
    assert abs(row_cap("auto", 10_000_000, 762 * 2**20, int(4.4 * gb))[0] - 2 * cap) <= 1  # linear in the memory
    assert row_cap("auto", 1_000, 1_000, int(2.2 * gb))[0] >= 1_000  # small tables: all rows
    assert row_cap("auto", 10_000_000, 50 * gb, gb)[0] == MIN_ROWS
    assert row_cap("auto", 10, None, gb) == (None, "size unknown")
    assert row_cap("all", 10, 10, 1) == (None, "model.max_train_rows: all")
    assert row_cap(5000, 10, None, None) == (5000, "model.max_train_rows: 5,000")


def test_successive_halving_fits_only_the_best_third_on_the_other_folds(spark, settings, telco, tmp_path, monkeypatch):
    import lakeforge.training.search

    grid = {"logistic_regression": {"regParam": [0.001, 0.01, 0.1]},
            "decision_tree": {"maxDepth": [1, 2, 3]}}
    pipe = _pipeline(tmp_path, "halving", **{"tables.bronze": "zoo_bronze", "model.algorithms": grid,
                                             "model.folds": 3, "model.halving": True})
    lines: list[str] = []
    monkeypatch.setattr(lakeforge.training.search, "PROGRESS_SECONDS", 0)  # a line per finished fit, as in a long search
    res = train(spark, settings, pipe, "h1", DAY, progress=lines.append)
    fits = [x for x in lines if re.match(r"\d+/\d+ fits done \((logistic_regression|decision_tree) \{.*\} on fold \d: "
                                         r"\d+\.\d s\), \d+ s into the search$", x)]
    assert fits and fits[0].startswith("1/6 fits done") and any(x.startswith("fold 1/3: 6 candidate(s) done") for x in lines)
    kept = [r for r in res.leaderboard if r["status"] == "ok"]
    pruned = [r for r in res.leaderboard if r["status"] != "ok"]
    # the best third (2 of 6: two logistic regressions on fold 1) and the best of each algorithm
    # (the depth-3 tree) go on to folds 2 and 3
    assert {(r["algorithm"], r["params"]) for r in kept} == {
        ("logistic_regression", '{"elasticNetParam": 0.0, "regParam": 0.001}'),
        ("logistic_regression", '{"elasticNetParam": 0.0, "regParam": 0.01}'), ("decision_tree", '{"maxDepth": 3}')}
    assert len(kept) == 3 and len(pruned) == 3
    assert f"halving: {len(kept)} of 6 candidate(s) go on to the other folds" in lines
    for r in pruned:  # each pruned one names its first-fold score and the bars it missed
        m = re.match(r"pruned after fold 1 \(successive halving\): roc_auc (0\.\d{4}); the best third scored at least "
                     r"(0\.\d{4}) and the best (\w+) (0\.\d{4})$", r["status"])
        assert m and m.group(3) == r["algorithm"], r["status"]
        assert float(m.group(1)) <= float(m.group(2)) and float(m.group(1)) <= float(m.group(4))
        assert r["cv_mean"] is None and r["rank"] is None
    assert all(r["cv_std"] is not None and r["rank"] is not None for r in kept)  # scored on all 3 folds
    assert next(r for r in res.leaderboard if r["is_best"]) in kept
    # a depth-1 stump is neither in the best third nor the best tree on the first fold
    assert not any(r["algorithm"] == "decision_tree" and json.loads(r["params"])["maxDepth"] == 1 for r in kept)


@pytest.fixture(scope="module")
def small_csvs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    multi, reg = folder / "iris_like.csv", folder / "houses.csv"
    lines = ["id,a,b,colour,species"]
    for i in range(240):
        a, b = (i * 7) % 17, (i * 11) % 13
        species = "setosa" if a < 6 else "versicolor" if a < 12 else "virginica"
        lines.append(f"{i},{a},{b},{['red', 'blue'][i % 2]},{species}")
    multi.write_text("\n".join(lines) + "\n")
    lines = ["id,rooms,area,district,listed,price"]
    for i in range(240):
        rooms, area = 1 + i % 5, 30 + (i * 13) % 90
        listed = dt.date(2025, 1, 1) + dt.timedelta(days=i)
        lines.append(f"{i},{rooms},{area},{['north', 'south'][i % 2]},{listed},{50 + 3 * area + 10 * rooms + (i % 2) * 20}")
    reg.write_text("\n".join(lines) + "\n")
    return multi, reg


def _task_pipeline(folder, name, csv, target, algorithms, **changes):
    return _pipeline(folder, name, **{"source.path": str(csv), "source.checks": [], "key": "id", "target": target, "positive_class": None,
                                      "features": {}, "model.task": "auto", "model.metric": None,
                                      "model.algorithms": algorithms, "model.threshold": {}, **changes})


def test_multiclass_target_is_inferred_trained_and_scored(spark, settings, small_csvs, tmp_path):
    pipe = _task_pipeline(tmp_path, "species", small_csvs[0], "species",
                          {"logistic_regression": {"regParam": [0.01]}, "naive_bayes": {},
                           "random_forest": {"numTrees": [10], "maxDepth": [4]}}, **{"model.class_weights": True})
    ingest(spark, settings, pipe, "m0", DAY)
    res = train(spark, settings, pipe, "m1", DAY)
    assert (res.task, res.metric) == ("multiclass", "f1_macro")
    assert res.test_metrics["f1_macro"] > 0.7
    assert {r["algorithm"] for r in res.leaderboard if r["status"] == "ok"} == {"logistic_regression", "naive_bayes", "random_forest"}
    out = score(spark, settings, pipe, DAY)
    labels = {r.predicted_label for r in spark.table(out.write.table).select("predicted_label").distinct().collect()}
    assert labels <= {"setosa", "versicolor", "virginica"} and len(labels) >= 2


def test_regression_target_is_inferred_trained_and_scored(spark, settings, small_csvs, tmp_path):
    # a time-based test split (the latest 20 % by `listed`) and a train/validation split search;
    # a decimal feature (MLflow's input example can't hold Python Decimals: logged as doubles)
    pipe = _task_pipeline(tmp_path, "houses", small_csvs[1], "price",
                          {"linear_regression": {"regParam": [0.0, 0.1], "elasticNetParam": [0.0]},
                           "random_forest": {"numTrees": [10], "maxDepth": [4]}},
                          **{"source.schema": "id int, rooms int, area decimal(6,1), district string, listed date, price double",
                             "features": {"numeric": ["rooms", "area"], "categorical": ["district"]},
                             "model.split": {"by": "time", "column": "listed"}, "model.search": "train_validation_split"})
    ingest(spark, settings, pipe, "g0", DAY)
    res = train(spark, settings, pipe, "g1", DAY)
    assert (res.task, res.metric) == ("regression", "rmse")
    assert 40 <= res.rows_test <= 56  # the last ~48 days of 240
    split = json.loads(MlflowClient().get_run(res.mlflow_run_id).data.params["split"])
    assert split["by"] == "time" and split["test_from"].startswith("2025-07")
    assert all(r["cv_std"] == 0.0 for r in res.leaderboard)  # one validation split: no spread
    assert (Path(res.report).parent / "training_2026-05-01_residuals.png").exists()
    assert res.test_metrics["r2"] > 0.95
    assert res.leaderboard[0]["algorithm"] == "linear_regression"  # the target is linear
    out = score(spark, settings, pipe, DAY)
    row = spark.table(out.write.table).agg({"score": "avg"}).first()
    assert 200 < row[0] < 450


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"target": "gender", "features.categorical": ["Partner"], "model.task": "regression", "model.metric": "rmse",
          "model.algorithms": {"linear_regression": {}}},
         r"model\.task is regression but target 'gender' is string \(values like"),
        ({"target": "PhoneService", "features.categorical": ["Partner"], "positive_class": "Maybe"},
         r"target 'PhoneService' has no row equal to positive_class 'Maybe'"),
        ({"model.folds": 20, "model.test_fraction": 0.995}, r"only \d+ training rows for 20 folds"),
    ],
    ids=["regression-on-text", "absent-positive-class", "fewer-rows-than-folds"],
)
def test_bad_targets_register_nothing(spark, settings, telco, tmp_path, changes, expected):
    pipe = _pipeline(tmp_path, "badtarget", **{"tables.bronze": "zoo_bronze", **changes})
    with pytest.raises(InputDataError, match=expected):
        train(spark, settings, pipe, "x", DAY)
    assert not MlflowClient().search_registered_models(filter_string="name = 'badtarget'")


def test_constant_target_is_refused(spark, settings, tmp_path):
    csv = tmp_path / "const.csv"
    csv.write_text("id,x,y\n" + "".join(f"{i},{i},same\n" for i in range(20)))
    pipe = _task_pipeline(tmp_path, "const", csv, "y", None)
    ingest(spark, settings, pipe, "c0", DAY)
    with pytest.raises(InputDataError, match=r"target 'y' is constant \('same' in every row\); nothing to learn"):
        train(spark, settings, pipe, "c1", DAY)
