"""lakeforge serve end to end: one Telco model trained through the real training path, the real
HTTP server (uvicorn) on 127.0.0.1, and Spark's batch scores as the reference.

- parity: all 7,043 Telco rows (and rows with nulls, unseen categories, empty strings, extreme
  values) scored by lakeforge's batch transform and by POST /predict: |delta score| <= 1e-9,
  identical labels;
- every bad request (400, 401, 413, 422) without a value or a traceback in the answer;
- the alias moved during a 2,000-request load loop: no failed request, the version switches;
- export + `lakeforge serve --model-dir` in a subprocess: no JVM child, no pyspark;
- the prediction log (and its ingest into Delta), /model and /metrics.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml
from mlflow import MlflowClient

from conftest import ROOT, write_overlay, write_pipeline
from lakeforge.core import tracking
from lakeforge.core.config import load_pipeline
from lakeforge.core.frames import local_frame
from lakeforge.core.settings import ServingConfig
from lakeforge.ingest.job import ingest
from lakeforge.scoring.transforms import with_predictions
from lakeforge.serving.app import Server, create_app
from lakeforge.serving.export import export_model
from lakeforge.serving.model_store import ModelHolder, Source
from lakeforge.training.job import train

DAY = dt.date(2026, 5, 1)
NAME = "serve_telco"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    """A real uvicorn server in a thread of this process."""

    def __init__(self, app, port: int | None = None):
        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            assert time.time() < deadline, "server did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def telco(spark, settings, tmp_path_factory):
    """One small Telco model (one logistic regression, 10 iterations, one train/validation split, no
    ingest checks: the model is not the subject), trained on all 7,043 rows and registered as champion."""
    folder = tmp_path_factory.mktemp("serve")
    pipe = load_pipeline(write_pipeline(folder, **{
        "name": NAME, "tables.bronze": f"{NAME}_bronze", "tables.predictions": f"{NAME}_predictions",
        "tables.leaderboard": f"{NAME}_leaderboard", "model.registered_name": NAME, "model.search": "train_validation_split", "model.max_iter": 10,
        "source.checks": [], "model.algorithms": {"logistic_regression": {"regParam": [0.01]}}}))
    ingest(spark, settings, pipe, "serve-ingest", DAY)
    result = train(spark, settings, pipe, "serve-train", DAY)
    return pipe, result, folder


def start(pipe, folder: Path, settings=None, **config) -> tuple[Running, ModelHolder]:
    """A server of the champion; with ``settings``, the dashboard is mounted too."""
    holder = ModelHolder(Source(name=NAME, alias="champion", key=pipe.key), cache=folder / f"cache-{free_port()}")
    holder.load_initial()
    cfg = ServingConfig(**{"reload_interval_s": 0, **config})
    server = Server(holder, cfg, folder / "prediction_log", settings, pipe if settings else None)
    return Running(create_app(server)), holder


@pytest.fixture(scope="module")
def served(telco):
    pipe, _, folder = telco
    running, holder = start(pipe, folder, max_body_bytes=3_000_000)
    yield running, holder
    running.stop()
    holder.close()


@pytest.fixture(scope="module")
def batch(spark, settings, telco):
    """Every Telco row as sent to the server, and Spark's batch answer for it."""
    pipe, result, _ = telco
    df = spark.table(settings.table(pipe.tables.bronze))
    inputs = _inputs(result.model)
    records = [r.asDict() for r in df.select(pipe.key, *inputs).collect()]
    return df, inputs, records, _batch_scores(df, pipe, result.model)


def _inputs(ref) -> list[str]:
    from lakeforge.scoring.job import model_inputs

    return model_inputs(ref)


def _batch_scores(df, pipe, ref) -> dict:
    model = tracking.load_spark_model(ref)
    out = df.transform(with_predictions(model, pipe.key, ref, DAY, task="binary"))
    return {r[pipe.key]: (r["score"], r["predicted_label"]) for r in out.select(pipe.key, "score", "predicted_label").collect()}


