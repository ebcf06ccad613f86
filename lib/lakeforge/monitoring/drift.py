"""Per-column drift between two summaries: every statistic, the test chosen, its threshold and
the verdict; and the dataset-level verdict over the columns.

Test choice (Evidently's defaults, unless ``monitoring.column_tests`` names one): a reference of
at most ``small_reference_rows`` rows -> KS (p < 0.05) for numbers with more than 5 values,
chi-squared (p < 0.05) otherwise; a larger reference -> normalised Wasserstein (>= 0.1) for
numbers with more than 5 values, Jensen-Shannon (>= 0.1) otherwise. PSI is always reported beside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lakeforge.core.config_monitor import MonitoringConfig
from lakeforge.monitoring import statistics as st
from lakeforge.monitoring.statistics import CategoryCounts, NumericHist

P_VALUE_TESTS = ("ks", "chi2")
TOO_FEW = "too few rows"


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    rows: int
    reference_rows: int
    test: str
    statistic: float | None
    threshold: float
    drifted: bool | None  # None: too few rows (or nothing to compare)
    verdict: str  # "drift", "no drift", "too few rows"
    psi: float | None
    ks_statistic: float | None
    ks_pvalue: float | None
    js_distance: float | None
    wasserstein_norm: float | None
    chi2_statistic: float | None
    chi2_pvalue: float | None

    def as_row(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.__dict__.items()}


def distinct_values(ref, cur) -> int:
    """How many distinct values the two sides have together (a large number for quantile bins)."""
    if isinstance(ref, CategoryCounts):
        return len(set(ref.counts) | set(cur.counts))
    if not ref.exact:
        return 1_000_000
    return int(np.count_nonzero(ref.counts + cur.counts))


def choose_test(column: str, numeric: bool, reference_rows: int, n_values: int, cfg: MonitoringConfig) -> str:
    if column in cfg.column_tests:
        return cfg.column_tests[column]
    many = numeric and n_values > 5
    if reference_rows <= cfg.small_reference_rows:
        return "ks" if many else "chi2"
    return "wasserstein" if many else "jensenshannon"


def threshold_of(column: str, test: str, cfg: MonitoringConfig) -> float:
    if column in cfg.column_thresholds:
        return cfg.column_thresholds[column]
    t = cfg.thresholds
    return {"ks": t.ks_p, "chi2": t.chi2_p, "wasserstein": t.wasserstein, "jensenshannon": t.jensenshannon,
            "psi": t.psi}[test]


def _frequency_vectors(ref, cur, psi_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Aligned count vectors for PSI, JS and chi-squared: categories; a numeric column's exact
    points; or its quantile bins merged into ``psi_bins`` groups of equal reference mass."""
    if isinstance(ref, CategoryCounts):
        _, r, c = st.aligned_categories(ref, cur)
        return r, c
    if ref.exact:
        return ref.counts, cur.counts
    gid = st.coarse_groups(ref.counts, psi_bins)
    return st.grouped(ref.counts, gid), st.grouped(cur.counts, gid)


def column_drift(column: str, ref: NumericHist | CategoryCounts, cur: NumericHist | CategoryCounts,
                 cfg: MonitoringConfig) -> ColumnDrift:
    """Every statistic of ``cur`` against ``ref`` and the configured test's verdict."""
    numeric = isinstance(ref, NumericHist)
    test = choose_test(column, numeric, ref.n, distinct_values(ref, cur), cfg)
    threshold = threshold_of(column, test, cfg)
    nan = float("nan")
    values = {"psi": nan, "ks_statistic": nan, "ks_pvalue": nan, "js_distance": nan, "wasserstein_norm": nan,
              "chi2_statistic": nan, "chi2_pvalue": nan}
    if ref.n and cur.n:
        r, c = _frequency_vectors(ref, cur, cfg.psi_bins)
        values["psi"] = st.psi(r, c)
        values["js_distance"] = st.js_distance(r, c)
        values["chi2_statistic"], values["chi2_pvalue"] = st.chi2(r, c)
        if numeric:
            values["ks_statistic"], values["ks_pvalue"] = st.ks_from_counts(ref.counts, cur.counts)
            values["wasserstein_norm"] = st.wasserstein_norm(ref, cur)
    statistic = {"ks": values["ks_pvalue"], "chi2": values["chi2_pvalue"], "wasserstein": values["wasserstein_norm"],
                 "jensenshannon": values["js_distance"], "psi": values["psi"]}[test]
    if cur.n < cfg.min_rows or not ref.n or statistic is None or math.isnan(statistic):
        drifted, verdict = None, TOO_FEW if cur.n < cfg.min_rows else "not comparable"
    else:
        drifted = statistic < threshold if test in P_VALUE_TESTS else statistic >= threshold
        verdict = "drift" if drifted else "no drift"
    return ColumnDrift(column, cur.n, ref.n, test, statistic, threshold, drifted, verdict, **values)


def dataset_drift(results: list[ColumnDrift], share: float) -> tuple[bool | None, float | None]:
    """(drift?, the share of judged columns that drift): drift when the share is at least ``share``;
    None when no column could be judged."""
    judged = [r for r in results if r.drifted is not None]
    if not judged:
        return None, None
    s = sum(r.drifted for r in judged) / len(judged)
    return s >= share, s
