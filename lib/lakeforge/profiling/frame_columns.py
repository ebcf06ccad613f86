"""lakeforge frame's column-role detectors: one statistics aggregation over all columns
(``framing_statistics``: nulls, approximate distinct counts, how many text values parse as
numbers or timestamps, text length), then each column's role from those numbers and its type
(``detect_columns``), and the key when none is given (``key_candidates``, ``key_repeats``: one
exact count of their distinct values, ``choose_key``).

Roles:
- ID-like (nearly one distinct value per row: text, or an integer named like an ID: ``id``,
  ``key``, ``code``, ``no``, ``number``...): excluded; the first that is exactly unique and
  never null is the key. A nearly unique integer with another name (a mileage, an income) is a
  numeric feature; it becomes the key only when there is no ID-like column and it is exactly
  unique, without nulls. Otherwise (iris, wine; a title column where some titles repeat), the
  key is ``row_id``, a hash of each row's content that ingest adds (``source.row_id``);
- numeric: numeric types, and text columns whose non-blank values almost all parse as numbers
  (Telco's ``TotalCharges``); numbers with thousands separators (``1,234.5``) become a derived
  feature ``<column>_num`` that strips them (the text column itself is excluded);
- datetime: date/timestamp types and text that parses as timestamps: their year, month and day
  of the week (and hour, for timestamps) become numeric features (``features.dates``); a date
  column whose being empty or not determines the target (a cancellation date) is a leakage
  suspect (lakeforge.profiling.leakage);
- text: free text (long values, many levels): its length and its words (TF-IDF weights of
  hashed words) are features (``features.text_length``, ``features.text_tfidf``);
- excluded: always null, constant (one value and no nulls), or a type MLlib can't take (maps;
  a nested record's numeric, boolean and text fields become derived features ``<record>_<field>``,
  a list's length ``<list>_count``);
- categorical: the rest, and whole numbers that a CSV file has in quotes while it leaves other
  columns' values bare (R's ``write.csv`` writes a factor's levels so: ``"1","2"``;
  lakeforge.profiling.sources.quoted_columns); unique ones are ID-like.
"""

from __future__ import annotations

import re

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DateType,
    NumericType,
    StringType,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from lakeforge.core.sketches import approx_distinct
from lakeforge.profiling.card import Column

DATE_PARTS = ["year", "month", "day_of_week"]  # of a date column, as features (timestamps: and hour)
GROUPED_NUMBER = r"^-?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?$"  # 1,234 / 12,345,678.9
_ID_WORDS = {"id", "ids", "key", "code", "no", "nr", "num", "number", "uuid", "guid"}


