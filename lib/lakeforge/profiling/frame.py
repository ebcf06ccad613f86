"""Problem framing: inspect a dataset and its target, write the pipeline YAML (the problem card).

One profiling aggregation over all columns (nulls, approximate distinct counts, how many text
values parse as numbers or timestamps, text length); one grouped count of the target's values;
one query for the leakage check of every column (correlations, or the purity of each
categorical column's levels for columns of at most ``LEAKAGE_MAX_LEVELS`` levels). Three passes
over the data whatever the number of columns; nothing row-level reaches the driver.

Roles:
- ID-like (nearly one distinct value per row: text, or an integer named like an ID: ``id``,
  ``key``, ``code``, ``no``, ``number``...): excluded; the first is the key. A nearly unique
  integer with another name (a mileage, an income) is a numeric feature; it becomes the key
  only when there is no ID-like column and it has no nulls. With neither (iris, wine...), the
  key is ``row_id``, a hash of each row's content that ingest adds (``source.row_id``);
- numeric: numeric types, and text columns whose non-blank values almost all parse as numbers
  (Telco's ``TotalCharges``); numbers with thousands separators (``1,234.5``) become a derived
  feature ``<column>_num`` that strips them (the text column itself is excluded);
- datetime: date/timestamp types and text that parses as timestamps: their year, month and day
  of the week (and hour, for timestamps) become numeric features (``features.dates``); a date
  column whose being empty or not determines the target (a cancellation date) is a leakage
  suspect;
- text: free text (long values, many levels): its length and its words (TF-IDF weights of
  hashed words) are features (``features.text_length``, ``features.text_tfidf``);
- excluded: always null, constant (one value and no nulls), or a type MLlib can't take (maps;
  a nested record's numeric, boolean and text fields become derived features ``<record>_<field>``,
  a list's length ``<list>_count``);
- categorical: the rest.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DateType,
    NumericType,
    StringType,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from lakeforge.core.errors import InputDataError, delimiter_hint, wrong_delimiter
from lakeforge.core.names import normalise_names

MAX_CLASSES = 50
DATE_PARTS = ["year", "month", "day_of_week"]  # of a date column, as features (timestamps: and hour)
LEAKAGE_MAX_LEVELS = 1000
GROUPED_NUMBER = r"^-?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?$"  # 1,234 / 12,345,678.9
POSITIVE_NAMES = ("1", "1.0", "true", "t", "yes", "y", "ja", "oui", "si", "sí", "sim", "positive", "pos")


@dataclass
class Column:
    name: str
    dtype: str
    role: str
    reason: str
    nulls: int = 0
    distinct: int = 0
    derived: dict[str, dict] = field(default_factory=dict)  # feature name -> {expr, role}: SQL over this column
    date_parts: list[str] = field(default_factory=list)  # datetime: the parts that become features


@dataclass
class ProblemCard:
    name: str
    source: dict
    rows: int
    target: str
    task: str
    task_reason: str
    key: str
    positive_class: str | None
    metric: str
    metric_reason: str
    class_shares: dict[str, float] = field(default_factory=dict)
    columns: list[Column] = field(default_factory=list)
    leakage: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # name in the data -> name in bronze
    row_id: str | None = None  # no key column in the data: the key is this id, added by ingest

    def roles(self, role: str) -> list[str]:
        return [c.name for c in self.columns if c.role == role]


def infer_task(values: list, numeric: bool, distinct: int) -> tuple[str, str]:
    """(task, reason) from the target's distinct values (at most MAX_CLASSES + 1 of them)."""
    if distinct == 2:
        return "binary", "the target has exactly 2 distinct values"
    if numeric and (distinct > 20 or any(float(v) != int(float(v)) for v in values)):
        return "regression", f"the target is numeric with {distinct if distinct <= MAX_CLASSES else 'many'} distinct values"
    if distinct <= MAX_CLASSES:
        return "multiclass", f"the target has {distinct} distinct values"
    raise InputDataError(
        f"target has more than {MAX_CLASSES} distinct text values: not a classification target, and text "
        "cannot be a regression target; choose another target"
    )


