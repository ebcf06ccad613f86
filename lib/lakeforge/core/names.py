"""Column names as stable identifiers (what ingest writes to bronze and frame writes to the card)."""

from __future__ import annotations

import re
import unicodedata

_LATIN_LIGATURES = str.maketrans({"ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o",
                                   "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "þ": "th", "Þ": "Th", "ð": "d", "Ð": "D"})


def _fold_accents(text: str) -> str:
    """Accented Latin letters without their accents; other characters as they are."""
    out = []
    for c in unicodedata.normalize("NFC", text).translate(_LATIN_LIGATURES):  # NFC: e + U+0301 -> é
        base = unicodedata.normalize("NFKD", c)
        out.append(base if base.isascii() else base[0] if base[0].isascii() else c)
    return "".join(out)


def normalise_names(names: list[str], style: str = "keep") -> dict[str, str]:
    """Stable identifiers: accented Latin letters lose their accents (Größe -> Grosse, kündigt ->
    kundigt), letters of other scripts stay as they are (Возраст), any other character becomes
    '_', a leading digit gets a '_' in front; ``snake`` also lower-cases with '_' between words.
    Names that collide (Spark compares names case-insensitively) get a suffix _2, _3..."""
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name in names:
        new = _fold_accents(name.strip())
        if style == "snake":
            new = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", new).lower()
        new = "".join(c if c == "_" or c.isalnum() or unicodedata.category(c)[0] == "M" else " " for c in new)
        new = re.sub(r"\s+", "_", new.strip()).strip("_") or "col"
        if new[0].isdigit():
            new = "_" + new
        base, k = new, 2
        while new.lower() in seen:
            new, k = f"{base}_{k}", k + 1
        seen.add(new.lower())
        out[name] = new
    return out
