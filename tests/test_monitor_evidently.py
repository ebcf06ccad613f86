"""lakeforge's drift statistics against Evidently's on the same data, without Evidently installed:
tests/data/evidently holds two small reference/current pairs (CSV) and the values Evidently 0.7.23
computed on them with its own API (``ValueDrift`` per column and method, on pandas), written by
scripts/evidently_reference.py (its docstring says how to regenerate). Here the CSV files go through
lakeforge's monitoring path: ``compute_reference`` (what training stores), ``summarise`` over
``window_specs`` (what ``lakeforge monitor`` aggregates) and ``column_drift`` (what it reports).

Equal within 1e-6 (absolute, and relative for p-values) where both compute the same thing:
- KS p-value and normalised Wasserstein of numbers with exact bins (at most 100 values in the
  reference, none new in current): ``count``, ``rating``, ``tier``;
- PSI and Jensen-Shannon of categories (``plan`` has nulls and a level only in current: both sides
  leave nulls out and give the empty reference share 1e-4) and of numbers with at most 20 values,
  where Evidently counts values too: ``rating``, ``tier``;
- PSI and Jensen-Shannon of numbers with more than 20 values (``amount``, ``count``) when lakeforge's
  aggregation is given Evidently's bins (Sturges' rule over reference + current).
- the test choice: Evidently's defaults by reference size and number of values.

Different by design, with the tolerance asserted:
- continuous numbers (``amount``) are binned at the reference's 100 quantiles (the sketch): the KS
  statistic is under-read by at most one bin's mass, so Evidently's p-value lies between
  lakeforge's p-value at its statistic and at its statistic plus that mass; the normalised
  Wasserstein distance (each bin's mass at its mean) is within the README's 0.01 and within its
  bound from the summaries (half the bins' widths times their masses, over the reference's std);
- PSI and Jensen-Shannon of numbers with more than 20 values: lakeforge merges the reference bins
  into 10 groups of equal reference mass (computable from the stored reference), Evidently bins by
  Sturges' rule over reference + current (it rereads both samples): different estimators, no
  tolerance between them (here PSI of ``count``: 0.21 vs 0.066); only the bins differ (above);
- chi-squared: Evidently's ``chisquare`` is a goodness-of-fit test of current's counts against the
  reference's shares taken as exact (a level new in current gets an expected 0: p = 0); lakeforge's
  is the homogeneity test (``chi2_contingency``), which counts the reference's sampling noise. Both
  come from the same counts (Evidently's p-value is recomputed from lakeforge's counts within 1e-6),
  and lakeforge's p-value is never below Evidently's (see ``test_chi_squared``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import functions as F
from scipy import stats

from lakeforge.core.config_monitor import MonitoringConfig
from lakeforge.monitoring import statistics as st
from lakeforge.monitoring.aggregates import ColumnSpec, summarise
from lakeforge.monitoring.drift import ColumnDrift, column_drift
from lakeforge.monitoring.reference import compute_reference, window_specs
from lakeforge.monitoring.statistics import NumericHist

DATA = Path(__file__).resolve().parent / "data" / "evidently"
EXPECTED = json.loads((DATA / "expected.json").read_text())
SCHEMA = "amount double, count int, rating double, tier int, plan string, region string"
COLUMNS = ["amount", "count", "rating", "tier", "plan", "region"]
PAIRS = ("small", "large")
TOL = 1e-6
WASSERSTEIN_TOL = 0.01  # the README's accuracy of the normalised Wasserstein distance on quantile bins
# (column, Evidently's method): computed the same way on both sides
SAME = [("count", "ks"), ("count", "wasserstein"), *[(c, m) for c in ("rating", "tier")
        for m in ("ks", "wasserstein", "psi", "jensenshannon")], *[(c, m) for c in ("plan", "region")
        for m in ("psi", "jensenshannon")]]
FIELD = {"ks": "ks_pvalue", "wasserstein": "wasserstein_norm", "psi": "psi", "jensenshannon": "js_distance",
         "chisquare": "chi2_pvalue"}


@dataclass
class Pair:
    reference: dict
    window: dict
    drift: dict[str, ColumnDrift]
    evidently: dict


def _read(spark, pair: str, side: str):
    return spark.read.csv(str(DATA / f"{pair}_{side}.csv"), header=True, schema=SCHEMA)


@pytest.fixture(scope="module")
def pairs(spark) -> dict[str, Pair]:
    cfg = MonitoringConfig()
    out = {}
    for pair in PAIRS:
        reference = compute_reference(_read(spark, pair, "reference"), COLUMNS, cfg.bins, cfg.max_points)
        window = summarise(_read(spark, pair, "current"), window_specs(reference))[None]
        drift = {c: column_drift(c, reference[c], window[c], cfg) for c in COLUMNS}  # as monitor's _window
        out[pair] = Pair(reference, window, drift, EXPECTED["pairs"][pair])
    return out


def _close(ours: float, theirs: float) -> bool:
    return abs(ours - theirs) <= TOL and math.isclose(ours, theirs, rel_tol=TOL, abs_tol=1e-300)


def test_the_same_rows_and_evidentlys_test_choice(pairs):
    """Nulls left out on both sides; the test lakeforge picks is Evidently's default (chi-squared
    where Evidently would take its z-test for two values: none here)."""
    assert EXPECTED["evidently"] == "0.7.23"
    for name, p in pairs.items():
        for c in COLUMNS:
            s = p.reference[c]
            assert s.n + s.nulls == p.evidently["reference_rows"], (name, c)
            assert p.window[c].n + p.window[c].nulls == p.evidently["current_rows"], (name, c)
        assert [p.reference[c].exact for c in COLUMNS[:4]] == [False, True, True, True]
        assert p.reference["plan"].nulls > 0 and p.window["rating"].nulls > 0
        chosen = {c: {"chisquare": "chi2", "z": "chi2"}.get(m, m) for c, m in p.evidently["default_methods"].items()}
        assert {c: d.test for c, d in p.drift.items()} == chosen, name
    assert pairs["small"].drift["amount"].test == "ks" and pairs["large"].drift["amount"].test == "wasserstein"


def test_exact_bins_and_categories_equal_evidently(pairs):
    worst: dict[str, float] = {}
    for name, p in pairs.items():
        for c, m in SAME:
            ours, theirs = getattr(p.drift[c], FIELD[m]), p.evidently["values"][c][m]
            assert _close(ours, theirs), (name, c, m, ours, theirs)
            worst[m] = max(worst.get(m, 0.0), abs(ours - theirs))
    assert set(worst) == {"ks", "wasserstein", "psi", "jensenshannon"}
    print("max |lakeforge - Evidently| where computed the same way:", worst)


def test_psi_and_js_on_evidentlys_bins(spark, pairs):
    """Numbers with more than 20 values: lakeforge's aggregation (the Bucketizer binning of
    ``summarise``) given Evidently's Sturges edges, and lakeforge's PSI and JS, give Evidently's
    values. numpy's bins are [a, b), lakeforge's (a, b]: each edge moves to the double just below
    it, so a value on an edge lands in the same bin on both sides."""
    for name, p in pairs.items():
        sturges = p.evidently["sturges_edges"]
        assert sorted(sturges) == ["amount", "count"]
        specs = [ColumnSpec(c, True, tuple(np.nextafter(np.array(e[1:-1]), -np.inf).tolist())) for c, e in sturges.items()]
        both = (_read(spark, name, "reference").withColumn("side", F.lit("ref"))
                .unionByName(_read(spark, name, "current").withColumn("side", F.lit("cur"))))
        found = summarise(both, specs, window=F.col("side"))
        for c, e in sturges.items():
            r, k = found["ref"][c].counts, found["cur"][c].counts
            assert len(r) == len(e) - 1 and r.sum() == p.reference[c].n and k.sum() == p.window[c].n
            ev = p.evidently["values"][c]
            assert _close(st.psi(r, k), ev["psi"]) and _close(st.js_distance(r, k), ev["jensenshannon"]), (name, c)
            # lakeforge's own: the reference's 10 equal-mass groups, a different estimator (docstring)
            assert p.drift[c].psi != pytest.approx(ev["psi"], abs=1e-3)


def _ks_mass(ref: NumericHist, cur: NumericHist) -> float:
    """How much the ECDF difference can grow inside a bin: max over bins of either side's share."""
    return float(np.max(np.maximum(ref.counts / ref.n, cur.counts / cur.n)))


