"""The metrics (one aggregation each) against MLlib's evaluators and hand counts, threshold
choice, every algorithm of the zoo fitting and scoring on a small frame, and (without Spark)
the choice of the winner and the search loop on fake candidates."""

import math

import pytest
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql.types import DoubleType, StructField, StructType

from lakeforge.core.config_model import ModelConfig
from lakeforge.core.errors import InputDataError
from lakeforge.core.frames import local_frame
from lakeforge.core.tasks import TASKS
from lakeforge.training import algorithms as models
from lakeforge.training import evaluation
from lakeforge.training.choose import choose_threshold, leaderboard, rank, refit_penalty, select
from lakeforge.training.search import Candidate, SearchSpec, halve, search


def _schema(*cols):
    """name -> double column, name:v -> vector column."""
    return StructType([StructField(c.split(":")[0], VectorUDT() if c.endswith(":v") else DoubleType()) for c in cols])


@pytest.fixture(scope="module")
def binary_preds(spark):
    # 400 rows: probability rises with the label, with overlap; prediction by 0.5
    rows = []
    for i in range(400):
        y = float(i % 3 == 0)
        p = min(0.98, max(0.02, (0.35 if y else 0.2) + ((i * 37) % 100) / 160))
        rows.append((y, Vectors.dense([1 - p, p]), Vectors.dense([-p, p]), float(p > 0.5)))
    return spark.createDataFrame(rows, _schema("label", "probability:v", "rawPrediction:v", "prediction"))


def test_binary_metrics_match_mllib_and_hand_counts(binary_preds):
    ev = evaluation.evaluate_binary(binary_preds)
    mllib = BinaryClassificationEvaluator(rawPredictionCol="probability")
    assert ev.metrics["roc_auc"] == pytest.approx(mllib.setMetricName("areaUnderROC").evaluate(binary_preds), abs=2e-3)
    assert ev.metrics["pr_auc"] == pytest.approx(mllib.setMetricName("areaUnderPR").evaluate(binary_preds), abs=1e-2)
    rows = binary_preds.collect()
    tp = sum(r.label == 1 and r.prediction == 1 for r in rows)
    fp = sum(r.label == 0 and r.prediction == 1 for r in rows)
    fn = sum(r.label == 1 and r.prediction == 0 for r in rows)
    assert ev.confusion[1][1] == tp and ev.confusion[0][1] == fp and ev.confusion[1][0] == fn
    assert ev.metrics["precision"] == pytest.approx(tp / (tp + fp))
    assert ev.metrics["recall"] == pytest.approx(tp / (tp + fn))
    ll = -sum(r.label * math.log(r.probability[1]) + (1 - r.label) * math.log(1 - r.probability[1]) for r in rows) / len(rows)
    assert ev.metrics["log_loss"] == pytest.approx(ll)


def test_threshold_strategies(binary_preds):
    ev = evaluation.evaluate_binary(binary_preds)
    rows = binary_preds.collect()

    def f1_at(t):
        tp = sum(r.label == 1 and r.probability[1] > t for r in rows)
        fp = sum(r.label == 0 and r.probability[1] > t for r in rows)
        fn = sum(r.label == 1 and r.probability[1] <= t for r in rows)
        return 2 * tp / (2 * tp + fp + fn)

    chosen = ev.choose_threshold("max_f1")
    # the best over every distinct score (predicting positive from that score up)
    best_possible = max(f1_at(p - 1e-9) for p in {r.probability[1] for r in rows})
    assert f1_at(chosen) == pytest.approx(best_possible, abs=1e-9)
    t = ev.choose_threshold("precision", 0.6)
    predicted = [r for r in rows if r.probability[1] > t]
    assert sum(r.label for r in predicted) / len(predicted) >= 0.6
    t = ev.choose_threshold("recall", 0.9)
    assert sum(r.label == 1 and r.probability[1] > t for r in rows) / sum(r.label for r in rows) >= 0.9


