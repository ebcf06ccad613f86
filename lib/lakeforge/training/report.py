"""The training report: leaderboard, test metrics and plots (PNG + one self-contained HTML page).

Every plot is drawn from small aggregates (score bins, a confusion matrix, importances), never
from row-level data.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakeforge.core.plotting import Report, png, pyplot
from lakeforge.core.tasks import METRICS
from lakeforge.training import evaluation

if TYPE_CHECKING:
    from lakeforge.core.config import PipelineConfig
    from lakeforge.features.report import PreprocessingReport
    from lakeforge.training.search import Candidate


def roc_pr_plots(ev: evaluation.Evaluation) -> dict[str, bytes]:
    plt = pyplot()
    out = {}
    fpr, tpr, _ = ev.roc_curve()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(fpr, tpr, label=f"ROC-AUC {ev.metrics.get('roc_auc', float('nan')):.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve (test)")
    ax.legend(loc="lower right")
    out["roc"] = png(fig)
    rec, prec, _ = ev.pr_curve()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(rec, prec, label=f"PR-AUC {ev.metrics.get('pr_auc', float('nan')):.3f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve (test)", ylim=(0, 1.02))
    ax.legend(loc="upper right")
    out["pr"] = png(fig)
    # calibration: observed positive rate per decile of predicted probability
    groups: dict[int, list[float]] = {}
    for edge, p, n in ev.bins:
        g = groups.setdefault(min(int(edge * 10), 9), [0.0, 0.0, 0.0])
        g[0] += p
        g[1] += n
        g[2] += (edge + 0.5 / evaluation.BINS) * (p + n)
    xs, ys = [], []
    for g in sorted(groups):
        p, n, s = groups[g]
        if p + n:
            xs.append(s / (p + n))
            ys.append(p / (p + n))
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(xs, ys, "o-", label="model")
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8, label="perfect")
    ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", title="Calibration (test)")
    ax.legend(loc="upper left")
    out["calibration"] = png(fig)
    return out


def confusion_plot(ev: evaluation.Evaluation) -> bytes:
    plt = pyplot()
    cm = ev.confusion
    k = len(cm)
    fig, ax = plt.subplots(figsize=(1.2 * k + 2.5, 1.2 * k + 2))
    ax.imshow(cm, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{cm[i][j]:,}", ha="center", va="center")
    ax.set_xticks(range(k), [str(x)[:14] for x in ev.labels[:k]], rotation=30, ha="right")
    ax.set_yticks(range(k), [str(x)[:14] for x in ev.labels[:k]])
    ax.set(xlabel="predicted", ylabel="actual", title="Confusion matrix (test)")
    return png(fig)


def residual_plot(ev: evaluation.Evaluation) -> bytes:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.8))
    if ev.bins:
        width = (ev.bins[1][0] - ev.bins[0][0]) if len(ev.bins) > 1 else 1.0
        ax.bar([b[0] for b in ev.bins], [b[1] for b in ev.bins], width=width, align="edge")
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set(title="Residuals (prediction - actual), test", xlabel="residual", ylabel="rows")
    return png(fig)


def importance_plot(importances: list[tuple[str, float]], top: int = 20) -> bytes:
    plt = pyplot()
    items = importances[:top][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(items) + 1.2))
    ax.barh([n for n, _ in items], [v for _, v in items])
    ax.set(title="Feature importance (summed per input column)", xlabel="importance / |coefficient|")
    return png(fig)


def ranking_plot(ranking: list[dict], top: int = 20) -> bytes:
    """One horizontal bar chart per selection step: the best-ranked features by score and some of
    the dropped ones, kept in colour, dropped in grey."""
    plt = pyplot()
    steps = sorted({(r["step"], r["method"]) for r in ranking})
    heights = [min(top, sum(1 for r in ranking if r["step"] == s)) for s, _ in steps]
    fig, axes = plt.subplots(len(steps), 1, figsize=(7, 0.28 * sum(heights) + 1.1 * len(steps)), squeeze=False,
                             gridspec_kw={"height_ratios": [max(h, 1) for h in heights]})
    for ax, (step, method) in zip(axes[:, 0], steps):
        ranked = sorted((r for r in ranking if r["step"] == step), key=lambda r: r["rank"])
        dropped = [r for r in ranked if not r["kept"]][: top // 3]  # show some dropped ones too
        kept = [r for r in ranked if r["kept"]][: top - len(dropped)]
        rows = sorted(kept + dropped, key=lambda r: r["rank"])[::-1]
        ax.barh([r["feature"][:55] for r in rows], [r["score"] or 0.0 for r in rows],
                color=["tab:blue" if r["kept"] else "lightgrey" for r in rows])
        ax.set(title=f"step {step}: {method} (blue: kept, grey: dropped)", xlabel=_SCORE_LABEL.get(method, "score"))
    fig.tight_layout()
    return png(fig)


_SCORE_LABEL = {"variance": "variance", "correlation": "max |r| with another feature", "chi2": "chi-squared statistic",
                "anova": "ANOVA F", "f_regression": "F statistic", "random_forest": "importance", "lasso": "|coefficient|",
                "pca": "share of variance explained"}


def leaderboard_plot(leaderboard: list[dict], metric: str) -> bytes:
    plt = pyplot()
    rows = [r for r in leaderboard if r["cv_mean"] is not None][:15][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    labels = [f"{r['algorithm']} {_short(r['params'])}" for r in rows]
    ax.barh(labels, [r["cv_mean"] for r in rows], xerr=[r["cv_std"] or 0 for r in rows])
    lo = min((r["cv_mean"] - (r["cv_std"] or 0) for r in rows), default=0)
    hi = max((r["cv_mean"] + (r["cv_std"] or 0) for r in rows), default=1)
    pad = (hi - lo) * 0.1 or 0.01
    ax.set_xlim(lo - pad, hi + pad)
    ax.set(title=f"Leaderboard: CV {metric} (mean +- std)", xlabel=metric)
    return png(fig)


def _short(params: str) -> str:
    d = json.loads(params)
    return ", ".join(f"{k}={v}" for k, v in d.items())[:60]


@dataclass
class ReportInput:
    """What the training report shows: the search, the winner and its test evaluation."""

    pipeline: PipelineConfig
    task: str
    metric: str
    leaderboard: list[dict]
    best: Candidate
    test_eval: evaluation.Evaluation
    importances: list[tuple[str, float]]
    split_info: dict
    threshold: float | None
    decision: str  # the champion / challenger decision
    version: str  # the registered model version
    timings: dict[str, float]
    prep: PreprocessingReport | None = None


def training_report(r: ReportInput) -> Report:
    """The page (plots inlined as base64 PNG) and the plots themselves."""
    images = _plots(r)
    esc = html.escape
    test_rows = "".join(
        f"<tr><td>{esc(k)}</td><td>{v:.4f}</td></tr>" for k, v in r.test_eval.metrics.items() if not math.isnan(v)
    )
    imgs = "".join(
        f'<figure><img alt="{esc(n)}" src="data:image/png;base64,{base64.b64encode(b).decode()}"></figure>'
        for n, b in images.items()
    )
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items())
    prep_html = _preprocessing_html(r.prep) if r.prep is not None else ""
    pipeline, threshold = r.pipeline, r.threshold
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lakeforge training report: {esc(pipeline.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 3px 8px; font-size: 90%; }}
tr.best {{ background: #e8f4e8; font-weight: 600; }} figure {{ display: inline-block; margin: 0.5em; }}
</style></head><body>
<h1>Training report: {esc(pipeline.name)}</h1>
<p>Task <b>{esc(r.task)}</b>, target <code>{esc(pipeline.target)}</code>, primary metric <b>{esc(r.metric)}</b>.
Split: {esc(json.dumps(r.split_info))}.</p>
<p>Winner: <b>{esc(r.best.label)}</b> ({esc(r.best.selected_by)}), registered as version {esc(str(r.version))}.
{'Decision threshold on P(positive): %.4f (%s).' % (threshold, esc(pipeline.model.threshold.strategy)) if threshold is not None else ''}</p>
<p>Champion decision: {esc(r.decision)}</p>
<h2>Held-out test metrics of the winner</h2><table>{test_rows}</table>
<h2>Leaderboard (cross-validation on the same folds)</h2>
{_leaderboard_html(r.leaderboard, r.task)}
{prep_html}
<h2>Plots</h2>{imgs}
<p><small>Stage times: {esc(timing)}</small></p>
</body></html>"""
    return Report(page, images)