def _post(url, body, **kw) -> httpx.Response:
    return httpx.post(f"{url}/predict", content=body if isinstance(body, (bytes, str)) else json.dumps(body),
                      headers={"content-type": "application/json", **kw.pop("headers", {})}, timeout=60, **kw)


def _compare(answers: list[dict], expected: dict, key: str) -> None:
    assert len(answers) == len(expected)
    worst = 0.0
    for a in answers:
        score, label = expected[a[key]]
        worst = max(worst, abs(a["score"] - score))
        assert a["predicted_label"] == label, (a, score, label)
    assert worst <= 1e-9, worst


def test_all_telco_rows_score_as_in_spark_batch(served, telco, batch):
    (running, _), (pipe, result, _) = served, telco
    _, _, records, expected = batch
    answers = []
    for i in range(0, len(records), 2500):
        r = _post(running.url, records[i:i + 2500])
        assert r.status_code == 200, r.text
        answers += r.json()
    assert len(answers) == 7043
    _compare(answers, expected, pipe.key)
    one = _post(running.url, records[0]).json()  # one object in, one object out
    assert set(one) == {pipe.key, "score", "predicted_label", "model_name", "model_version"}
    assert (one["model_name"], one["model_version"]) == (NAME, result.model.version)


def test_nulls_unseen_categories_empty_strings_and_extremes_score_as_in_spark_batch(spark, served, telco, batch):
    (running, _), (pipe, result, _) = served, telco
    df, inputs, records, _ = batch
    schema = df.select(pipe.key, *inputs).schema
    base = records[0]
    edits = [{c: None for c in inputs}, {"gender": "Martian", "Contract": "Forever"}, {"TotalCharges": ""},
             {"TotalCharges": " "}, {"PaymentMethod": "", "InternetService": ""},
             {"tenure": 2**31 - 1, "MonthlyCharges": 1e308}, {"tenure": -(2**31), "MonthlyCharges": -1e308},
             {"MonthlyCharges": 5e-324, "TotalCharges": "1e308"}, {"tenure": None, "MonthlyCharges": None},
             {"SeniorCitizen": 7, "TotalCharges": "abc"}]
    rows = [{**base, **e, pipe.key: f"edge-{i}"} for i, e in enumerate(edits)]
    expected = _batch_scores(local_frame(spark, [tuple(r[c] for c in schema.names) for r in rows], schema),
                             pipe, result.model)
    r = _post(running.url, rows)
    assert r.status_code == 200, r.text
    _compare(r.json(), expected, pipe.key)


def test_bad_requests_are_refused_with_the_column_and_no_value(served, batch):
    running, _ = served
    _, _, records, _ = batch
    good = {k: v for k, v in records[1].items()}
    secret = "S3CRET-VALUE-42"
    cases = [
        (b'{"tenure": 3,', 400, "bad_json", []),
        (b"[1, 2]", 400, "bad_json", []),
        ({k: v for k, v in good.items() if k != "Contract"}, 422, "missing_column", ["Contract"]),
        ({**good, "tenure": secret}, 422, "wrong_type", ["tenure", "integer"]),
        ({**good, "MonthlyCharges": secret}, 422, "wrong_type", ["MonthlyCharges", "number"]),
        ({**good, "gender": 12345}, 422, "wrong_type", ["gender", "string"]),
        ({**good, "favourite_colour": secret}, 422, "unknown_field", ["favourite_colour"]),
        (json.dumps({**good, "MonthlyCharges": float("nan")}), 422, "non_finite", ["NaN"]),
        (json.dumps({**good, "MonthlyCharges": float("inf")}), 422, "non_finite", ["Infinity"]),
        ([{}] * 10_001, 413, "too_many_records", ["10,000"]),
        ([good] * 100 + [{**good, "gender": secret * 200_000}], 413, "body_too_large", ["3,000,000"]),
    ]
    for body, status, kind, words in cases:
        r = _post(running.url, body)
        assert r.status_code == status, (kind, r.status_code, r.text[:300])
        err = r.json()
        assert err["error"] == kind, err
        assert all(w in err["detail"] for w in words), (err, words)
        assert secret not in r.text and "Traceback" not in r.text and "File \"" not in r.text
    metrics = httpx.get(f"{running.url}/metrics").text
    for kind in ("bad_json", "missing_column", "wrong_type", "unknown_field", "non_finite", "too_many_records",
                 "body_too_large"):
        assert f'lakeforge_serve_errors_total{{kind="{kind}"}}' in metrics, kind


