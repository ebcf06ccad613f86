"""The EDA profile's statistics from the passes' aggregates (lakeforge.profiling.passes), with
no Spark: quartiles and moments of a column, histograms, the target per level or decile bin,
Cramér's V, Goodman-Kruskal lambda, the ROC-AUC of decile bins, the correlation ratio, and the
correlation matrices and the long form of every correlation. The ``set_*`` functions and
``histograms`` / ``target_relations`` fill in the given ColumnProfiles; the rest return values.
"""

from __future__ import annotations

import math

import pandas as pd

from lakeforge.profiling.passes import GRID, HIST_BINS, LEVELS_MAX
from lakeforge.profiling.result import ColumnProfile, TargetProfile, finite

LEVELS_SHOWN = 30        # levels listed per column in the target relation


# ---------------------------------------------------------------------------------------------
# One column: quartiles and moments
# ---------------------------------------------------------------------------------------------


def set_moments(c: ColumnProfile, s: dict, n: int) -> None:
    """mean, std and adjusted skew from Spark's aggregates ``s`` (mean, std, skew) over ``n`` values."""
    c.mean, c.std = finite(s["mean"]), finite(s["std"])
    g1 = finite(s["skew"])
    # Spark's skewness is the population g1; report the adjusted Fisher-Pearson G1 (as pandas)
    c.skew = g1 * math.sqrt(n * (n - 1)) / (n - 2) if g1 is not None and n > 2 else None


