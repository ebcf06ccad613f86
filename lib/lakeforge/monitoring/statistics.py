"""Drift statistics computed from mergeable aggregates (never from the rows themselves).

A numeric column is summarised as a ``NumericHist``: fixed bin edges (the reference's distinct
values when it has few of them, else its quantiles), and per bin the count and the sum of the
values; plus nulls, the sum of squares, min and max. A categorical column is a ``CategoryCounts``
(value -> count, plus nulls). Both are added bin by bin, so windows merge without rereading data.

From two such summaries (reference and window, or two windows) this module computes:

- PSI, smoothed: an empty bin counts as a share of ``PSI_EPS`` (never infinite);
- the two-sample Kolmogorov-Smirnov statistic from the two ECDFs at the bin edges, and its p-value
  as ``scipy.stats.ks_2samp`` gives it (exact below 10,000 rows per side, else Smirnov's formula);
- the Jensen-Shannon distance (``scipy.spatial.distance.jensenshannon``, natural log);
- the Wasserstein-1 distance between the bins' atoms (each bin's mass at its mean), divided by the
  reference's standard deviation (population std, at least 0.001, as Evidently normalises);
- the chi-squared test of homogeneity (``scipy.stats.chi2_contingency`` on the 2 x k table).

Exactness: when every value of both samples is a bin edge (a column with at most ``max_points``
distinct values in the reference, and no new value in the window) all of these equal scipy's on
the raw rows. With quantile bins they are estimates: the KS statistic can be under-read by at most
the mass of one bin (about 1 / bins of the reference plus the window's share of that bin), the
Wasserstein distance by at most the widest occupied bin's width times the mass moved within it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

PSI_EPS = 1e-4  # the share an empty bin is given in PSI (Evidently's smoothing)
STD_FLOOR = 0.001  # the smallest reference std the Wasserstein distance is divided by
KS_EXACT_MAX_N = 10_000  # scipy's ks_2samp 'auto': exact p-value up to this many rows per side


@dataclass
class NumericHist:
    """A numeric column's mergeable summary. Bins: (-inf, e0], (e0, e1], ..., (e_{k-1}, +inf)."""

    edges: np.ndarray
    counts: np.ndarray  # k + 1 counts
    sums: np.ndarray  # k + 1 sums of the values
    nulls: int = 0
    sumsq: float = 0.0
    minimum: float | None = None
    maximum: float | None = None
    exact: bool = False  # the edges are the reference's distinct values

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def merge(self, other: "NumericHist") -> "NumericHist":
        lo = [v for v in (self.minimum, other.minimum) if v is not None]
        hi = [v for v in (self.maximum, other.maximum) if v is not None]
        return NumericHist(self.edges, self.counts + other.counts, self.sums + other.sums, self.nulls + other.nulls,
                           self.sumsq + other.sumsq, min(lo) if lo else None, max(hi) if hi else None, self.exact)

    def mean(self) -> float | None:
        return float(self.sums.sum() / self.n) if self.n else None

    def std(self) -> float | None:
        """The population standard deviation (ddof 0)."""
        if not self.n:
            return None
        m = self.sums.sum() / self.n
        return float(math.sqrt(max(self.sumsq / self.n - m * m, 0.0)))

    def atoms(self) -> tuple[np.ndarray, np.ndarray]:
        """(bin means, counts) of the non-empty bins: the distribution the distances use."""
        full = self.counts > 0
        return self.sums[full] / self.counts[full], self.counts[full]

    def quantiles(self, levels: list[float]) -> list[float | None]:
        """Quantiles read from the bins: linear inside a bin between its edges (min / max for the
        outer bins); exact at the edges, within one bin's width elsewhere."""
        if not self.n:
            return [None] * len(levels)
        cum = np.cumsum(self.counts)
        means = np.where(self.counts > 0, self.sums / np.maximum(self.counts, 1), 0.0)
        lows = np.concatenate([[self.minimum], self.edges])
        highs = np.concatenate([self.edges, [self.maximum]])
        out = []
        for q in levels:
            target = q * self.n
            i = min(int(np.searchsorted(cum, target, side="left")), len(cum) - 1)
            if self.exact or not self.counts[i]:
                out.append(float(means[i]))
                continue
            frac = (target - (cum[i] - self.counts[i])) / self.counts[i]
            lo, hi = max(lows[i], self.minimum), min(highs[i], self.maximum)
            out.append(float(lo + (hi - lo) * min(max(frac, 0.0), 1.0)))
        return out


