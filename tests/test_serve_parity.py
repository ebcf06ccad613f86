"""lakeforge serve answers what batch scoring writes, for every algorithm of the zoo and every task.

One preprocessing with every feature kind lakeforge's training produces (numbers parsed from
text, booleans, ordinal levels, missing indicators, imputation, log, quantile clipping, derived
SQL, date parts, text length and TF-IDF, buckets, interactions, rare-level grouping, target
encoding, one-hot, robust scaling, and variance / correlation / univariate selection and PCA) is
fitted once; every algorithm of every task (binary, multiclass, regression) is fitted on its
output by lakeforge's own Estimators, served by the real HTTP server on 127.0.0.1 from an
exported folder, and every row is sent: each answer's score and predicted_label must equal
lakeforge.scoring.transforms.with_predictions's on the same rows (|delta score| <= 1e-9,
identical labels), nulls, unseen categories, empty strings and extreme values included.

Also: a stage the numpy scorer refuses, served with the Spark fallback; the signature from the
training table's schema (an integer column with nulls stays an integer).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.classification import OneVsRestModel
from pyspark.ml.feature import IndexToString, Normalizer
from pyspark.sql import functions as F

from lakeforge.core.config_features import FeatureSelectionConfig, FeaturesConfig, PreprocessingConfig
from lakeforge.core.frames import local_frame
from lakeforge.core.settings import ServingConfig
from lakeforge.core.tracking import ModelRef
from lakeforge.features.pipeline import preprocessing_pipeline
from lakeforge.features.plan import plan_features
from lakeforge.scoring.transforms import with_predictions
from lakeforge.serving.app import Server, create_app
from lakeforge.serving.export import write_export
from lakeforge.serving.model_store import ModelFiles, ModelHolder, ScorerUnavailable, Source
from lakeforge.serving.scorer.base import read_metadata
from lakeforge.serving.spark_scorer import spark_fallback
from lakeforge.training.algorithms import ALGORITHMS, Estimators
from lakeforge.training.choose import set_threshold
from lakeforge.training.signature import input_signature
from test_serve import Running

DAY = dt.date(2026, 5, 1)
TOL = 1e-9
THRESHOLD = 0.4
CLASSES = ["low", "mid", "high"]
LABEL = {"binary": "b", "multiclass": "m", "regression": "r"}
SCHEMA = ("id string, total string, tenure int, charge double, plan string, senior int, partner string, level string, "
          "signup string, seen timestamp, born date, note string, city string, flag boolean, "
          "addr struct<city:string,zip:int>, tags array<string>, b double, m double, r double")
NOTES = ["App CRASHED, crashed again!", "", None, "love the app", "x y z", "bill: late; bill again", "crashed"]
# small grid points: the model is not the subject, its answers are
POINT = {"logistic_regression": {"regParam": 0.01, "maxIter": 5}, "decision_tree": {"maxDepth": 3},
         "random_forest": {"numTrees": 3, "maxDepth": 3}, "gbt": {"maxIter": 2, "maxDepth": 2},
         "xgboost": {"numRound": 3, "maxDepth": 2},
         "linear_svc": {"regParam": 0.1, "maxIter": 3}, "naive_bayes": {},
         "multilayer_perceptron": {"hiddenLayers": [4], "maxIter": 5}, "factorization_machines": {"factorSize": 2, "maxIter": 3},
         "linear_regression": {"regParam": 0.01, "elasticNetParam": 0.5, "maxIter": 5},
         "generalized_linear": {"family": "gaussian", "regParam": 0.01, "maxIter": 3}}
CASES = [(task, name) for task in ("binary", "multiclass", "regression") for name, a in ALGORITHMS.items() if task in a.tasks]


def _row(i: int) -> tuple:
    tenure = [0, 1, 5, 12, 30, 72, None][i % 7]
    charge = round(10 + (i * 37 % 110) + 0.25 * (i % 4), 2) if i % 11 else None
    plan = ["a", "b", "c", None, "a", "", "a", "d"][i % 8]
    b = float(((tenure or 0) > 10) ^ (i % 5 == 0))
    m = float(i % 3 if plan != "a" else (i // 3) % 3)
    r = 1.0 + (charge or 50) / 10 + (tenure or 0) / 5 + (plan == "b")
    return (f"c{i}", ["10.5", " 12 ", "", "abc", None, "7", "1e3"][i % 7], tenure, charge, plan, [0, 1, 0, None][i % 4],
            ["Yes", "no", " TRUE ", None, "1"][i % 5], ["low", "mid", "high", None, "other"][i % 5],
            ["2024-01-31", "2024-02-01 10:11:12", None, "bad", "2023-12-31T23:59:59"][i % 5],
            dt.datetime(2024, 1 + i % 12, 1 + i % 28, i % 24, i % 60) if i % 9 else None,
            dt.date(2020, 1 + i % 3, 1) if i % 5 else None, NOTES[i % len(NOTES)],
            ["x", "y", "z", None, "x", "w"][i % 6], [True, False, None][i % 3],
            {"city": ["Oslo", None, "Lima"][i % 3], "zip": [1000 + i, None][i % 2]} if i % 4 else None,
            [["a", "b"], [], None, ["c"]][i % 4], b, m, r)


NULLS = ("e-nulls", None, None, None, None, None, None, None, None, None, None, None, None, None, None, None)
EDGES = [  # scored only: every input null, unseen categories, empty strings, extreme values, NaN and infinity
    NULLS,
    ("e-unseen", "3", 4, 55.5, "zzz", 7, "maybe", "highest", "2031-07-04", dt.datetime(2031, 7, 4, 23, 59), dt.date(1999, 12, 31),
     "unseen words only", "Atlantis", True, {"city": "Nowhere", "zip": 99999}, ["q", "r", "s"]),
    ("e-empty", "", 0, 0.0, "", 0, "", "", "", dt.datetime(2024, 1, 1), dt.date(2020, 1, 1), "", "", False,
     {"city": "", "zip": None}, [""]),
    ("e-huge", "1e308", 2**31 - 1, 1.7e308, "a", 1, "yes", "high", "9999-12-31 23:59:59", dt.datetime(9999, 12, 31, 23, 59),
     dt.date(9999, 12, 31), "crashed " * 500, "x", True, {"city": "Oslo", "zip": 2**31 - 1}, ["a"] * 200),
    ("e-negative", "-1e308", -(2**31), -1.7e308, "b", 0, "no", "low", "0001-01-01", dt.datetime(1900, 1, 1), dt.date(1, 1, 1),
     "x", "y", False, {"city": "Lima", "zip": -(2**31)}, []),
    ("e-tiny", "1e-300", 1, 5e-324, "c", 1, "1", "mid", "2024-02-29", dt.datetime(2024, 2, 29, 12), dt.date(2020, 2, 1),
     "a", "z", None, {"city": None, "zip": None}, None),
    ("e-nan", "NaN", 2, float("nan"), "a", 0, "TRUE", "mid", "2024-01-31", None, None, None, "x", True, None, ["a", None]),
    ("e-inf", "Infinity", 3, float("inf"), "b", 1, "f", "low", "2024-01-31", None, None, "love", "w", True, None, ["b"]),
    ("e-minus-inf", "-Infinity", 3, float("-inf"), "d", None, "t", None, None, None, None, "app", None, None, None, []),
]


@pytest.fixture(scope="module")
def prepared(spark, tmp_path_factory):
    """The preprocessing (every feature kind) fitted once and saved once; its output on the
    training rows and on the rows to score (every training row, then the edge rows), materialised."""
    folder = tmp_path_factory.mktemp("parity")
    train = local_frame(spark, [_row(i) for i in range(120)], SCHEMA).cache()
    score_rows = [_row(i) for i in range(120)] + [(*e, None, None, None) for e in EDGES]
    score = local_frame(spark, score_rows, SCHEMA)
    features = FeaturesConfig(
        numeric=["total", "tenure", "charge", "partner", "level"], categorical=["plan", "senior", "city", "flag", "born"],
        derived={"per_month": "try_cast(total AS DOUBLE) / NULLIF(tenure, 0)",
                 "big": {"expr": "CASE WHEN tenure > 5 THEN 'yes' WHEN tenure IS NULL THEN NULL ELSE 'no' END",
                         "role": "categorical"},
                 "spread": "GREATEST(charge, 0.5D) - LEAST(tenure, 10) + COALESCE(addr.zip, -1) % 7", "ntags": "size(tags)"},
        dates={"signup": {"parts": ["year", "month", "day_of_week", "days_since"]},
               "seen": {"parts": ["day_of_week", "hour", "days_since"], "reference": "2024-06-30"}},
        text_length=["note"], text_tfidf=["note"], text_tfidf_size=16,
        buckets={"charge": {"splits": [0, 50, 100]}, "per_month": {"quantiles": 3}}, interactions=[["tenure", "plan"]])
    prep = PreprocessingConfig(
        scale="robust", types={"partner": "boolean"}, ordinal={"level": ["low", "mid", "high"]},
        missing_indicators=["total", "plan"], log=["charge"], clip={"columns": ["per_month", "spread"], "lower": 0.1, "upper": 0.9},
        rare_levels={"min_count": 8}, target_encoding={"columns": ["city"], "smoothing": 2}, categorical_impute="mode",
        impute={"tenure": "mean", "total": {"strategy": "constant", "value": -1}, "charge": "mode"})
    selection = FeatureSelectionConfig(variance_threshold=0.0, correlation_threshold=0.98,
                                       univariate={"test": "anova", "mode": "percentile", "threshold": 0.9}, pca=6)
    plan = plan_features(train, features, prep, "id", "b", "parity")
    model = preprocessing_pipeline(plan, selection=selection, label_col="b", task="binary").fit(train)
    model.write().save(str(folder / "prep"))
    # materialised with a short lineage: every later job reads them without analysing the
    # preprocessing's ~30 stages again
    train_features = model.transform(train).select("features", "b", "m", "r").localCheckpoint()
    scored_features = model.transform(score).localCheckpoint()
    inputs = train.select(*plan.inputs)
    yield {"folder": folder, "train": train_features, "score": scored_features, "inputs": inputs,
           "records": [_record(r, score.columns, plan.inputs) for r in score_rows],
           "size": train_features.first()["features"].size}
    train.unpersist()


def _json_value(v):
    return v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v


def _record(row: tuple, columns: list[str], inputs: list[str]) -> dict:
    values = dict(zip(columns, row))
    return {"id": values["id"], **{c: _json_value(values[c]) for c in inputs}}


def _compose(prep_dir, tail_dir, out) -> None:
    """The folder Spark writes for PipelineModel([*prep.stages, *tail.stages]) (one stage folder per
    stage, numbered with Spark's zero padding; the outer metadata lists their uids), from the two
    saved parts: the preprocessing is saved once for all the models. Spark's PipelineModel.load
    reads it (the Spark fallback test), and so does the numpy scorer."""
    prep_meta, tail_meta = read_metadata(prep_dir), read_metadata(tail_dir)
    parts = [(prep_dir, u) for u in prep_meta["paramMap"]["stageUids"]]
    parts += [(tail_dir, u) for u in tail_meta["paramMap"]["stageUids"]]
    width = len(str(len(parts)))
    for i, (src, uid) in enumerate(parts):
        found = next((src / "stages").glob(f"*_{uid}"))
        shutil.copytree(found, out / "stages" / f"{str(i).zfill(width)}_{uid}")
    (out / "metadata").mkdir(parents=True)
    meta = {**tail_meta, "paramMap": {**tail_meta["paramMap"], "stageUids": [u for _, u in parts]}}
    (out / "metadata" / "part-00000").write_text(json.dumps(meta) + "\n")


def _served_folder(prepared, name: str, task: str, tail: PipelineModel, threshold: float | None):
    """An exported folder (lakeforge.serving.export.write_export) of prep + ``tail``: MLmodel with
    the signature of the training rows' input columns, sparkml/, manifest.json."""
    from mlflow.models import Model

    base = prepared["folder"] / name
    tail.write().save(str(base / "tail"))
    _compose(prepared["folder"] / "prep", base / "tail", base / "model" / "sparkml")
    Model(signature=input_signature(prepared["inputs"])).save(str(base / "model" / "MLmodel"))
    write_export(ModelFiles(name, "1", base / "model", task, threshold), "id", base / "export")
    return base / "export"


def _batch(rows, tail: PipelineModel, name: str, task: str) -> dict:
    """lakeforge's batch answer per key. ``rows`` already went through the preprocessing stages
    (cached, once for all models); PipelineModel.transform applies its stages one after the other,
    so the tail's transform of them is the whole model's transform of the raw rows."""
    out = rows.transform(with_predictions(tail, "id", ModelRef(name, "1"), DAY, task=task))
    cols = ["id", "score"] + (["predicted_label"] if task != "regression" else [])
    return {r["id"]: r for r in out.select(*cols).collect()}  # at most 129 rows


def _without_a_class(prepared, tail: PipelineModel, task: str) -> list[str]:
    """The rows Spark's batch scoring cannot score: a OneVsRest whose margins are all NaN (from an
    infinite input) predicts class -1, which IndexToString refuses. Batch fails on them (asserted)."""
    if not isinstance(tail.stages[-2 if task == "multiclass" else -1], OneVsRestModel):
        return []
    predicted = PipelineModel(stages=tail.stages[:-1]).transform(prepared["score"])
    bad = [r["id"] for r in predicted.where("prediction < 0").select("id").collect()]
    if bad:
        with pytest.raises(Exception, match="USER_RAISED_EXCEPTION"):
            _batch(prepared["score"].where(F.col("id").isin(bad)), tail, "unscorable", task)
    return bad


def _fit_tail(prepared, task: str, algorithm: str) -> PipelineModel:
    """The model as lakeforge's training fits it (its Estimators, the stored threshold, the class
    names of a multiclass target), without the preprocessing. ``fallback``: a Normalizer (no numpy
    version) before OneVsRest factorization machines, for the Spark fallback."""
    size, features, stages, column = prepared["size"], prepared["train"], [], "features"
    if algorithm == "fallback":
        stages.append(Normalizer(inputCol="features", outputCol="features_n", p=1.0))
        features, algorithm, column = stages[0].transform(features), "factorization_machines", "features_n"
    builder = Estimators(task, None, 7, None, {"binary": 2, "multiclass": 3}.get(task, 0), features=column, label=LABEL[task])
    est = builder.build(algorithm, size)
    fitted = est.fit(features, builder.param_map(est, POINT[algorithm], size))
    if task == "binary":
        set_threshold(fitted, THRESHOLD)
    stages.append(fitted)
    if task == "multiclass":
        stages.append(IndexToString(inputCol="prediction", outputCol="predicted_class", labels=CLASSES))
    return PipelineModel(stages=stages)


def _build(prepared, task: str, algorithm: str) -> dict:
    """One model fitted, saved as an exported folder, and its batch answers (and the rows batch
    cannot score)."""
    name = f"parity_{task}_{algorithm}"
    tail = _fit_tail(prepared, task, algorithm)
    bad = _without_a_class(prepared, tail, task)
    expected = _batch(prepared["score"].where(~F.col("id").isin(bad)) if bad else prepared["score"], tail, name, task)
    export = _served_folder(prepared, name, task, tail, THRESHOLD if task == "binary" else None)
    return {"task": task, "expected": expected, "bad": bad, "export": export}


@pytest.fixture(scope="module")
def zoo(prepared):
    """Every case (and the fallback's model) built 4 at a time, as training's search runs its fits:
    one Spark fit per model, its batch scores, its exported folder."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case: pool.submit(_build, prepared, *case) for case in [*CASES, ("multiclass", "fallback")]}
        return {case: f.result() for case, f in futures.items()}


def _serve(export, **config) -> tuple[Running, ModelHolder]:
    holder = ModelHolder(Source(model_dir=export, spark_fallback=config.pop("fallback", None)))
    holder.load_initial()
    assert holder.cache is None  # an exported folder is served in place: no download folder left in /tmp
    cfg = ServingConfig(reload_interval_s=0, allow_non_finite=True, log_dir=None, **config)
    return Running(create_app(Server(holder, cfg))), holder


def _post(url: str, records: list[dict], status: int = 200):
    r = httpx.post(f"{url}/predict", content=json.dumps(records), headers={"content-type": "application/json"}, timeout=120)
    assert r.status_code == status, r.text[:500]
    return r.json()


def _compare(answers: list[dict], expected: dict, task: str) -> dict:
    """Every answer's label equals batch's, its score too: |delta| <= 1e-9, relative to the score
    once it is beyond 1 (a regression of a 1e308 input predicts ~1e300: float64 has 16 digits).
    A score that is not a number (NaN/inf/null in batch) is null over HTTP (JSON has no NaN)."""
    assert [a["id"] for a in answers] == list(expected)
    seen = {"rows": len(answers), "max_abs": 0.0, "max_rel": 0.0, "no_score": 0}
    for a in answers:
        e = expected[a["id"]]
        if task != "regression":
            assert a["predicted_label"] == e["predicted_label"], (a, e)
        if e["score"] is None or not math.isfinite(e["score"]):
            assert a["score"] is None, (a, e)
            seen["no_score"] += 1
            continue
        delta = abs(a["score"] - e["score"])
        assert delta <= TOL * max(1.0, abs(e["score"])), (a, e)
        key = "max_abs" if abs(e["score"]) <= 1.0 else "max_rel"
        seen[key] = max(seen[key], delta if key == "max_abs" else delta / abs(e["score"]))
    return seen


def _served_equals_batch(prepared, built: dict, fallback=None) -> dict:
    """Serve the built model over HTTP and send every row: each answer equals batch's; a request
    holding a row batch cannot score is refused (422) naming the first such record. Returns what
    /model says and what was compared."""
    task, bad, expected, records = built["task"], built["bad"], built["expected"], prepared["records"]
    running, holder = _serve(built["export"], fallback=fallback)
    # a request of a scorable record and the unscorable ones (one of them alone through Spark: each
    # Spark request is a job over the ~35 stages)
    refuse = records[:1] + [r for r in records if r["id"] in bad] if not fallback else [r for r in records if r["id"] in bad][:1]
    try:
        answers = _post(running.url, [r for r in records if r["id"] not in bad])
        one = _post(running.url, records[5]) if not fallback else answers[5]  # one record alone (a JSON object)
        refused = _post(running.url, refuse, status=422) if bad else None
        model = httpx.get(f"{running.url}/model").json()
    finally:
        running.stop()
        holder.close()
    fields = {"id", "score", "model_name", "model_version"} | ({"predicted_label"} if task != "regression" else set())
    assert set(answers[0]) == fields and set(one) == fields
    seen = _compare(answers, expected, task)
    _compare([one], {one["id"]: expected[one["id"]]}, task)  # alone: within 1e-9 too (numpy may sum in another order)
    if bad:
        where, stage = ("", "[USER_RAISED_EXCEPTION]") if fallback else ("record 1: ", "IndexToString")
        assert refused == {"error": "unscorable",
                           "detail": f"{where}{stage} cannot compute the record (Spark's batch scoring fails on it too)"}
    print(f"\n{model['name']}: {seen}, refused as in batch: {bad}")
    return {**model, "compared": seen}


@pytest.mark.parametrize("task,algorithm", CASES, ids=[f"{t}-{a}" for t, a in CASES])
def test_http_answers_equal_spark_batch_on_every_row(prepared, zoo, task, algorithm):
    model = _served_equals_batch(prepared, zoo[(task, algorithm)])
    assert (model["scorer"], model["task"]) == ("numpy", task)
    assert {"name": "tenure", "type": "integer"} in model["signature"] and {"name": "senior", "type": "integer"} in model["signature"]


def test_a_stage_the_numpy_scorer_refuses_is_served_through_the_spark_fallback(prepared, zoo, settings):
    """The same preprocessing + Normalizer (no numpy version) + OneVsRest factorization machines
    + IndexToString: without --spark-fallback the server refuses to start, naming the stage; with
    it, a local Spark session scores every row over HTTP (structs, arrays, dates and timestamps
    typed from the signature), each answer equals batch, and the rows batch cannot score (a
    OneVsRest predicting no class) are refused as by the numpy scorer."""
    built = zoo[("multiclass", "fallback")]
    with pytest.raises(ScorerUnavailable, match=r"Normalizer.*--spark-fallback"):
        ModelHolder(Source(model_dir=built["export"])).load_initial()
    model = _served_equals_batch(prepared, built, spark_fallback(settings))
    assert model["scorer"] == "spark" and model["stages"][-3:] == ["Normalizer", "OneVsRestModel", "IndexToString"]
    assert model["compared"]["rows"] > 120 and built["bad"]


def test_the_signature_is_the_training_tables_schema_not_a_sample_of_rows(spark, settings, tmp_path):
    """An integer column null in the first rows stays an integer (a 5-row pandas sample made it a
    double, so a categorical 1 was served as the level '1.0'); dates, timestamps, structs, arrays
    and decimals typed from the schema, through lakeforge's registration."""
    import decimal

    import mlflow
    from pyspark.ml.feature import SQLTransformer

    from lakeforge.core import tracking
    from lakeforge.serving.model_store import download_version, signature_columns
    from lakeforge.training.register import log_model

    rows = [(None, None, None, None, None, None, None)] * 6 + [
        (3, dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 3, 4), decimal.Decimal("1.50"), {"city": "Oslo", "zip": 1}, ["a"], True)]
    df = local_frame(spark, rows, "tenure int, born date, seen timestamp, amount decimal(10,2), "
                                     "addr struct<city:string,zip:int>, tags array<string>, flag boolean")
    types = {"tenure": "integer", "born": "datetime", "seen": "datetime", "amount": "double", "addr": "object",
             "tags": "array", "flag": "boolean"}
    model = PipelineModel(stages=[SQLTransformer(statement="SELECT *, tenure + 1 AS t FROM __THIS__")])
    with mlflow.start_run(experiment_id=tracking.configure(settings)):
        version = log_model("parity_signature", model, df)
    files = download_version("parity_signature", version, tmp_path / "download")
    columns = signature_columns(files.folder)
    assert {c["name"]: c["type"] for c in columns} == types
    addr = next(c for c in columns if c["name"] == "addr")
    assert {k: p["type"] for k, p in addr["properties"].items()} == {"city": "string", "zip": "integer"}
    assert json.loads(json.dumps(input_signature(df).inputs.to_dict())) == columns