def id_like_name(name: str) -> bool:
    """``customer_id``, ``customerID``, ``Order No``, ``account number``: a word of the name is an ID word."""
    return any(w.lower() in _ID_WORDS for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+", name))


def framing_statistics(df: DataFrame) -> dict:
    """One aggregation over all columns: ``__rows``; per column ``<c>__nulls``, ``<c>__distinct``
    and for text ``<c>__filled`` (non-blank), ``__num`` (parse as numbers), ``__grouped`` (numbers
    with thousands separators), ``__ts`` (timestamps), ``__len`` (mean length), ``__spaced``
    (values with a space)."""
    text_cols = {f.name for f in df.schema.fields if isinstance(f.dataType, StringType)}
    aggs = [F.count(F.lit(1)).alias("__rows")]
    for c in df.columns:
        col = F.col(f"`{c}`")
        # about 1 % error: with approx_count_distinct's default 5 % an ID column of 3,000 values was
        # counted as 2,840 (< 95 % unique)
        aggs += [F.count(F.when(col.isNull(), 1)).alias(f"{c}__nulls"), approx_distinct(col).alias(f"{c}__distinct")]
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
    return df.agg(*aggs).first().asDict()


def detect_columns(df: DataFrame, stats: dict, target: str, key: str | None, source: dict) -> tuple[list[Column], list[Column]]:
    """(a Column with its role for every column but the target, the nearly unique integers
    without nulls: the key if nothing is ID-like). ``source`` is the source config (its format
    decides how nested records and lists are read)."""
    fields = {f.name: f.dataType for f in df.schema.fields}
    columns: list[Column] = []
    fallback_keys: list[Column] = []
    for c, t in fields.items():
        if c == target:
            continue
        col, fallback = _detect(c, t, stats, key, source, fields)
        columns.append(col)
        if fallback:
            fallback_keys.append(col)
    return columns, fallback_keys


def _detect(c: str, t: DataType, stats: dict, key: str | None, source: dict, fields: dict) -> tuple[Column, bool]:
    """(column ``c``'s Column, whether it may be the fallback key)."""
    rows = stats["__rows"]
    nulls, distinct = stats[f"{c}__nulls"], stats[f"{c}__distinct"]
    dtype = t.simpleString()
    col = Column(c, dtype, "", "", nulls, distinct)
    unique_share = distinct / max(1, rows - nulls)
    is_intlike = isinstance(t, NumericType) and dtype in ("int", "bigint", "smallint", "tinyint")
    levels = is_intlike and c in stats.get("__quoted", ())  # "1", "2": a factor's levels in the file
    # text whose values are numbers or timestamps (then unique values are no ID unless so named)
    parses = _text_parses(c, stats) if isinstance(t, StringType) else None
    if c == key:
        col.role, col.reason = "key", "given as the key"
    elif ((isinstance(t, StringType) and (parses is None or id_like_name(c))) or (is_intlike and (id_like_name(c) or levels))) \
            and unique_share > 0.95 and rows >= 20:
        col.role, col.reason = "id", f"about one distinct value per row ({min(distinct, rows):,} for {rows:,} rows)"
    elif is_intlike and unique_share > 0.95 and rows >= 20:
        col.role, col.reason = "numeric", f"{dtype}, nearly unique ({distinct:,} values) but not named like an ID"
        return col, nulls == 0
    elif distinct == 0 or (distinct == 1 and nulls == 0):  # nothing to learn from
        col.role, col.reason = "excluded", "always null" if distinct == 0 else "constant: one value in every row"
    elif levels:
        col.role, col.reason = "categorical", f"whole numbers in quotes in the file (a factor's levels, as R writes them): {distinct:,} levels"
    else:
        _role_by_type(col, t, stats, parses, source, fields)
    return col, False


def _text_parses(c: str, stats: dict) -> str | None:
    """What a text column's non-blank values (98 %+) are: numeric, grouped (numbers with
    thousands separators), datetime, text (sentences), or None."""
    filled = stats[f"{c}__filled"] or 0
    if filled and stats[f"{c}__num"] / filled >= 0.98:
        return "numeric"
    if filled and stats[f"{c}__grouped"] and (stats[f"{c}__num"] + stats[f"{c}__grouped"]) / filled >= 0.98:
        return "grouped"  # 1,234.5: numbers with thousands separators
    if filled and stats[f"{c}__ts"] / filled >= 0.98:
        return "datetime"
    if filled and (stats[f"{c}__len"] or 0) > 30 and stats[f"{c}__spaced"] / filled > 0.5 and not id_like_name(c):
        return "text"  # sentences: unique, yet no identifier
    return None


def _role_by_type(col: Column, t: DataType, stats: dict, parses: str | None, source: dict, fields: dict) -> None:
    """The role of a column that is neither the key, ID-like, nearly unique nor empty."""
    c, dtype, distinct = col.name, col.dtype, col.distinct
    if isinstance(t, (DateType, TimestampType, TimestampNTZType)):
        col.role, col.date_parts = "datetime", DATE_PARTS + (["hour"] if not isinstance(t, DateType) else [])
        col.reason = f"{dtype} column: {', '.join(col.date_parts)} as features"
    elif isinstance(t, (NumericType, BooleanType)):
        col.role, col.reason = ("categorical", "boolean") if isinstance(t, BooleanType) else ("numeric", dtype)
        if isinstance(t, NumericType) and distinct <= 2:
            col.role, col.reason = "categorical", f"numeric with {distinct} values (a flag)"
    elif isinstance(t, StringType):
        _text_role(col, stats, parses, fields)
    elif isinstance(t, StructType) and (nested := _struct_fields(c, t, source.get("format"), set(fields))):
        col.role, col.reason, col.derived = "excluded", f"nested record: its fields are features {', '.join(nested)}", nested
    elif isinstance(t, ArrayType) and (count := next((n for n in (f"{c}_count", f"{c}_size") if n not in fields), None)):
        # a JSON source's bronze keeps the list as JSON text
        length = f"json_array_length(`{c}`)" if source.get("format") in ("json", "http") else f"size(`{c}`)"
        col.role, col.reason = "excluded", f"list: its length is the feature {count}"
        col.derived = {count: {"expr": length, "role": "numeric"}}
    else:
        col.role, col.reason = "excluded", f"unsupported type {dtype}"


def _text_role(col: Column, stats: dict, parses: str | None, fields: dict) -> None:
    c, distinct = col.name, col.distinct
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


def key_candidates(columns: list[Column], fallback_keys: list[Column]) -> list[Column]:
    """The columns that may be the key: the ID-like ones, else the nearly unique integers without nulls."""
    return [c for c in columns if c.role == "id"] or fallback_keys


def key_repeats(df: DataFrame, names: list[str]) -> dict[str, tuple[int, int, int]]:
    """{column: (rows, rows that repeat a value of an earlier row, nulls)} of ``names``, exact:
    one aggregation for all of them (the approximate distinct counts that make a column ID-like
    cannot tell 55,995 distinct values of 58,788 rows from unique)."""
    if not names:
        return {}
    aggs = [F.count(F.lit(1)).alias("__rows")]
    for i, c in enumerate(names):
        aggs += [F.count(F.col(f"`{c}`")).alias(f"n{i}"), F.count_distinct(F.col(f"`{c}`")).alias(f"d{i}")]
    row = df.agg(*aggs).first()
    rows = row["__rows"]
    return {c: (rows, row[f"n{i}"] - row[f"d{i}"], rows - row[f"n{i}"]) for i, c in enumerate(names)}


def choose_key(candidates: list[Column], repeats: dict[str, tuple[int, int, int]], names: list[str]) -> tuple[str, str | None, str]:
    """(the key, the row id ingest adds or None, why no column is the key: "" when none was a
    candidate) when none is given: the first candidate (``key_candidates``) that ``repeats``
    (``key_repeats``) shows unique and never null (its role becomes ``key``), else a row id named
    unlike every column in ``names``: a hash of the row's content (source.row_id)."""
    why = []
    for c in candidates:
        rows, repeated, nulls = repeats[c.name]
        if not repeated and not nulls:
            c.role, c.reason = "key", c.reason + "; used as the key"
            return c.name, None, ""
        faults = ", and ".join(([f"not unique: {repeated:,} of {rows:,} rows repeat a value"] if repeated else [])
                               + ([f"null in {nulls:,} of {rows:,} rows"] if nulls else []))
        c.reason += f"; {faults}, so not the key"
        why.append(f"{c.name} is {faults}")
    taken = {c.lower() for c in names}
    row_id = next(n for n in ("row_id", "lakeforge_row_id", "lakeforge_row_id_") if n not in taken)
    return row_id, row_id, "; ".join(why)
