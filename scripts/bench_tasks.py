"""Benchmark rows for the tasks without a target, run by scripts/bench_train.py
(``--datasets clustering,als``) or alone:

    .venv/bin/python scripts/bench_tasks.py [--datasets clustering,als] [--rows 100000] [--users 5000]

- clustering: lakeforge's whole clustering training (KMeans, k = 2..8, silhouette on held-out
  rows, profile, MLflow) against scikit-learn's KMeans on the same generated customers
  (scripts/make_examples.py: 4 planted segments), same scaling and one-hot encoding, the
  silhouette on an equal held-out sample;
- als: lakeforge's ALS training (one grid point, 3 folds, refit, held-out NDCG@10 with the
  popularity baseline) on generated taste groups; the `implicit` package's ALS beside it when it
  is installed (it is not a lakeforge dependency: the row says so otherwise).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from make_examples import customers, interactions  # noqa: E402

DAY = dt.date(2026, 1, 1)


def _pipeline(work: Path, name: str, csv: Path, key: str, model: dict, features: dict | None = None):
    import yaml

    from lakeforge.core.config import load_pipeline

    cfg = {"name": name, "source": {"format": "csv", "path": str(csv), "options": {"header": True}}, "key": key,
           "tables": {"bronze": f"{name}_bronze", "predictions": f"{name}_predictions"}, "ingest": {"mode": "overwrite"},
           "features": features or {}, "model": {"registered_name": name, **model}}
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_pipeline(path)


def bench_clustering(spark, settings, work: Path, rows: int) -> dict:
    import numpy as np
    import pandas as pd
    from sklearn.cluster import KMeans
    from sklearn.compose import make_column_transformer
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from lakeforge.ingest.job import ingest
    from lakeforge.training.job import train

    csv = work / "customers.csv"
    customers(csv, rows, random.Random(7))
    ks = list(range(2, 9))
    pipe = _pipeline(work, "bench_customers", csv, "customer_id",
                     {"task": "clustering", "clustering": {"k": ks, "algorithms": ["kmeans"], "eval_rows": 20000}},
                     {"exclude": []})
    ingest(spark, settings, pipe, "b0", DAY)
    t = time.perf_counter()
    res = train(spark, settings, pipe, "b1", DAY)
    lf_seconds = time.perf_counter() - t
    best = next(r for r in res.leaderboard if r["is_best"])

    t = time.perf_counter()
    df = pd.read_csv(csv)
    rnd = np.random.default_rng(7)
    test = rnd.random(len(df)) < 0.2
    prep = make_column_transformer((StandardScaler(), ["spend", "visits", "tenure_months", "basket_size"]),
                                   (OneHotEncoder(handle_unknown="ignore"), ["channel"]), sparse_threshold=0)
    x_train = prep.fit_transform(df[~test])
    x_test = prep.transform(df[test])
    sample = x_test[rnd.permutation(len(x_test))[:20000]]
    scores = {}
    for k in ks:
        km = KMeans(n_clusters=k, n_init=1, random_state=7).fit(x_train)
        scores[k] = silhouette_score(sample, km.predict(sample))
    sk_seconds = time.perf_counter() - t
    k_best = max(scores, key=scores.get)
    return {"task": "clustering", "rows": rows, "lakeforge_seconds": round(lf_seconds, 1),
            "lakeforge_k": best["params"], "lakeforge_silhouette": round(res.test_metrics["silhouette"], 4),
            "sklearn_seconds": round(sk_seconds, 1), "sklearn_k": k_best, "sklearn_silhouette": round(scores[k_best], 4),
            "note": "lakeforge: read, preprocess, 7 KMeans fits, profile, MLflow registration; "
                    "scikit-learn: read, preprocess, 7 KMeans fits (n_init=1)"}


def bench_als(spark, settings, work: Path, users: int) -> dict:
    from lakeforge.ingest.job import ingest
    from lakeforge.training.job import train

    csv = work / "interactions.csv"
    interactions(csv, users, max(300, users // 5), 6, 25, random.Random(7))
    pipe = _pipeline(work, "bench_feedback", csv, "event_id", {
        "task": "recommendation", "folds": 3,
        "recommendation": {"user": "user_id", "item": "item_id", "rating": "plays", "implicit": True,
                           "grid": {"rank": [16], "regParam": [0.1], "alpha": [10.0]}}})
    ingest(spark, settings, pipe, "b0", DAY)
    t = time.perf_counter()
    res = train(spark, settings, pipe, "b1", DAY)
    row = {"task": "als", "interactions": users * 25, "lakeforge_seconds": round(time.perf_counter() - t, 1),
           "lakeforge_ndcg_at_10": round(res.test_metrics["ndcg_at_k"], 4),
           "popularity_ndcg_at_10": round(res.test_metrics["popularity_ndcg_at_k"], 4)}
    try:
        import implicit  # noqa: F401
        row["implicit"] = "installed: not yet compared (TODO)"
    except ImportError:
        row["implicit"] = "not installed (not a lakeforge dependency): no implicit-ALS row"
    return row


def run(datasets: list[str], spark, settings, work: Path, rows: int = 100_000, users: int = 5_000) -> list[dict]:
    out = []
    if "clustering" in datasets:
        out.append(bench_clustering(spark, settings, work, rows))
    if "als" in datasets:
        out.append(bench_als(spark, settings, work, users))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="clustering,als")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--users", type=int, default=5_000)
    p.add_argument("--driver-memory", default="4g")
    args = p.parse_args()
    from benchlib import start

    work, settings, spark, _ = start("lakeforge-bench-tasks-", args.driver_memory)
    for r in run(args.datasets.split(","), spark, settings, work, args.rows, args.users):
        print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
