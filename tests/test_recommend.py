"""Recommendation end to end on tiny generated feedback with a planted structure (users like the
items of their own group): frame writes the card, train registers ALS that beats the popularity
baseline, scoring writes the top-N table and the known pairs' predictions once per run date, the
ranking metrics equal hand-counted lists, and bad input is one line."""

import datetime as dt
import math
import random

import pytest
import yaml

from lakeforge.core.config import load_pipeline
from lakeforge.core.errors import InputDataError
from lakeforge.core.frames import local_frame
from lakeforge.ingest.job import ingest
from lakeforge.profiling.card import to_yaml
from lakeforge.profiling.frame import frame
from lakeforge.profiling.frame_tasks import TaskFraming
from lakeforge.scoring.job import score
from lakeforge.core.tracking import load_spark_model
from lakeforge.scoring.recommendations import recommendations_table, top_n
from lakeforge.training.job import train
from lakeforge.training.recommend import halve_points
from lakeforge.training.recommend_steps import interactions, ranking_metrics

DAY = dt.date(2026, 5, 1)
USERS, ITEMS, GROUPS, PER_USER = 60, 80, 4, 10


def feedback_csv(path, seed=3):
    """Each user picks 9 of its own group's 20 items (user % 4 == item % 4) and 1 at random."""
    rnd = random.Random(seed)
    lines, event = ["event_id,user_id,item_id,plays"], 0
    for u in range(USERS):
        own = [i for i in range(ITEMS) if i % GROUPS == u % GROUPS]
        picks = set(rnd.sample(own, PER_USER - 1))
        while len(picks) < PER_USER:
            picks.add(rnd.randrange(ITEMS))
        for i in sorted(picks):
            event += 1
            lines.append(f"e{event},{u},{i},{1 + rnd.randrange(3)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def recommendation_pipeline(folder, csv, name="feedback", **rec):
    cfg = {"name": name, "source": {"format": "csv", "path": str(csv), "options": {"header": True}}, "key": "event_id",
           "tables": {"bronze": f"{name}_bronze", "predictions": f"{name}_predictions", "leaderboard": f"{name}_leaderboard"},
           "ingest": {"mode": "overwrite"},
           "model": {"registered_name": name, "task": "recommendation", "search": "train_validation_split",
                     "recommendation": {"user": "user_id", "item": "item_id", "rating": "plays", "implicit": True,
                                        "grid": {"rank": [4], "regParam": [0.1], "alpha": [10.0]}, "max_iter": 3, "top_n": 5,
                                        **rec}}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_pipeline(path)


@pytest.fixture(scope="module")
def feedback(spark, settings, tmp_path_factory):
    folder = tmp_path_factory.mktemp("feedback")
    csv = feedback_csv(folder / "feedback.csv")
    pipe = recommendation_pipeline(folder, csv)
    ingest(spark, settings, pipe, "f0", DAY)
    res = train(spark, settings, pipe, "f1", DAY)
    score(spark, settings, pipe, DAY)
    again = score(spark, settings, pipe, DAY)  # a rerun of the same date
    return pipe, res, again, csv


def test_als_recovers_the_planted_groups_and_beats_popularity(feedback):
    _, res, _, _ = feedback
    m = res.test_metrics
    assert res.task == "recommendation" and res.metric == "ndcg_at_k"
    assert m["ndcg_at_k"] >= 2 * m["popularity_ndcg_at_k"], m
    assert 0 < m["precision_at_k"] <= 1 and 0 < m["recall_at_k"] <= 1 and 0 < m["map_at_k"] <= 1
    assert res.leaderboard[0]["is_best"] and res.leaderboard[0]["cv_mean"] > 0
    assert res.decision.endswith("champion")
    report = open(res.report).read()
    assert "<h2>ranking</h2><img" in report  # NDCG@K etc. of ALS vs the most popular items, as a PNG
    assert open(res.report.replace(".html", "_ranking.png"), "rb").read(4) == b"\x89PNG"


def test_scoring_writes_top_n_and_pairs_once(feedback, spark, settings):
    pipe, _, again, _ = feedback
    recs = spark.table(settings.table(recommendations_table(pipe)))
    assert recs.count() == USERS * 5  # rerun: still one top-5 per user
    assert recs.where("rank < 1 OR rank > 5").count() == 0
    bronze = spark.table(settings.table(pipe.tables.bronze))
    seen = recs.join(bronze, ["user_id", "item_id"]).count()
    assert seen == 0  # never an item the user already has
    own_group = recs.where("user_id % 4 = item_id % 4").count()
    assert own_group / recs.count() > 0.8  # the planted structure
    pairs = spark.table(again.write.table)
    assert again.write.rows_written == pairs.count() == USERS * PER_USER
    assert pairs.where("score IS NULL OR isnan(score)").count() == 0


def test_unknown_users_and_items_get_no_row_and_never_nan(feedback, spark):
    pipe, _, again, _ = feedback
    model = load_spark_model(again.model)  # loaded by the fixture's scoring: no second load
    rows = [("k1", 0, 4, 1), ("k2", 0, 999, 2), ("k3", 999, 4, 1), ("k4", 998, 997, 3)]
    inter = interactions(local_frame(spark, rows, "event_id string, user_id int, item_id int, plays int"),
                         pipe.model.recommendation, "cold start")
    pairs = model.transform(inter).collect()  # known pair, unknown item, unknown user, both unknown
    assert [(r.user_id, r.item_id) for r in pairs] == [(0, 4)]
    assert all(r.prediction is not None and not math.isnan(r.prediction) for r in pairs)
    recs = top_n(model, inter, 5).collect()  # top-N: only the known user, 5 items, real scores
    assert {r.user_id for r in recs} == {0} and len(recs) == 5
    assert all(r.score is not None and not math.isnan(r.score) for r in recs)


def test_halving_keeps_the_best_third_of_the_grid_points():
    first = {(i, 0): ({"ndcg_at_k": v}, 1.0) for i, v in enumerate([0.10, 0.30, 0.20, 0.25, 0.05, 0.28, 0.01])}
    keep, why = halve_points(first, 7, 10)
    assert keep == [1, 3, 5]  # ceil(7 / 3) = 3: 0.30, 0.28, 0.25
    assert why[2] == "pruned after fold 1 (successive halving): NDCG@10 0.2000; the best third scored at least 0.2500"
    assert set(why) == {0, 2, 4, 6}


def test_ranking_metrics_equal_hand_counted_lists(spark):
    rows = [([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 9.0]), ([5.0, 6.0], [5.0]), ([7.0, 8.0, 1.0], [10.0])]
    df = local_frame(spark, rows, "predicted array<double>, relevant array<double>")
    got = ranking_metrics(df, 3)
    # precision@3: hits in the top 3 / 3 -> (1/3 + 1/3 + 0) / 3
    assert got["precision_at_k"] == pytest.approx((1 / 3 + 1 / 3 + 0) / 3)
    # recall@3: hits in the top 3 / relevant -> (1/3 + 1/1 + 0) / 3
    assert got["recall_at_k"] == pytest.approx((1 / 3 + 1 + 0) / 3)
    # NDCG@3, binary gains: DCG / ideal DCG (min(3, |relevant|) hits at the top)
    def ndcg(pred, rel):
        dcg = sum(1 / math.log2(i + 2) for i, p in enumerate(pred[:3]) if p in rel)
        ideal = sum(1 / math.log2(i + 2) for i in range(min(3, len(rel))))
        return dcg / ideal
    assert ndcg([1, 2, 3, 4], [2, 4, 9]) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3) + 0.5))
    assert got["ndcg_at_k"] == pytest.approx((ndcg([1, 2, 3, 4], [2, 4, 9]) + ndcg([5, 6], [5]) + 0) / 3)


