"""lakeforge's XGBoost stage (lakeforge.training.xgboost) on Spark 4.1: what it adds around
XGBoost4J-Spark 3.1.1 holds. The numpy scorer's parity with it is in tests/test_scorer_models.py."""

from __future__ import annotations

import numpy as np
import pytest

from lakeforge.training.algorithms import Estimators
from lakeforge.training.early_stopping import rounds_used

N = 400


@pytest.fixture(scope="module")
def rows(spark):
    """Features as Spark's sparse vectors (most slots zero, as one-hot columns are) and the same
    rows as dense vectors; binary label b, numeric label y."""
    from pyspark.ml.linalg import Vectors

    rng = np.random.default_rng(3)
    x = np.zeros((N, 6))
    x[:, 0] = rng.normal(size=N)
    x[np.arange(N), 1 + rng.integers(0, 5, N)] = 1.0  # a one-hot category
    b = ((x[:, 0] + x[:, 2] - x[:, 4] + rng.normal(0, 0.7, N)) > 0).astype(float)
    y = 2.0 * x[:, 0] + 3.0 * x[:, 3] + rng.normal(0, 0.3, N)
    sparse = [(i, Vectors.sparse(6, {j: v for j, v in enumerate(x[i]) if v != 0.0}), float(b[i]), float(y[i]))
              for i in range(N)]
    dense = [(i, Vectors.dense(x[i]), float(b[i]), float(y[i])) for i in range(N)]
    names = ["id", "features", "b", "y"]
    return spark.createDataFrame(sparse, names).cache(), spark.createDataFrame(dense, names).cache()


def _fit(task: str, train, **point):
    builder = Estimators(task, None, 7, None, 2 if task == "binary" else 0, label="b" if task == "binary" else "y")
    est = builder.build("xgboost", 6)
    return est.fit(train, builder.param_map(est, point, 6))


def _scores(model, df, col="probability"):
    out = model.transform(df).orderBy("id").toPandas()
    return np.vstack([v.toArray() for v in out[col]]) if col != "prediction" else out[col].to_numpy()


def test_sparse_and_dense_rows_get_the_same_scores(rows):
    """XGBoost4J-Spark alone reads absent sparse entries as missing values: the stage hands it
    dense vectors, so how Spark happens to store a row does not change its score."""
    sparse, dense = rows
    model = _fit("binary", sparse, numRound=20, maxDepth=3)
    assert np.array_equal(_scores(model, sparse), _scores(model, dense))
    assert np.array_equal(_scores(_fit("binary", dense, numRound=20, maxDepth=3), dense), _scores(model, dense))


def test_a_saved_pipeline_reloads_in_spark_and_scores_the_same(rows, tmp_path):
    """XGBoost4J-Spark's own writer and reader fail on Spark 4.1; the stage saves the booster itself."""
    from pyspark.ml import PipelineModel

    from lakeforge.training.choose import set_threshold

    sparse, _ = rows
    for task, col in (("binary", "probability"), ("regression", "prediction")):
        model = _fit(task, sparse, numRound=15, maxDepth=4)
        if task == "binary":
            set_threshold(model, 0.3)
        PipelineModel(stages=[model]).save(str(tmp_path / task))
        loaded = PipelineModel.load(str(tmp_path / task))
        assert type(loaded.stages[0]).__name__ == "XGBoostModel" and loaded.stages[0].rounds == 15
        assert np.array_equal(_scores(loaded, sparse, col), _scores(model, sparse, col)), task
        assert np.array_equal(_scores(loaded, sparse, "prediction"), _scores(model, sparse, "prediction")), task
    binary = PipelineModel.load(str(tmp_path / "binary"))
    p, predicted = _scores(binary, sparse), _scores(binary, sparse, "prediction")
    assert np.array_equal(predicted, (p[:, 1] > 0.3).astype(float))  # the stored threshold, not 0.5


def test_early_stopping_stops_before_the_cap(rows):
    """A large learning rate on noisy labels: the held-out loss stops improving long before 500
    rounds, and the model keeps the rounds it fitted up to the stop (best + the patience)."""
    sparse, _ = rows
    model = _fit("binary", sparse, numRound=500, maxDepth=6, eta=0.8, validationFraction=0.2, earlyStoppingRounds=4)
    assert 4 < model.rounds < 100 and rounds_used(model) == model.rounds and model.getMaxIter() == 500
    no_stop = _fit("binary", sparse, numRound=30, maxDepth=6, eta=0.8)
    assert no_stop.rounds == 30 and rounds_used(no_stop) is None