def _wasserstein_bound(ref: NumericHist, cur: NumericHist) -> float:
    """Moving each value to its bin's mean moves it by half the bin's width on average at most:
    W(raw, atoms) <= sum of share x width / 2 per side (outer bins end at the side's min / max)."""
    def moved(s: NumericHist) -> float:
        lows = np.concatenate([[s.minimum], np.maximum(s.edges, s.minimum)])
        highs = np.concatenate([np.minimum(s.edges, s.maximum), [s.maximum]])
        return float(np.sum(s.counts / s.n * np.clip(highs - lows, 0, None)) / 2)
    return (moved(ref) + moved(cur)) / max(ref.std(), st.STD_FLOOR)


def test_quantile_bins_within_the_documented_error(pairs):
    """``amount`` (continuous): binned at the reference's quantiles; Evidently reads the raw rows."""
    for name, p in pairs.items():
        r, k, d = p.reference["amount"], p.window["amount"], p.drift["amount"]
        assert not r.exact and len(r.edges) >= 95
        ev = p.evidently["values"]["amount"]
        stat, _ = st.ks_from_counts(r.counts, k.counts)
        lowest = st.ks_pvalue(min(stat + _ks_mass(r, k), 1.0), r.n, k.n)
        assert lowest - TOL <= ev["ks"] <= d.ks_pvalue + TOL, (name, lowest, ev["ks"], d.ks_pvalue)
        bound = _wasserstein_bound(r, k)
        gap = abs(d.wasserstein_norm - ev["wasserstein"])
        assert gap <= min(bound, WASSERSTEIN_TOL), (name, d.wasserstein_norm, ev["wasserstein"], bound)
        print(f"{name} amount: KS p {d.ks_pvalue:.4g} vs Evidently {ev['ks']:.4g} (bound {lowest:.3g}); "
              f"Wasserstein {d.wasserstein_norm:.6f} vs {ev['wasserstein']:.6f} (bound {bound:.4f})")


def test_chi_squared(pairs):
    """Evidently's goodness-of-fit p-value recomputed from lakeforge's aligned counts equals
    Evidently's (the same counts, nulls out, the new level kept); lakeforge's homogeneity p-value is
    never below it: per category the homogeneity term n_r n_c (r_i/n_r - c_i/n_c)^2 / (r_i + c_i)
    is at most the goodness-of-fit term n_r n_c (...)^2 / r_i, with the same k - 1 degrees of
    freedom (and Yates' correction, at one degree of freedom, only lowers it)."""
    for name, p in pairs.items():
        for c in ("plan", "region"):
            _, r, k = st.aligned_categories(p.reference[c], p.window[c])
            with np.errstate(divide="ignore", invalid="ignore"):
                gof = stats.chisquare(k, r * k.sum() / r.sum()).pvalue
            theirs, ours = p.evidently["values"][c]["chisquare"], p.drift[c].chi2_pvalue
            assert _close(float(gof), theirs), (name, c, gof, theirs)
            assert ours >= theirs and ours == st.chi2(r, k)[1], (name, c, ours, theirs)
        assert p.evidently["values"]["plan"]["chisquare"] == 0.0 < p.drift["plan"].chi2_pvalue  # the new level
