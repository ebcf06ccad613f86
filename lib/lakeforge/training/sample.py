"""The rows a supervised training reads: all of the table, or a sample its memory holds.

Training caches its rows (the labelled rows, then each fold's features) and every fit keeps its
own copy of them, so the rows it can train on are bounded by Spark's storage memory, not by the
table: 10M generated rows ran a 4 GB local driver out of heap whatever was spilled (docs/
benchmarks.md, Scale). With ``model.max_train_rows: auto`` (the default) training reads a sample
when the table's cached rows would take more than an eighth of the storage memory (the rest is for
the folds' features, the fits' copies and the heap outside Spark's accounting); Databricks AutoML
samples the same way. ``N`` caps the rows at N; ``all`` never samples.

The sample is a hash of the key (its own seed, not the split's): the same rows on every run and
every partitioning, and the held-out test rows are a share of it. Only the training reads the
sample; scoring, the monitoring of scored rows and the gold feature table read the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.training.feature_cache import CACHE_TO_FILES, storage_memory
from lakeforge.training.split import key_hash

SAMPLE_BUCKETS = 1_000_000
STORAGE_SHARE = 1 / 8  # of Spark's storage memory, for the labelled rows (auto)
MIN_ROWS = 100_000  # auto never samples below this many rows


@dataclass(frozen=True)
class RowSample:
    """What training read of the table: ``rows`` in it, ``fraction`` of them, and why."""

    rows: int  # 0: not counted (model.max_train_rows: all)
    fraction: float
    why: str | None = None

    @property
    def sampled(self) -> bool:
        return self.fraction < 1.0

    def record(self) -> dict:
        return {"table_rows": self.rows, "fraction": round(self.fraction, 6), "why": self.why}


def row_cap(max_rows: int | str, rows: int, table_bytes: int | None, storage_bytes: int | None) -> tuple[int | None, str]:
    """The most rows training reads (None: all) and why, for ``model.max_train_rows``."""
    if max_rows == "all":
        return None, "model.max_train_rows: all"
    if isinstance(max_rows, int):
        return max_rows, f"model.max_train_rows: {max_rows:,}"
    if not table_bytes or not storage_bytes or rows <= 0:
        return None, "size unknown"
    per_row = table_bytes * CACHE_TO_FILES / rows
    cap = max(MIN_ROWS, int(storage_bytes * STORAGE_SHARE / per_row))
    return cap, (f"about {_gb(table_bytes * CACHE_TO_FILES)} GB cached for all {rows:,} rows, more than an eighth of "
                 f"Spark's {_gb(storage_bytes)} GB of storage memory (raise spark.driver_memory, or on a cluster "
                 "spark.executor_memory, to train on more, or set model.max_train_rows)")


def sample_rows(raw: DataFrame, key: str, max_rows: int | str, seed: int, table_bytes: int | None) -> tuple[DataFrame, RowSample]:
    """``raw``, or a hash-of-the-key sample of about the rows the cap allows, and what was read."""
    if max_rows == "all":
        return raw, RowSample(0, 1.0)
    rows = raw.count()  # the version read, before any filter
    memory = storage_memory(raw.sparkSession)
    cap, why = row_cap(max_rows, rows, table_bytes, memory[1] if memory else None)
    if cap is None or rows <= cap:
        return raw, RowSample(rows, 1.0)
    fraction = cap / rows
    bucket = F.pmod(key_hash(key, seed + 7), F.lit(SAMPLE_BUCKETS))
    sample = raw.where(bucket < F.lit(int(round(fraction * SAMPLE_BUCKETS))))
    return sample, RowSample(rows, fraction, why)


def _gb(n: float) -> str:
    return f"{n / 2**30:,.1f}"
