"""lakeforge.monitoring's drift statistics, computed from Spark aggregates, against scipy on the
raw rows: equal within 1e-6 where the aggregates are exact (few distinct values), within the
documented error of the quantile bins otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from pyspark.sql import functions as F
from scipy.spatial.distance import jensenshannon

from lakeforge.core.config_monitor import MonitoringConfig
from lakeforge.core.frames import local_frame
from lakeforge.monitoring import statistics as st
from lakeforge.monitoring.aggregates import NULL_BIN, ColumnSpec, edge_pass, summarise, summary_rows
from lakeforge.monitoring.drift import column_drift, dataset_drift
from lakeforge.monitoring.reference import window_specs

TOL = 1e-6


def _reference(spark, pdf: pd.DataFrame, numeric: list[str], categorical: list[str], cfg: MonitoringConfig):
    df = spark.createDataFrame(pdf)
    edges = edge_pass(df, numeric, cfg.bins, cfg.max_points)
    specs = [ColumnSpec(c, True, edges[c][0], exact=edges[c][1], points=edges[c][1]) for c in numeric]
    specs += [ColumnSpec(c, False) for c in categorical]
    return summarise(df, specs)[None]


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(7)
    ref = pd.DataFrame({"x": np.concatenate([np.arange(31), rng.integers(0, 31, 369)]).astype(float),
                        "cat": rng.choice(["a", "b", "c"], 400, p=[0.5, 0.3, 0.2])})
    cur = pd.DataFrame({"x": np.minimum(rng.integers(0, 31, 550) + rng.integers(0, 4, 550), 30).astype(float),
                        "cat": rng.choice(["a", "b", "c", "d"], 550, p=[0.3, 0.3, 0.3, 0.1])})
    return ref, cur


@pytest.fixture(scope="module")
def summaries(spark, samples):
    ref, cur = samples
    cfg = MonitoringConfig()
    reference = _reference(spark, ref, ["x"], ["cat"], cfg)
    specs = window_specs(reference)
    window = summarise(spark.createDataFrame(cur), specs)[None]
    return reference, window


def test_exact_bins_equal_scipy_on_numbers(samples, summaries):
    ref, cur = samples
    reference, window = summaries
    r, c = reference["x"], window["x"]
    assert r.exact and len(r.edges) == 31
    d, p = st.ks_from_counts(r.counts, c.counts)
    expected = stats.ks_2samp(ref.x, cur.x)
    assert abs(d - expected.statistic) < TOL and abs(p - expected.pvalue) < TOL
    assert abs(st.wasserstein_norm(r, c) - stats.wasserstein_distance(ref.x, cur.x) / np.std(ref.x)) < TOL
    rc, cc = ref.x.value_counts().sort_index(), cur.x.value_counts().reindex(ref.x.value_counts().sort_index().index, fill_value=0)
    assert abs(st.js_distance(r.counts, c.counts) - jensenshannon(rc / rc.sum(), cc / cc.sum())) < TOL
    chi = stats.chi2_contingency(np.vstack([rc.to_numpy(), cc.to_numpy()]))
    assert np.allclose(st.chi2(r.counts, c.counts), (chi.statistic, chi.pvalue), atol=TOL)
    assert abs(r.mean() - ref.x.mean()) < TOL and abs(r.std() - ref.x.std(ddof=0)) < TOL
    assert r.quantiles([0.5]) == [float(np.quantile(ref.x, 0.5, method="inverted_cdf"))]


def test_categories_equal_scipy_with_a_new_category(samples, summaries):
    ref, cur = samples
    reference, window = summaries
    keys, r, c = st.aligned_categories(reference["cat"], window["cat"])
    assert keys == ["a", "b", "c", "d"] and c[-1] == (cur.cat == "d").sum() and r[-1] == 0
    table = pd.crosstab(pd.concat([ref.cat, cur.cat]), np.r_[np.zeros(len(ref)), np.ones(len(cur))]).T.to_numpy()
    chi = stats.chi2_contingency(table)
    assert np.allclose(st.chi2(r, c), (chi.statistic, chi.pvalue), atol=TOL)
    p = ref.cat.value_counts(normalize=True).reindex(keys, fill_value=0).to_numpy()
    q = cur.cat.value_counts(normalize=True).reindex(keys, fill_value=0).to_numpy()
    assert abs(st.js_distance(r, c) - jensenshannon(p, q)) < TOL
    ps, qs = np.where(p == 0, 1e-4, p), np.where(q == 0, 1e-4, q)  # PSI: empty bins smoothed, finite
    assert abs(st.psi(r, c) - np.sum((qs - ps) * np.log(qs / ps))) < TOL and np.isfinite(st.psi(r, c))


def test_test_choice_and_verdicts(summaries):
    reference, window = summaries
    cfg = MonitoringConfig(min_rows=100)
    x, cat = column_drift("x", reference["x"], window["x"], cfg), column_drift("cat", reference["cat"], window["cat"], cfg)
    assert (x.test, cat.test) == ("ks", "chi2")  # a reference of 400 rows: Evidently's small-sample tests
    assert x.drifted == (x.ks_pvalue < 0.05) and cat.drifted == (cat.chi2_pvalue < 0.05) and cat.drifted
    big = MonitoringConfig(min_rows=100, small_reference_rows=100)
    assert column_drift("x", reference["x"], window["x"], big).test == "wasserstein"
    assert column_drift("cat", reference["cat"], window["cat"], big).test == "jensenshannon"
    few = column_drift("x", reference["x"], window["x"], MonitoringConfig(min_rows=10_000))
    assert few.verdict == "too few rows" and few.drifted is None and few.ks_statistic == x.ks_statistic
    assert dataset_drift([x, cat], 0.5) == (True, (x.drifted + cat.drifted) / 2)
    assert dataset_drift([few], 0.5) == (None, None)


def test_windows_merge_like_the_union(spark, samples, summaries):
    _, cur = samples
    reference, window = summaries
    specs = window_specs(reference)
    halves = summarise(spark.createDataFrame(cur.assign(w=np.arange(len(cur)) % 2)), specs, window=F.col("w"))
    merged_x = halves[0]["x"].merge(halves[1]["x"])
    assert np.array_equal(merged_x.counts, window["x"].counts) and abs(merged_x.sumsq - window["x"].sumsq) < TOL
    assert halves[0]["cat"].merge(halves[1]["cat"]).counts == window["cat"].counts


def test_quantile_bins_at_scale_within_the_documented_error(spark):
    """Continuous values: 100 reference-quantile bins; KS within one bin's mass, the normalised
    Wasserstein distance within 0.01 of scipy on the raw rows."""
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"v": rng.normal(50, 10, 20_000)})
    cur = pd.DataFrame({"v": rng.normal(53, 12, 20_000)})
    cfg = MonitoringConfig()
    reference = _reference(spark, ref, ["v"], [], cfg)
    window = summarise(spark.createDataFrame(cur), window_specs(reference))[None]
    r, c = reference["v"], window["v"]
    assert not r.exact and len(r.edges) >= 95
    bin_mass = max(r.counts.max() / r.n, 0) + c.counts.max() / c.n
    d, _ = st.ks_from_counts(r.counts, c.counts)
    exact = stats.ks_2samp(ref.v, cur.v).statistic
    assert 0 <= exact - d <= bin_mass
    w = stats.wasserstein_distance(ref.v, cur.v) / np.std(ref.v)
    assert abs(st.wasserstein_norm(r, c) - w) < 0.01
    assert abs(r.mean() - ref.v.mean()) < TOL and abs(r.std() - ref.v.std(ddof=0)) < 1e-4
    assert abs(r.quantiles([0.5])[0] - np.median(ref.v)) < 0.5


def test_ks_pvalue_follows_scipy_in_both_modes():
    rng = np.random.default_rng(11)
    for n1, n2 in ((40, 65), (12_000, 15_000)):  # exact, then Smirnov's asymptotic formula
        a, b = rng.integers(0, 20, n1), rng.integers(1, 21, n2)
        edges = np.arange(21)
        ca, cb = np.bincount(a, minlength=21), np.bincount(b, minlength=21)
        d, p = st.ks_from_counts(ca, cb)
        expected = stats.ks_2samp(a, b)
        assert abs(d - expected.statistic) < TOL and abs(p - expected.pvalue) < TOL, (n1, n2, len(edges))


def test_bins_are_right_closed_on_edges_infinities_zeros_and_nulls(spark):
    """Bin i is (e[i-1], e[i]] (numpy's searchsorted, side='left'), null and NaN in NULL_BIN; the
    aggregation compiles (no interpreted fallback) with many binned columns."""
    edges = (-2.0, -0.0, 1.5, 3.0)
    values = [-np.inf, -3.0, -2.0, -1.0, -0.0, 0.0, 1.0, 1.5, 2.0, 3.0, 3.5, np.inf, np.nan, None]
    specs = [ColumnSpec("x", True, edges), ColumnSpec("y", True, (0.5,))]
    df = local_frame(spark, [(None if v is None else float(v), 1.0) for v in values], "x double, y double")
    assert df.where(F.isnan("x")).count() == 1 and df.where(F.col("x").isNull()).count() == 1
    got = {(r["c"], r["b"]): r["n"] for r in summary_rows(df, specs).collect()}
    finite = [v for v in values if v is not None and not np.isnan(v)]
    expected = pd.Series(np.searchsorted(np.array(edges), finite, side="left")).value_counts().to_dict()
    assert {b: n for (c, b), n in got.items() if c == 0} == {**expected, NULL_BIN: 2}
    assert {b: n for (c, b), n in got.items() if c == 1} == {1: len(values)}
    wide = [ColumnSpec(f"v{i}", True, tuple(float(e) for e in range(100))) for i in range(12)]
    frame = spark.range(10).select(*[F.col("id").cast("double").alias(f"v{i}") for i in range(12)])
    debug = getattr(getattr(spark._jvm.org.apache.spark.sql.execution.debug, "package$"), "MODULE$")  # noqa: SLF001
    # the product's settings: code generation on (the tests' sessions turn it off, conftest.py),
    # adaptive execution off so that the codegen stages are in the plan before it runs
    product = {"spark.sql.adaptive.enabled": "false", "spark.sql.codegen.wholeStage": "true",
               "spark.sql.codegen.factoryMode": "FALLBACK"}
    saved = {k: spark.conf.get(k) for k in product}
    for k, v in product.items():
        spark.conf.set(k, v)
    try:
        found = debug.codegenStringSeq(summary_rows(frame, wide)._jdf.queryExecution().executedPlan())  # noqa: SLF001
        sizes = [found.apply(i)._3().maxMethodCodeSize() for i in range(found.size())]
    finally:
        for k, v in saved.items():
            spark.conf.set(k, v)
    assert sizes and all(0 < n <= 8000 for n in sizes), sizes  # compiles (-1: it did not), and the JIT takes it
