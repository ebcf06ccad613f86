"""Steps 2 and 3 of a load: the column names and the table schema.

Column names are normalised to stable identifiers (the mapping is recorded). The schema is the
config's ``schema``; else the bronze table's (enforced: a new, missing or retyped column fails the
load with the differences listed, unless ``schema_evolution``); else inferred on the first load,
where a column whose values nearly all (99 %) parse as numbers or times gets that type and the few
that do not are bad records (lakeforge.ingest.types.tolerant_type).

Pure steps: no table reads or writes (the callers pass the table's schema).
"""

from __future__ import annotations

from dataclasses import replace

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from lakeforge.core.columns import METADATA_COLUMNS, OLD_METADATA_COLUMNS
from lakeforge.core.config_source import SourceConfig
from lakeforge.core.errors import InputDataError, MissingColumnError, delimiter_hint, wrong_delimiter
from lakeforge.core.names import normalise_names
from lakeforge.ingest.context import LoadContext
from lakeforge.ingest.raw import RawRead
from lakeforge.ingest.readers import CORRUPT, POSITION, SOURCE
from lakeforge.ingest.types import accepts, cast_text, infer_strings, nested_as_text, option, tolerate_bad_values

# ------------------------------------------------------------------------------------------
# The bronze table's layout
# ------------------------------------------------------------------------------------------


def data_fields(schema: StructType, row_id: str | None = None) -> StructType:
    """The columns of a bronze table's ``schema`` that come from the source (not the load
    metadata, not a row id)."""
    skip = set(METADATA_COLUMNS) | set(OLD_METADATA_COLUMNS) | {row_id}
    return StructType([f for f in schema.fields if f.name not in skip])


def old_metadata(have: list[str], ctx: LoadContext) -> bool:
    """True when the table (columns ``have``) has the load metadata columns of an earlier
    lakeforge version and this load may replace them (a full ``overwrite`` load replaces the
    table's schema; the data columns are checked for drift as usual). Append and incremental
    loads would mix two layouts in one table: they stop with the fix."""
    table, mode = ctx.table, ctx.mode
    old = [c for c in OLD_METADATA_COLUMNS if c in have]
    missing = [c for c in METADATA_COLUMNS if c not in have]
    if not old and not missing:
        return False
    what = ", ".join([f"old column {c}" for c in old] + [f"no column {c}" for c in missing])
    if mode == "overwrite":
        ctx.say(f"{table} has the load metadata of an earlier lakeforge ({what}): this full load replaces "
                f"them with {', '.join(METADATA_COLUMNS)}")
        return True
    raise InputDataError(
        f"{ctx.where}: {table} was written by an earlier lakeforge version ({what}; the load metadata columns are now "
        f"{', '.join(METADATA_COLUMNS)}), so an {mode} load cannot add to it. Load it in full once with mode: "
        f"overwrite, or drop it (lakeforge sql \"DROP TABLE {table}\") and load again; nothing was written")


# ------------------------------------------------------------------------------------------
# 2. Column names
# ------------------------------------------------------------------------------------------


def name_columns(raw: RawRead, ctx: LoadContext) -> tuple[RawRead, dict[str, str], list[str], StructType | None]:
    """The raw read with its columns named as identifiers; the mapping (source name -> column);
    the data columns; the configured schema with the same names."""
    src, where = ctx.src, ctx.where
    data_cols = [c for c in raw.df.columns if c not in (CORRUPT, SOURCE, POSITION)]
    sep = delimiter_hint(data_cols) if src.format == "csv" else None
    if sep and sep not in (option(src, "sep"), option(src, "delimiter")):
        raise InputDataError(f"{where}: {raw.files[0]} was read as one column {data_cols[0][:80]!r}. {wrong_delimiter(sep)} "
                             "Nothing was written")
    mapping = normalise_names(data_cols, src.column_names)
    if any(k != v for k, v in mapping.items()):
        df = raw.df.select(*[F.col(f"`{c}`").alias(mapping[c]) for c in data_cols], CORRUPT, SOURCE, POSITION)
        sample = raw.sample
        if sample is not None:
            sample = StructType([StructField(mapping.get(f.name, f.name), f.dataType) for f in sample.fields])
        raw = replace(raw, df=df, sample=sample)
    data_cols = [mapping[c] for c in data_cols]
    explicit = ctx.explicit
    if explicit is not None:
        explicit = StructType([StructField(normalise_names([f.name], src.column_names)[f.name], f.dataType) for f in explicit.fields])
    if src.row_id is not None and src.row_id.lower() in {c.lower() for c in data_cols}:
        raise InputDataError(f"{where}.row_id: {src.row_id!r} is already a column of {src.label}; pick another "
                             "name for the generated id, or use that column as the key and drop row_id")
    return raw, mapping, data_cols, explicit


# ------------------------------------------------------------------------------------------
# 3. Schema
# ------------------------------------------------------------------------------------------


def schema_diff(table: StructType, seen: StructType) -> tuple[list[str], list[str], list[str]]:
    """(new, missing, retyped) columns of the incoming data against the table."""
    have = {f.name.lower(): f for f in table.fields}
    got = {f.name.lower(): f for f in seen.fields}
    new = [f.name for k, f in got.items() if k not in have]
    missing = [f.name for k, f in have.items() if k not in got]
    retyped = [f"{f.name} ({have[k].dataType.simpleString()} -> {f.dataType.simpleString()})"
               for k, f in got.items() if k in have and not accepts(have[k].dataType, f.dataType)]
    return new, missing, retyped


