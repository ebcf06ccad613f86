"""Approximate distinct counts that stay cheap on wide tables.

Spark's ``approx_count_distinct`` keeps its HyperLogLog registers as fields of the aggregation
buffer: at a 1 % error that is about 1,600 longs per column, and an aggregation over 20 columns
took 0.5 s per column on 7,043 rows (generated code for every register), 10 times its cost at
the default 5 %. DataSketches' HLL (``hll_sketch_agg``) keeps one sketch object per column and
is exact while a column has few values (its list and set modes). Hashing first makes every type
acceptable."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

LG_K = 14  # 2^14 buckets: about 0.8 % relative standard error


def approx_distinct(col: Column, lg_k: int = LG_K) -> Column:
    """The approximate number of distinct non-null values of ``col`` (an aggregate)."""
    return F.hll_sketch_estimate(F.hll_sketch_agg(F.when(col.isNotNull(), F.xxhash64(col)), lg_k))
