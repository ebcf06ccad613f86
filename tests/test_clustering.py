"""Clustering end to end on tiny generated data with three planted blobs: frame writes the card,
train registers the model with its leaderboard and cluster profile, scoring writes each row's
cluster once per run date, the silhouette equals a direct computation, bad input is one line."""

import datetime as dt
import random

import numpy as np
import pytest
import yaml
from pyspark.ml.linalg import Vectors

from lakeforge.core.config import load_pipeline
from lakeforge.core.errors import InputDataError
from lakeforge.ingest.job import ingest
from lakeforge.profiling.card import to_yaml
from lakeforge.profiling.frame import frame
from lakeforge.profiling.frame_tasks import TaskFraming
from lakeforge.scoring.job import score
from lakeforge.training.clustering import coarse_ks, profile_table, refine_ks, silhouette
from lakeforge.training.job import train

DAY = dt.date(2026, 5, 1)
CENTERS = [(0.0, 0.0, "red"), (10.0, 0.0, "blue"), (0.0, 10.0, "green")]


def blobs_csv(path, rows=240, seed=1):
    rnd = random.Random(seed)
    lines = ["id,x,y,colour"]
    for i in range(rows):
        cx, cy, colour = CENTERS[i % 3]
        lines.append(f"{i},{cx + rnd.gauss(0, 1):.3f},{cy + rnd.gauss(0, 1):.3f},{colour if rnd.random() < 0.9 else 'red'}")
    path.write_text("\n".join(lines) + "\n")
    return path


def clustering_pipeline(folder, csv, name="blobs", **model):
    cfg = {"name": name, "source": {"format": "csv", "path": str(csv), "options": {"header": True}}, "key": "id",
           "tables": {"bronze": f"{name}_bronze", "predictions": f"{name}_predictions", "leaderboard": f"{name}_leaderboard"},
           "ingest": {"mode": "overwrite"}, "features": {"numeric": ["x", "y"], "categorical": ["colour"]},
           "model": {"registered_name": name, "task": "clustering",
                     "clustering": {"k": [2, 3], "algorithms": ["kmeans", "gaussian_mixture"]}, **model}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_pipeline(path)


@pytest.fixture(scope="module")
def blobs(spark, settings, tmp_path_factory):
    folder = tmp_path_factory.mktemp("blobs")
    pipe = clustering_pipeline(folder, blobs_csv(folder / "blobs.csv"))
    ingest(spark, settings, pipe, "c0", DAY)
    res = train(spark, settings, pipe, "c1", DAY)
    first = score(spark, settings, pipe, DAY)
    second = score(spark, settings, pipe, DAY)  # a rerun of the same date
    return pipe, res, first, second


def test_the_planted_three_clusters_win_and_are_registered(blobs, settings):
    _, res, _, _ = blobs
    assert res.task == "clustering" and res.metric == "silhouette"
    best = next(r for r in res.leaderboard if r["is_best"])
    assert '"k": 3' in best["params"] and res.test_metrics["silhouette"] > 0.8
    assert {r["algorithm"] for r in res.leaderboard} == {"kmeans", "gaussian_mixture"}
    assert res.decision.endswith("champion") and res.model.version == "1"
    iterations = {r["algorithm"]: r["cv_iterations"] for r in res.leaderboard}
    assert 1 <= iterations["kmeans"] <= 20 and 1 <= iterations["gaussian_mixture"] <= 30  # the clustering caps
    report = open(res.report).read()
    assert "Clusters (every row)" in report and "Elbow" not in report  # the elbow is a PNG beside it
    assert res.report.endswith(".html")


def test_profile_and_leaderboard_tables(blobs, spark, settings):
    pipe, res, _, _ = blobs
    profile = spark.table(settings.table(profile_table(pipe)))
    sizes = {r.cluster: r.size for r in profile.select("cluster", "size").distinct().collect()}
    assert sorted(sizes.values()) == [80, 80, 80]
    top = {r.cluster: r.feature for r in profile.where("rank = 1").collect()}
    assert set(top.values()) <= {"x", "y", "colour=red", "colour=blue", "colour=green"}
    board = spark.table(settings.table(pipe.tables.leaderboard)).where("is_best").first()
    assert board.model_version == res.model.version and board.metric == "silhouette"


def test_scoring_writes_each_row_once_per_run_date(blobs, spark):
    _, _, first, second = blobs
    assert first.write.rows_written == second.write.rows_written == 240
    df = spark.table(second.write.table)
    assert df.count() == 240 and df.select("id").distinct().count() == 240
    per_cluster = sorted(r["count"] for r in df.groupBy("cluster").count().collect())
    assert per_cluster == [80, 80, 80]


def test_silhouette_equals_a_direct_computation(spark):
    pts = np.array([[0, 0], [0, 1], [1, 0], [5, 5], [5, 6], [6, 5], [6, 6], [10, 0]], float)
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    dist = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)  # Spark's squared Euclidean
    scores = []
    for i in range(len(pts)):
        own = labels == labels[i]
        if own.sum() == 1:  # a singleton's silhouette is 0
            scores.append(0.0)
            continue
        a = dist[i, own].sum() / (own.sum() - 1)
        b = min(dist[i, labels == c].mean() for c in set(labels) if c != labels[i])
        scores.append((b - a) / max(a, b))
    df = spark.createDataFrame([(Vectors.dense(p), float(c)) for p, c in zip(pts, labels)], ["features", "prediction"])
    assert silhouette(df) == pytest.approx(float(np.mean(scores)), abs=1e-9)


