"""The numpy scorer's model stages against Spark 4.1 itself: every model lakeforge's zoo can fit
(built by lakeforge's own Estimators, with the grid parameters it searches, the decision threshold
stored by choose.set_threshold, OneVsRest for the binary-only ones on three classes, IndexToString
for multiclass) is saved by Spark as a PipelineModel, loaded with load_pipeline, and must give every
output column on every row as Spark does: |delta| <= 1e-9 (relative to the value once it is beyond
1, for raw margins of rows a million units outside the training range) and identical predictions.
"""

from __future__ import annotations

import numpy as np
import pytest

from lakeforge.core.frames import local_frame
from lakeforge.serving.scorer.base import load_stage
from lakeforge.serving.scorer.pipeline import _import_stage_modules, load_pipeline
from lakeforge.training.algorithms import Estimators, inner
from lakeforge.training.choose import set_threshold

N_TRAIN = 240
THRESHOLD = 0.35  # the stored decision threshold of the binary classifiers
TOL = 1e-9


def _raw_rows(seed: int = 11) -> list[tuple]:
    """(row_id, x1..x4, cat, b, m, y): training rows, then scoring-only rows far outside the
    training range, zeros, subnormals, an unseen category and NaN (the last two rows)."""
    rng = np.random.default_rng(seed)
    cats = np.array(["a", "b", "c"])[rng.integers(0, 3, N_TRAIN)]
    x = rng.normal(0, 1, (N_TRAIN, 4))
    x[:, 3] = rng.exponential(2.0, N_TRAIN)
    b = (x[:, 0] + x[:, 1] + (cats == "a") + rng.normal(0, 0.5, N_TRAIN) > 0.4).astype(float)
    m = np.where(x[:, 2] + (cats == "b") > 0.8, 2.0, np.where(x[:, 0] - 0.5 * x[:, 3] > -0.7, 1.0, 0.0))
    y = np.exp(0.3 * x[:, 0] + 0.2 * x[:, 1] + 0.5 + 0.3 * (cats == "c")) + rng.exponential(0.2, N_TRAIN)
    rows = [(i, *map(float, x[i]), str(cats[i]), float(b[i]), float(m[i]), float(y[i])) for i in range(N_TRAIN)]
    extreme = [
        (1e6, -1e6, 1e6, 1e6, "a"), (-1e6, 1e6, -1e6, 0.0, "b"), (1e3, 1e3, 1e3, 1e3, "c"),
        (-50.0, -50.0, -50.0, 0.0, "a"), (0.0, 0.0, 0.0, 0.0, "b"), (1e-300, -1e-300, 0.0, 5e-324, "c"),
        (3.0, -3.0, 2.5, 12.0, "zzz"), (float("nan"), 0.5, 0.5, 1.0, "a"), (0.2, float("nan"), -0.3, 2.0, "c"),
    ]
    return rows + [(N_TRAIN + i, *r, None, None, None) for i, r in enumerate(extreme)]


N_FINITE = N_TRAIN + 7  # rows before the two with NaN