def test_multiclass_metrics_from_the_confusion_matrix(spark):
    # actual x predicted: [[3, 1, 0], [0, 2, 2], [1, 0, 1]]
    pairs = [(0, 0)] * 3 + [(0, 1)] + [(1, 1)] * 2 + [(1, 2)] * 2 + [(2, 0)] + [(2, 2)]
    df = spark.createDataFrame([(float(y), float(p), Vectors.dense([0.8 if i == p else 0.1 for i in range(3)]))
                                for y, p in pairs], _schema("label", "prediction", "probability:v"))
    ev = evaluation.evaluate_multiclass(df, "label", ["a", "b", "c"])
    assert ev.confusion == [[3, 1, 0], [0, 2, 2], [1, 0, 1]]
    assert ev.metrics["accuracy"] == pytest.approx(6 / 10)
    f1 = [2 * 3 / (4 + 4), 2 * 2 / (3 + 4), 2 * 1 / (3 + 2)]
    assert ev.metrics["f1_macro"] == pytest.approx(sum(f1) / 3)
    assert ev.metrics["f1[b]"] == pytest.approx(f1[1])
    assert ev.metrics["log_loss"] == pytest.approx(-(6 * math.log(0.8) + 4 * math.log(0.1)) / 10)


def test_regression_metrics(spark):
    data = [(3.0, 2.5), (-1.0, 0.0), (2.0, 2.0), (7.0, 8.0)]
    ev = evaluation.evaluate_regression(local_frame(spark, data, "label double, prediction double"))
    errs = [p - y for y, p in data]
    mean = sum(y for y, _ in data) / 4
    assert ev.metrics["rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errs) / 4))
    assert ev.metrics["mae"] == pytest.approx(sum(abs(e) for e in errs) / 4)
    assert ev.metrics["r2"] == pytest.approx(1 - sum(e * e for e in errs) / sum((y - mean) ** 2 for y, _ in data))
    assert ev.metrics["mape"] == pytest.approx((0.5 / 3 + 1 + 0 + 1 / 7) / 4)


@pytest.fixture(scope="module")
def tiny(spark):
    """120 rows, 3 features, a 3-class label, a binary label and a numeric target."""
    rows = []
    for i in range(120):
        x = [((i * 7) % 11) / 10, ((i * 5) % 13) / 12, (i % 4) / 3]
        cls = float(min(2, int(x[0] * 2 + x[2])))
        rows.append((Vectors.dense(x), cls, float(cls > 0), 2 * x[0] - x[1] + 0.1 * (i % 3)))
    return spark.createDataFrame(rows, _schema("features:v", "cls", "bin", "y")).cache()


@pytest.mark.parametrize("task", TASKS)
def test_every_algorithm_fits_and_is_evaluated(tiny, task):
    label = {"binary": "bin", "multiclass": "cls", "regression": "y"}[task]
    classes = {"binary": 2, "multiclass": 3, "regression": 0}[task]
    df = tiny.withColumnRenamed(label, "label")
    names = [n for n, a in models.ALGORITHMS.items() if task in a.tasks]
    assert len(names) >= 6
    for name in names:
        estimators = models.Estimators(task, weight=None, seed=1, max_iter=20, num_classes=classes)
        est = estimators.build(name, num_features=3)
        point = {k: v[0] for k, v in models.ALGORITHMS[name].grid_for(task).items()}
        pm = estimators.param_map(est, point, 3)
        if "maxIter" in point or name in ("gbt", "factorization_machines"):
            pm[models.inner(est).getParam("maxIter")] = 5
        ev = evaluation.evaluate(task, est.fit(df, pm).transform(df), "label", ["a", "b", "c"][:classes])
        primary = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}[task]
        assert not math.isnan(ev.metrics[primary]), (name, ev.metrics)
        if task != "regression":
            assert ev.metrics["accuracy"] > 0.4, (name, ev.metrics)