def test_no_feature_left_is_one_clear_line(spark, settings, tmp_path):
    csv = tmp_path / "ids.csv"
    csv.write_text("id,constant\n" + "".join(f"{i},1\n" for i in range(40)))
    pipe = clustering_pipeline(tmp_path, csv, name="noclusters", **{"clustering": {"k": [2]}})
    pipe = pipe.model_copy(update={"features": pipe.features.model_copy(update={"numeric": [], "categorical": [],
                                                                                 "exclude": ["constant"]})})
    ingest(spark, settings, pipe, "n0", DAY)
    with pytest.raises(InputDataError, match="no numeric or categorical feature left for clustering"):
        train(spark, settings, pipe, "n1", DAY)


def test_frame_writes_a_clustering_card_that_loads(spark, tmp_path):
    csv = blobs_csv(tmp_path / "blobs.csv", rows=60)
    source = {"format": "csv", "path": str(csv), "options": {"header": True}}
    df = spark.read.csv(str(csv), header=True, schema="id int, x double, y double, colour string").cache()
    card = frame(df, None, source, "blobs_card", task=TaskFraming("clustering", "blobs_card", source, None, {}))
    text = to_yaml(card)
    assert "# Task: clustering (no target" in text and "\ntarget:" not in text
    (tmp_path / "card.yaml").write_text(text)
    pipe = load_pipeline(tmp_path / "card.yaml")
    assert (pipe.model.task, pipe.target, pipe.model.metric, pipe.key) == ("clustering", None, "silhouette", "id")
    assert set(pipe.features.numeric) == {"x", "y"} and pipe.features.categorical == ["colour"]
    with pytest.raises(InputDataError, match="no --target: give --target COLUMN"):
        frame(df, None, source, "blobs_card")


def test_k_is_searched_coarse_to_fine():
    ks = list(range(2, 13))
    assert coarse_ks(ks) == [2, 4, 6, 8, 10, 12]
    assert refine_ks(ks, coarse_ks(ks), 4) == [3, 5]  # between the coarse neighbours 2 and 6
    assert refine_ks(ks, coarse_ks(ks), 2) == [3] and refine_ks(ks, coarse_ks(ks), 12) == [11]
    assert coarse_ks([2, 3]) == [2, 3]  # two values: both at once, nothing to refine
    assert coarse_ks([2, 3, 5, 10, 20]) == [2, 5, 20] and refine_ks([2, 3, 5, 10, 20], [2, 5, 20], 5) == [3, 10]
