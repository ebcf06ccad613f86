"""The EDA profile as one self-contained HTML page (PNG plots embedded as base64, no scripts,
no external files): key findings, the target, its relation to each feature, correlation
heatmaps, flagged pairs, leakage suspects, a table of every column and a section per column.

Every plot is drawn from the aggregates in a lakeforge.profiling.result.ProfileResult.
"""

from __future__ import annotations

import base64
import html
import math

from lakeforge.core.plotting import Report
from lakeforge.profiling.plots import cap, column_plot, heatmap, overall_rate, target_plot
from lakeforge.profiling.result import ColumnProfile, ProfileResult

COLUMN_PLOTS_MAX = 100  # per-column figures; beyond that the tables still list every column

esc = html.escape


def _f(v, digits: int = 4) -> str:
    """A number for a table cell: integers with separators, floats with ``digits`` significant."""
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if abs(v) >= 10 ** digits:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _rate(v) -> str:
    return "" if v is None else f"{v:.3f} ({v:.1%})"


def _img(png: bytes, alt: str) -> str:
    return f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></figure>'


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    """Cells are escaped here; pass plain text."""
    h = "".join(f"<th>{esc(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(str(x))}</td>" for x in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def _anchor(name: str) -> str:
    return "col-" + "".join(ch if ch.isalnum() else "_" for ch in name)


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------


CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2em; color: #222; max-width: 1500px; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #4c72b0; padding-bottom: 3px; margin-top: 2em; }
h3 { margin-top: 1.6em; } .meta { color: #555; }
table { border-collapse: collapse; margin: 0.6em 0 1em; } td, th { border: 1px solid #ccc; padding: 3px 8px; font-size: 88%; }
th { background: #eef2f8; text-align: left; } td { font-variant-numeric: tabular-nums; }
table.wide td, table.wide th { font-size: 80%; padding: 2px 5px; }
figure { display: inline-block; margin: 0.4em; vertical-align: top; } img { max-width: 100%; }
.findings { background: #f6f8fb; border: 1px solid #d7deea; padding: 0.6em 1.2em; border-radius: 6px; }
.warn { color: #a33; } .ok { color: #2a7a2a; } nav a { margin-right: 1em; }
"""


def profile_report(result: ProfileResult, name: str, source: str, generated: str) -> Report:
    """The profile of pipeline ``name`` (``source`` says what was read) as one HTML page."""
    images = _images(result)
    ranked = _ranked(result)
    parts = [_header(result, name, source, generated), _findings(result, ranked)]
    parts += _target_section(result, images)
    parts += _relations_section(result, ranked)
    parts += _correlations_section(result, images)
    parts.append(_columns_table(result))
    parts += _details_section(result, images)
    parts.append("</body></html>")
    return Report("\n".join(parts), images)


def _images(result: ProfileResult) -> dict[str, bytes]:
    """The plots: target, heatmaps, one per column (up to COLUMN_PLOTS_MAX); none without matplotlib."""
    images: dict[str, bytes] = {}
    try:
        tp = target_plot(result)
        if tp:
            images["target"] = tp
        if len(result.pearson.columns) >= 2:
            images["pearson"] = heatmap(result.pearson, "Pearson correlation", -1, 1, "RdBu_r")
        if len(result.spearman.columns) >= 2:
            images["spearman"] = heatmap(result.spearman, "Spearman correlation (approximate ranks)", -1, 1, "RdBu_r")
        if len(result.cramers_v.columns) >= 2:
            images["cramers_v"] = heatmap(result.cramers_v, "Cramér's V (categorical columns)", 0, 1, "Blues")
        for c in result.columns[:COLUMN_PLOTS_MAX]:
            png = column_plot(c, result)
            if png:
                images[f"column_{c.name}"] = png
    except ImportError:  # matplotlib missing: the report keeps its tables
        pass
    return images


def _ranked(result: ProfileResult) -> list[ColumnProfile]:
    """The features with an association to the target, strongest first."""
    features = [c for c in result.columns if c.role not in ("target",)]
    return sorted((c for c in features if c.association is not None), key=lambda c: -abs(c.association))


def _header(result: ProfileResult, name: str, source: str, generated: str) -> str:
    t = result.target
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lakeforge data profile: {esc(name)}</title>
<style>{CSS}</style></head><body>
<h1>Data profile: {esc(name)}</h1>
<p class="meta">{esc(source)} &middot; {result.rows:,} rows &middot; {len(result.columns)} columns &middot;
target <code>{esc(t.name)}</code> ({esc(t.task)}{', positive class ' + esc(repr(t.positive_class)) if t.positive_class is not None else ''})
&middot; {result.passes} passes over the data, {result.seconds.get('total', 0):.1f} s &middot; {esc(generated)}</p>
<nav><a href="#findings">Key findings</a><a href="#target">Target</a><a href="#relations">Relation to the target</a>
<a href="#correlations">Correlations</a><a href="#flagged">Flagged pairs</a><a href="#leakage">Leakage</a>
<a href="#columns">Columns</a><a href="#details">Column details</a></nav>"""


def _findings(result: ProfileResult, ranked: list[ColumnProfile]) -> str:
    """Key findings: the target, the strongest relations, flagged pairs, leakage; data warnings."""
    t = result.target
    findings = []
    overall = overall_rate(result)
    if t.task == "binary":
        pos = dict(t.classes).get(t.positive_class, 0)
        findings.append(f"{cap(t.rate_name)}: {_rate(overall)} ({pos:,} of {sum(n for _, n in t.classes):,} rows have "
                        f"{t.name} = {t.positive_class}).")
    elif t.task == "multiclass":
        findings.append(f"{len(t.classes)} classes; the largest is {t.classes[0][0]!r} ({t.classes[0][1]:,} rows).")
    else:
        findings.append(f"Target {t.name}: mean {_f(overall)}, median {_f(result.column(t.name).median)}.")
    if ranked:
        findings.append("Strongest relations to the target: " + "; ".join(
            f"{c.name} ({c.association_measure} {c.association:.3f})" for c in ranked[:5]) + ".")
    top_cat = next((c for c in ranked if c.role == "categorical" and c.by_target and t.task == "binary"), None)
    if top_cat:
        levels = ", ".join(f"{x['label']} {x['rate']:.3f}" for x in top_cat.by_target[:6] if x.get("rate") is not None)
        findings.append(f"{cap(t.rate_name)} by {top_cat.name}: {levels}.")
    if result.flagged:
        pairs = _flagged_pairs(result)
        findings.append(f"{len(pairs)} pair(s) of columns at or above |{result.threshold}|: " + "; ".join(
            f"{a} / {b} ({', '.join(f'{m} {v:.3f}' for m, v in ms)})" for (a, b), ms in list(pairs.items())[:5]) + ".")
    else:
        findings.append(f"No pair of columns at or above |{result.threshold}|.")
    if result.leakage:
        findings.append('<span class="warn">Possible leakage: ' + "; ".join(
            f"{x['column']} ({x['reason']})" for x in result.leakage) + ".</span>")
    else:
        findings.append('<span class="ok">No leakage suspect (no feature determines the target on its own).</span>')
    items = "".join(f"<li>{x if x.startswith('<span') else esc(x)}</li>" for x in findings)
    warn = "".join(f"<li>{esc(w)}</li>" for w in result.warnings)
    return (f'<h2 id="findings">Key findings</h2><div class="findings"><ul>{items}</ul>'
            + (f"<p><b>Data warnings</b></p><ul>{warn}</ul>" if warn else "") + "</div>")


def _target_section(result: ProfileResult, images: dict[str, bytes]) -> list[str]:
    t = result.target
    parts = ['<h2 id="target">Target</h2>']
    if t.task != "regression":
        total = sum(n for _, n in t.classes) or 1
        parts.append(_table(["class", "rows", "share"], [[n, _f(k), f"{k / total:.1%}"] for n, k in t.classes[:50]]))
    else:
        c = result.column(t.name)
        parts.append(_table(["count", "missing", "mean", "std", "min", "Q1", "median", "Q3", "max", "skew"],
                            [[_f(c.count), _f(c.missing), _f(c.mean), _f(c.std), _f(c.min), _f(c.q1), _f(c.median),
                              _f(c.q3), _f(c.max), _f(c.skew, 3)]]))
    if t.missing:
        parts.append(f'<p class="warn">{t.missing:,} rows have no target value.</p>')
    if "target" in images:
        parts.append(_img(images["target"], "target"))
    return parts


def _relations_section(result: ProfileResult, ranked: list[ColumnProfile]) -> list[str]:
    t = result.target
    parts = [f'<h2 id="relations">Relation to the target</h2><p>Per feature, sorted by strength. '
             f"Categorical levels and numeric decile bins against the target: Cramér's V (class targets) or the "
             f"correlation ratio (numeric target); numeric columns also Pearson and Spearman with "
             f"{'the indicator ' + esc(t.name) + ' = ' + esc(str(t.positive_class)) if t.task == 'binary' else 'the target'}. "
             f"Predictive power: Goodman-Kruskal lambda (the share of the errors of always guessing the majority class "
             f"that the levels remove), or for numeric columns and a binary target the ROC-AUC of the decile bins "
             f"(0.5: none, 1: perfect, in either direction).</p>"]
    short = {"ROC-AUC of the decile bins": "AUC", "Goodman-Kruskal lambda": "lambda", "Goodman-Kruskal lambda (decile bins)": "lambda"}
    rel_rows = [[c.name, c.role, c.association_measure or "", _f(c.association, 3), _f(c.target_pearson, 3),
                 _f(c.target_spearman, 3),
                 f"{short.get(c.predictive_measure, '')} {_f(c.predictive, 3)}" if c.predictive is not None else "",
                 c.leakage or ""] for c in ranked]
    parts.append(_table(["feature", "role", "measure", "association", "Pearson", "Spearman", "predictive power", "leakage"], rel_rows))
    if t.task == "binary":
        for c in [c for c in ranked if c.role == "categorical" and c.by_target][:3]:
            parts.append(f"<h3>{esc(cap(t.rate_name))} by {esc(c.name)}</h3>" + _rate_table(c, result))
    return parts


def _correlations_section(result: ProfileResult, images: dict[str, bytes]) -> list[str]:
    """The heatmaps, the flagged pairs and the leakage suspects."""
    parts = ['<h2 id="correlations">Correlations</h2><p>Numeric columns (text numbers parsed), each pair over the rows '
             "where both are present: Pearson, and Spearman as the Pearson correlation of approximate ranks (the middle "
             "of each value's percentile bucket, 100 buckets). Categorical columns with at most 50 levels: Cramér's V. "
             "The target's row uses its indicator (binary) or its values (numeric).</p>"]
    parts += [_img(images[k], k) for k in ("pearson", "spearman", "cramers_v") if k in images]
    parts.append(f'<h2 id="flagged">Flagged pairs (|value| &ge; {result.threshold})</h2>')
    if result.flagged:
        parts.append(_table(["column A", "column B", "measure", "value"],
                            [[r["column_a"], r["column_b"], r["method"], _f(r["value"], 3)] for r in result.flagged]))
    else:
        parts.append("<p>None.</p>")
    parts.append('<h2 id="leakage">Possible leakage</h2>')
    if result.leakage:
        parts.append(_table(["column", "why"], [[x["column"], x["reason"]] for x in result.leakage]))
    else:
        parts.append("<p>None found: no feature determines the target on its own (lambda or Cramér's V &ge; 0.95, binned "
                     "ROC-AUC &ge; 0.99, |r| &ge; 0.98 for a numeric target) and none is named after it.</p>")
    return parts


def _columns_table(result: ProfileResult) -> str:
    """Every column in one table."""
    head = ["column", "role", "type", "count", "missing", "distinct", "mean", "std", "min", "Q1", "median", "Q3", "max",
            "skew", "outliers", "top values"]
    rows = []
    for c in result.columns:
        top = ", ".join(f"{v} ({n:,})" for v, n in c.top[:3])
        rows.append([c.name, c.role, c.dtype, _f(c.count), f"{_f(c.missing)} ({c.missing / max(1, result.rows):.1%})",
                     _f(c.distinct), _f(c.mean), _f(c.std), _f(c.min) or (c.min_text or ""), _f(c.q1), _f(c.median),
                     _f(c.q3), _f(c.max) or (c.max_text or ""), _f(c.skew, 3),
                     f"{c.outliers:,} ({c.outliers / max(1, c.count):.1%})" if c.role == "numeric" else "", top])
    return ('<h2 id="columns">Columns</h2><p>Quartiles are approximate percentiles (a value of the data, rank error '
            'at most 1/10,000); distinct counts are approximate (about 1 % relative error; exact below 11 values); skew is the adjusted '
            'Fisher-Pearson coefficient; outliers by the IQR rule (below Q1 - 1.5 IQR or above Q3 + 1.5 IQR).</p>'
            "\n" + _table(head, rows, "wide"))


def _details_section(result: ProfileResult, images: dict[str, bytes]) -> list[str]:
    """A section per column: its statistics, plot, top values and the target per level or bin."""
    t = result.target
    parts = ['<h2 id="details">Column details</h2>']
    for c in result.columns:
        parts.append(f'<h3 id="{_anchor(c.name)}">{esc(c.name)} <small class="meta">{esc(c.role)}, {esc(c.dtype)}: '
                     f"{esc(c.reason)}</small></h3>")
        parts.append(_table(["statistic", "value"], _column_statistics(c, result.rows)))
        key = f"column_{c.name}"
        if key in images:
            parts.append(_img(images[key], c.name))
        if c.top:
            parts.append(_table(["top value", "rows", "share"],
                                [[v, _f(n), f"{n / max(1, result.rows):.1%}"] for v, n in c.top]))
        if c.by_target:
            what = "level" if c.role != "numeric" else "decile bin"
            parts.append(f"<p><b>{esc(cap(t.rate_name))} by {esc(c.name)}</b> (per {what})</p>" + _rate_table(c, result))
    return parts


def _column_statistics(c: ColumnProfile, rows: int) -> list[list[str]]:
    stats = [["count", _f(c.count)], ["missing", f"{_f(c.missing)} ({c.missing / max(1, rows):.1%})"],
             ["distinct (approx.)", _f(c.distinct)]]
    if c.role in ("numeric",) or (c.role == "target" and c.mean is not None):
        stats += [["mean", _f(c.mean)], ["std", _f(c.std)], ["min", _f(c.min)], ["Q1", _f(c.q1)], ["median", _f(c.median)],
                  ["Q3", _f(c.q3)], ["max", _f(c.max)], ["skew", _f(c.skew, 3)]]
    if c.role == "numeric":
        stats += [["IQR outliers", f"{c.outliers:,} ({c.outliers / max(1, c.count):.2%}): {c.outliers_low:,} below "
                   f"{_f(c.iqr_low)}, {c.outliers_high:,} above {_f(c.iqr_high)}"]]
        if c.unparsed:
            stats.append(["not numbers", _f(c.unparsed)])
    if c.min_text:
        stats += [["min", c.min_text], ["max", c.max_text or ""]]
    if c.mean_length is not None:
        stats.append(["mean length", _f(c.mean_length, 3)])
    if c.association is not None:
        stats.append([f"with the target ({c.association_measure})", _f(c.association, 3)])
    if c.leakage:
        stats.append(["possible leakage", c.leakage])
    for w in c.warnings:
        stats.append(["warning", w])
    return stats


def _rate_table(c: ColumnProfile, result: ProfileResult) -> str:
    t = result.target
    if t.task == "binary":
        return _table([c.name, "rows", t.rate_name], [[x["label"], _f(x["rows"]), _rate(x.get("rate"))] for x in c.by_target])
    if t.task == "regression":
        return _table([c.name, "rows", t.rate_name], [[x["label"], _f(x["rows"]), _f(x.get("mean"))] for x in c.by_target])
    classes = [n for n, _ in t.classes[:5]]
    return _table([c.name, "rows", *[f"share {k}" for k in classes]],
                  [[x["label"], _f(x["rows"]), *[_rate(x["shares"].get(k)) for k in classes]] for x in c.by_target])


def _flagged_pairs(result: ProfileResult) -> dict[tuple[str, str], list[tuple[str, float]]]:
    out: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for r in result.flagged:
        out.setdefault((r["column_a"], r["column_b"]), []).append((r["method"], r["value"]))
    return out
