"""The source config lakeforge frame writes for an input path or table name: its format and
reader options by the extension (a local CSV's delimiter, encoding and multi-line values sniffed
from its first bytes), and a pipeline name from the path."""

from __future__ import annotations

import re
from collections import Counter
from itertools import islice
from pathlib import Path


def default_name(path: str) -> str:
    stem = Path(path.rstrip("/")).stem if "/" in path or "." in path else path.split(".")[-1]
    name = re.sub(r"[^A-Za-z0-9_]", "_", stem).strip("_").lower() or "pipeline"
    return name if re.match(r"^[A-Za-z_]", name) else f"p_{name}"


def source_for(path: str) -> dict:
    """The source config for an input path or table name, by its extension (a local folder: by
    the extension most of the files directly in it have, as Spark reads them)."""
    lower, sample = path.lower(), path  # sample: the file (or glob) a CSV's delimiter is sniffed from
    folder = Path(path)
    if folder.is_dir() and not (folder / "_delta_log").is_dir():
        files = list(islice((f for f in sorted(folder.iterdir()) if f.is_file() and not f.name.startswith((".", "_"))), 1000))
        suffixes = Counter("".join(f.suffixes[-2:]).lower() for f in files)
        lower = f"x{suffixes.most_common(1)[0][0]}" if suffixes else ".parquet"
        sample = next((str(f) for f in files if str(f).lower().endswith(lower[1:])), path)
    if lower.endswith((".csv", ".tsv", ".tab", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")):
        return {"format": "csv", "path": path, "options": {"header": True, "inferSchema": True, **sniff_csv(sample)}}
    if lower.endswith(".xlsx"):
        return {"format": "excel", "path": path, "options": {}}
    if lower.endswith((".json", ".jsonl")):
        return {"format": "json", "path": path, "options": {}}
    if lower.endswith(".parquet") or folder.is_dir() and not (folder / "_delta_log").is_dir():
        return {"format": "parquet", "path": path, "options": {}}
    return {"format": "delta", "path": path, "options": {}}


def sniff_csv(path: str, size: int = 65536) -> dict[str, str]:
    """The reader options a local CSV file (the first of a glob) needs beyond the defaults,
    from its first ``size`` bytes: ``sep`` when the lines parse into a steady number of fields,
    more than one, with ';', tab or '|' and not with ','; ``encoding`` ISO-8859-1 (Latin-1, what
    Excel's "CSV" writes on Western Windows; Spark 4 reads no windows-1252) when the bytes are not
    UTF-8; ``multiLine`` when a quoted value spans lines. Remote paths: none."""
    import csv
    import io

    sample, latin = _sample(path, size)
    if sample is None:
        return {}
    options = {"encoding": "ISO-8859-1"} if latin else {}

    def steady(sep: str) -> int:
        rows = [r for r in csv.reader(io.StringIO(sample, newline=""), delimiter=sep) if r][:50]
        widths = {len(r) for r in rows}
        return widths.pop() if len(widths) == 1 and rows else 0

    sep = ","
    if steady(",") <= 1:
        best = max((";", "\t", "|"), key=steady)
        if steady(best) > 1:
            options["sep"] = sep = best
    if any("\n" in v or "\r" in v for r in csv.reader(io.StringIO(sample, newline=""), delimiter=sep) for v in r):
        options["multiLine"] = True  # quoted values span lines: Spark reads such files whole
    return options


def quoted_columns(path: str, options: dict, missing: tuple[str, ...] = (), size: int = 65536) -> set[int]:
    """The columns of a local CSV file (positions, 0 = the first) whose values, in its first ``size`` bytes,
    are all in quotes (blanks and unquoted ``missing`` markers aside) while other columns' values
    are not: the writer stored them as text. R's ``write.csv`` quotes factors and text, not
    numbers, so ``"1","2"`` is a factor's level; pandas and Excel quote only what needs it. None
    when every value is quoted, or the file has quoted line breaks or no header."""
    import csv

    sample, _ = _sample(path, size)
    if sample is None or options.get("multiLine") or not options.get("header", True):
        return set()
    sep = str(options.get("sep", ","))
    lines = [line for line in sample.splitlines() if line.strip()][:1001]
    if len(lines) < 2:
        return set()
    header = next(csv.reader([lines[0]], delimiter=sep))
    seen = [[0, 0] for _ in header]  # per column: values, quoted values
    for line in lines[1:]:
        for i, (quoted, text) in enumerate(_fields(line, sep)[:len(header)]):
            if text.strip() and not (not quoted and text.strip() in missing):
                seen[i][0] += 1
                seen[i][1] += quoted
    quoted = {i for i, (n, q) in enumerate(seen) if n and q == n}
    plain = any(n and q < n for n, q in seen)
    return quoted if plain else set()


def _fields(line: str, sep: str) -> list[tuple[bool, str]]:
    """(whether it is in quotes, its text) for each field of one CSV line."""
    fields, text, quoted, inside, start = [], [], False, False, True
    for ch in line:
        if start:
            start, quoted = False, ch == '"'
            if quoted:
                inside = True
                continue
        if inside:
            if ch == '"':
                inside = False
            else:
                text.append(ch)
        elif ch == '"' and quoted:  # a doubled quote inside quotes
            inside = True
            text.append(ch)
        elif ch == sep:
            fields.append((quoted, "".join(text)))
            text, quoted, start = [], False, True
        else:
            text.append(ch)
    fields.append((quoted, "".join(text)))
    return fields


def _sample(path: str, size: int) -> tuple[str | None, bool]:
    """(The first ``size`` bytes of a local file, the first of a glob, as text without its last
    partial line, whether they were read as Latin-1 (not UTF-8)); None when there is no file."""
    import glob
    import gzip

    found = sorted(f for f in glob.glob(path) if Path(f).is_file())
    if not found:
        return None, False
    try:
        opener = gzip.open if found[0].endswith(".gz") else open
        with opener(found[0], "rb") as fh:
            raw = fh.read(size)
    except OSError:
        return None, False
    if len(raw) == size:  # drop the last, maybe partial, line
        raw = raw[: raw.rfind(b"\n") + 1] or raw
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("latin-1"), True
