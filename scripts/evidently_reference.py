"""Evidently's own values on a small fixed dataset, for tests/test_monitor_evidently.py (which runs
without Evidently: it cannot be installed next to lakeforge's pins, see
scripts/bench_monitor_evidently.py). Needs only evidently, pandas and numpy; not lakeforge.

Regenerate (about 15 s; the data and the values are deterministic, seeded numpy):

    python3 -m venv /tmp/evvenv && /tmp/evvenv/bin/pip install evidently==0.7.23 pandas==2.3.3
    /tmp/evvenv/bin/python scripts/evidently_reference.py [tests/data/evidently]

Writes into the folder (default tests/data/evidently):

- ``{small,large}_{reference,current}.csv``: two reference/current pairs with the same six columns.
  ``small``: 800 reference rows (Evidently's and lakeforge's small-sample tests: KS, chi-squared);
  ``large``: 2,000 (Wasserstein, Jensen-Shannon). Numbers: ``amount`` continuous (quantile bins in
  lakeforge), ``count`` 50 integers (exact bins; more than 20 values, so Evidently bins it by
  Sturges' rule for PSI and JS), ``rating`` 10 integers with nulls, ``tier`` 3 values; categories:
  ``plan`` with nulls and a level (``enterprise``) only in current, ``region`` 8 levels. Every
  value of current's integer columns occurs in the reference.
- ``expected.json``: the Evidently and pandas versions, and per pair and column the value of
  Evidently's ``ValueDrift`` for each method (numbers: ks, wasserstein, psi, jensenshannon;
  categories: chisquare, psi, jensenshannon) and the method Evidently picks by default (its
  registry name); per numeric
  column with more than 20 reference values, the Sturges bin edges Evidently's PSI and JS use
  (``np.histogram_bin_edges`` of reference + current, nulls dropped: the call Evidently makes).

Evidently runs on the CSV files as pandas reads them back, so both sides see the same numbers. The
script reruns itself with PYTHONHASHSEED=0 (Evidently orders categories by a Python set, which moves
its sums in the last bits), so a rerun writes the same bytes.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

NUMERIC = ["amount", "count", "rating", "tier"]
CATEGORICAL = ["plan", "region"]
NUMERIC_METHODS = ("ks", "wasserstein", "psi", "jensenshannon")
CATEGORICAL_METHODS = ("chisquare", "psi", "jensenshannon")
PAIRS = {"small": (800, 600, 21), "large": (2000, 1500, 22)}  # reference rows, current rows, seed


def _with_nulls(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    out = values.astype(object if values.dtype.kind in "OU" else float)
    out[rng.random(len(values)) < share] = None if values.dtype.kind in "OU" else np.nan
    return out


def _side(rng: np.random.Generator, n: int, current: bool) -> pd.DataFrame:
    """One side of a pair; ``current`` shifts every column a little (and adds a plan)."""
    shift = 1 if current else 0
    count = rng.integers(0, 50, n) if current else np.concatenate([np.arange(50), rng.integers(0, 50, n - 50)])
    if current:  # a tenth of current's counts in the upper half
        count = np.where(rng.random(n) < 0.1, rng.integers(25, 50, n), count)
    rating_p = np.array([1, 2, 3, 5, 8, 10, 9, 6, 4, 2], dtype=float) + shift * np.arange(10) * 0.3
    rating = rng.choice(np.arange(1, 11), n, p=rating_p / rating_p.sum())
    if not current:
        rating[:10] = np.arange(1, 11)  # every rating occurs in the reference
    plans = ["basic", "plus", "pro", "enterprise"] if current else ["basic", "plus", "pro"]
    plan_p = [0.45, 0.3, 0.17, 0.08] if current else [0.5, 0.3, 0.2]
    region_p = np.array([8, 7, 6, 5, 4, 3, 2, 1], dtype=float) + shift * np.array([0, 0, 0, 0, 0, 1, 1, 1]) * 0.5
    return pd.DataFrame({
        "amount": _with_nulls(rng, np.round(rng.normal(100 + 2 * shift, 15 + shift, n), 2), 0.02),
        "count": count,
        "rating": _with_nulls(rng, rating, 0.03),
        "tier": rng.choice([1, 2, 3], n, p=[0.45, 0.32, 0.23] if current else [0.5, 0.3, 0.2]),
        "plan": _with_nulls(rng, rng.choice(plans, n, p=plan_p), 0.02),
        "region": rng.choice([f"r{i}" for i in range(8)], n, p=region_p / region_p.sum()),
    })


def _read(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, float_precision="round_trip", keep_default_na=False, na_values=[""])
    for c in CATEGORICAL:
        df[c] = df[c].astype("object")
    return df


def _sturges(ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, list[float]]:
    """Evidently's bins for PSI and JS of numbers with more than 20 reference values
    (legacy/calculations/stattests/utils.py get_binned_data)."""
    out = {}
    for c in NUMERIC:
        r, k = ref[c].dropna(), cur[c].dropna()
        if r.nunique() > 20:
            out[c] = [float(e) for e in np.histogram_bin_edges(np.concatenate([r.to_numpy(), k.to_numpy()]), "sturges")]
    return out


def _evidently(ref: pd.DataFrame, cur: pd.DataFrame) -> tuple[dict, dict]:
    """({column: {method: value}}, {column: the method Evidently picks by default})."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
    from evidently.metrics import ValueDrift

    name_of = {t.display_name: name for name, tests in _registered_stat_tests.items() for t in tests.values()}

    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    metrics = [ValueDrift(column=c, method=m) for c in NUMERIC for m in NUMERIC_METHODS]
    metrics += [ValueDrift(column=c, method=m) for c in CATEGORICAL for m in CATEGORICAL_METHODS]
    metrics += [ValueDrift(column=c) for c in NUMERIC + CATEGORICAL]
    snapshot = Report(metrics).run(Dataset.from_pandas(cur, data_definition=definition),
                                   Dataset.from_pandas(ref, data_definition=definition))
    values: dict[str, dict[str, float]] = {}
    defaults: dict[str, str] = {}
    for metric, result in zip(metrics, snapshot.dict()["metrics"]):
        if metric.method is None:
            defaults[metric.column] = name_of[result["config"]["method"]]  # it holds the display name
        else:
            values.setdefault(metric.column, {})[metric.method] = float(result["value"])
    return values, defaults


def main(folder: str = "tests/data/evidently") -> None:
    if os.environ.get("PYTHONHASHSEED") != "0":  # Evidently orders categories by a set: fix it, so that
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})  # reruns match
    import evidently

    warnings.filterwarnings("ignore")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    expected = {"evidently": evidently.__version__, "pandas": pd.__version__, "numpy": np.__version__, "pairs": {}}
    for name, (n_ref, n_cur, seed) in PAIRS.items():
        rng = np.random.default_rng(seed)
        for side, n in (("reference", n_ref), ("current", n_cur)):
            _side(rng, n, side == "current").to_csv(out / f"{name}_{side}.csv", index=False, na_rep="")
        ref, cur = _read(out / f"{name}_reference.csv"), _read(out / f"{name}_current.csv")
        values, defaults = _evidently(ref, cur)
        expected["pairs"][name] = {"reference_rows": len(ref), "current_rows": len(cur), "values": values,
                                   "default_methods": defaults, "sturges_edges": _sturges(ref, cur)}
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(f"wrote {out}/expected.json (Evidently {evidently.__version__})")


if __name__ == "__main__":
    main(*sys.argv[1:2])