def test_a_multiclass_target_gets_softmax_probabilities_over_every_class(rows, tmp_path):
    """Three classes (y's terciles); a training set without class 2 still gives a model over all
    three (XGBoost4J-Spark reads the label's class count from Spark's label attribute), and a
    saved pipeline reloads and scores the same."""
    from pyspark.ml import PipelineModel
    from pyspark.sql import functions as F

    from lakeforge.training.algorithms import validate_grid

    sparse, _ = rows
    m = sparse.withColumn("m", F.when(F.col("y") < -1, 0.0).when(F.col("y") < 1, 1.0).otherwise(2.0))
    builder = Estimators("multiclass", None, 7, None, 3, label="m")
    est = builder.build("xgboost", 6)
    model = est.fit(m, builder.param_map(est, {"numRound": 12, "maxDepth": 3, "eta": 0.3}, 6))
    p, raw = _scores(model, m), _scores(model, m, "rawPrediction")
    assert p.shape == raw.shape == (N, 3) and np.allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert np.array_equal(_scores(model, m, "prediction"), p.argmax(axis=1).astype(float))
    labels = m.orderBy("id").toPandas()["m"].to_numpy()
    assert (p.argmax(axis=1) == labels).mean() > 0.8 and model.rounds == 12 and model.num_classes == 3
    two = est.fit(m.where("m < 2"), builder.param_map(est, {"numRound": 5, "maxDepth": 2}, 6))
    assert _scores(two, m).shape == (N, 3) and two.num_classes == 3
    PipelineModel(stages=[model]).save(str(tmp_path / "multi"))
    loaded = PipelineModel.load(str(tmp_path / "multi"))
    assert np.array_equal(_scores(loaded, m), p) and np.array_equal(_scores(loaded, m, "rawPrediction"), raw)
    with pytest.raises(ValueError, match=r"xgboost.validationFraction: expected a share in \[0, 1\)"):
        validate_grid("xgboost", {"validationFraction": [1.0]})


def test_importances_are_each_slots_share_of_the_split_gain(rows):
    """The training report's importances: slot 0 and the one-hot slots 2 and 4 drive the label."""
    sparse, _ = rows
    imp = _fit("binary", sparse, numRound=20, maxDepth=3).featureImportances.toArray()
    assert imp.shape == (6,) and abs(imp.sum() - 1.0) < 1e-9 and (imp >= 0).all()
    assert imp[0] == imp.max() and imp[[0, 2, 4]].sum() > 0.8


def test_the_session_jvms_standard_error_goes_through_the_filter(spark):
    """XGBoost's native code prints every round's loss (no switch turns it off): the driver JVM
    lakeforge starts writes its standard error into a pipe that lakeforge.core.jvm_output reads."""
    import os
    import threading

    from pyspark import SparkContext

    pid = SparkContext._gateway.proc.pid  # noqa: SLF001
    assert os.readlink(f"/proc/{pid}/fd/2").startswith("pipe:")
    assert any(t.name == "jvm-stderr" and t.is_alive() for t in threading.enumerate())


def test_the_copy_drops_xgboosts_lines_and_keeps_the_rest(tmp_path):
    import io

    from lakeforge.core.jvm_output import copy_lines

    text = (b"[17:01:02] Task 0 got rank 0\n"
            b"[17:01:02] [0]\ttrain-logloss:0.53\teval-logloss:0.55\n\n"
            b"26/12/07 17:01:03 WARN TaskSetManager: Stage 3 contains a task of very large size\n\n"
            b"[17:01:04] early stopping after 10 rounds away from the best iteration\n"
            b"java.lang.OutOfMemoryError: Java heap space\n")
    out = tmp_path / "err"
    with open(out, "wb") as f:
        copy_lines(io.BytesIO(text), f.fileno())
    assert out.read_bytes() == (b"26/12/07 17:01:03 WARN TaskSetManager: Stage 3 contains a task of very large size\n\n"
                                b"java.lang.OutOfMemoryError: Java heap space\n")
