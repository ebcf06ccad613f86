"""Plotting helpers shared by the reports: matplotlib without a display, fonts for labels in any
script, figures as PNG bytes, and the report container."""

from __future__ import annotations

import io
from dataclasses import dataclass, field


@dataclass
class Report:
    html: str
    images: dict[str, bytes] = field(default_factory=dict)


# Fonts tried after matplotlib's own for labels in other scripts (column names stay in their
# script: 城市, Возраст); those installed are used, a glyph none of them has is drawn as a box.
FALLBACK_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "WenQuanYi Zen Hei", "Droid Sans Fallback",
                  "Noto Sans Devanagari", "Noto Sans Arabic", "Noto Sans Hebrew", "Noto Sans Thai")


def png(fig) -> bytes:
    import warnings

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    plt.rcParams["font.family"] = ["DejaVu Sans", *(f for f in FALLBACK_FONTS if f in installed)]
    return plt