def set_percentiles(c: ColumnProfile, pct: list[float] | None) -> None:
    """min, quartiles, max from [0 %, 1 %, ..., 100 %]."""
    if not pct:
        return
    c.min, c.max = float(pct[0]), float(pct[-1])
    c.percentiles = [float(v) for v in pct[1:]]
    c.q1, c.median, c.q3 = (c.percentiles[GRID * k // 4 - 1] for k in (1, 2, 3))


def set_sums_moments(c: ColumnProfile, n: float, s1: float, s2: float, s3: float) -> None:
    """mean, sample std and adjusted skew (as pandas) from the sums of (x - median)^1..3."""
    if not n:
        return
    m1 = s1 / n
    m2 = max(0.0, s2 / n - m1 * m1)
    m3 = s3 / n - 3 * m1 * (s2 / n) + 2 * m1 ** 3
    c.mean = c.median + m1
    c.std = math.sqrt(m2 * n / (n - 1)) if n > 1 else None
    g1 = m3 / m2 ** 1.5 if m2 > 0 else None
    c.skew = g1 * math.sqrt(n * (n - 1)) / (n - 2) if g1 is not None and n > 2 else None


# ---------------------------------------------------------------------------------------------
# From pass 2's groups: histograms, the target per bin / level, Cramér's V of pairs
# ---------------------------------------------------------------------------------------------


def histograms(live: list[ColumnProfile], idx: dict[str, int], groups: pd.DataFrame) -> None:
    """Each numeric column's HIST_BINS equal-width bins (from, to, rows)."""
    h = groups[groups["k"] == 1].groupby(["i", "b"])["n"].sum()
    for c in live:
        counts = {b: n for (i, b), n in h.items() if i == idx[c.name]}
        width = (c.max - c.min) / HIST_BINS
        c.histogram = [(c.min + k * width, c.min + (k + 1) * width, int(counts.get(k, 0))) for k in range(HIST_BINS)]


def target_relations(cols, idx, groups, bins, task, positive, tprof: TargetProfile) -> None:
    """Per numeric column (decile bins) and categorical / text column (levels): the target per
    bin or level (``by_target``), the association with the target and, for a class target, the
    predictive power."""
    classes = [n for n, _ in tprof.classes]
    for c in cols:
        i = idx[c.name]
        if c.role == "numeric" and c.name in bins:
            g = groups[(groups["k"] == 1) & (groups["i"] == i)]
            keys = sorted(set(g["q"]))
            labels = _bin_labels(c, bins[c.name])
            c.by_target = _relation(g, "q", keys, lambda b: labels.get(int(b), str(b)), task, positive, classes)
            table = _contingency(g, "q", keys, classes) if task != "regression" else None
        elif c.role in ("categorical", "text") and c.count and c.distinct <= LEVELS_MAX:
            g = groups[(groups["k"] == 2) & (groups["i"] == i)]
            totals = g.groupby("v", dropna=False)["n"].sum().sort_values(ascending=False)
            keys = list(totals.index)
            c.by_target = _relation(g, "v", keys, lambda v: "(missing)" if _isnull(v) else str(v), task, positive, classes)
            if len(c.by_target) > LEVELS_SHOWN:
                c.by_target = c.by_target[:LEVELS_SHOWN]
            table = _contingency(g[g["v"].notna()], "v", [k for k in keys if not _isnull(k)], classes) if task != "regression" else None
        else:
            continue
        if task == "regression":
            c.association, c.association_measure = _correlation_ratio(g), "correlation ratio (eta)"
            if c.role == "numeric":
                c.association, c.association_measure = c.target_pearson, "Pearson r"
            continue
        _set_class_association(c, table, task, positive, classes)


def _bin_labels(c: ColumnProfile, edges: list[float]) -> dict[int, str]:
    labels = {}
    for b in range(max(1, len(edges) - 1)):
        lo = c.min if b == 0 else edges[b]
        hi = c.max if b + 1 >= len(edges) - 1 else edges[b + 1]
        labels[b] = f"[{_fmt(lo)}, {_fmt(hi)}{']' if b + 1 >= len(edges) - 1 else ')'}"
    return labels


def _set_class_association(c: ColumnProfile, table, task: str, positive, classes: list[str]) -> None:
    c.association = cramers_v(table)
    c.association_measure = "Cramér's V" + (" (decile bins)" if c.role == "numeric" else "")
    if task == "binary" and c.role == "numeric":
        auc = _binned_auc(table, classes.index(positive)) if table is not None else None
        # oriented: 0.5 is no relation, 1 a perfect ranking in either direction (Pearson has the sign)
        c.predictive = None if auc is None else max(auc, 1 - auc)
        c.predictive_measure = "ROC-AUC of the decile bins"
    else:
        c.predictive = _lambda(table, min_rows=2 if c.role != "numeric" else 1)
        c.predictive_measure = "Goodman-Kruskal lambda" + (" (decile bins)" if c.role == "numeric" else "")


def _isnull(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _relation(g: pd.DataFrame, by: str, keys: list, label, task: str, positive, classes) -> list[dict]:
    out = []
    for key in keys:
        rows = g[g[by].isna()] if _isnull(key) else g[g[by] == key]
        n = int(rows["n"].sum())
        item = {"label": label(key), "rows": n}
        if task == "regression":
            ny = rows["ny"].sum()
            item["mean"] = float(rows["sy"].sum() / ny) if ny else None
        else:
            known = rows[rows["t"].notna()]
            total = int(known["n"].sum())
            if task == "binary":
                item["rate"] = float(known.loc[known["t"] == positive, "n"].sum() / total) if total else None
            else:
                item["shares"] = {cl: float(known.loc[known["t"] == cl, "n"].sum() / total) if total else None
                                  for cl in classes[:5]}
        out.append(item)
    return out


def _contingency(g: pd.DataFrame, by: str, keys: list, classes: list[str]):
    known = g[g["t"].notna()]
    if known.empty:
        return None
    table = known.pivot_table(index=by, columns="t", values="n", aggfunc="sum", fill_value=0)
    return table.reindex(index=keys, columns=classes, fill_value=0).fillna(0)


def cramers_v(table) -> float | None:
    """Cramér's V of a contingency table (rows and columns without counts dropped)."""
    if table is None:
        return None
    t = table.loc[table.sum(axis=1) > 0, table.sum(axis=0) > 0].to_numpy(dtype=float)
    if t.size == 0 or min(t.shape) < 2:
        return None
    n = t.sum()
    expected = t.sum(axis=1, keepdims=True) * t.sum(axis=0, keepdims=True) / n
    chi2 = float(((t - expected) ** 2 / expected).sum())
    return min(1.0, math.sqrt(chi2 / (n * (min(t.shape) - 1))))


def _lambda(table, min_rows: int = 2) -> float | None:
    """Goodman-Kruskal lambda: the share of the errors of always guessing the majority class
    that knowing the level removes (levels of ``min_rows``+ rows; they must cover half the rows,
    or a near-unique column would predict the target trivially)."""
    if table is None:
        return None
    t = table.to_numpy(dtype=float)
    n_all = t.sum()
    t = t[t.sum(axis=1) >= min_rows]
    n = t.sum()
    if n == 0 or n < 0.5 * n_all:
        return None
    base = t.sum(axis=0).max()
    if n == base:
        return None
    return float((t.max(axis=1).sum() - base) / (n - base))


def _binned_auc(table, pos_col: int) -> float | None:
    """ROC-AUC of the bins in value order as a score (ties within a bin count half)."""
    t = table.to_numpy(dtype=float)
    pos = t[:, pos_col]
    neg = t.sum(axis=1) - pos
    if pos.sum() == 0 or neg.sum() == 0:
        return None
    below = 0.0
    auc = 0.0
    for p, n in zip(pos, neg):
        auc += p * (below + n / 2)
        below += n
    return float(auc / (pos.sum() * neg.sum()))


def _correlation_ratio(g: pd.DataFrame) -> float | None:
    ny, sy, syy = g["ny"].astype(float), g["sy"].astype(float), g["syy"].astype(float)
    n = ny.sum()
    if n < 2:
        return None
    mean = sy.sum() / n
    total = syy.sum() - n * mean * mean
    if total <= 0:
        return None
    keep = ny > 0
    between = float((ny[keep] * (sy[keep] / ny[keep] - mean) ** 2).sum())
    return math.sqrt(max(0.0, min(1.0, between / total)))


def cramers_by_pair(pair_index: dict[int, tuple[str, str]], groups: pd.DataFrame) -> dict[tuple[str, str], float | None]:
    """{(a, b): Cramér's V} of each pair of categorical columns pass 2 counted."""
    p = groups[groups["k"] == 3]
    out = {}
    for m, (a, b) in pair_index.items():
        g = p[p["i"] == m]
        table = g.pivot_table(index="v", columns="w", values="n", aggfunc="sum", fill_value=0) if not g.empty else None
        out[(a, b)] = cramers_v(table)
    return out


# ---------------------------------------------------------------------------------------------
# Matrices
# ---------------------------------------------------------------------------------------------


def matrix(names: list[str], values: dict, diagonal: float = 1.0) -> pd.DataFrame:
    """A symmetric matrix over ``names`` from {(a, b): value} (missing pairs NaN)."""
    m = pd.DataFrame(float("nan"), index=names, columns=names)
    for n in names:
        m.loc[n, n] = diagonal
    for (a, b), v in values.items():
        v = finite(v)
        m.loc[a, b] = m.loc[b, a] = float("nan") if v is None else v
    return m


def with_target(m: pd.DataFrame, label: str, values: dict) -> pd.DataFrame:
    """``m`` with a last row and column ``label``: {column: value with the target}."""
    names = list(m.columns)
    out = m.reindex(index=[*names, label], columns=[*names, label])
    out.loc[label, label] = 1.0
    for n in names:
        v = finite(values.get(n))
        out.loc[n, label] = out.loc[label, n] = float("nan") if v is None else v
    return out


# ---------------------------------------------------------------------------------------------
# Matrices and the long form
# ---------------------------------------------------------------------------------------------


def correlation_matrices(cols: list[ColumnProfile], live: list[ColumnProfile], pair_cols: list[ColumnProfile], target: str,
              task: str, raws: dict[str, dict]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(Pearson, Spearman, Cramér's V) matrices, with a row for the target when it has one."""
    num = [c for c in cols if c.role == "numeric"]
    target_label = f"{target} (target)"
    pearson = matrix([c.name for c in num], raws["pearson"])
    spearman = matrix([c.name for c in live], raws["spearman"])
    if task in ("binary", "regression") and num:
        pearson = with_target(pearson, target_label, {c.name: c.target_pearson for c in num})
        spearman = with_target(spearman, target_label, {c.name: c.target_spearman for c in live})
    cat_names = [c.name for c in pair_cols]
    cramer = matrix(cat_names, raws["cramers_v"], diagonal=1.0)
    cat_target = {c.name: c.association for c in cols if c.role == "categorical" and c.association_measure == "Cramér's V"}
    if task != "regression" and cat_target:
        cramer = with_target(cramer, target_label, {n: cat_target.get(n) for n in cat_names})
    return pearson, spearman, cramer


def correlation_rows(cols: list[ColumnProfile], target: str, raws: dict[str, dict], threshold: float) -> list[dict]:
    """Every correlation in long form: the pairs of columns (flagged at |value| >= threshold),
    then each column's with the target."""
    correlations = []
    for method, raw in raws.items():
        for (a, b), v in raw.items():
            v = finite(v)
            correlations.append({"column_a": a, "column_b": b, "method": method, "value": v,
                                 "flagged": v is not None and abs(v) >= threshold, "involves_target": False})
    for c in cols:
        for method, v in (("pearson", c.target_pearson), ("spearman", c.target_spearman)):
            if v is not None:
                correlations.append({"column_a": c.name, "column_b": target, "method": method, "value": v,
                                     "flagged": False, "involves_target": True})
        method = {"Cramér's V": "cramers_v", "Cramér's V (decile bins)": "cramers_v_deciles",
                  "correlation ratio (eta)": "correlation_ratio"}.get(c.association_measure or "")
        if method and c.association is not None:
            correlations.append({"column_a": c.name, "column_b": target, "method": method, "value": c.association,
                                 "flagged": False, "involves_target": True})
    return correlations