def _plots(r: ReportInput) -> dict[str, bytes]:
    """The report's PNG plots by name; none when matplotlib is missing (the tables stay)."""
    images: dict[str, bytes] = {}
    try:
        images["leaderboard"] = leaderboard_plot(r.leaderboard, r.metric)
        if r.task == "binary":
            images.update(roc_pr_plots(r.test_eval))
        if r.task in ("binary", "multiclass"):
            images["confusion"] = confusion_plot(r.test_eval)
        if r.task == "regression":
            images["residuals"] = residual_plot(r.test_eval)
        if r.importances:
            images["importance"] = importance_plot(r.importances)
        if r.prep is not None and r.prep.ranking:
            images["feature_ranking"] = ranking_plot(r.prep.ranking)
    except ImportError:  # matplotlib missing: the report keeps its tables
        pass
    return images


def _leaderboard_html(leaderboard: list[dict], task: str) -> str:
    """The leaderboard as an HTML table: CV mean +- std of every metric of the task."""
    esc = html.escape
    metric_names = list(METRICS[task])
    head = "".join(f"<th>{esc(h)}</th>" for h in ["rank", "algorithm", "params", *[f"CV {m}" for m in metric_names], "fit s", "status"])
    body = []
    for r in leaderboard:
        cells = [str(r["rank"] or ""), r["algorithm"], _short(r["params"])]
        for m in metric_names:
            mean, std = r.get(f"cv_{m}_mean"), r.get(f"cv_{m}_std")
            cells.append("" if mean is None or math.isnan(mean) else f"{mean:.4f} &plusmn; {std:.4f}")
        cells += [f"{r['fit_seconds']:.1f}", r["status"]]
        cls = ' class="best"' if r["is_best"] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c if '&plusmn;' in c else esc(c)}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _preprocessing_html(prep) -> str:
    """Dropped columns, coerced-to-null counts, notes and the selection ranking (top 30 per step)."""
    esc = html.escape
    parts = ["<h2>Preprocessing</h2>", f"<p>{prep.rows_profiled:,} training rows profiled; "
             f"{len(prep.numeric)} numeric and {len(prep.categorical)} categorical features.</p>"]
    items = [esc(line) for line in prep.lines()]
    if items:
        parts.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
    if prep.ranking:
        head = "".join(f"<th>{h}</th>" for h in ("step", "method", "rank", "feature", "column", "score", "p-value", "kept", "note"))
        body = []
        for step in sorted({r["step"] for r in prep.ranking}):
            for r in sorted((r for r in prep.ranking if r["step"] == step), key=lambda r: r["rank"])[:30]:
                cells = [str(r["step"]), r["method"], str(r["rank"]), r["feature"], r["column"],
                         "" if r["score"] is None else f"{r['score']:.4g}",
                         "" if r.get("p_value") is None else f"{r['p_value']:.3g}", "yes" if r["kept"] else "no", r.get("note") or ""]
                body.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
        parts.append(f"<h3>Feature selection</h3><table><tr>{head}</tr>{''.join(body)}</table>")
    return "\n".join(parts)
