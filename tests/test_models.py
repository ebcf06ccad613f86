"""The metrics (one aggregation each) against MLlib's evaluators and hand counts, threshold
choice, and every algorithm of the zoo fitting and scoring on a small frame."""

import math

import pytest
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql.types import DoubleType, StructField, StructType

from lakeforge.training import evaluation
from lakeforge.training import algorithms as models


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
    ev = evaluation.evaluate_regression(spark.createDataFrame(data, "label double, prediction double"))
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


@pytest.mark.parametrize("task", models.TASKS)
def test_every_algorithm_fits_and_is_evaluated(tiny, task):
    label = {"binary": "bin", "multiclass": "cls", "regression": "y"}[task]
    classes = {"binary": 2, "multiclass": 3, "regression": 0}[task]
    df = tiny.withColumnRenamed(label, "label")
    names = [n for n, a in models.ALGORITHMS.items() if task in a.tasks]
    assert len(names) >= 6
    for name in names:
        est = models.build(name, task, features="features", label="label", weight=None, seed=1,
                           num_features=3, num_classes=classes, max_iter=20)
        point = {k: v[0] for k, v in models.ALGORITHMS[name].grid_for(task).items()}
        pm = models.param_map(est, point, 3, classes)
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
    assert set(models.default_algorithms("binary")) == {"logistic_regression", "random_forest", "gbt"}
    assert "linear_regression" in models.default_algorithms("regression")
    assert "gbt" not in models.default_algorithms("multiclass")  # one-vs-rest GBT is slow