def default_positive(names: list[str], counts: Callable[[], dict[str, float]]) -> str:
    """The positive class of a binary target: a 1/true/yes-like value if there is one, else the
    minority class (``counts`` is only called then)."""
    for n in sorted(names):
        if n.lower() in POSITIVE_NAMES:
            return n
    c = counts()
    return min(names, key=lambda n: (c.get(n, 0), n))


def as_text(v: object) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


_ID_WORDS = {"id", "ids", "key", "code", "no", "nr", "num", "number", "uuid", "guid"}


def id_like_name(name: str) -> bool:
    """``customer_id``, ``customerID``, ``Order No``, ``account number``: a word of the name is an ID word."""
    return any(w.lower() in _ID_WORDS for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+", name))


def frame(df: DataFrame, target: str, source: dict, name: str, key: str | None = None) -> ProblemCard:
    # The card names columns as the bronze table will (ingest's normalisation, e.g. 'Car ID' ->
    # Car_ID); --target / --key may give either name.
    names = normalise_names(df.columns)
    bronze = set(names.values())
    for what, col in (("target", target), ("key", key)):
        if col is not None and col not in names and col not in bronze:
            sep = delimiter_hint(df.columns)
            raise InputDataError(f"{what} column {col!r} not found; available columns: {', '.join(df.columns)[:300]}"
                                 + (f". {wrong_delimiter(sep)}" if sep else ""))
    target = names.get(target, target)
    key = names.get(key, key) if key is not None else None
    renamed = {a: b for a, b in names.items() if a != b}
    if renamed:
        df = df.toDF(*[names[c] for c in df.columns])
    fields = {f.name: f.dataType for f in df.schema.fields}
    text_cols = [c for c, t in fields.items() if isinstance(t, StringType)]
    aggs = [F.count(F.lit(1)).alias("__rows")]
    for c in df.columns:
        col = F.col(f"`{c}`")
        # rsd 1 %: with Spark's default 5 % an ID column of 3,000 values was counted as 2,840 (< 95 % unique)
        aggs += [F.count(F.when(col.isNull(), 1)).alias(f"{c}__nulls"), F.approx_count_distinct(col, 0.01).alias(f"{c}__distinct")]
        if c in text_cols:
            blank = F.trim(col) == ""
            aggs += [
                F.count(F.when(~blank, 1)).alias(f"{c}__filled"),
                F.count(F.when(~blank & F.expr(f"try_cast(`{c}` AS DOUBLE)").isNotNull(), 1)).alias(f"{c}__num"),
                F.count(F.when(F.trim(col).rlike(GROUPED_NUMBER), 1)).alias(f"{c}__grouped"),
                F.count(F.when(~blank & ~F.trim(col).rlike(r"^-?\d+(\.\d+)?$") & F.expr(f"try_cast(`{c}` AS TIMESTAMP)").isNotNull(), 1)).alias(f"{c}__ts"),
                F.avg(F.length(col)).alias(f"{c}__len"),
                F.count(F.when(F.trim(col).contains(" "), 1)).alias(f"{c}__spaced"),
            ]
    stats = df.agg(*aggs).first().asDict()
    rows = stats["__rows"]
    if rows == 0:
        raise InputDataError("the input has no rows; nothing to frame")

    # the target's values with their counts, one pass (a regression target stops at MAX_CLASSES + 1)
    by_value = df.where(F.col(f"`{target}`").isNotNull()).groupBy(f"`{target}`").count().limit(MAX_CLASSES + 1).collect()
    values = [r[0] for r in by_value]
    if len(values) < 2:
        raise InputDataError(f"target {target!r} is constant or empty ({len(values)} distinct value); nothing to learn")
    task, task_reason = infer_task(values, isinstance(fields[target], NumericType), len(values))
    counts = {as_text(r[0]): r[1] for r in by_value} if task != "regression" else {}
    total = sum(counts.values()) or 1
    shares = {k: round(v / total, 4) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}
    positive = None
    if task == "binary":
        positive = default_positive(list(shares), lambda: shares)

    columns: list[Column] = []
    fallback_keys: list[Column] = []  # nearly unique integers without nulls: the key if nothing is ID-like
    for c, t in fields.items():
        if c == target:
            continue
        nulls, distinct = stats[f"{c}__nulls"], stats[f"{c}__distinct"]
        dtype = t.simpleString()
        col = Column(c, dtype, "", "", nulls, distinct)
        unique_share = distinct / max(1, rows - nulls)
        is_intlike = isinstance(t, NumericType) and dtype in ("int", "bigint", "smallint", "tinyint")
        parses = None  # text whose values are numbers or timestamps (then unique values are no ID unless so named)
        if c in text_cols:
            filled = stats[f"{c}__filled"] or 0
            if filled and stats[f"{c}__num"] / filled >= 0.98:
                parses = "numeric"
            elif filled and stats[f"{c}__grouped"] and (stats[f"{c}__num"] + stats[f"{c}__grouped"]) / filled >= 0.98:
                parses = "grouped"  # 1,234.5: numbers with thousands separators
            elif filled and stats[f"{c}__ts"] / filled >= 0.98:
                parses = "datetime"
            elif filled and (stats[f"{c}__len"] or 0) > 30 and stats[f"{c}__spaced"] / filled > 0.5 and not id_like_name(c):
                parses = "text"  # sentences: unique, yet no identifier
        if c == key:
            col.role, col.reason = "key", "given as the key"
        elif ((isinstance(t, StringType) and (parses is None or id_like_name(c))) or (is_intlike and id_like_name(c))) \
                and unique_share > 0.95 and rows >= 20:
            col.role, col.reason = "id", f"about one distinct value per row ({min(distinct, rows):,} for {rows:,} rows)"
        elif is_intlike and unique_share > 0.95 and rows >= 20:
            col.role, col.reason = "numeric", f"{dtype}, nearly unique ({distinct:,} values) but not named like an ID"
            if nulls == 0:
                fallback_keys.append(col)
        elif distinct == 0 or (distinct == 1 and nulls == 0):  # nothing to learn from
            col.role, col.reason = "excluded", "always null" if distinct == 0 else "constant: one value in every row"
        elif isinstance(t, (DateType, TimestampType, TimestampNTZType)):
            col.role, col.date_parts = "datetime", DATE_PARTS + (["hour"] if not isinstance(t, DateType) else [])
            col.reason = f"{dtype} column: {', '.join(col.date_parts)} as features"
        elif isinstance(t, (NumericType, BooleanType)):
            col.role, col.reason = ("categorical", "boolean") if isinstance(t, BooleanType) else ("numeric", dtype)
            if isinstance(t, NumericType) and distinct <= 2:
                col.role, col.reason = "categorical", f"numeric with {distinct} values (a flag)"
        elif c in text_cols:
            filled = stats[f"{c}__filled"] or 0
            num, length = stats[f"{c}__num"], stats[f"{c}__len"] or 0
            if parses == "numeric":
                col.role, col.reason = "numeric", f"text, but {num / filled:.1%} of the non-blank values are numbers"
            elif parses == "grouped":
                feature = next(n for n in (f"{c}_num", f"{c}_number", f"{c}_num_2") if n not in fields)
                col.role, col.reason = "excluded", f"numbers with thousands separators (1,234): parsed into {feature}"
                col.derived = {feature: {"expr": f"try_cast(replace(`{c}`, ',', '') AS DOUBLE)", "role": "numeric"}}
            elif parses == "datetime":
                col.role, col.date_parts = "datetime", list(DATE_PARTS)
                col.reason = f"text that parses as dates: {', '.join(col.date_parts)} as features"
            elif parses == "text" or (length > 30 and distinct > 100):
                col.role = "text"
                col.reason = f"free text (mean length {length:.0f}, {distinct:,} values): its length and words (TF-IDF) as features"
            else:
                col.role, col.reason = "categorical", f"text with {distinct:,} levels"
        elif isinstance(t, StructType) and (nested := _struct_fields(c, t, source["format"], set(fields))):
            col.role, col.reason, col.derived = "excluded", f"nested record: its fields are features {', '.join(nested)}", nested
        elif isinstance(t, ArrayType) and (count := next((n for n in (f"{c}_count", f"{c}_size") if n not in fields), None)):
            # a JSON source's bronze keeps the list as JSON text
            length = f"json_array_length(`{c}`)" if source["format"] in ("json", "http") else f"size(`{c}`)"
            col.role, col.reason = "excluded", f"list: its length is the feature {count}"
            col.derived = {count: {"expr": length, "role": "numeric"}}
        else:
            col.role, col.reason = "excluded", f"unsupported type {dtype}"
        columns.append(col)

    row_id = None
    if key is None:
        ids = [c for c in columns if c.role == "id"] or fallback_keys
        if ids:
            key = ids[0].name
            ids[0].role, ids[0].reason = "key", ids[0].reason + "; used as the key"
        else:  # ingest adds one (source.row_id): a hash of the row's content
            taken = {c.lower() for c in df.columns}
            key = row_id = next(n for n in ("row_id", "lakeforge_row_id", "lakeforge_row_id_") if n not in taken)

    leakage = _leakage(df, target, columns, task, rows)
    minority = min(shares.values()) if shares else None
    if task == "binary":
        if minority is not None and minority < 0.2:
            metric, metric_reason = "pr_auc", f"imbalanced: the minority class is {minority:.1%} of the rows"
        else:
            metric, metric_reason = "roc_auc", f"balanced enough: the minority class is {minority:.1%} of the rows"
    elif task == "multiclass":
        metric, metric_reason = "f1_macro", "multiclass: every class counts equally"
    else:
        metric, metric_reason = "rmse", "regression"
    return ProblemCard(name, source, rows, target, task, task_reason, key, positive, metric, metric_reason,
                       shares, columns, leakage, renamed, row_id)


def _leakage(df: DataFrame, target: str, columns: list[Column], task: str, rows: int) -> list[str]:
    """Columns that predict the target almost perfectly on their own, or are named after it.
    One Spark query for all columns: the correlations of the numeric ones (regression), or for
    each categorical one the share of rows whose level has a single target value (levels of 2+
    rows; every (column, level, target) count at once, each row exploded into one pair per column);
    a datetime column's level is whether it is empty (a cancellation date that only churners have)."""
    found: dict[str, str] = {}
    base = re.sub(r"[^a-z0-9]", "", target.lower())
    numeric, categorical = [], []
    for c in columns:
        if c.role in ("key", "id", "excluded"):
            continue
        if base and len(base) > 2 and base in re.sub(r"[^a-z0-9]", "", c.name.lower()):
            found[c.name] = f"{c.name}: its name contains the target's"
        elif task == "regression" and c.role == "numeric":
            numeric.append(c.name)
        elif task != "regression" and c.role == "categorical" and 1 < c.distinct <= LEAKAGE_MAX_LEVELS:
            categorical.append(c.name)
        elif task != "regression" and c.role == "datetime" and 0 < c.nulls < rows:
            categorical.append(c.name)
    if numeric:
        y = F.col(f"`{target}`").cast("double")
        corr = df.select(*[F.corr(F.expr(f"try_cast(`{c}` AS DOUBLE)"), y) for c in numeric]).first()
        for c, r in zip(numeric, corr):
            if r is not None and abs(r) > 0.98:
                found[c] = f"{c}: correlation {r:+.3f} with the target"
    if categorical:
        dates = {c.name for c in columns if c.role == "datetime"}
        level = {c: F.col(f"`{c}`").isNull().cast("string") if c in dates else F.col(f"`{c}`").cast("string")
                 for c in categorical}
        pairs = F.explode(F.array(*[F.struct(F.lit(i).alias("i"), level[c].alias("v"))
                                    for i, c in enumerate(categorical)])).alias("p")
        counts = df.select(F.col(f"`{target}`").alias("y"), pairs).groupBy("p.i", "p.v", "y").count()
        levels = counts.groupBy("i", "v").agg(F.max("count").alias("top"), F.sum("count").alias("n"))
        purity = levels.where(F.col("n") >= 2).groupBy("i").agg(F.sum("top").alias("top"), F.sum("n").alias("n"))
        for r in purity.collect():
            if r["n"] >= 0.5 * rows and r["top"] / r["n"] > 0.99:
                c = categorical[r["i"]]
                what = "whether it is empty determines" if c in dates else "its levels determine"
                found[c] = f"{c}: {what} the target in {r['top'] / r['n']:.1%} of the rows"
    return [found[c.name] for c in columns if c.name in found]


def _struct_fields(c: str, t: StructType, fmt: str, taken: set[str]) -> dict[str, dict]:
    """Derived features for the numeric, boolean and text fields of a nested record (one level):
    ``user.age`` -> ``user_age``. JSON sources keep a record as JSON text in bronze (read with
    get_json_object); Parquet and Delta keep the struct."""
    out = {}
    for f in t.fields:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", f.name):
            continue
        kind = f.dataType
        if not isinstance(kind, (NumericType, BooleanType, StringType)):
            continue
        name = f"{c}_{f.name}"
        if name in taken or name in out:
            continue
        value = f"get_json_object(`{c}`, '$.{f.name}')" if fmt in ("json", "http") else f"`{c}`.`{f.name}`"
        numeric = isinstance(kind, NumericType)
        out[name] = {"expr": f"try_cast({value} AS DOUBLE)" if numeric and fmt in ("json", "http") else value,
                     "role": "numeric" if numeric else "categorical"}
    return out


def to_yaml(card: ProblemCard) -> str:
    """The pipeline config with the framing as comments (the problem card)."""
    import yaml

    def q(v) -> str:
        return yaml.safe_dump(v, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()

    lines = [
        f"# Problem card for {card.name}, written by 'lakeforge frame' ({card.rows:,} rows inspected).",
        "# Edit freely: this file is the pipeline config (see the README's configuration reference).",
        "#",
        f"# Task: {card.task} ({card.task_reason}).",
    ]
    if card.class_shares:
        shares = ", ".join(f"{k}: {v:.1%}" for k, v in list(card.class_shares.items())[:10])
        lines.append(f"# Classes: {shares}.")
    lines.append(f"# Metric: {card.metric} ({card.metric_reason}).")
    if card.leakage:
        lines.append("# LEAKAGE SUSPECTS (excluded below; put them back only if known at prediction time):")
        lines += [f"#   - {x}" for x in card.leakage]
    else:
        lines.append("# Leakage suspects: none found.")
    if card.renamed:
        lines.append("# Column names as the bronze table has them (not valid identifiers in the data): "
                     + ", ".join(f"{a!r} -> {b}" for a, b in card.renamed.items()) + ".")
    if card.row_id:
        lines.append(f"# Key: no ID-like column in the data, so ingest adds {card.row_id}, a hash of each row's "
                     "content (source.row_id; identical rows get -2, -3...). Name a real key column instead if there is one.")
    lines.append("# Columns:")
    for c in card.columns:
        lines.append(f"#   {c.name:<28} {c.role:<11} {c.reason}; {c.nulls:,} nulls")
    leaked = {x.split(":")[0] for x in card.leakage}
    numeric = [c for c in card.roles("numeric") if c not in leaked]
    categorical = [c for c in card.roles("categorical") if c not in leaked]
    excluded = [c.name for c in card.columns if c.role in ("id", "excluded")] + sorted(leaked)
    taken = {c.name for c in card.columns} | {card.target} | {n for c in card.columns for n in c.derived}
    dates = {c.name: [p for p in c.date_parts if f"{c.name}_{p}" not in taken]
             for c in card.columns if c.role == "datetime" and c.name not in leaked}
    dates = {c: parts for c, parts in dates.items() if parts}
    texts = [c.name for c in card.columns if c.role == "text" and c.name not in leaked and f"{c.name}_length" not in taken]
    src = card.source
    lines += [
        f"name: {card.name}",
        "source:",
        f"  format: {src['format']}",
        f"  path: {q(src['path'])}",
    ]
    if src.get("options"):
        lines.append("  options:")
        lines += [f"    {k}: {q(v)}" for k, v in src["options"].items()]
    if card.row_id:
        lines.append(f"  row_id: {card.row_id}")
    lines += [
        f"key: {q(card.key)}",
        f"target: {q(card.target)}",
    ]
    if card.positive_class is not None:
        lines.append(f"positive_class: {q(card.positive_class)}")
    lines += [
        "tables:",
        f"  bronze: bronze_{card.name}",
        f"  predictions: predictions_{card.name}",
        f"  leaderboard: leaderboard_{card.name}",
        "features:",
        f"  numeric: {q(numeric)}",
        f"  categorical: {q(categorical)}",
        f"  exclude: {q(excluded)}",
    ]
    derived = {n: spec for c in card.columns for n, spec in c.derived.items()}
    if derived:
        lines.append("  derived:                     # features parsed from text columns, nested records or lists")
        lines += [f"    {n}: {q(spec)}" for n, spec in derived.items()]
    if dates:
        lines.append("  dates:                       # date parts as numeric features <column>_<part>")
        lines += [f"    {q(n)}: {{parts: {q(parts)}}}" for n, parts in dates.items()]
    if texts:
        lines.append(f"  text_length: {q(texts)}  # free text: its length as a feature <column>_length")
        lines.append(f"  text_tfidf: {q(texts)}   # and its words: TF-IDF weights in text_tfidf_size hashed slots")
        lines.append("  text_tfidf_size: 256")
    lines += [
        "preprocessing:",
        "  numeric_impute: median",
        "  scale: true",
        "model:",
        f"  registered_name: {card.name}",
        f"  task: {card.task}",
        "  algorithms: null            # the task's defaults (see the README); or {algorithm: {param: [values]}}",
        "  search: cross_validation",
        "  folds: 3",
        f"  metric: {card.metric}",
        "  test_fraction: 0.2",
        "  seed: 42",
        "  max_minutes: 60               # no new algorithm starts after an hour of training (null: no budget)",
    ]
    if card.task == "binary" and card.class_shares and min(card.class_shares.values()) < 0.2:
        lines.append("  class_weights: true          # imbalanced classes")
    lines += ["scoring:", "  model_alias: champion", ""]
    return "\n".join(lines)


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
    import glob
    import gzip
    import io

    found = sorted(f for f in glob.glob(path) if Path(f).is_file())
    if not found:
        return {}
    try:
        opener = gzip.open if found[0].endswith(".gz") else open
        with opener(found[0], "rb") as fh:
            raw = fh.read(size)
    except OSError:
        return {}
    if len(raw) == size:  # drop the last, maybe partial, line
        raw = raw[: raw.rfind(b"\n") + 1] or raw
    options = {}
    try:
        sample = raw.decode("utf-8")
    except UnicodeDecodeError:
        sample = raw.decode("latin-1")
        options["encoding"] = "ISO-8859-1"

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
