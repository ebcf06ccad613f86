"""Benchmark: the whole lakeforge pipeline at growing sizes (issue 23), each stage a real
``lakeforge`` command in a subprocess, beside pandas + scikit-learn on the same rows.

    nice -n 10 .venv/bin/python scripts/bench_scale.py [--rows 1000000,10000000,50000000]
        [--out docs/bench_scale.json] [--markdown docs/bench/scale_table.md] [--driver-memory 4g]
        [--data-dir /tmp/lakeforge-scale-data] [--train-minutes M] [--pandas [--pandas-memory-gb G]]
        [--master spark://127.0.0.1:7077 --executor-memory 1g --executor-cores 1 --cores-max 2 | --env cluster]

For each size: the generated CSV files (scripts/bench_scale_data.py: 22 columns, 1 % bad records;
written once per size under --data-dir and reused by later runs), a throwaway warehouse and
MLflow store, then in order ``lakeforge sql "SELECT 1"`` (the fixed cost of a command: Python,
JVM and session start), ``ingest`` (bad records quarantined), ``profile``, ``train`` (logistic
regression and boosted trees, train/validation split), ``score`` and ``monitor`` (the run date
just scored, against training's reference). Each measured by scripts/bench_scale_meter.py: wall
time, rows/s, the driver JVM's peak heap and heap after GC (its GC log), its peak RSS, the
Python process' peak RSS, data files written, spill (Spark's event log). The driver memory is
set explicitly (--driver-memory) and recorded. Growth exponent between consecutive sizes x < y:
log(t(y)/t(x)) / log(y/x) (1.0 = linear; per decade for 10x), of the wall time and of the wall time
less the fixed cost.

With --master (a standalone master: scripts/cluster.sh start --workers 2) or --env cluster the
same commands run with the driver here and the tasks on the cluster's executors (their peak RSS
recorded too); the warehouse is under /tmp, which executors on this machine share.

With --pandas, scripts/bench_scale_pandas.py reads the same CSV files with pandas and fits
logistic regression and HistGradientBoosting in a child process (optionally under an address
space limit): its time and peak RSS, or the MemoryError / kill it ended with.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchlib import ROOT  # noqa: E402  (puts tests/ on the path: conftest.write_overlay)
from bench_scale_data import pipeline  # noqa: E402
from bench_scale_meter import run_command  # noqa: E402

DAY = "2026-07-01"
STAGES = ["startup", "ingest", "profile", "train", "score", "monitor"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="1000000,10000000,50000000", help="comma-separated sizes")
    p.add_argument("--out", default="docs/bench_scale.json", help="the results as JSON")
    p.add_argument("--markdown", default=None, help="also write the results table (Markdown) here")
    p.add_argument("--data-dir", default="/tmp/lakeforge-scale-data", help="generated data, one folder per size, reused")
    p.add_argument("--driver-memory", default="4g", help="spark.driver.memory of every command")
    p.add_argument("--train-minutes", type=float, default=None, help="model.max_minutes (default: none, the default)")
    p.add_argument("--stage-timeout", type=float, default=3 * 3600, help="seconds before a command is killed")
    p.add_argument("--master", default=None, help="a standalone master URL (default: local mode, local[*])")
    p.add_argument("--env", default=None, help="a settings overlay conf/NAME.yaml (e.g. cluster) instead of --master")
    p.add_argument("--executor-memory", default="1g", help="with --master: spark.executor.memory")
    p.add_argument("--executor-cores", type=int, default=1, help="with --master: spark.executor.cores")
    p.add_argument("--cores-max", type=int, default=2, help="with --master: spark.cores.max")
    p.add_argument("--pandas", action="store_true", help="also pandas + scikit-learn on the same rows")
    p.add_argument("--pandas-memory-gb", type=float, default=None, help="RLIMIT_AS of the pandas process")
    p.add_argument("--keep", action="store_true", help="keep the warehouses (default: deleted after each size)")
    p.add_argument("--stages", default=",".join(STAGES),
                   help="comma-separated stages to run, in pipeline order (default: all; train needs ingest)")
    return p.parse_args(argv)


def ensure_data(rows: int, args) -> dict:
    folder = Path(args.data_dir) / f"rows_{rows}"
    if not (folder / "_meta.json").exists():
        print(f"generating {rows:,} rows into {folder} ...", flush=True)
        subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_scale_data.py"), "--rows", str(rows),
                        "--folder", str(folder)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"folder": str(folder), **json.loads((folder / "_meta.json").read_text())}


def write_overlay(work: Path, stage: str, args) -> Path:
    """The settings overlay of one command: stores under ``work``, the GC log and event log of the stage."""
    from conftest import write_overlay as base_overlay

    warehouse = work / "warehouse"
    java = [f"-Dlog4j.configurationFile={(ROOT / 'conf' / 'log4j2.properties').as_uri()}",
            f"-Dderby.system.home={warehouse}", f"-Xlog:gc:file={work / 'gc' / stage}.log"]
    conf = {"spark.eventLog.enabled": "true", "spark.eventLog.compress": "false", "spark.eventLog.dir": (work / "events" / stage).as_uri(),
            "spark.driver.extraJavaOptions": " ".join(java)}
    if args.master:
        conf.update({"spark.executor.memory": args.executor_memory, "spark.executor.cores": str(args.executor_cores),
                     "spark.cores.max": str(args.cores_max)})
    (work / "gc").mkdir(parents=True, exist_ok=True)
    path = base_overlay(work, master=args.master or "local[*]", shuffle_partitions=8,
                        driver_memory=args.driver_memory, conf=conf)
    if args.env:  # the environment's master and partitions, not ours
        data = yaml.safe_load(path.read_text())
        for key in ("master", "shuffle_partitions"):
            data["spark"].pop(key)
        path.write_text(yaml.safe_dump(data))
    return path


def command(stage: str, overlay: Path, pipe: Path, args) -> list[str]:
    cli = [str(Path(sys.executable).parent / "lakeforge"), *(["--env", args.env] if args.env else []), "--conf", str(overlay)]
    if stage == "startup":
        return [*cli, "sql", "SELECT 1 AS one"]
    if stage == "profile":
        return [*cli, "profile", str(pipe)]
    return [*cli, stage, str(pipe), "--run-date", DAY]


def one_size(rows: int, args) -> dict:
    data = ensure_data(rows, args)
    work = Path(tempfile.mkdtemp(prefix=f"lakeforge-bench-scale-{rows}-"))
    pipe = work / "bench_scale.yaml"
    pipe.write_text(yaml.safe_dump(pipeline(Path(data["folder"]), args.train_minutes), sort_keys=False))
    out = {"rows": rows, "data": data, "work": str(work), "stages": {}}
    try:
        for stage in [s for s in STAGES if s in args.stages.split(",")]:
            overlay = write_overlay(work, stage, args)
            m = run_command(command(stage, overlay, pipe, args), work / "warehouse", work / "gc" / f"{stage}.log",
                            work / "events" / stage, bool(args.master or args.env), args.stage_timeout)
            m["rows_per_s"] = round(rows / m["wall_s"]) if stage != "startup" else None
            out["stages"][stage] = m
            print(f"  {rows:,} {stage}: {m['wall_s']} s, heap peak {m['jvm_peak_heap_mb']} MB, "
                  f"JVM RSS {m['jvm_peak_rss_mb']} MB, files {m['files_written']}, exit {m['exit_code']}", flush=True)
            if not m["ok"]:
                print("\n".join(m["output_tail"]), file=sys.stderr)
                break
        if args.pandas:
            out["pandas"] = run_pandas(data["folder"], args)
            print(f"  {rows:,} pandas: {out['pandas']}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return out


def run_pandas(folder: str, args) -> dict:
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_scale_pandas.py"), folder]
    if args.pandas_memory_gb:
        cmd += ["--memory-gb", str(args.pandas_memory_gb)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.stage_timeout)
    wall = round(time.perf_counter() - t0, 1)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        return {"wall_s": wall, **json.loads(lines[-1])}
    return {"wall_s": wall, "outcome": f"exit code {proc.returncode}" + (" (killed, SIGKILL: out of memory?)" if proc.returncode == -9 else ""),
            "stderr_tail": proc.stderr.strip().splitlines()[-3:]}


def exponents(sizes: list[dict]) -> dict:
    """Per stage, between consecutive sizes: the growth exponent of the wall time, and of the wall
    time less the fixed cost of a command (the startup stage at the same size)."""
    out: dict = {}
    for a, b in zip(sizes, sizes[1:]):
        span = math.log(b["rows"] / a["rows"])
        for stage in STAGES[1:]:
            sa, sb = a["stages"].get(stage), b["stages"].get(stage)
            if not (sa and sb and sa["ok"] and sb["ok"]):
                continue
            fixed_a, fixed_b = (s["stages"].get("startup", {}).get("wall_s", 0.0) for s in (a, b))
            net_a, net_b = sa["wall_s"] - fixed_a, sb["wall_s"] - fixed_b
            out.setdefault(stage, []).append({
                "from": a["rows"], "to": b["rows"], "exponent": round(math.log(sb["wall_s"] / sa["wall_s"]) / span, 3),
                "exponent_less_fixed_cost": round(math.log(net_b / net_a) / span, 3) if net_a > 0 and net_b > 0 else None})
    return out


def machine(args) -> dict:
    import pyspark

    mem = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal:")), 0)
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[:1]
    return {"cpus": os.cpu_count(), "memory_gib": round(mem / 2**20, 1), "platform": platform.platform(),
            "python": platform.python_version(), "spark": pyspark.__version__, "java": java,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def main(argv=None) -> int:
    args = parse_args(argv)
    sizes = sorted(int(s) for s in args.rows.split(","))
    results = {"machine": machine(args), "command": " ".join([Path(sys.executable).name, *sys.argv]),
               "spark": {"master": args.master or (f"--env {args.env}" if args.env else "local[*]"),
                         "driver_memory": args.driver_memory,
                         **({"executor_memory": args.executor_memory, "executor_cores": args.executor_cores,
                             "cores_max": args.cores_max} if args.master else {})},
               "pipeline": pipeline(Path(args.data_dir) / "rows_N", args.train_minutes), "sizes": []}
    for rows in sizes:
        print(f"{rows:,} rows", flush=True)
        results["sizes"].append(one_size(rows, args))
        results["exponents"] = exponents(results["sizes"])
        results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        Path(args.out).write_text(json.dumps(results, indent=1, default=str) + "\n")  # after every size
    if args.markdown:
        from bench_scale_report import markdown

        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(markdown(results))
    print(json.dumps(results["exponents"], indent=1))
    return 0 if all(s["ok"] for size in results["sizes"] for s in size["stages"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
