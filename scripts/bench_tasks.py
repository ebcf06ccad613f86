"""Benchmark rows for the tasks without a target, run by scripts/bench_train.py
(``--datasets clustering,als``) or alone, side by side in one process:

    nice -n 10 .venv/bin/python scripts/bench_tasks.py [--datasets clustering,als] [--rows 100000] [--users 5000] [--out FILE]

- clustering: lakeforge's whole clustering training (KMeans, every k of 2..8, silhouette on
  held-out rows, profile, MLflow registration) against scikit-learn's KMeans (n_init=1, the same
  k, StandardScaler + one-hot, ``silhouette_score`` with squared Euclidean distances, as Spark's, on
  a held-out sample of the same size) on the
  generated customers of scripts/make_examples.py (4 planted segments);
- als: lakeforge's ALS training (one grid point: rank 16, regParam 0.1, alpha 10, 10 iterations;
  3 folds, refit, held-out NDCG@10) with its popularity baseline, and the ``implicit`` package's
  ALS (same rank, alpha, iterations, exact least squares) fitted on lakeforge's training pairs and
  scored on the same held-out pairs with the same NDCG@10 (Spark's RankingMetrics definition,
  recomputed in numpy: the numpy popularity NDCG is printed beside lakeforge's as a check), on
  generated taste groups (6 groups, 25 interactions per user, 90 % in the user's group).

Each row reports wall time, the quality metric and peak memory of both sides. The baselines
(scikit-learn, implicit + the numpy popularity check) run in a child process so that their peak
memory is their own (the child's max RSS, imports included); lakeforge's is the driver JVM's peak
RSS plus this process' (both peaks reset right before its training). The JVM runs with the
product's defaults (the tests' C1-only options are not inherited).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import math
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from make_examples import customers, interactions  # noqa: E402

DAY = dt.date(2026, 1, 1)
ALS_POINT = {"rank": 16, "regParam": 0.1, "alpha": 10.0}
K = 10


def _pipeline(work: Path, name: str, csv: Path, key: str, model: dict, features: dict | None = None):
    import yaml

    from lakeforge.core.config import load_pipeline

    cfg = {"name": name, "source": {"format": "csv", "path": str(csv), "options": {"header": True}}, "key": key,
           "tables": {"bronze": f"{name}_bronze", "predictions": f"{name}_predictions"}, "ingest": {"mode": "overwrite"},
           "features": features or {}, "model": {"registered_name": name, **model}}
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_pipeline(path)


def _peaks_reset(jvm_pid: int | None) -> None:
    from benchlib import jvm_peak_rss_reset

    for pid in (jvm_pid, os.getpid()):
        if pid:
            jvm_peak_rss_reset(pid)  # VmHWM back to the current RSS


def _peak_mb(jvm_pid: int | None) -> float:
    """lakeforge's peak memory since _peaks_reset: the driver JVM's VmHWM + this process'."""
    from benchlib import jvm_peak_rss_mb

    return round(sum(jvm_peak_rss_mb(pid) for pid in (jvm_pid, os.getpid()) if pid))


