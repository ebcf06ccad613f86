"""Soak run (issue 23): N daily runs back to back, each `lakeforge ingest`, `train` (weekly: day 0,
7, 14...), `score` and `monitor` in a process of its own as a scheduler starts them, with kill -9
of the whole process group injected at random points (a random delay after the stage's first
line) and the stage retried until it succeeds, as a scheduler would retry. At the end every table
is checked for exactly the expected rows per run date, the registry's champion for a version whose
MLflow run finished, and the job_runs story is printed (one line per date and stage: attempts
killed, failed, succeeded).

    .venv/bin/python scripts/soak.py --days 20                 # the issue's soak
    .venv/bin/python scripts/soak.py --days 3 --folder /tmp/soak3   # a smoke run

The project lives in --folder (its own warehouse, embedded metastore and MLflow store); the data
is the first --rows Telco customers, loaded again each day (one partition per run date).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "lib"))

from conftest import telco_slice, write_overlay, write_pipeline  # noqa: E402

EXE = Path(sys.executable).with_name("lakeforge")
ALERT_EXIT_CODE = 3  # lakeforge monitor: it ran and an alert is confirmed
MARKS = {"ingest": ">> ingest", "train": ">> train", "score": ">> score", "monitor": ">> monitor"}


def attempt(args: list[str], kill_after: float | None, mark: str, log) -> str:
    """One `lakeforge` process: 'succeeded', 'failed' or 'killed' (kill -9 of its group
    ``kill_after`` seconds after its line containing ``mark``)."""
    proc = subprocess.Popen([str(EXE), *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "LAKEFORGE_HOME": str(ROOT)})
    timer = None
    for line in proc.stdout:
        log.write(line)
        if kill_after is not None and timer is None and mark in line:
            timer = threading.Timer(kill_after, lambda: _kill(proc))
            timer.start()
    proc.wait()
    if timer is not None:
        timer.cancel()
    if proc.returncode == -signal.SIGKILL:
        time.sleep(1)  # its JVM notices and releases the embedded metastore
        return "killed"
    return "succeeded" if proc.returncode in (0, ALERT_EXIT_CODE) else "failed"


def _kill(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)


def soak(args) -> list[tuple]:
    folder = Path(args.folder)
    overlay = write_overlay(folder)
    pipeline = write_pipeline(folder, **{
        "source.path": str(telco_slice(folder, args.rows)),
        "model.algorithms": {"logistic_regression": {"regParam": [0.01]}}, "model.folds": 2})
    rng = random.Random(args.seed)
    story = []
    start = dt.date.fromisoformat(args.start)
    with open(folder / "soak.log", "a") as log:
        for day in range(args.days):
            date = str(start + dt.timedelta(days=day))
            jobs = ["ingest", *(["train"] if day % 7 == 0 else []), "score", "monitor"]
            for job in jobs:
                tries = []
                while not tries or tries[-1] != "succeeded":
                    kill = rng.uniform(0, args.max_delay) if rng.random() < args.kill_rate and len(tries) < 2 else None
                    log.write(f"\n### {date} {job} attempt {len(tries) + 1} kill_after={kill}\n")
                    tries.append(attempt(["--conf", str(overlay), job, str(pipeline), "--run-date", date],
                                         kill, MARKS[job], log))
                    if len(tries) >= 4:
                        raise SystemExit(f"{date} {job}: {tries}: see {folder / 'soak.log'}")
                story.append((date, job, tries))
                print(f"{date} {job:8s} {' -> '.join(tries)}", flush=True)
    return story


def check(args, story) -> bool:
    """Every table's exact rows per run date; the champion's run finished; the job_runs story."""
    from pyspark.sql import functions as F

    from lakeforge.core import tracking
    from lakeforge.core.settings import load_settings
    from lakeforge.core.spark import get_spark

    folder = Path(args.folder)
    settings = load_settings(overlays=[folder / "overlay.yaml"], conf_dir=ROOT / "conf")
    spark = get_spark(settings)
    dates = sorted({d for d, _, _ in story})
    ok = True

    def expect(what, got, want):
        nonlocal ok
        ok &= got == want
        print(f"{'ok  ' if got == want else 'FAIL'} {what}: {got if got == want else f'{got} != {want}'}")

    per = lambda t, d, k: {str(r[0]): (r[1], r[2]) for r in spark.table(t).groupBy(d).agg(  # noqa: E731
        F.count("*"), F.countDistinct(k)).collect()}
    # the Telco source is a full snapshot (mode overwrite): bronze holds the last load only
    expect("bronze rows per run date", per("lakeforge.bronze_telco", "_run_date", "customerID"),
           {dates[-1]: (args.rows, args.rows)})
    loads = {str(r[0]): r[1] for r in spark.table("lakeforge.ingest_runs").where("status = 'succeeded'")
             .groupBy("run_date").agg(F.max_by("rows_loaded", "finished_at")).collect()}
    expect("ingest_runs: rows of each date's last load", loads, {d: args.rows for d in dates})
    expect("predictions per run date", per("lakeforge.predictions_telco", "run_date", "customerID"),
           {d: (args.rows, args.rows) for d in dates})
    for name in ("telco_churn_profile_metrics", "telco_churn_drift_metrics"):
        df = spark.table(f"lakeforge.{name}")
        keys = [c for c in ("granularity", "window_start", "model_name", "model_version", "column_name", "drift_type",
                            "compared_window_start") if c in df.columns]
        expect(f"{name}: rows with a duplicated key ({', '.join(keys)})", df.count() - df.select(*keys).distinct().count(), 0)
    runs = spark.table("lakeforge.job_runs")
    last = {(str(r.run_date), r.job): r.status for r in runs.groupBy("run_date", "job").agg(
        F.max_by("status", "finished_at").alias("status")).collect()}
    expect("the last job_runs record of every date and stage", sorted(set(last.values())), ["succeeded"])
    expect("dates and stages recorded", sorted(last), sorted((d, j) for d, j, _ in story))
    tracking.configure(settings)
    client = tracking.MlflowClient()
    champion = client.get_model_version_by_alias("telco_churn", "champion")
    status = client.get_run(champion.run_id).info.status
    expect(f"champion v{champion.version}'s MLflow run", status, "FINISHED")
    print("\njob_runs story (run date, stage: attempts; killed attempts leave no record):")
    recorded = {}
    for r in runs.orderBy("finished_at").collect():
        recorded.setdefault((str(r.run_date), r.job), []).append(f"{r.status}({r.rows_out})")
    for date, job, tries in story:
        print(f"  {date} {job:8s} tried: {' -> '.join(tries):40s} recorded: {', '.join(recorded.get((date, job), []))}")
    spark.stop()
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=20)
    p.add_argument("--rows", type=int, default=1000, help="Telco customers loaded each day (at least 1,000)")
    p.add_argument("--start", default="2026-01-01", help="the first run date")
    p.add_argument("--kill-rate", type=float, default=0.3, help="the chance that an attempt is killed")
    p.add_argument("--max-delay", type=float, default=8.0, help="seconds after the stage's first line to kill at most")
    p.add_argument("--seed", type=int, default=23)
    p.add_argument("--folder", default="/tmp/lakeforge-soak")
    p.add_argument("--check-only", action="store_true", help="only check the tables of an earlier soak in --folder")
    args = p.parse_args()
    t0 = time.time()
    if args.check_only:  # the tables of an earlier soak in --folder (attempts not known: one each)
        start = dt.date.fromisoformat(args.start)
        story = [(str(start + dt.timedelta(days=d)), j, ["succeeded"]) for d in range(args.days)
                 for j in ["ingest", *(["train"] if d % 7 == 0 else []), "score", "monitor"]]
    else:
        story = soak(args)
    ok = check(args, story)
    print(f"\nsoak: {args.days} days in {time.time() - t0:.0f} s: {'every count exact' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