def test_model_health_ready_metrics_and_docs(served, telco):
    (running, _), (pipe, result, _) = served, telco
    model = httpx.get(f"{running.url}/model").json()
    assert (model["name"], model["version"], model["alias"], model["task"]) == (NAME, result.model.version, "champion", "binary")
    assert model["threshold"] == pytest.approx(result.threshold, abs=1e-6)
    assert model["scorer"] == "numpy" and model["stages"][-1] == "LogisticRegressionModel"
    assert [c["name"] for c in model["signature"]] == _inputs(result.model)
    assert {"name": "tenure", "type": "integer"} in model["signature"] and model["key"] == pipe.key
    assert httpx.get(f"{running.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{running.url}/ready").json()["ready"] is True
    metrics = httpx.get(f"{running.url}/metrics").text
    assert "lakeforge_serve_rows_scored_total" in metrics and "lakeforge_serve_request_seconds_bucket" in metrics
    assert f"lakeforge_serve_model_version {float(result.model.version)}" in metrics
    assert 'lakeforge_serve_requests_total{route="/predict",status="200"}' in metrics
    spec = httpx.get(f"{running.url}/openapi.json").json()
    assert "tenure" in json.dumps(spec["paths"]["/predict"]["post"]["requestBody"])


def test_a_token_is_required_when_configured_and_the_dashboard_is_mounted(settings, telco, batch, monkeypatch):
    pipe, _, folder = telco
    monkeypatch.setenv("SERVE_TEST_TOKEN", "t0ken-for-tests")
    running, holder = start(pipe, folder, settings, token_env="SERVE_TEST_TOKEN")
    try:
        record = batch[2][0]
        assert _post(running.url, record).status_code == 401
        assert _post(running.url, record, headers={"authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(f"{running.url}/metrics").status_code == 401
        assert httpx.get(f"{running.url}/health").status_code == 200
        auth = {"authorization": "Bearer t0ken-for-tests"}
        ok = _post(running.url, record, headers=auth)
        assert ok.status_code == 200 and ok.json()["score"] is not None
        assert httpx.get(f"{running.url}/model", headers=auth).json()["dashboard"] == "at /"
        page = httpx.get(f"{running.url}/", timeout=120)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    finally:
        running.stop()
        holder.close()


def test_moving_the_alias_during_load_swaps_the_version_without_a_failed_request(telco, batch):
    pipe, result, folder = telco
    running, holder = start(pipe, folder, reload_interval_s=0.2)
    client = MlflowClient()
    v1 = client.get_model_version(NAME, result.model.version)
    record, seen, failures = batch[2][5], [], []
    moved = threading.Event()

    def load():  # 2,000 requests, and at least 200 after the alias moved (at most 20,000 in all)
        after = 0
        with httpx.Client(base_url=running.url, timeout=30) as c:
            while (len(seen) + len(failures) < 2000 or after < 200) and len(seen) + len(failures) < 20_000:
                r = c.post("/predict", content=json.dumps(record), headers={"content-type": "application/json"})
                (seen.append(r.json()["model_version"]) if r.status_code == 200 else failures.append(r.status_code))
                after += moved.is_set()

    try:
        loader = threading.Thread(target=load)
        loader.start()
        while len(seen) < 300 and loader.is_alive():
            time.sleep(0.01)
        v2 = client.create_model_version(NAME, v1.source, run_id=v1.run_id, tags=v1.tags)
        client.set_registered_model_alias(NAME, "champion", v2.version)
        deadline = time.time() + 60  # the background check (every 0.2 s) loads v2 beside v1, then swaps
        while holder.current.version != str(v2.version) and time.time() < deadline:
            time.sleep(0.05)
        moved.set()
        loader.join(120)
        assert not failures and len(seen) >= 2000
        first_new = seen.index(str(v2.version))  # raises if the switch never happened
        assert set(seen[:first_new]) == {str(v1.version)} and set(seen[first_new:]) == {str(v2.version)}
        assert httpx.get(f"{running.url}/model").json()["version"] == str(v2.version)
        assert "lakeforge_serve_model_reloads_total 1.0" in httpx.get(f"{running.url}/metrics").text
        assert httpx.post(f"{running.url}/reload").json() == {"changed": False, "version": str(v2.version)}
    finally:
        client.set_registered_model_alias(NAME, "champion", str(v1.version))
        running.stop()
        holder.close()


def _descendants(pid: int) -> list[str]:
    """The command names of every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    names, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        try:
            names.append(Path(f"/proc/{p}/comm").read_text().strip())
        except OSError:
            pass
        todo += children.get(p, [])
    return names


def test_an_exported_model_is_served_by_python_alone(telco, batch, served, tmp_path):
    (pipe, result, _), (running, _) = telco, served
    manifest = export_model(NAME, pipe.key, tmp_path / "export", alias="champion")
    assert (manifest["version"], manifest["key"], manifest["task"]) == (result.model.version, pipe.key, "binary")
    assert manifest["inputs"][0] == {"name": "tenure", "type": "integer"} and (tmp_path / "export/model/sparkml").is_dir()
    overlay = write_overlay(tmp_path / "store")
    data = yaml.safe_load(overlay.read_text())
    overlay.write_text(yaml.safe_dump({**data, "serving": {"log_dir": str(tmp_path / "log")}}))
    port = free_port()
    exe = Path(sys.executable).with_name("lakeforge")
    proc = subprocess.Popen([str(exe), "-c", str(overlay), "serve", "--model-dir", str(tmp_path / "export"), "--port", str(port)],
                            cwd=ROOT, env={**os.environ, "LAKEFORGE_HOME": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.time() + 90
        while True:
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        records = batch[2][:200]
        there, here = _post(url, records).json(), _post(running.url, records).json()
        assert there == here
        model = httpx.get(f"{url}/model").json()
        assert model["process"] == {"pid": proc.pid, "pyspark_imported": False}
        assert model["source"] == str((tmp_path / "export").resolve()) and model["dashboard"].startswith("off")
        assert "java" not in _descendants(proc.pid)
    finally:
        proc.terminate()
        proc.wait(20)
    assert proc.returncode in (0, -15)


def test_every_scored_record_is_logged_and_ingestable_into_delta(spark, settings, telco, batch, tmp_path):
    pipe, _, folder = telco
    log_folder = tmp_path / "log"
    holder = ModelHolder(Source(name=NAME, alias="champion", key=pipe.key), cache=tmp_path / "cache")
    holder.load_initial()
    running = Running(create_app(Server(holder, ServingConfig(reload_interval_s=0, log_max_bytes=20_000), log_folder)))
    try:
        records = batch[2][:60]
        answers = [_post(running.url, records[i:i + 20], headers={"x-request-id": f"req-{i}"}).json() for i in range(0, 60, 20)]
    finally:
        running.stop()  # the log thread writes what is queued before it stops
        holder.close()
    files = sorted(log_folder.glob("*.jsonl"))
    assert len(files) >= 2  # rotated at 20,000 bytes
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(lines) == 60
    first = lines[0]
    assert (first["request_id"], first["record_index"], first["model_version"]) == ("req-0", 0, answers[0][0]["model_version"])
    assert (first["score"], first["predicted_label"]) == (answers[0][0]["score"], answers[0][0]["predicted_label"])
    assert {k: first[k] for k in records[0]} == records[0]
    source = {"format": "json", "path": str(log_folder / "*.jsonl"), "table": f"prediction_log_{NAME}", "mode": "incremental"}
    pipe_log = load_pipeline(write_pipeline(folder / "log", **{
        "name": NAME, "tables.bronze": f"{NAME}_bronze", "model.registered_name": NAME,
        "sources": {"prediction_log": source}}))
    ingest(spark, settings, pipe_log, "serve-log", DAY, only="prediction_log")
    table = spark.table(settings.table(f"prediction_log_{NAME}"))
    assert table.count() == 60
    row = table.where("request_id = 'req-20' AND record_index = 3").first()
    assert (row[pipe.key], row["tenure"], row["score"]) == (records[23][pipe.key], records[23]["tenure"], answers[1][3]["score"])


def test_a_log_that_cannot_be_written_never_fails_a_request_and_is_counted(telco, batch, tmp_path):
    pipe, _, _ = telco
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the log folder should be")
    holder = ModelHolder(Source(name=NAME, alias="champion", key=pipe.key), cache=tmp_path / "cache")
    holder.load_initial()
    running = Running(create_app(Server(holder, ServingConfig(reload_interval_s=0), blocked / "log")))
    try:
        assert all(_post(running.url, batch[2][i]).status_code == 200 for i in range(5))
        deadline = time.time() + 10
        while "lakeforge_serve_prediction_log_write_errors_total 5.0" not in httpx.get(f"{running.url}/metrics").text:
            assert time.time() < deadline
            time.sleep(0.05)
    finally:
        running.stop()
        holder.close()


def test_a_stage_the_numpy_scorer_cannot_compute_is_refused_by_name_unless_spark_scores_it(spark, settings, tmp_path):
    import numpy as np
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import FeatureHasher

    from lakeforge.serving.model_store import NumpyScorer, ScorerUnavailable, make_scorer
    from lakeforge.serving.predict import scores_and_labels
    from lakeforge.serving.spark_scorer import spark_fallback

    df = local_frame(spark, [("a", 1.0, 0.0), ("b", 2.0, 1.0), ("a", 3.0, 0.0), ("b", 4.0, 1.0)],
                               "colour STRING, size DOUBLE, label DOUBLE")
    model = Pipeline(stages=[FeatureHasher(inputCols=["colour", "size"], outputCol="features", numFeatures=8),
                             LogisticRegression(maxIter=5)]).fit(df)
    model.write().save(str(tmp_path / "sparkml"))
    (tmp_path / "MLmodel").write_text(yaml.safe_dump({"signature": {"inputs": json.dumps([
        {"type": "string", "name": "colour", "required": True}, {"type": "double", "name": "size", "required": True}])}}))
    with pytest.raises(ScorerUnavailable, match="FeatureHasher.*--spark-fallback"):
        NumpyScorer(tmp_path)
    scorer = make_scorer(tmp_path, spark_fallback(settings))
    assert (scorer.kind, scorer.stages) == ("spark", ["FeatureHasher", "LogisticRegressionModel"])
    out = scorer.transform({"colour": np.array(["a", "b"], dtype=object), "size": np.array([1.0, 4.0], dtype=object)})
    expected = model.transform(df).select("probability", "prediction").collect()
    served = type("M", (), {"task": "binary"})()
    scores, labels = scores_and_labels(served, out)
    assert scores == [expected[0]["probability"][1], expected[3]["probability"][1]]
    assert labels == [int(expected[0]["prediction"]), int(expected[3]["prediction"])]
