"""The dashboard page's HTML pieces: a section (notes, summaries, Plotly figures without
plotly.js, tables) and the page template (plotly.js inlined once in its head)."""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field

import plotly.io as pio

PLOT_CONFIG = {"displaylogo": False, "responsive": True}


@dataclass
class Section:
    id: str
    title: str
    parts: list[str] = field(default_factory=list)  # HTML fragments: notes, figures, tables

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def summary(self, text: str) -> None:
        self.parts.append(f'<p class="summary">{text}</p>')

    def figure(self, fig) -> None:
        self.parts.append('<div class="fig">' + pio.to_html(fig, full_html=False, include_plotlyjs=False,
                                                            config=PLOT_CONFIG) + "</div>")

    def table(self, rows: list[dict], columns: dict[str, str], limit: int = 20) -> None:
        self.parts.append(html_table(rows[:limit], columns))

    def html(self) -> str:
        return f'<section id="{self.id}"><h2>{html.escape(self.title)}</h2>{"".join(self.parts)}</section>'


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return html.escape(str(value))


LONG_TEXT = {"message", "detail", "decision", "params"}  # wrapped anywhere; other cells stay on one line
_LONG = ' class="long"'


def html_table(rows: list[dict], columns: dict[str, str]) -> str:
    """An HTML table of ``rows`` with ``columns`` (key -> heading), scrolling sideways if too wide."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in columns.values())
    body = "".join("<tr>" + "".join(f"<td{_LONG if k in LONG_TEXT else ''}>{_cell(r.get(k))}</td>" for k in columns)
                   + "</tr>" for r in rows)
    return f'<div class="tablewrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script>{plotly}</script>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: #f8fafc; color: #0f172a; }}
header {{ background: #0f172a; color: #f8fafc; padding: 14px 28px; }}
header h1 {{ margin: 0 0 4px 0; font-size: 22px; }} header p {{ margin: 0; font-size: 13px; color: #cbd5e1; }}
nav {{ padding: 8px 28px; font-size: 14px; background: #e2e8f0; }} nav a {{ color: #1d4ed8; text-decoration: none; }}
main {{ display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 18px; padding: 18px 28px; }}
@media (max-width: 1200px) {{ main {{ grid-template-columns: minmax(0, 1fr); }} }}
section {{ background: white; border: 1px solid #e2e8f0; border-radius: 8px; padding: 12px 16px; min-width: 0; }}
h2 {{ margin: 4px 0 8px 0; font-size: 18px; }} h3 {{ font-size: 14px; margin: 12px 0 4px 0; }}
.note {{ color: #475569; font-style: italic; }} .summary {{ font-size: 14px; }}
table {{ border-collapse: collapse; font-size: 12px; width: 100%; }}
th, td {{ border-bottom: 1px solid #e2e8f0; padding: 3px 6px; text-align: left; vertical-align: top; }}
th {{ background: #f1f5f9; }} td {{ white-space: nowrap; }}
td.long {{ white-space: normal; overflow-wrap: anywhere; min-width: 200px; }} .tablewrap {{ overflow-x: auto; }}
</style></head>
<body><header><h1>{title}</h1><p>{header} · generated {generated}</p></header>
<nav>{nav}</nav><main>{body}</main>
<script>/* each figure to its section's final width (they were drawn while the page was still loading) */
window.addEventListener("load", () => document.querySelectorAll(".js-plotly-plot").forEach(d => Plotly.Plots.resize(d)));
</script></body></html>
"""
