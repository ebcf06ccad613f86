"""The EDA profile's plots (PNG bytes for lakeforge.profiling.page), drawn from the aggregates
in a lakeforge.profiling.result.ProfileResult: correlation heatmaps, the target's class balance
or distribution, and per column a histogram or bar chart with the target per bin or level.
"""

from __future__ import annotations

import math

from lakeforge.core.plotting import png, pyplot
from lakeforge.profiling.result import ColumnProfile, ProfileResult

ANNOTATE_MAX = 20       # heatmaps write the value in each cell up to this many columns


def heatmap(m, title: str, vmin: float, vmax: float, cmap: str) -> bytes:
    plt = pyplot()
    k = len(m.columns)
    size = max(3.5, min(14.0, 0.55 * k + 2.0))
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(m.to_numpy(dtype=float), vmin=vmin, vmax=vmax, cmap=cmap)
    labels = [str(c)[:22] for c in m.columns]
    ax.set_xticks(range(k), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    if k <= ANNOTATE_MAX:
        values = m.to_numpy(dtype=float)
        for i in range(k):
            for j in range(k):
                v = values[i][j]
                if not math.isnan(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=max(5, 10 - k // 3),
                            color="white" if abs(v) > 0.6 * max(abs(vmin), abs(vmax)) else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title)
    return png(fig)


def target_plot(result: ProfileResult) -> bytes | None:
    plt = pyplot()
    t = result.target
    if t.task == "regression":
        c = result.column(t.name)
        if not c.histogram:
            return None
        fig, ax = plt.subplots(figsize=(6, 3.2))
        _hist(ax, c)
        ax.set_title(f"Distribution of the target {t.name}")
        return png(fig)
    classes = t.classes[:20]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(classes) + 1.3))
    total = sum(n for _, n in t.classes) or 1
    names = [n[:30] for n, _ in classes][::-1]
    counts = [n for _, n in classes][::-1]
    bars = ax.barh(names, counts, color=["#d62728" if n == t.positive_class else "#4c72b0" for n, _ in classes][::-1])
    for b, n in zip(bars, counts):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {n:,} ({n / total:.1%})", va="center", fontsize=8)
    ax.set_xlim(0, max(counts) * 1.3)
    ax.set(title=f"Class balance of the target {t.name}", xlabel="rows")
    return png(fig)


def _hist(ax, c: ColumnProfile) -> None:
    ax.bar([h[0] for h in c.histogram], [h[2] for h in c.histogram],
           width=[h[1] - h[0] for h in c.histogram], align="edge", color="#4c72b0", edgecolor="white")
    ax.set(xlabel=c.name, ylabel="rows")


def column_plot(c: ColumnProfile, result: ProfileResult) -> bytes | None:
    plt = pyplot()
    t = result.target
    has_rel = bool(c.by_target) and t.task in ("binary", "regression")
    if c.role == "numeric" and c.histogram:
        fig, axes = plt.subplots(1, 2 if has_rel else 1, figsize=(10 if has_rel else 5.2, 3))
        axes = list(axes) if has_rel else [axes]
        _hist(axes[0], c)
        axes[0].set_title(f"{c.name}: histogram ({len(c.histogram)} bins)")
        if has_rel:
            _relation(axes[1], c, result, horizontal=False)
        return png(fig)
    if c.role in ("categorical", "text") and c.top:
        items = c.by_target[:15] if c.by_target else [{"label": v, "rows": n} for v, n in c.top[:15]]
        height = 0.3 * len(items) + 1.3
        fig, axes = plt.subplots(1, 2 if has_rel else 1, figsize=(10 if has_rel else 5.2, height))
        axes = list(axes) if has_rel else [axes]
        labels = [str(x["label"])[:28] for x in items][::-1]
        axes[0].barh(labels, [x["rows"] for x in items][::-1], color="#4c72b0")
        axes[0].set(title=f"{c.name}: rows per level", xlabel="rows")
        if has_rel:
            _relation(axes[1], c, result, horizontal=True)
        return png(fig)
    return None


def _relation(ax, c: ColumnProfile, result: ProfileResult, horizontal: bool) -> None:
    t = result.target
    key = "rate" if t.task == "binary" else "mean"
    items = c.by_target[:15] if horizontal else c.by_target
    labels = [str(x["label"])[:28] for x in items]
    values = [x.get(key) if x.get(key) is not None else float("nan") for x in items]
    overall = overall_rate(result)
    if horizontal:
        ax.barh(labels[::-1], values[::-1], color="#dd8452")
        if overall is not None:
            ax.axvline(overall, color="grey", linestyle="--", linewidth=1, label=f"overall {overall:.3g}")
        ax.set(xlabel=t.rate_name)
    else:
        ax.plot(range(len(values)), values, "o-", color="#dd8452")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
        if overall is not None:
            ax.axhline(overall, color="grey", linestyle="--", linewidth=1, label=f"overall {overall:.3g}")
        ax.set(ylabel=t.rate_name, xlabel=f"{c.name} (decile bins)")
    if overall is not None:
        ax.legend(loc="best", fontsize=8)
    ax.set_title(f"{cap(t.rate_name)} by {c.name}")


def overall_rate(result: ProfileResult) -> float | None:
    """The target's overall rate (binary) or mean (numeric); None for a multiclass target."""
    t = result.target
    if t.task == "binary":
        total = sum(n for _, n in t.classes)
        pos = dict(t.classes).get(t.positive_class, 0)
        return pos / total if total else None
    if t.task == "regression":
        return result.column(t.name).mean
    return None


def cap(s: str) -> str:
    """``s`` with its first letter capitalised."""
    return s[:1].upper() + s[1:]
