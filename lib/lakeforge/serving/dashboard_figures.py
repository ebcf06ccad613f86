"""The dashboard's Plotly figures, one function per picture, from lakeforge.serving.dashboard_data's
aggregates (never from raw rows). Each data trace has its own solid colour (COLOURS), so that a
screenshot shows which plots were drawn with data."""

from __future__ import annotations

import json

import plotly.graph_objects as go

from lakeforge.serving.dashboard_data import Leaderboard, ModelVersion, Predictions, Quality

COLOURS = {
    "leaderboard": "#2563eb",  # blue: the candidates' cross-validated metric
    "leaderboard_best": "#1e3a8a",
    "registry": "#9333ea",  # purple: each version's test metric
    "champion": "#f97316",  # orange ring: the current champion
    "volume": "#f59e0b",  # amber: predictions per run date
    "score": "#0d9488",  # teal: the score's median and 10-90 % band
    "positive": "#db2777",  # pink: the share predicted positive
    "succeeded": "#16a34a",  # green / red: job runs
    "failed": "#dc2626",
    "checks_passed": "#0891b2",  # cyan / yellow / dark red: data-quality checks
    "checks_warned": "#eab308",
    "checks_failed": "#7f1d1d",
    "drift": "#4f46e5",
    "performance": "#0f766e",
}
HEIGHT = 330


def _layout(fig: go.Figure, title: str, **extra) -> go.Figure:
    fig.update_layout(**{"template": "plotly_white", "title": {"text": title, "x": 0.01, "font": {"size": 15}},
                         "height": HEIGHT, "margin": {"l": 60, "r": 20, "t": 50, "b": 45},
                         "legend": {"orientation": "h", "y": -0.32}, **extra})
    return fig


def _short_params(params: str | None, limit: int = 38) -> str:
    try:
        items = json.loads(params or "{}")
    except ValueError:
        return (params or "")[:limit]
    text = " ".join(f"{k}={v}" for k, v in items.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def leaderboard_figure(board: Leaderboard) -> go.Figure:
    """Each candidate's cross-validated metric (mean +- std), the winner darker."""
    rows = [r for r in board.rows if r["cv_mean"] is not None][:25]
    labels = [f"#{r['rank']} {r['algorithm']}" for r in rows]
    fig = go.Figure(go.Bar(
        x=[r["cv_mean"] for r in rows], y=labels, orientation="h",
        error_x={"type": "data", "array": [r["cv_std"] or 0.0 for r in rows], "color": "#334155"},
        marker={"color": [COLOURS["leaderboard_best" if r["is_best"] else "leaderboard"] for r in rows], "line": {"width": 0}},
        text=[_short_params(r["params"], 80) for r in rows], textposition="none",
        hovertemplate="%{y} %{text}<br>mean %{x:.4f}<extra></extra>", name=f"CV {board.metric}"))
    lo = min((r["cv_mean"] - (r["cv_std"] or 0.0) for r in rows), default=0.0)
    hi = max((r["cv_mean"] + (r["cv_std"] or 0.0) for r in rows), default=1.0)
    pad = max((hi - lo) * 0.15, 1e-3)
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(range=[lo - pad, hi + pad], title=f"cross-validated {board.metric}")
    return _layout(fig, f"Leaderboard of {board.run_date}: {len(board.rows)} candidates", showlegend=False,
                   height=max(HEIGHT, 60 + 28 * len(rows)))


def registry_figure(versions: list[ModelVersion]) -> go.Figure:
    """The test metric of each registered version; the champion ringed, kept challengers hollow."""
    scored = [v for v in versions if v.test_score is not None]
    fig = go.Figure(go.Scatter(
        x=[f"v{v.version}" for v in scored], y=[v.test_score for v in scored], mode="lines+markers",
        line={"color": COLOURS["registry"], "width": 2},
        marker={"size": 14, "color": [COLOURS["registry"] if v.promoted is not False else "white" for v in scored],
                "line": {"width": [4 if "champion" in v.aliases else 2 for v in scored],
                         "color": [COLOURS["champion"] if "champion" in v.aliases else COLOURS["registry"] for v in scored]}},
        text=[(", ".join(v.aliases) or "-") + "<br>" + (v.decision or "")[:120] for v in scored],
        hovertemplate="%{x}: %{y:.4f}<br>%{text}<extra></extra>", name="test metric"))
    metric = next((v.metric for v in scored if v.metric), "metric")
    values = [v.test_score for v in scored]
    pad = max((max(values) - min(values)) * 0.2, 0.01) if values else 0.1
    fig.update_xaxes(type="category", title="model version")
    fig.update_yaxes(title=f"test {metric}", range=[min(values, default=0) - pad, max(values, default=1) + pad])
    return _layout(fig, "Test metric per version (filled: promoted)", showlegend=False)


def volume_figure(pred: Predictions) -> go.Figure:
    dates = list(pred.volume)
    fig = go.Figure(go.Bar(x=[d.isoformat() for d in dates], y=list(pred.volume.values()),
                           marker={"color": COLOURS["volume"], "line": {"width": 0}},
                           hovertemplate="%{x}: %{y:,} rows<extra></extra>", name="rows"))
    fig.update_xaxes(type="category" if len(dates) <= 40 else "date", title="run date")
    fig.update_yaxes(title="predictions")
    return _layout(fig, f"Predictions per run date ({len(dates)} dates)", showlegend=False)


def score_figure(pred: Predictions) -> go.Figure:
    """The score's median and 10-90 % band per run date (and, for binary models, the share
    predicted positive on a second axis)."""
    days = [d for d in pred.days if d.p50 is not None]
    x = [d.run_date.isoformat() for d in days]
    band = COLOURS["score"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[d.p90 for d in days], mode="lines", line={"width": 0}, showlegend=False,
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=x, y=[d.p10 for d in days], mode="lines", line={"width": 0}, fill="tonexty",
                             fillcolor="rgba(13,148,136,0.18)", name="10-90 %", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=x, y=[d.p50 for d in days], mode="lines+markers", name="median",
                             line={"color": band, "width": 3}, marker={"size": 10, "color": band}))
    fig.add_trace(go.Scatter(x=x, y=[d.mean for d in days], mode="lines", name="mean",
                             line={"color": band, "width": 1.5, "dash": "dash"}))
    if any(d.positive_share is not None for d in days):
        fig.add_trace(go.Scatter(x=x, y=[d.positive_share for d in days], mode="lines+markers", name="share predicted 1",
                                 yaxis="y2", line={"color": COLOURS["positive"], "width": 2}, marker={"size": 8}))
        fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "range": [0, 1], "title": "share predicted 1",
                                  "showgrid": False, "tickformat": ".0%"})
    fig.update_xaxes(type="category" if len(x) <= 40 else "date", title="run date")
    fig.update_layout(yaxis={"title": "score", **({"range": [0, 1]} if pred.probability else {})})  # not yaxis2
    return _layout(fig, "Score per run date: median, mean, 10-90 %")


