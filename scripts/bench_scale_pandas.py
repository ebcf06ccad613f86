"""pandas + scikit-learn on the rows of scripts/bench_scale.py, in a process of its own.

    .venv/bin/python scripts/bench_scale_pandas.py DATA_FOLDER [--memory-gb 20] [--out result.json]

Reads every CSV file of the folder with pandas, drops the bad records (the rows whose num3 or
signup_date does not parse: what lakeforge's ingest quarantines), splits 80/20, and fits a
logistic regression (numbers imputed and scaled, the low-cardinality categories one-hot, the
high-cardinality ones one-hot on their 50 most frequent levels) and a HistGradientBoostingClassifier
(categories as ordinal codes; the low-cardinality ones declared categorical), each scored by test
ROC-AUC. With ``--memory-gb`` the process' address space is limited (RLIMIT_AS): a MemoryError is
recorded as the outcome. Prints one JSON line: the time of each phase, the peak RSS, the outcome.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale_data import CATEGORICAL, NUMERIC  # noqa: E402

LOW = CATEGORICAL[:5]
HIGH = CATEGORICAL[5:]


def load(folder: Path):
    import pandas as pd

    files = sorted((folder / "csv").glob("part-*.csv"))
    df = pd.concat([pd.read_csv(f, dtype={c: "string" for c in [*CATEGORICAL, "num3", "signup_date"]}) for f in files],
                   ignore_index=True)
    num3 = pd.to_numeric(df["num3"], errors="coerce")
    date = pd.to_datetime(df["signup_date"], errors="coerce", format="%Y-%m-%d")
    good = ~((num3.isna() & df["num3"].notna()) | (date.isna() & df["signup_date"].notna()))
    df = df.assign(num3=num3)[good].reset_index(drop=True)
    for c in CATEGORICAL:  # scikit-learn's encoders want one type: missing as a level of its own
        df[c] = df[c].fillna("__missing__").astype(object)
    return df, int((~good).sum())


def fit_both(df, seed: int = 42) -> dict:
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    test = np.random.default_rng(seed).random(len(df)) < 0.2
    X, y = df[NUMERIC + CATEGORICAL], df["y"].to_numpy()
    out = {}
    lr = Pipeline([("prep", ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), NUMERIC),
        ("low", OneHotEncoder(handle_unknown="ignore"), LOW),
        ("high", OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=51), HIGH)])),
        ("clf", LogisticRegression(C=1.0, max_iter=200))])
    hgb = Pipeline([("prep", ColumnTransformer([
        ("num", "passthrough", NUMERIC),
        ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1), CATEGORICAL)])),
        ("clf", HistGradientBoostingClassifier(categorical_features=list(range(len(NUMERIC), len(NUMERIC) + len(LOW))),
                                               random_state=seed))])
    for name, model in (("logistic_regression", lr), ("hist_gradient_boosting", hgb)):
        t0 = time.perf_counter()
        model.fit(X[~test], y[~test])
        auc = roc_auc_score(y[test], model.predict_proba(X[test])[:, 1])
        out[name] = {"fit_and_test_s": round(time.perf_counter() - t0, 1), "test_roc_auc": round(float(auc), 4)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder")
    p.add_argument("--memory-gb", type=float, default=None, help="limit the address space (RLIMIT_AS) to this")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.memory_gb:
        limit = int(args.memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    result: dict = {"memory_limit_gb": args.memory_gb}
    t0 = time.perf_counter()
    try:
        df, bad = load(Path(args.folder))
        result.update(read_s=round(time.perf_counter() - t0, 1), rows=len(df), bad_rows_dropped=bad,
                      frame_mb=round(df.memory_usage(deep=True).sum() / 2**20, 1))
        result.update(fit_both(df))
        result["outcome"] = "completed"
    except MemoryError as exc:
        result["outcome"] = f"MemoryError: {str(exc)[:200]}"
    result["total_s"] = round(time.perf_counter() - t0, 1)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    text = json.dumps(result)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