@pytest.fixture(scope="module")
def frames(spark):
    """(training frame, scoring frame, vector size): ``features`` assembled as lakeforge does
    (one-hot categories carry Spark's binary attributes, so trees make categorical splits)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler

    schema = "row_id int, x1 double, x2 double, x3 double, x4 double, cat string, b double, m double, y double"
    raw = local_frame(spark, _raw_rows(), schema)
    raw_train = raw.where(f"row_id < {N_TRAIN}")
    prep = Pipeline(stages=[
        StringIndexer(inputCol="cat", outputCol="cat_idx", handleInvalid="keep"),
        OneHotEncoder(inputCol="cat_idx", outputCol="cat_vec", handleInvalid="keep"),
        VectorAssembler(inputCols=["x1", "x2", "x3", "x4", "cat_vec"], outputCol="features", handleInvalid="keep"),
    ]).fit(raw_train)
    tr = prep.transform(raw_train).select("features", "b", "m", "y").cache()
    sc = prep.transform(raw).select("row_id", "features").cache()
    return tr, sc, tr.first()["features"].size


def _nonneg(df, binary: bool):
    """The same frame with features |x| (or x > 0.5 as 0/1), for multinomial/complement/bernoulli NB."""
    from pyspark.ml.functions import array_to_vector, vector_to_array
    from pyspark.sql import functions as F

    arr = vector_to_array("features")
    fn = (lambda v: F.when(v > 0.5, 1.0).otherwise(0.0)) if binary else (lambda v: F.when(F.isnan(v), 0.0).otherwise(F.abs(v)))
    return df.withColumn("features", array_to_vector(F.transform(arr, fn)))


# (id, task, algorithm, grid point, feature variant)
CASES = [
    ("lr-binary", "binary", "logistic_regression", {"regParam": 0.01, "elasticNetParam": 0.0}, None),
    ("lr-binary-nointercept", "binary", "logistic_regression", {"regParam": 0.001, "fitIntercept": False}, None),
    ("lr-multinomial", "multiclass", "logistic_regression", {"regParam": 0.01}, None),
    ("dt-binary", "binary", "decision_tree", {"maxDepth": 5}, None),
    ("dt-multiclass", "multiclass", "decision_tree", {"maxDepth": 4, "impurity": "entropy"}, None),
    ("dt-regression", "regression", "decision_tree", {"maxDepth": 5}, None),
    ("rf-binary", "binary", "random_forest", {"numTrees": 6, "maxDepth": 5}, None),
    ("rf-multiclass", "multiclass", "random_forest", {"numTrees": 5, "maxDepth": 4}, None),
    ("rf-regression", "regression", "random_forest", {"numTrees": 5, "maxDepth": 4}, None),
    ("gbt-binary", "binary", "gbt", {"maxIter": 6, "maxDepth": 3, "stepSize": 0.1}, None),
    ("gbt-regression", "regression", "gbt", {"maxIter": 6, "maxDepth": 3}, None),
    ("gbt-ovr", "multiclass", "gbt", {"maxIter": 3, "maxDepth": 2}, None),
    ("xgb-binary", "binary", "xgboost", {"numRound": 12, "maxDepth": 3, "eta": 0.3}, None),
    ("xgb-regression", "regression", "xgboost", {"numRound": 12, "maxDepth": 4, "eta": 0.3}, None),
    ("xgb-multiclass", "multiclass", "xgboost", {"numRound": 10, "maxDepth": 3, "eta": 0.3}, None),
    ("xgb-early-stopping", "binary", "xgboost", {"numRound": 200, "maxDepth": 6, "eta": 0.5,
                                                 "validationFraction": 0.25, "earlyStoppingRounds": 3}, None),
    ("svc-binary", "binary", "linear_svc", {"regParam": 0.01, "maxIter": 10}, None),
    ("svc-ovr", "multiclass", "linear_svc", {"regParam": 0.1, "maxIter": 5}, None),
    ("nb-gaussian", "binary", "naive_bayes", {"modelType": "gaussian"}, None),
    ("nb-multinomial", "multiclass", "naive_bayes", {"modelType": "multinomial", "smoothing": 0.5}, "nonneg"),
    ("nb-complement", "multiclass", "naive_bayes", {"modelType": "complement"}, "nonneg"),
    ("nb-bernoulli", "binary", "naive_bayes", {"modelType": "bernoulli"}, "binary"),
    ("mlp-binary", "binary", "multilayer_perceptron", {"hiddenLayers": [5], "maxIter": 30}, None),
    ("mlp-multiclass", "multiclass", "multilayer_perceptron", {"hiddenLayers": [6, 4], "maxIter": 30}, None),
    ("fm-binary", "binary", "factorization_machines", {"factorSize": 3, "maxIter": 10}, None),
    ("fm-regression", "regression", "factorization_machines", {"factorSize": 3, "maxIter": 10}, None),
    ("fm-ovr", "multiclass", "factorization_machines", {"factorSize": 2, "maxIter": 5}, None),
    ("linear-elastic", "regression", "linear_regression", {"regParam": 0.01, "elasticNetParam": 0.5}, None),
    ("glm-gaussian", "regression", "generalized_linear", {"family": "gaussian", "regParam": 0.01}, None),
    ("glm-poisson", "regression", "generalized_linear", {"family": "poisson"}, None),
    ("glm-poisson-sqrt", "regression", "generalized_linear", {"family": "poisson", "link": "sqrt"}, None),
    ("glm-gamma", "regression", "generalized_linear", {"family": "gamma"}, None),
    ("glm-tweedie", "regression", "generalized_linear", {"family": "tweedie"}, None),
    ("glm-tweedie-1.5", "regression", "generalized_linear", {"family": "tweedie"}, None),
]
LABEL = {"binary": "b", "multiclass": "m", "regression": "y"}
# output column params set on the fitted model (Spark then computes the prediction from the
# probability, or from the features, instead of from the raw prediction)
COLUMNS = {
    "gbt-binary": {"rawPredictionCol": "", "probabilityCol": "p_out"},
    "lr-binary-nointercept": {"rawPredictionCol": "margins", "probabilityCol": "", "predictionCol": "label_out"},
    "nb-gaussian": {"rawPredictionCol": "", "probabilityCol": ""},
    "rf-regression": {"predictionCol": "y_hat"},
    "xgb-binary": {"rawPredictionCol": "margins_out"},
}
CLASS_NAMES = ["low", "mid", "high"]


def _fit(spark, frames, tmp_path, case):
    """Fit the case as lakeforge's training does and save it as a PipelineModel (model, and
    IndexToString for multiclass). Returns the path, Spark's model outputs on every scoring row
    and, for multiclass, the whole pipeline's outputs on the rows without NaN (a OneVsRest
    prediction of -1 makes Spark's IndexToString fail, as ours does)."""
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import IndexToString

    _, task, algorithm, point, variant = case
    train, score, size = frames
    if variant:
        train, score = _nonneg(train, variant == "binary"), _nonneg(score, variant == "binary")
    builder = Estimators(task, None, 7, None, {"multiclass": 3, "binary": 2}.get(task, 0), label=LABEL[task])
    est = builder.build(algorithm, size)
    params = builder.param_map(est, point, size)
    if case[0] == "glm-tweedie-1.5":  # lakeforge's grid leaves variancePower at 0 (gaussian)
        params[inner(est).getParam("variancePower")] = 1.5
    fitted = est.fit(train, params)
    if task == "binary":
        set_threshold(fitted, THRESHOLD)
    for name, value in COLUMNS.get(case[0], {}).items():
        fitted.set(fitted.getParam(name), value)
    stages = [fitted]
    if task == "multiclass":
        stages.append(IndexToString(inputCol="prediction", outputCol="predicted_class", labels=CLASS_NAMES))
    path = tmp_path / case[0]
    model = PipelineModel(stages=stages)
    model.save(str(path))
    model_out = fitted.transform(score).toPandas().sort_values("row_id")  # a few hundred rows
    full_out = None
    if task == "multiclass":
        full_out = model.transform(score.where(f"row_id < {N_FINITE}")).toPandas().sort_values("row_id")
    return path, model_out, full_out


