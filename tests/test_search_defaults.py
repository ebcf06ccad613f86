"""The default search space: gradient-boosted trees stop early on a held-out share of the rows they
are fitted on (lakeforge.training.early_stopping), the marking column is no input of the fitted
model, and only a zero-config search of a large table stops early by default.

A budget that cuts a search is tested elsewhere: tests/test_models.py
test_past_the_deadline_no_new_algorithm_starts (the search loop) and tests/test_training.py
test_time_budget_skips_the_remaining_candidates (a training registers the first algorithm's model).
"""

from __future__ import annotations

import numpy as np
import pytest

from lakeforge.training import evaluation
from lakeforge.training.algorithms import (
    EARLY_STOPPING_MIN_ROWS, XGBOOST_EARLY_STOPPING, Estimators, default_algorithms, sized_defaults, validate_grid,
)
from lakeforge.training.choose import leaderboard
from lakeforge.training.early_stopping import VALIDATION_COL, rounds_used, validation_rows
from lakeforge.training.search import Candidate, SearchSpec, search

N_ROWS = 400
MAX_ITER = 60
# big steps on a noisy target: the validation loss stops improving after a few rounds
POINT = {"maxIter": MAX_ITER, "maxDepth": 2, "stepSize": 0.3, "validationFraction": 0.25, "validationTol": 0.0}


@pytest.fixture(scope="module")
def noisy(spark):
    """(training rows, scoring rows with only the feature vector, vector size): a regression
    target of two features under noise."""
    from pyspark.ml.linalg import Vectors

    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (N_ROWS, 4))
    y = x[:, 0] + 0.5 * x[:, 1] ** 2 + rng.normal(0, 0.5, N_ROWS)
    rows = [(Vectors.dense(x[i]), float(y[i])) for i in range(N_ROWS)]
    train = spark.createDataFrame(rows, ["features", "label"]).cache()
    return train, train.select("features").limit(50).cache(), 4


@pytest.fixture(scope="module")
def early_stopped(noisy):
    """The GBT fitted as lakeforge's search fits it (its Estimators) at POINT."""
    train, _, size = noisy
    builder = Estimators("regression", None, 7, None, 0)
    est = builder.build("gbt", size)
    return est.fit(train, builder.param_map(est, POINT, size))


def test_early_stopping_stops_and_its_marking_is_no_model_input(noisy, early_stopped, tmp_path):
    from pyspark.ml import PipelineModel
    from pyspark.ml.regression import GBTRegressionModel

    from lakeforge.serving.scorer.pipeline import load_pipeline

    train, score, size = noisy
    share = train.where(validation_rows("features", "label", 0.25, 7)).count() / N_ROWS
    assert 0.18 < share < 0.32  # about the validation fraction, from the fitted rows themselves
    model = early_stopped
    assert isinstance(model, GBTRegressionModel)  # MLlib's own model, not the wrapper
    assert 2 <= rounds_used(model) == model.getNumTrees == len(model.treeWeights) < MAX_ITER
    assert model.getMaxIter() == MAX_ITER and model.numFeatures == size  # the marking is not a feature
    # it scores rows that hold only the feature vector, in Spark and in the numpy scorer of serving
    out = model.transform(score)
    assert VALIDATION_COL not in out.columns
    PipelineModel(stages=[model]).save(str(tmp_path / "gbt"))
    expected = out.toPandas()  # 50 rows
    ours = load_pipeline(tmp_path / "gbt").transform({"features": np.vstack([v.toArray() for v in expected["features"]])})
    assert np.abs(ours["prediction"] - expected["prediction"].to_numpy()).max() <= 1e-9


def test_the_search_records_the_rounds_each_fold_kept(noisy, early_stopped):
    train, _, size = noisy
    folds = [(train, train.limit(100), size)]  # the same training rows: the same marking, the same rounds
    gbt = Candidate("gbt", POINT)
    search(SearchSpec([gbt], folds, "regression", Estimators("regression", None, 7, None, 0),
                      lambda p: evaluation.evaluate("regression", p, "label")))
    assert gbt.status == "ok" and gbt.rounds == [early_stopped.getNumTrees]
    (row,) = leaderboard([gbt], [gbt], gbt, "regression", "rmse")
    assert row["rounds_used"] == gbt.rounds


def test_zero_config_boosting_stops_early_on_large_tables_only(spark):
    defaults = default_algorithms("binary")
    small = sized_defaults(defaults, "binary", EARLY_STOPPING_MIN_ROWS - 1)
    large = sized_defaults(defaults, "regression", EARLY_STOPPING_MIN_ROWS)
    assert small == defaults and small["xgboost"] == {"numRound": [100], "maxDepth": [3, 6], "eta": [0.1]}
    assert large["xgboost"] == XGBOOST_EARLY_STOPPING and large["xgboost"]["validationFraction"] == [0.1]
    assert {k: v for k, v in large.items() if k != "xgboost"} == {k: v for k, v in defaults.items() if k != "xgboost"}
    gbt = sized_defaults({"gbt": {"maxIter": [30]}}, "binary", EARLY_STOPPING_MIN_ROWS)["gbt"]
    assert gbt["validationFraction"] == [0.1] and gbt["maxIter"] == [200]
    multiclass = default_algorithms("multiclass")  # XGBoost's softmax stops early; a GBT is one-vs-rest: it cannot
    assert sized_defaults(multiclass, "multiclass", 10**6)["xgboost"] == XGBOOST_EARLY_STOPPING
    assert sized_defaults({"gbt": {"maxIter": [30]}}, "multiclass", 10**6) == {"gbt": {"maxIter": [30]}}
    with pytest.raises(ValueError, match=r"gbt.validationFraction: expected a share in \[0, 1\), got 1.0"):
        validate_grid("gbt", {"validationFraction": [1.0]})
    builder = Estimators("multiclass", None, 7, None, 3)
    est = builder.build("gbt", 4)
    with pytest.raises(ValueError, match="gbt.validationFraction: early stopping needs a binary or regression"):
        builder.param_map(est, {"validationFraction": 0.1}, 4)