@dataclass
class CategoryCounts:
    """A categorical column's mergeable summary: value -> rows, and the null rows."""

    counts: dict[str, int] = field(default_factory=dict)
    nulls: int = 0

    @property
    def n(self) -> int:
        return int(sum(self.counts.values()))

    def merge(self, other: "CategoryCounts") -> "CategoryCounts":
        merged = dict(self.counts)
        for k, v in other.counts.items():
            merged[k] = merged.get(k, 0) + v
        return CategoryCounts(merged, self.nulls + other.nulls)


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray, eps: float = PSI_EPS) -> float:
    """Population stability index over aligned bins; an empty bin's share is ``eps``."""
    p = _shares(ref_counts, eps)
    q = _shares(cur_counts, eps)
    return float(np.sum((q - p) * np.log(q / p)))


def _shares(counts: np.ndarray, eps: float) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    shares = counts / total if total else np.zeros_like(counts)
    return np.where(shares == 0, eps, shares)


def js_distance(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log) between two aligned count vectors."""
    p, q = np.asarray(ref_counts, dtype=float), np.asarray(cur_counts, dtype=float)
    if not p.sum() or not q.sum():
        return float("nan")
    return float(jensenshannon(p / p.sum(), q / q.sum()))


def ks_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """(KS statistic, two-sided p-value) from counts in the same ordered bins: the ECDFs compared
    at every bin's upper edge; the p-value as ``scipy.stats.ks_2samp(method='auto')``."""
    n1, n2 = int(np.sum(ref_counts)), int(np.sum(cur_counts))
    if not n1 or not n2:
        return float("nan"), float("nan")
    cdf1 = np.cumsum(ref_counts) / n1
    cdf2 = np.cumsum(cur_counts) / n2
    d = float(np.max(np.abs(cdf1 - cdf2)))
    return d, ks_pvalue(d, n1, n2)


def ks_pvalue(d: float, n1: int, n2: int) -> float:
    """The two-sided p-value of KS statistic ``d`` for samples of n1 and n2 rows, as scipy computes it."""
    if max(n1, n2) <= KS_EXACT_MAX_N:
        from scipy.stats._stats_py import _attempt_exact_2kssamp  # noqa: PLC0415 - scipy's own exact path

        g = math.gcd(n1, n2)
        if n1 // g < np.iinfo(np.int32).max / (n2 // g):
            success, _, prob = _attempt_exact_2kssamp(n1, n2, g, d, "two-sided")
            if success:
                return float(np.clip(prob, 0, 1))
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return float(np.clip(stats.distributions.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))


def wasserstein_norm(ref: NumericHist, cur: NumericHist) -> float:
    """Wasserstein-1 distance between the two histograms' atoms, over the reference's std."""
    if not ref.n or not cur.n:
        return float("nan")
    (u, uw), (v, vw) = ref.atoms(), cur.atoms()
    return float(stats.wasserstein_distance(u, v, uw, vw) / max(ref.std() or 0.0, STD_FLOOR))


def chi2(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of the chi-squared homogeneity test on the 2 x k table (categories
    empty on both sides left out; Yates' correction with one degree of freedom, as scipy)."""
    table = np.vstack([np.asarray(ref_counts, dtype=float), np.asarray(cur_counts, dtype=float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or not table[0].sum() or not table[1].sum():
        return 0.0, 1.0
    res = stats.chi2_contingency(table)
    return float(res.statistic), float(res.pvalue)


def aligned_categories(ref: CategoryCounts, cur: CategoryCounts) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The union of both sides' values (reference's first) and the two aligned count vectors."""
    keys = sorted(ref.counts) + sorted(k for k in cur.counts if k not in ref.counts)
    return keys, np.array([ref.counts.get(k, 0) for k in keys]), np.array([cur.counts.get(k, 0) for k in keys])


def coarse_groups(ref_counts: np.ndarray, groups: int) -> np.ndarray:
    """For each bin, the index of the group it falls in when the bins are merged into ``groups``
    groups of about equal reference mass (PSI and JS on quantile bins use deciles, not percentiles)."""
    counts = np.asarray(ref_counts, dtype=float)
    total = counts.sum() or 1.0
    before = np.concatenate([[0.0], np.cumsum(counts)[:-1]]) / total
    return np.minimum((before * groups + 1e-9).astype(int), groups - 1)


def grouped(counts: np.ndarray, gid: np.ndarray) -> np.ndarray:
    return np.bincount(gid, weights=np.asarray(counts, dtype=float), minlength=int(gid.max()) + 1)
