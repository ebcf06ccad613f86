"""The Evidently side of scripts/bench_monitor.py, run by it in a separate Python that has Evidently
(it cannot share lakeforge's environment: every Evidently 0.6-0.7 requires plotly < 6, 0.5 needs
scikit-learn < 1.6, 0.4 numpy < 2.1). Needs only evidently, pandas and pyarrow; not lakeforge.

    EVIDENTLY_PY scripts/bench_monitor_evidently.py REFERENCE.parquet CURRENT.parquet SPEC.json OUT.json

Loads both Parquet files into pandas, then computes with Evidently's own API (``Report`` of
``ValueDrift`` metrics, one per column and method) the statistics lakeforge's monitor reports:
numbers -> KS p-value, normalised Wasserstein, PSI, Jensen-Shannon; categories -> chi-squared
p-value, PSI, Jensen-Shannon. Writes the timings (load, compute), this process's peak resident
memory (VmHWM) after loading and at the end, and every value.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

NUMERIC_METHODS = ("ks", "wasserstein", "psi", "jensenshannon")
CATEGORICAL_METHODS = ("chisquare", "psi", "jensenshannon")


def peak_rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(reference: str, current: str, spec_path: str, out: str) -> None:
    import pandas as pd

    warnings.filterwarnings("ignore")
    spec = json.load(open(spec_path))
    numeric, categorical = spec["numeric"], spec["categorical"]
    t0 = time.perf_counter()
    ref = pd.read_parquet(reference, columns=numeric + categorical)
    cur = pd.read_parquet(current, columns=numeric + categorical)
    for c in categorical:  # Evidently counts categories by value; nulls are left out as in lakeforge
        ref[c], cur[c] = ref[c].astype("object"), cur[c].astype("object")
    loaded = time.perf_counter() - t0
    rss_loaded = peak_rss_mb()

    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    t1 = time.perf_counter()
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    metrics = [ValueDrift(column=c, method=m) for c in numeric for m in NUMERIC_METHODS]
    metrics += [ValueDrift(column=c, method=m) for c in categorical for m in CATEGORICAL_METHODS]
    snapshot = Report(metrics).run(Dataset.from_pandas(cur, data_definition=definition),
                                   Dataset.from_pandas(ref, data_definition=definition))
    computed = time.perf_counter() - t1
    values: dict[str, dict[str, float]] = {}
    for m in snapshot.dict()["metrics"]:
        cfg = m["config"]
        values.setdefault(cfg["column"], {})[cfg["method"]] = m["value"]
    import evidently

    json.dump({"evidently": evidently.__version__, "pandas": pd.__version__, "reference_rows": len(ref),
               "current_rows": len(cur), "columns": len(numeric) + len(categorical), "metrics": len(metrics),
               "load_s": loaded, "compute_s": computed, "peak_rss_after_load_mb": rss_loaded,
               "peak_rss_mb": peak_rss_mb(), "values": values}, open(out, "w"), indent=1, default=float)


if __name__ == "__main__":
    main(*sys.argv[1:5])