def _matrix(series) -> np.ndarray:
    return np.vstack([v.toArray() for v in series])


def _close(ours: np.ndarray, spark_values: np.ndarray, what: str) -> None:
    assert ours.shape == spark_values.shape, what
    both_nan = np.isnan(ours) & np.isnan(spark_values)
    delta = np.where(both_nan, 0.0, np.abs(ours - spark_values))
    limit = TOL * np.maximum(1.0, np.abs(np.nan_to_num(spark_values)))
    worst = int(np.argmax(delta - limit))
    assert (delta <= limit).all(), f"{what}: value {worst} (flat) is {ours.flat[worst]!r}, Spark {spark_values.flat[worst]!r}"


def _model_stage(path):
    """The saved model stage itself (the first stage of the saved PipelineModel)."""
    _import_stage_modules()  # (load_pipeline does it; a case run alone has not called it yet)
    return load_stage(next(p for p in (path / "stages").iterdir() if int(p.name.split("_", 1)[0]) == 0))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_model_matches_spark(spark, frames, tmp_path_factory, case):
    path, expected, full = _fit(spark, frames, tmp_path_factory.mktemp("models"), case)
    scorer = load_pipeline(path) if full is None else _model_stage(path)
    ours = scorer.transform({"features": _matrix(expected["features"])})
    assert set(ours) == set(expected.columns) - {"row_id"}, case[0]
    cols = {"predictionCol": "prediction", "rawPredictionCol": "rawPrediction", "probabilityCol": "probability",
            **COLUMNS.get(case[0], {})}
    spark_prediction = expected[cols["predictionCol"]].to_numpy(dtype=np.float64)
    if case[1] == "regression":
        _close(ours[cols["predictionCol"]], spark_prediction, f"{case[0]} prediction")
    else:
        assert np.array_equal(ours[cols["predictionCol"]], spark_prediction), case[0]
    for col in (cols["rawPredictionCol"], cols["probabilityCol"]):
        if col in expected:
            _close(ours[col], _matrix(expected[col]), f"{case[0]} {col}")
    if full is not None:  # the whole saved pipeline through load_pipeline: model + IndexToString
        pipe = load_pipeline(path)
        mine = pipe.transform({"features": _matrix(full["features"])})
        assert list(mine["predicted_class"]) == list(full["predicted_class"]), case[0]


def test_index_to_string_refuses_an_index_outside_its_labels():
    """As Spark's IndexToString does (a OneVsRest row of NaN margins predicts -1)."""
    from lakeforge.serving.scorer.meta_models import IndexToStringStage

    stage = IndexToStringStage({"paramMap": {"inputCol": "prediction", "outputCol": "cls", "labels": CLASS_NAMES}})
    out = stage.transform({"prediction": np.array([2.0, 0.0, 1.0])})
    assert list(out["cls"]) == ["high", "low", "mid"]
    with pytest.raises(ValueError, match="unseen index -1.0"):
        stage.transform({"prediction": np.array([1.0, -1.0])})