def test_frame_writes_a_recommendation_card_and_refuses_bad_columns(spark, tmp_path):
    csv = feedback_csv(tmp_path / "feedback.csv")
    source = {"format": "csv", "path": str(csv), "options": {"header": True}}
    df = spark.read.csv(str(csv), header=True, schema="event_id string, user_id int, item_id int, plays int").cache()
    roles = {"user": "user_id", "item": "item_id", "rating": None}
    card = frame(df, None, source, "fb", task=TaskFraming("recommendation", "fb", source, None, {}, roles))
    (tmp_path / "fb.yaml").write_text(to_yaml(card))
    pipe = load_pipeline(tmp_path / "fb.yaml")
    assert pipe.model.task == "recommendation" and pipe.key == "event_id"
    assert (pipe.model.recommendation.user, pipe.model.recommendation.item) == ("user_id", "item_id")
    assert pipe.model.recommendation.is_implicit
    # without --task the card of a user x item table with a target says it may be a recommendation
    hinted = to_yaml(frame(df, "plays", source, "fb"))
    assert "# Hint: user_id x item_id look like user-item interactions" in hinted
    with pytest.raises(InputDataError, match="--user column 'event_id' has a different value in almost every row"):
        frame(df, None, source, "fb", task=TaskFraming("recommendation", "fb", source, None, {},
                                                       {**roles, "user": "event_id"}))
    worded = df.selectExpr("event_id", "user_id", "item_id", "CASE WHEN plays = 3 THEN 'many' ELSE CAST(plays AS STRING) END AS plays")
    with pytest.raises(InputDataError, match="rating column 'plays' holds 'many', not a number"):
        frame(worded, None, source, "fb", task=TaskFraming("recommendation", "fb", source, None, {},
                                                           {**roles, "rating": "plays"}))