def histogram_figure(pred: Predictions) -> go.Figure:
    """The score distribution per run date as a heat map (share of the date's rows per bin)."""
    days = [d for d in pred.days if d.histogram]
    edges = pred.bin_edges
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    z = [[(d.histogram[i] / max(1, sum(d.histogram))) for d in days] for i in range(len(centres))]
    fig = go.Figure(go.Heatmap(x=[d.run_date.isoformat() for d in days], y=centres, z=z, colorscale="Teal",
                               colorbar={"title": "share", "thickness": 12},
                               hovertemplate="%{x}<br>score ~%{y:.3g}: %{z:.1%}<extra></extra>"))
    fig.update_xaxes(type="category" if len(days) <= 40 else "date", title="run date")
    fig.update_yaxes(title="score")
    return _layout(fig, "Score distribution per run date")


def runs_figure(runs: list[dict]) -> go.Figure:
    """Each job run's duration by start time, one row per job, coloured by status."""
    fig = go.Figure()
    for status in ("succeeded", "failed"):
        chosen = [r for r in runs if (r["status"] == "succeeded") == (status == "succeeded")]
        if not chosen:
            continue
        fig.add_trace(go.Scatter(
            x=[r["started_at"] for r in chosen], y=[r["duration_s"] for r in chosen], mode="markers", name=status,
            marker={"size": 13, "color": COLOURS[status], "symbol": "circle" if status == "succeeded" else "x"},
            text=[f"{r['job']} {r['run_date']}" + (f"<br>{(r['message'] or '')[:120]}" if r["message"] else "")
                  for r in chosen],
            hovertemplate="%{text}<br>%{y:.1f} s<extra></extra>"))
    fig.update_xaxes(title="started at (UTC)")
    fig.update_yaxes(title="duration (s)")
    return _layout(fig, f"Duration and status ({len(runs)} runs)")


def quality_figure(quality: Quality) -> go.Figure:
    """Per load: checks passed, warnings failed, errors failed (stacked)."""
    loads = quality.loads
    x = [f"{q['run_date']} #{i + 1}" for i, q in enumerate(loads)]
    parts = [("passed", "checks_passed", [q["checks"] - q["failed_errors"] - q["failed_warnings"] for q in loads]),
             ("failed (warn)", "checks_warned", [q["failed_warnings"] for q in loads]),
             ("failed (error)", "checks_failed", [q["failed_errors"] for q in loads])]
    fig = go.Figure([go.Bar(x=x, y=y, name=name, marker={"color": COLOURS[colour], "line": {"width": 0}})
                     for name, colour, y in parts if any(y)])  # a kind that never failed: no legend entry
    fig.update_xaxes(type="category", title="load (run date)")
    fig.update_yaxes(title="checks")
    return _layout(fig, "Data-quality checks per load", barmode="stack")


def lines_figure(title: str, series: dict[str, tuple[list, list]], y_title: str, colour_key: str) -> go.Figure:
    """One line per named series of (dates, values); the first series in the section's colour."""
    fig = go.Figure()
    for i, (name, (x, y)) in enumerate(series.items()):
        style = {"color": COLOURS[colour_key]} if i == 0 else {}
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name, line={"width": 2, **style},
                                 marker={"size": 9, **style}))
    fig.update_xaxes(title="run date")
    fig.update_yaxes(title=y_title)
    return _layout(fig, title)
