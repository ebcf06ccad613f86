"""Benchmark: `lakeforge serve` (numpy scorer, no JVM) vs `mlflow models serve` (spark flavor,
--env-manager local) of the same registered Telco model, side by side in one run.

    .venv/bin/python scripts/bench_serve.py [--runs 3] [--single 2000] [--batches 30] \
        [--out docs/bench_serve.json] [--md docs/bench/serve.md]

It trains the Telco model once in a temporary store (logistic regression, the real training
path), exports it, and starts both servers on 127.0.0.1 (lakeforge: `lakeforge serve
--model-dir`, the Python-only export; MLflow: `mlflow models serve -m models:/telco_churn/1`).
Then, ``--runs`` times, alternating the two: one-record latency over HTTP (sequential requests
on one keep-alive connection, after a warm-up; p50 and p99), and rows/s for 1,000-record
batches. The server's resident memory is the sum of VmRSS over its process tree (MLflow's
includes its JVM), read after the runs. Medians of the runs are reported.

MLflow's spark flavor runs a Spark job per request, so it gets fewer requests (``--mlflow-single``,
``--mlflow-batches``); its answers are only the ``prediction`` column (no probability).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
DAY = dt.date(2026, 5, 1)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--single", type=int, default=2000, help="one-record requests per run (lakeforge)")
    p.add_argument("--batches", type=int, default=30, help="1,000-record requests per run (lakeforge)")
    p.add_argument("--mlflow-single", type=int, default=100)
    p.add_argument("--mlflow-batches", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "docs" / "bench_serve.json"))
    p.add_argument("--md", default=str(ROOT / "docs" / "bench" / "serve.md"))
    p.add_argument("--work", help="reuse the work folder of an earlier run (its MLflow store and export): no training")
    return p.parse_args()


def reuse(work: Path) -> tuple:
    """An earlier run's store and export; the Telco rows typed by the export's manifest (no Spark)."""
    import csv

    from lakeforge.core import tracking
    from lakeforge.core.settings import load_settings

    manifest = json.loads((work / "export" / "manifest.json").read_text())
    settings = load_settings(overlays=[work / "overlay.yaml"], conf_dir=ROOT / "conf")
    convert = {"integer": int, "long": int, "double": float, "float": float}
    types = {c["name"]: c["type"] for c in manifest["inputs"]}
    records = []
    with open(ROOT / "data" / "telco-customer-churn" / "Telco-Customer-Churn.csv", newline="") as f:
        for row in csv.DictReader(f):
            rec = {manifest["key"]: row[manifest["key"]]}
            for c, t in types.items():
                v = row[c]
                rec[c] = (convert[t](v) if v.strip() else None) if t in convert else v
            records.append(rec)
    ref = tracking.ModelRef(manifest["name"], manifest["version"])
    return work / "overlay.yaml", work / "export", records, settings.tracking_uri, ref


def train_and_export(work: Path) -> tuple:
    """Train the Telco model in a temp store and export it: (overlay, export dir, records, tracking URI, model ref)."""
    from conftest import write_overlay, write_pipeline

    from lakeforge.core import tracking
    from lakeforge.core.config import load_pipeline
    from lakeforge.core.settings import load_settings
    from lakeforge.core.spark import get_spark
    from lakeforge.ingest.job import ingest
    from lakeforge.scoring.job import model_inputs
    from lakeforge.serving.export import export_model
    from lakeforge.training.job import train

    overlay = write_overlay(work)
    settings = load_settings(overlays=[overlay], conf_dir=ROOT / "conf")
    spark = get_spark(settings)
    pipe = load_pipeline(write_pipeline(work, **{"model.algorithms": {"logistic_regression": {"regParam": [0.01]}},
                                                 "model.folds": 2}))
    ingest(spark, settings, pipe, "bench-ingest", DAY)
    result = train(spark, settings, pipe, "bench-train", DAY)
    inputs = model_inputs(result.model)
    records = [r.asDict() for r in spark.table(settings.table(pipe.tables.bronze)).select(pipe.key, *inputs).collect()]
    export_model(pipe.model.registered_name, pipe.key, work / "export", version=result.model.version)
    spark.stop()
    tracking.configure(settings)
    return overlay, work / "export", records, settings.tracking_uri, result.model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stdout.read()[-2000:] if proc.stdout else ''}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url}: not ready after {timeout} s")


def tree_rss_mb(pid: int) -> float:
    """VmRSS summed over ``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def measure(client: httpx.Client, path: str, wrap, records: list[dict], single: int, batches: int) -> dict:
    """One run: one-record latencies (ms) and 1,000-record batch rows/s."""
    headers = {"content-type": "application/json"}
    bodies = [json.dumps(wrap([records[i % len(records)]])) for i in range(single)]
    for b in bodies[: max(20, single // 10)]:  # warm-up
        client.post(path, content=b, headers=headers).raise_for_status()
    lat, failed = [], 0
    for b in bodies:
        t = time.perf_counter()
        try:
            client.post(path, content=b, headers=headers).raise_for_status()
        except httpx.HTTPError:
            failed += 1  # a timeout counts at its full duration
        lat.append((time.perf_counter() - t) * 1000)
    batch_bodies = [json.dumps(wrap(records[(i * 1000) % 6000:(i * 1000) % 6000 + 1000])) for i in range(batches)]
    t = time.perf_counter()
    for b in batch_bodies:
        client.post(path, content=b, headers=headers).raise_for_status()
    secs = time.perf_counter() - t
    return {"p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "rows_per_s": batches * 1000 / secs, "single_requests": single, "batch_requests": batches,
            "failed_requests": failed}


def start_servers(overlay: Path, export: Path, tracking_uri: str, ref) -> tuple:
    lf_port, ml_port = free_port(), free_port()
    # the venv's bin first on PATH: mlflow models serve runs `uvicorn` by name
    env = {**os.environ, "LAKEFORGE_HOME": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    exe = Path(sys.executable).with_name
    lf = subprocess.Popen([str(exe("lakeforge")), "-c", str(overlay), "serve", "--model-dir", str(export),
                           "--port", str(lf_port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ml = subprocess.Popen([str(exe("mlflow")), "models", "serve", "-m", f"models:/{ref.name}/{ref.version}",
                           "--env-manager", "local", "--host", "127.0.0.1", "-p", str(ml_port)],
                          env={**env, "MLFLOW_TRACKING_URI": tracking_uri}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    wait_ready(f"http://127.0.0.1:{lf_port}/ready", lf)
    wait_ready(f"http://127.0.0.1:{ml_port}/ping", ml)
    return (lf, lf_port), (ml, ml_port)


def median_of(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in ("p50_ms", "p99_ms", "rows_per_s")}


def markdown(res: dict) -> str:
    lf, ml = res["lakeforge"], res["mlflow"]
    rows = [("one record, p50 (ms)", "p50_ms", ".2f"), ("one record, p99 (ms)", "p99_ms", ".2f"),
            ("1,000-record batches (rows/s)", "rows_per_s", ",.0f"), ("server RSS (MB)", "rss_mb", ".0f")]
    lines = [
        "# lakeforge serve vs mlflow models serve (spark flavor)", "",
        f"Measured {res['date']} by `scripts/bench_serve.py` ({res['runs']} runs, medians) on "
        f"{res['machine']}. The same registered Telco model (logistic regression, 19 input columns) "
        "served over HTTP on 127.0.0.1, sequential requests on one keep-alive connection. lakeforge: "
        "`lakeforge serve --model-dir` (exported, numpy scorer, no JVM); MLflow: `mlflow models serve "
        "--env-manager local` (a Spark job per request; it answers `prediction` only).", "",
        "| | lakeforge serve | mlflow models serve | ratio |", "|---|---:|---:|---:|",
    ]
    for label, k, fmt in rows:
        ratio = ml[k] / lf[k] if k != "rows_per_s" else lf[k] / ml[k]
        lines.append(f"| {label} | {format(lf[k], fmt)} | {format(ml[k], fmt)} | {ratio:,.0f}x |")
    goals = res["goals"]
    lines += ["", "Goals: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in goals.items()), ""]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    import tempfile

    if args.work:
        overlay, export, records, tracking_uri, ref = reuse(Path(args.work))
    else:
        work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
        print(f"training and exporting the Telco model in {work} ...", flush=True)
        overlay, export, records, tracking_uri, ref = train_and_export(work)
    (lf, lf_port), (ml, ml_port) = start_servers(overlay, export, tracking_uri, ref)
    runs = {"lakeforge": [], "mlflow": []}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{lf_port}", timeout=120) as a, \
                httpx.Client(base_url=f"http://127.0.0.1:{ml_port}", timeout=600) as b:
            for i in range(args.runs):
                runs["lakeforge"].append(measure(a, "/predict", lambda rs: rs, records, args.single, args.batches))
                runs["mlflow"].append(measure(b, "/invocations", lambda rs: {"dataframe_records": rs}, records,
                                              args.mlflow_single, args.mlflow_batches))
                print(f"run {i + 1}: lakeforge {runs['lakeforge'][-1]}\n       mlflow {runs['mlflow'][-1]}", flush=True)
        rss = {"lakeforge": tree_rss_mb(lf.pid), "mlflow": tree_rss_mb(ml.pid)}
    finally:
        for p in (lf, ml):
            p.terminate()
            p.wait(30)
    res = {"date": dt.date.today().isoformat(), "runs": args.runs,
           "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, other jobs running",
           **{k: {**median_of(v), "rss_mb": rss[k], "runs": v} for k, v in runs.items()}}
    lf_m, ml_m = res["lakeforge"], res["mlflow"]
    res["goals"] = {"p99 <= 5 ms": lf_m["p99_ms"] <= 5, "p99 >= 50x lower than MLflow": ml_m["p99_ms"] >= 50 * lf_m["p99_ms"],
                    ">= 20,000 rows/s": lf_m["rows_per_s"] >= 20_000, "RSS <= 300 MB": lf_m["rss_mb"] <= 300}
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    Path(args.md).parent.mkdir(parents=True, exist_ok=True)
    Path(args.md).write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