def _child(kind: str, work: Path, job: dict) -> dict:
    """Run a baseline (``kind``: kmeans or implicit) in a child process; its JSON result."""
    path = work / f"{kind}_job.json"
    path.write_text(json.dumps(job))
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the {kind} baseline failed (exit {out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_clustering(spark, settings, work: Path, rows: int, jvm_pid: int | None = None) -> dict:
    from lakeforge.ingest.job import ingest
    from lakeforge.training.job import train

    csv = work / "customers.csv"
    customers(csv, rows, random.Random(7))
    ks = list(range(2, 9))
    pipe = _pipeline(work, "bench_customers", csv, "customer_id",
                     {"task": "clustering", "clustering": {"k": ks, "algorithms": ["kmeans"], "k_search": "every_k",
                                                           "eval_rows": 20000}}, {"exclude": []})
    ingest(spark, settings, pipe, "b0", DAY)
    _peaks_reset(jvm_pid)
    t = time.perf_counter()
    res = train(spark, settings, pipe, "b1", DAY)
    lf_seconds = time.perf_counter() - t
    lf_peak = _peak_mb(jvm_pid)
    best = next(r for r in res.leaderboard if r["is_best"])
    sk = _child("kmeans", work, {"csv": str(csv), "ks": ks, "eval_rows": min(20000, res.rows_test)})
    return {"task": "clustering", "rows": rows, "k": f"{ks[0]}..{ks[-1]}",
            "lakeforge_seconds": round(lf_seconds, 1), "lakeforge_search_seconds": round(res.timings["search"], 1),
            "lakeforge_k": json.loads(best["params"])["k"], "lakeforge_silhouette": round(res.test_metrics["silhouette"], 4),
            "lakeforge_peak_rss_mb": lf_peak,
            "sklearn_seconds": sk["seconds"], "sklearn_search_seconds": sk["search_seconds"],
            "sklearn_fit_seconds": sk["fit_seconds"], "sklearn_k": sk["k"],
            "sklearn_silhouette": sk["silhouette"], "sklearn_peak_rss_mb": sk["peak_rss_mb"],
            "note": "lakeforge: read bronze, preprocess, 7 KMeans fits + silhouettes, profile, MLflow registration; "
                    "scikit-learn: read CSV, preprocess, 7 KMeans fits (n_init=1) + silhouettes"}


def sklearn_kmeans(csv: Path, ks: list[int], eval_rows: int) -> dict:
    """scikit-learn's side of the clustering row: seconds, the best k and its held-out silhouette."""
    import numpy as np
    import pandas as pd
    from sklearn.cluster import KMeans
    from sklearn.compose import make_column_transformer
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    t = time.perf_counter()
    df = pd.read_csv(csv)
    rnd = np.random.default_rng(7)
    test = rnd.random(len(df)) < 0.2
    prep = make_column_transformer((StandardScaler(), ["spend", "visits", "tenure_months", "basket_size"]),
                                   (OneHotEncoder(handle_unknown="ignore"), ["channel"]), sparse_threshold=0)
    x_train = prep.fit_transform(df[~test])
    sample = prep.transform(df[test])[rnd.permutation(int(test.sum()))[:eval_rows]]
    t_search = time.perf_counter()
    scores, fit_seconds = {}, 0.0
    for k in ks:
        t_fit = time.perf_counter()
        km = KMeans(n_clusters=k, n_init=1, random_state=7).fit(x_train)
        fit_seconds += time.perf_counter() - t_fit
        # as Spark's, but pairwise (O(n^2)); Spark's squared-Euclidean silhouette has a closed form, O(n k)
        scores[k] = float(silhouette_score(sample, km.predict(sample), metric="sqeuclidean"))
    done = time.perf_counter()
    k_best = max(scores, key=scores.get)
    return {"seconds": round(done - t, 1), "search_seconds": round(done - t_search, 1),
            "fit_seconds": round(fit_seconds, 1), "k": k_best,
            "silhouette": round(scores[k_best], 4),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def bench_als(spark, settings, work: Path, users: int, jvm_pid: int | None = None) -> dict:
    from lakeforge.ingest.job import ingest
    from lakeforge.training.job import train

    csv = work / "interactions.csv"
    items = max(300, users // 5)
    interactions(csv, users, items, 6, 25, random.Random(7))
    pipe = _pipeline(work, "bench_feedback", csv, "event_id", {
        "task": "recommendation", "folds": 3,
        "recommendation": {"user": "user_id", "item": "item_id", "rating": "plays", "implicit": True,
                           "grid": {k: [v] for k, v in ALS_POINT.items()}, "max_iter": 10, "k": K}})
    ingest(spark, settings, pipe, "b0", DAY)
    _peaks_reset(jvm_pid)
    t = time.perf_counter()
    res = train(spark, settings, pipe, "b1", DAY)
    m = res.test_metrics
    row = {"task": "als", "users": users, "items": items, "interactions": users * 25,
           "lakeforge_seconds": round(time.perf_counter() - t, 1), "lakeforge_peak_rss_mb": _peak_mb(jvm_pid),
           "lakeforge_refit_evaluate_seconds": round(res.timings["refit_evaluate"], 1),
           "lakeforge_ndcg_at_10": round(m["ndcg_at_k"], 4), "popularity_ndcg_at_10": round(m["popularity_ndcg_at_k"], 4)}
    if importlib.util.find_spec("implicit") is None:
        return {**row, "implicit": "not installed (not a lakeforge dependency): no implicit-ALS row"}
    return {**row, **_child("implicit", work, export_split(spark, settings, pipe, work))}


def export_split(spark, settings, pipe, work: Path) -> dict:
    """lakeforge's training / held-out pairs written as Parquet for the implicit child (not timed)."""
    from pyspark.sql import functions as F

    from lakeforge.training.recommend_steps import RATING, interactions as pairs_of, split_interactions

    cfg, rc = pipe.model, pipe.model.recommendation
    bronze = spark.table(settings.table(pipe.tables.bronze))
    split = split_interactions(pairs_of(bronze, rc, "bench"), rc, cfg.test_fraction, max(2, cfg.n_folds), cfg.seed)
    path = work / "als_split.parquet"
    (split.select(F.col(rc.user).alias("user"), F.col(rc.item).alias("item"), F.col(RATING).alias("rating"), "_is_test")
     .write.mode("overwrite").parquet(str(path)))
    return {"data": str(path)}


def implicit_als(job: dict) -> dict:
    """The implicit package's ALS on lakeforge's training pairs, NDCG@10 on the same held-out pairs."""
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    t_all = time.perf_counter()
    df = pd.read_parquet(job["data"])
    train_df, test_df = df[~df["_is_test"]], df[df["_is_test"]]
    user_ids = {u: i for i, u in enumerate(sorted(train_df["user"].unique()))}
    item_ids = {v: i for i, v in enumerate(sorted(train_df["item"].unique()))}
    rows = train_df["user"].map(user_ids).to_numpy()
    cols = train_df["item"].map(item_ids).to_numpy()
    user_items = sp.csr_matrix((train_df["rating"].to_numpy(np.float32), (rows, cols)),
                               shape=(len(user_ids), len(item_ids)))
    relevant = {user_ids[u]: set(g["item"]) for u, g in test_df.groupby("user") if u in user_ids}
    t = time.perf_counter()
    with threadpool_limits(1, "blas"):  # implicit's own threads (one per core) do the work
        model = AlternatingLeastSquares(factors=ALS_POINT["rank"], regularization=ALS_POINT["regParam"],
                                        alpha=ALS_POINT["alpha"], iterations=10, use_cg=False, random_state=7)
        model.fit(user_items, show_progress=False)
        who = np.array(sorted(relevant))
        ids, _ = model.recommend(who, user_items[who], N=K, filter_already_liked_items=True)
    seconds = time.perf_counter() - t
    labels = np.array(sorted(item_ids, key=item_ids.get))
    ndcg = np.mean([ndcg_at(list(labels[ids[n]]), relevant[u], K) for n, u in enumerate(who)])
    pop = popularity_ndcg(train_df, relevant, user_items, labels)
    return {"implicit_seconds": round(seconds, 2), "implicit_total_seconds": round(time.perf_counter() - t_all, 1),
            "implicit_ndcg_at_10": round(float(ndcg), 4), "numpy_popularity_ndcg_at_10": round(pop, 4),
            "implicit_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "implicit_note": "implicit_seconds: fit + top-10 of every held-out user; implicit_total_seconds adds reading "
                             "the pairs, the sparse matrix and both NDCGs; peak: the child process (imports included); "
                             "regularization is not on Spark's scale (Spark weights regParam by each user's/item's "
                             "number of interactions)"}


def ndcg_at(predicted: list, relevant: set, k: int) -> float:
    """Spark's RankingMetrics.ndcgAt(k): binary gains, the ideal DCG over min(max(|pred|, |rel|), k)."""
    n = min(max(len(predicted), len(relevant)), k)
    dcg = sum(1 / math.log(i + 2) for i in range(min(n, len(predicted))) if predicted[i] in relevant)
    ideal = sum(1 / math.log(i + 2) for i in range(min(n, len(relevant))))
    return dcg / ideal if ideal else 0.0


def popularity_ndcg(train_df, relevant: dict, user_items, labels) -> float:
    """The popularity baseline's NDCG@K in numpy: items by their number of training pairs (ties by
    the id as text, as lakeforge's StringIndexer orders them), each user's unseen ones first."""
    counts = train_df.groupby("item").size()
    order = sorted(counts.index, key=lambda v: (-counts[v], str(v)))
    out = []
    for u, rel in relevant.items():
        seen = set(labels[user_items[u].indices])
        out.append(ndcg_at([v for v in order if v not in seen][:K], rel, K))
    return float(sum(out) / len(out))


def run(datasets: list[str], spark, settings, work: Path, rows: int = 100_000, users: int = 5_000,
        jvm_pid: int | None = None) -> list[dict]:
    out = []
    for name, bench, size in (("clustering", bench_clustering, rows), ("als", bench_als, users)):
        if name in datasets:
            out.append(bench(spark, settings, work, size, jvm_pid))
            print(json.dumps(out[-1]), flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="clustering,als")
    p.add_argument("--rows", type=int, default=100_000, help="customers of the clustering row (default 100,000)")
    p.add_argument("--users", type=int, default=5_000, help="users of the ALS row, 25 interactions each (default 5,000)")
    p.add_argument("--driver-memory", default="4g")
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    p.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)  # internal: kind, job file
    args = p.parse_args()
    if args.child:
        job = json.loads(Path(args.child[1]).read_text())
        out = sklearn_kmeans(job["csv"], job["ks"], job["eval_rows"]) if args.child[0] == "kmeans" else implicit_als(job)
        print(json.dumps(out))
        return 0
    from benchlib import start

    work, settings, spark, jvm_pid = start("lakeforge-bench-tasks-", args.driver_memory)
    t = time.perf_counter()
    rows = run(args.datasets.split(","), spark, settings, work, args.rows, args.users, jvm_pid)
    report = {"rows": rows, "seconds": round(time.perf_counter() - t, 1), "cpus": os.cpu_count(),
              "load_average": os.getloadavg()}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