def test_grid_points_are_the_cartesian_product():
    assert models.grid_points({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    assert models.grid_points({}) == [{}]


def test_default_algorithms_per_task():
    assert set(models.default_algorithms("binary")) == {"logistic_regression", "random_forest", "xgboost"}
    assert set(models.default_algorithms("regression")) == {"linear_regression", "random_forest", "xgboost"}
    assert set(models.default_algorithms("multiclass")) == {"logistic_regression", "random_forest", "xgboost"}


# ---------------------------------------------------------------------------------------------
# Choosing the winner (lakeforge.training.choose) and the search loop (lakeforge.training.search)
# on fake candidates: no Spark fit.
# ---------------------------------------------------------------------------------------------

def _scored(algorithm: str, scores: list[float], metric: str = "roc_auc", status: str = "ok", **params) -> Candidate:
    c = Candidate(algorithm, params, status=status)
    c.fold_metrics = [{metric: v} for v in scores]
    return c


def test_rank_puts_the_best_mean_first_and_candidates_without_a_mean_last():
    lr, rf = _scored("logistic_regression", [0.75, 0.875]), _scored("random_forest", [0.875, 1.0])
    nan, failed = _scored("gbt", [float("nan")]), _scored("decision_tree", [], status="failed: boom")
    assert rank([lr, failed, rf], "binary", "roc_auc") == [rf, lr]
    assert rank([nan, lr], "binary", "roc_auc") == [lr, nan]
    assert rank([lr, nan, rf], "binary", "roc_auc") == [rf, lr, nan]  # a NaN mean does not disturb the others' order
    low, high = _scored("linear_regression", [2.0], "rmse"), _scored("random_forest", [1.5], "rmse")
    assert rank([low, high], "regression", "rmse") == [high, low]  # lower is better
    with pytest.raises(InputDataError, match=r"^no candidate finished \(decision_tree \{\}: failed: boom\); "
                                             r"nothing was registered$"):
        rank([failed], "binary", "roc_auc")


def test_best_mean_picks_the_top_candidate():
    rf, lr = _scored("random_forest", [0.75, 0.875]), _scored("logistic_regression", [0.75, 0.8125])
    assert select([rf, lr], "binary", "roc_auc", "best_mean", 2) == (rf, "best CV roc_auc")
    # one validation split (n_folds 1): no standard error, the best mean too
    assert select([rf, lr], "binary", "roc_auc", "one_standard_error", 1) == (rf, "best CV roc_auc")


def test_one_standard_error_picks_the_simplest_algorithm_within_one_standard_error():
    # the best: mean 0.8125, std 0.0625, so one standard error is 0.0625 / sqrt(2) = 0.0442
    rf = _scored("random_forest", [0.75, 0.875], maxDepth=5)
    lr_worse, lr = _scored("logistic_regression", [0.75, 0.75], regParam=0.1), _scored("logistic_regression", [0.75, 0.8125], regParam=0.01)
    nb = _scored("naive_bayes", [0.75, 0.8125])
    chosen, why = select([rf, lr, nb, lr_worse], "binary", "roc_auc", "one_standard_error", 2)
    assert chosen is lr  # linear (complexity 0) beats naive Bayes (1); lr_worse is outside (0.75 < 0.7683)
    assert why == ("one-standard-error rule: CV roc_auc 0.7812 is within 0.0442 of the best "
                   "(random_forest {\"maxDepth\": 5} 0.8125), with a simpler algorithm")
    # nothing simpler within one standard error: the best stays
    assert select([rf, lr_worse], "binary", "roc_auc", "one_standard_error", 2) == (rf, "best CV roc_auc")
    # lower is better: within one standard error ABOVE the best
    best = _scored("random_forest", [1.75, 2.25], "rmse")  # mean 2.0, std 0.25: se 0.1768
    linear = _scored("linear_regression", [2.0, 2.25], "rmse")  # mean 2.125
    chosen, why = select([best, linear], "regression", "rmse", "one_standard_error", 2)
    assert chosen is linear and why.startswith("one-standard-error rule: CV rmse 2.1250 is within 0.1768 of the best")


def test_refit_penalty_scales_regparam_by_the_fold_share():
    assert refit_penalty({"regParam": 0.01, "elasticNetParam": 0.5}, "cross_validation", 3, 0.75) == \
        pytest.approx({"regParam": 0.01 * 2 / 3, "elasticNetParam": 0.5})
    assert refit_penalty({"regParam": 0.01}, "train_validation_split", 1, 0.8) == pytest.approx({"regParam": 0.008})
    assert refit_penalty({"regParam": 0.0}, "cross_validation", 3, 0.75) == {"regParam": 0.0}
    assert refit_penalty({"maxDepth": 5}, "cross_validation", 3, 0.75) == {"maxDepth": 5}


def test_a_fixed_threshold_is_the_configured_value():
    cfg = ModelConfig(registered_name="m", threshold={"strategy": "fixed", "value": 0.3})
    assert choose_threshold(_scored("logistic_regression", [0.75]), cfg) == 0.3


def test_leaderboard_rows_ranked_first_then_the_rest():
    rf, lr = _scored("random_forest", [0.75, 0.875], maxDepth=5), _scored("logistic_regression", [0.75, 0.75])
    skipped = Candidate("gbt", {}, status="skipped: time budget (model.max_minutes) reached")
    rf.fit_seconds, lr.fit_seconds = 1.23456, 0.5
    rows = leaderboard([skipped, lr, rf], [rf, lr], rf, "binary", "roc_auc")
    assert [(r["rank"], r["algorithm"], r["params"], r["is_best"], r["fit_seconds"]) for r in rows] == [
        (1, "random_forest", '{"maxDepth": 5}', True, 1.235), (2, "logistic_regression", "{}", False, 0.5),
        (None, "gbt", "{}", False, 0.0)]
    assert (rows[0]["cv_mean"], rows[0]["cv_std"], rows[0]["cv_roc_auc_mean"], rows[0]["cv_roc_auc_std"]) == \
        (0.8125, 0.0625, 0.8125, 0.0625)
    assert math.isnan(rows[0]["cv_pr_auc_mean"])  # a metric the folds did not report
    assert rows[2]["cv_mean"] is None and rows[2]["cv_roc_auc_mean"] is None and rows[2]["status"].startswith("skipped")


def test_halving_rule_keeps_the_best_third_and_each_algorithms_best():
    from types import SimpleNamespace

    cands = [Candidate("linear_regression", {"regParam": r}) for r in (0.01, 0.1, 1.0)] + \
            [Candidate("random_forest", {"maxDepth": d}) for d in (4, 8, 12)] + [Candidate("gbt", {"maxDepth": 3})]
    rmse = [2.0, 2.5, 3.0, 1.2, 1.0, 1.1, float("nan")]  # lower is better
    first = {ci: (SimpleNamespace(metrics={"rmse": v}), "ok", 1.0) for ci, v in enumerate(rmse)}
    first[2] = (None, "failed: singular matrix", 0.1)
    keep, why = halve(cands, first, "regression", "rmse")
    # 5 finished with a score: the best third is 2 (depths 8, 12); linear's best (0.01) goes on too
    assert keep == [0, 4, 5]
    assert why[1] == ("pruned after fold 1 (successive halving): rmse 2.5000; the best third scored at most 1.1000 "
                      "and the best linear_regression 2.0000")
    assert why[3].startswith("pruned after fold 1 (successive halving): rmse 1.2000")
    assert why[6] == "pruned after fold 1 (successive halving): no rmse"
    assert 2 not in why  # a failed fit keeps its own reason


class _Clock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class _FakeEstimators:
    """Estimators without Spark: a fit takes ``secs`` on the clock and its model scores the
    candidate's ``q`` plus the validation fold's offset; naive Bayes always fails."""

    def __init__(self, clock: _Clock, secs: float = 0.5):
        self.clock, self.secs, self.fits = clock, secs, []

    def build(self, algorithm, num_features):
        return _FakeEstimator(self, algorithm)

    def param_map(self, estimator, params, num_features):
        return dict(params)


class _FakeEstimator:
    def __init__(self, fakes: _FakeEstimators, algorithm: str):
        self.fakes, self.algorithm = fakes, algorithm

    def fit(self, train, params):
        self.fakes.fits.append((self.algorithm, params["q"], train))
        if self.algorithm == "naive_bayes":
            raise ValueError("requires nonnegative feature values\n\tat org.apache.spark...")
        self.fakes.clock.now += self.fakes.secs
        return _FakeModel(params["q"])


class _FakeModel:
    def __init__(self, q: float):
        self.q = q

    def transform(self, offset: float) -> float:
        return self.q + offset


FOLDS = [("train 0", 0.0, 3), ("train 1", 0.125, 3), ("train 2", -0.125, 3)]  # (training, validation offset, size)


def _spec(cands, lines, clock, fakes, folds=FOLDS, **changes) -> SearchSpec:
    def evaluate(score):
        return evaluation.Evaluation("binary", {"roc_auc": score}, bins=[(0.5, score, 1 - score)])

    return SearchSpec(cands, folds, "binary", fakes, evaluate, say=lines.append, clock=clock, **changes)


def test_search_fits_every_candidate_on_every_fold_in_fold_order(monkeypatch):
    import lakeforge.training.search

    clock, lines = _Clock(), []
    fakes = _FakeEstimators(clock)
    lr, rf = Candidate("logistic_regression", {"q": 0.5}), Candidate("random_forest", {"q": 0.75})
    search(_spec([lr, rf], lines, clock, fakes))
    assert fakes.fits == [("logistic_regression", 0.5, "train 0"), ("random_forest", 0.75, "train 0"),
                          ("logistic_regression", 0.5, "train 1"), ("random_forest", 0.75, "train 1"),
                          ("logistic_regression", 0.5, "train 2"), ("random_forest", 0.75, "train 2")]
    assert lr.fold_metrics == [{"roc_auc": 0.5}, {"roc_auc": 0.625}, {"roc_auc": 0.375}]
    assert rf.fold_metrics == [{"roc_auc": 0.75}, {"roc_auc": 0.875}, {"roc_auc": 0.625}]
    assert (lr.mean("roc_auc"), rf.mean("roc_auc")) == (0.5, 0.75)
    assert (lr.status, lr.fit_seconds, rf.status, rf.fit_seconds) == ("ok", 1.5, "ok", 1.5)  # 3 fits of 0.5 s
    assert [e.bins for e in rf.fold_evals] == [[(0.5, 0.75, 0.25)], [(0.5, 0.875, 0.125)], [(0.5, 0.625, 0.375)]]
    assert lines == ["fold 1/3: 2 candidate(s) done, 1.0 s into the search",
                     "fold 2/3: 2 candidate(s) done, 2.0 s into the search",
                     "fold 3/3: 2 candidate(s) done, 3.0 s into the search"]
    # a long search: a line per finished fit once nothing was said for PROGRESS_SECONDS
    monkeypatch.setattr(lakeforge.training.search, "PROGRESS_SECONDS", 0)
    lines.clear()
    search(_spec([Candidate("logistic_regression", {"q": 0.5}), Candidate("random_forest", {"q": 0.75})],
                 lines, clock, _FakeEstimators(clock), folds=FOLDS[:1]))
    assert lines == ['1/2 fits done (logistic_regression {"q": 0.5} on fold 1: 0.5 s), 0 s into the search',
                     "fold 1/1: 2 candidate(s) done, 1.0 s into the search"]


def test_a_failed_fit_is_not_retried_on_the_other_folds():
    clock, lines = _Clock(), []
    fakes = _FakeEstimators(clock)
    nb, lr = Candidate("naive_bayes", {"q": 0.75}), Candidate("logistic_regression", {"q": 0.5})
    search(_spec([nb, lr], lines, clock, fakes, folds=FOLDS[:2]))
    assert [f[:2] for f in fakes.fits] == [("naive_bayes", 0.75), ("logistic_regression", 0.5), ("logistic_regression", 0.5)]
    assert (nb.status, nb.fold_metrics, nb.fit_seconds) == ("failed: requires nonnegative feature values", [], 0.0)
    assert (lr.status, lr.fold_metrics, lr.fit_seconds) == ("ok", [{"roc_auc": 0.5}, {"roc_auc": 0.625}], 1.0)


def test_past_the_deadline_no_new_algorithm_starts():
    clock, lines = _Clock(), []
    fakes = _FakeEstimators(clock)
    cands = [Candidate("logistic_regression", {"q": 0.5}), Candidate("random_forest", {"q": 0.75}),
             Candidate("gbt", {"q": 0.875})]
    # the first fit ends past the deadline: the first algorithm goes on, the others never start
    search(_spec(cands, lines, clock, fakes, folds=FOLDS[:2], deadline=100.25))
    lr, rf, gbt = cands
    assert [f[:2] for f in fakes.fits] == [("logistic_regression", 0.5)] * 2
    assert (lr.status, lr.fold_metrics, lr.fit_seconds) == ("ok", [{"roc_auc": 0.5}, {"roc_auc": 0.625}], 1.0)
    assert rf.status == gbt.status == "skipped: time budget (model.max_minutes) reached"
    assert (rf.fold_metrics, rf.fit_seconds) == ([], 0.0)
    assert lines == ["time budget reached: random_forest skipped", "time budget reached: gbt skipped"]


def test_successive_halving_fits_only_the_kept_candidates_on_the_other_folds():
    clock, lines = _Clock(), []
    fakes = _FakeEstimators(clock)
    cands = [Candidate("logistic_regression", {"q": q}) for q in (0.5, 0.625, 0.25)] + \
            [Candidate("decision_tree", {"q": q}) for q in (0.75, 0.375, 0.125)]
    search(_spec(cands, lines, clock, fakes, halving_metric="roc_auc"))
    # fold 1 scores are the q values: the best third is decision tree 0.75 and logistic
    # regression 0.625, each also its algorithm's best
    assert [f[:3] for f in fakes.fits[6:]] == [("logistic_regression", 0.625, "train 1"), ("decision_tree", 0.75, "train 1"),
                                               ("logistic_regression", 0.625, "train 2"), ("decision_tree", 0.75, "train 2")]
    assert [c.status for c in cands] == [
        "pruned after fold 1 (successive halving): roc_auc 0.5000; the best third scored at least 0.6250 and the best "
        "logistic_regression 0.6250", "ok",
        "pruned after fold 1 (successive halving): roc_auc 0.2500; the best third scored at least 0.6250 and the best "
        "logistic_regression 0.6250", "ok",
        "pruned after fold 1 (successive halving): roc_auc 0.3750; the best third scored at least 0.6250 and the best "
        "decision_tree 0.7500",
        "pruned after fold 1 (successive halving): roc_auc 0.1250; the best third scored at least 0.6250 and the best "
        "decision_tree 0.7500"]
    assert cands[1].fold_metrics == [{"roc_auc": 0.625}, {"roc_auc": 0.75}, {"roc_auc": 0.5}]
    assert (cands[0].fold_metrics, cands[0].fit_seconds, cands[1].fit_seconds) == ([{"roc_auc": 0.5}], 0.5, 1.5)
    assert lines == ["fold 1/3: 6 candidate(s) done, 3.0 s into the search",
                     "halving: 2 of 6 candidate(s) go on to the other folds",
                     "fold 2/3: 2 candidate(s) done, 4.0 s into the search",
                     "fold 3/3: 2 candidate(s) done, 5.0 s into the search"]