def sample_cast_failures(raw: DataFrame, table: StructType, src: SourceConfig, rows: int = 1000) -> list[str]:
    """Columns of the table whose values, in the first ``rows`` records, mostly (at least half)
    do not cast to the table's type — a retyped column, e.g. ``amount (double -> text, e.g.
    'n/a')``. Fewer failures are bad records, quarantined by the load. One small job."""
    cols = [f for f in table.fields if f.name in raw.columns and not isinstance(f.dataType, StringType)]
    if not cols:
        return []
    head = raw.limit(rows)
    aggs = []
    for i, f in enumerate(cols):
        present = F.nullif(F.trim(F.col(f"`{f.name}`")), F.lit(""))
        failed = present.isNotNull() & F.expr(cast_text(f.name, f.dataType, src)).isNull()
        aggs += [F.first(F.when(failed, F.col(f"`{f.name}`")), ignorenulls=True).alias(f"v{i}"),
                 F.count(present).alias(f"n{i}"), F.sum(failed.cast("int")).alias(f"f{i}")]
    row = head.agg(*aggs).first()
    return [f"{f.name} ({f.dataType.simpleString()} -> text, e.g. {row[f'v{i}']!r})"
            for i, f in enumerate(cols) if row[f"n{i}"] and 2 * (row[f"f{i}"] or 0) >= row[f"n{i}"]]


def decide_target(raw: RawRead, data_cols: list[str], explicit: StructType | None, inferred: StructType | None,
                  ctx: LoadContext) -> tuple[StructType, list[str]]:
    """The schema the records are cast to, and the schema changes (drift) it accepts.
    ``inferred``: a CSV source's inferred schema (columns named) on its first load."""
    src, where, table_schema = ctx.src, ctx.where, ctx.table_schema
    sample = raw.sample if raw.text else StructType([f for f in raw.df.schema.fields if f.name in data_cols])
    changes: list[str] = []
    if explicit is not None:
        target = explicit
        extra = [c for c in data_cols if c.lower() not in {f.name.lower() for f in explicit.fields}]
        if extra and not src.schema_evolution:
            raise InputDataError(f"{where}: the data has column(s) {extra} that the configured schema does not list; "
                                 "add them to 'schema' or set schema_evolution: true")
    elif table_schema is not None:
        target, changes = _evolve(raw, data_cols, sample, ctx)
    elif src.format == "csv":  # Spark's inference, tolerant of a few values that do not parse
        target, retyped = tolerate_bad_values(raw.df, inferred)
        for note in retyped:
            ctx.say(f"{ctx.name}: {note}: they are bad records (on_bad_records: {src.on_bad_records})")
    elif src.format in ("excel", "http"):
        target = infer_strings(raw.df, data_cols)
    else:
        target = StructType([f for f in raw.df.schema.fields if f.name in data_cols])
        if src.format == "json" and sample is not None:
            target = sample
    if raw.text:
        target = nested_as_text(target)
    missing_in_data = [f.name for f in target.fields if f.name not in data_cols]
    if missing_in_data and explicit is not None and not src.schema_evolution:
        raise InputDataError(f"{where}: column(s) {missing_in_data} of the configured schema are not in {src.label}")
    return target, changes


def _evolve(raw: RawRead, data_cols: list[str], sample: StructType | None, ctx: LoadContext) -> tuple[StructType, list[str]]:
    """The table's schema, plus the new columns when ``schema_evolution``; the changes."""
    src, table_schema = ctx.src, ctx.table_schema
    strings_only = raw.text and not (src.format == "json" and table_schema is None)
    if strings_only:  # text: retyped = sample values that do not cast to the table's type
        seen = StructType([StructField(c, table_schema[c].dataType if c in table_schema.fieldNames() else StringType())
                           for c in data_cols])
        new, missing, _ = schema_diff(table_schema, seen)
        retyped = sample_cast_failures(raw.df, table_schema, src)
    else:
        seen = sample
        new, missing, retyped = schema_diff(table_schema, seen)
    changes = ([f"new column {c}" for c in new] + [f"missing column {c}" for c in missing]
               + [f"retyped column {c}" for c in retyped])
    if changes and not src.schema_evolution:
        raise InputDataError(
            f"{ctx.where}: the schema of {src.label} differs from table {ctx.table}: {'; '.join(changes)}. "
            "Fix the source, or set schema_evolution: true in the source config to accept it "
            "(new columns are added, missing ones load as null, retyped values that do not cast "
            "are quarantined)."
        )
    return StructType(list(table_schema.fields) + [f for f in seen.fields if f.name in new]), changes


def require_columns(target: StructType, wanted: list[str], ctx: LoadContext) -> None:
    """MissingColumnError when ``wanted`` columns (training and scoring read them) are not in ``target``."""
    missing = [c for c in wanted if c not in target.fieldNames() and c != ctx.src.row_id]
    if missing:
        raise MissingColumnError(f"{ctx.where} {ctx.src.label}", missing, target.fieldNames())
