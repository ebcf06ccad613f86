"""Rows of ``<pipeline>_profile_metrics`` and ``<pipeline>_drift_metrics`` (the layout of
Databricks Lakehouse Monitoring's tables: window_start / window_end, granularity, column_name
(``:table`` for the whole window), model_version, drift_type BASELINE / CONSECUTIVE).

The profile rows keep each window's bins (counts, sums, categories), so later windows compare
with earlier ones (CONSECUTIVE) and longer windows merge without rereading the data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from lakeforge.monitoring.drift import ColumnDrift
from lakeforge.monitoring.statistics import CategoryCounts, NumericHist

TABLE_ROW = ":table"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)

PROFILE_SCHEMA = (
    "window_start date, window_end date, granularity string, model_name string, model_version string, "
    "column_name string, data_type string, rows bigint, count bigint, num_nulls bigint, null_rate double, "
    "mean double, stddev double, min double, max double, p05 double, p25 double, median double, p75 double, "
    "p95 double, distinct_count bigint, new_category_rate double, bin_edges array<double>, bin_counts array<bigint>, "
    "bin_sums array<double>, sumsq double, categories map<string,bigint>, exact boolean, computed_at timestamp"
)
DRIFT_SCHEMA = (
    "window_start date, window_end date, granularity string, model_name string, model_version string, "
    "column_name string, drift_type string, compared_window_start date, rows bigint, reference_rows bigint, "
    "test string, statistic double, threshold double, drifted boolean, verdict string, psi double, "
    "ks_statistic double, ks_pvalue double, js_distance double, wasserstein_norm double, chi2_statistic double, "
    "chi2_pvalue double, drift_share double, computed_at timestamp"
)


@dataclass(frozen=True)
class WindowKey:
    start: dt.date
    end: dt.date
    granularity: str
    model_name: str
    model_version: str

    def row(self) -> dict:
        return {"window_start": self.start, "window_end": self.end, "granularity": self.granularity,
                "model_name": self.model_name, "model_version": self.model_version}


def profile_rows(key: WindowKey, summaries: dict, reference: dict, now: dt.datetime) -> list[dict]:
    """One row per column and one ``:table`` row (rows in the window)."""
    rows = []
    total = 0
    for column, s in summaries.items():
        n, nulls = s.n, s.nulls
        total = max(total, n + nulls)
        base = {**key.row(), "column_name": column, "rows": n + nulls, "count": n, "num_nulls": nulls,
                "null_rate": nulls / (n + nulls) if n + nulls else None, "computed_at": now}
        if isinstance(s, NumericHist):
            qs = s.quantiles(list(QUANTILES))
            rows.append({**base, "data_type": "numeric", "mean": s.mean(), "stddev": s.std(), "min": s.minimum,
                         "max": s.maximum, **dict(zip(("p05", "p25", "median", "p75", "p95"), qs)),
                         "distinct_count": int(np.count_nonzero(s.counts)) if s.exact else None,
                         "new_category_rate": None, "bin_edges": [float(e) for e in s.edges],
                         "bin_counts": [int(c) for c in s.counts], "bin_sums": [float(v) for v in s.sums],
                         "sumsq": float(s.sumsq), "categories": None, "exact": bool(s.exact)})
        else:
            known = reference.get(column)
            new = sum(v for k, v in s.counts.items() if known is not None and k not in known.counts)
            rows.append({**base, "data_type": "categorical", "distinct_count": len(s.counts),
                         "new_category_rate": new / n if n else None, "categories": dict(s.counts), "exact": True})
    rows.append({**key.row(), "column_name": TABLE_ROW, "data_type": "table", "rows": total, "count": total,
                 "computed_at": now})
    return rows


def summary_from_profile(row) -> NumericHist | CategoryCounts:
    """A window's summary back from its profile row (for CONSECUTIVE and merged windows)."""
    if row["data_type"] == "numeric":
        return NumericHist(np.array(row["bin_edges"], dtype=float), np.array(row["bin_counts"], dtype=np.int64),
                           np.array(row["bin_sums"], dtype=float), int(row["num_nulls"]), float(row["sumsq"] or 0.0),
                           row["min"], row["max"], bool(row["exact"]))
    return CategoryCounts(dict(row["categories"] or {}), int(row["num_nulls"]))


def drift_rows(key: WindowKey, drift_type: str, results: list[ColumnDrift], dataset: tuple[bool | None, float | None],
               now: dt.datetime, compared: dt.date | None = None) -> list[dict]:
    """One row per column and a ``:table`` row with the dataset verdict and the share drifting."""
    rows = [{**key.row(), **r.as_row(), "column_name": r.column, "drift_type": drift_type,
             "compared_window_start": compared, "drift_share": None, "computed_at": now} for r in results]
    for r in rows:
        r.pop("column", None)
    drifted, share = dataset
    rows.append({**key.row(), "column_name": TABLE_ROW, "drift_type": drift_type, "compared_window_start": compared,
                 "rows": max((r.rows for r in results), default=0), "drifted": drifted, "drift_share": share,
                 "verdict": "too few rows" if drifted is None else ("drift" if drifted else "no drift"),
                 "test": "share of drifting columns", "computed_at": now})
    return rows
