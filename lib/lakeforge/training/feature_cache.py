"""The feature frames the model search reads, cached once and sized.

Every candidate of the search reads the preprocessed rows (label, feature vector, fold) many
times, so they are cached once (``cache_features``):

* storage level MEMORY_AND_DISK: the columnar batches are kept serialized in memory and a
  partition that does not fit goes to local disk and is read back from there, never recomputed
  (recomputing means re-running the whole preprocessing, one-hot encoders and all, on every
  iteration of every fit);
* vectors stay as the assembler made them: a one-hot block is sparse (VectorAssembler keeps the
  smaller of the sparse and dense forms; nothing here densifies it);
* its size is read back from Spark's storage info of the cached RDD (memory, disk, partitions)
  and logged, with the storage memory of the driver, and a hint when it did not fit.

With preprocessing that reads the label (target encoding), ``refit_in_fold`` refits it on each
fold's training rows only and caches that fold's rows the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.ml import Pipeline
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.core.columns import FEATURES_COL, FOLD_COL
from lakeforge.features.stages import fit_for_training

LEVEL = StorageLevel.MEMORY_AND_DISK
LEVEL_NAME = "MEMORY_AND_DISK"


@dataclass(frozen=True)
class CacheSize:
    """What Spark's storage info says of one cached frame."""

    memory_bytes: int
    disk_bytes: int
    partitions_cached: int
    partitions: int
    storage_free_bytes: int | None = None  # the driver's storage memory left (local mode: the executor's)
    storage_max_bytes: int | None = None

    def line(self, what: str) -> str:
        text = (f"cached {what}: {_size(self.memory_bytes)} in memory, {_size(self.disk_bytes)} on disk, "
                f"{self.partitions_cached}/{self.partitions} partitions ({LEVEL_NAME})")
        if self.storage_max_bytes:
            text += f"; storage memory {_size(self.storage_free_bytes or 0)} free of {_size(self.storage_max_bytes)}"
        if self.disk_bytes:
            text += "; it spilled to disk: a larger spark.driver_memory keeps it in memory (faster fits)"
        return text


def cache_features(df: DataFrame, what: str = "feature frame", say: Callable[[str], None] | None = None) -> DataFrame:
    """``df`` persisted MEMORY_AND_DISK and materialised by one job over all its partitions (the
    first fits would otherwise wait on each other computing it), its size logged by ``say``."""
    df = df.persist(LEVEL)
    df.count()
    if say is not None:
        size = cached_size(df)
        if size is not None:
            say(size.line(what))
    return df


def cached_size(df: DataFrame) -> CacheSize | None:
    """The cached size of ``df`` from Spark's RDD storage info (None when it is not cached)."""
    spark = df.sparkSession
    try:
        cached = spark._jsparkSession.sharedState().cacheManager().lookupCachedData(df._jdf)  # noqa: SLF001
        if not cached.isDefined():
            return None
        rdd_id = cached.get().cachedRepresentation().cacheBuilder().cachedColumnBuffers().id()
        sc = spark.sparkContext._jsc.sc()  # noqa: SLF001
        info = next((i for i in sc.getRDDStorageInfo() if i.id() == rdd_id), None)
        free, total = storage_memory(spark) or (0, 0)
    except Exception:  # noqa: BLE001 - a Spark without these internals: no size, training goes on
        return None
    if info is None:
        return CacheSize(0, 0, 0, df.rdd.getNumPartitions(), free or None, total or None)
    return CacheSize(int(info.memSize()), int(info.diskSize()), int(info.numCachedPartitions()), int(info.numPartitions()),
                     free or None, total or None)


def storage_memory(spark) -> tuple[int, int] | None:
    """(free, total) bytes of Spark's storage memory where cached blocks go, or None: the
    executors' block managers (on a cluster the driver's holds no cached partitions), or in local
    mode the driver's, which runs the tasks."""
    try:
        sc = spark.sparkContext._jsc.sc()  # noqa: SLF001
        driver = sc.env().blockManager().blockManagerId().hostPort()
        it = sc.getExecutorMemoryStatus().iterator()
        found = {}
        while it.hasNext():
            entry = it.next()
            found[str(entry._1())] = (int(entry._2()._1()), int(entry._2()._2()))
        executors = [v for k, v in found.items() if k != driver] or list(found.values())
        return sum(f for _, f in executors), sum(t for t, _ in executors)
    except Exception:  # noqa: BLE001 - a Spark without these internals
        return None


# The cached columnar rows of a table take about twice its Parquet files (10M generated rows:
# 762 MB of files, about 1.3 GB of cache).
CACHE_TO_FILES = 2.0


def rows_level(spark, table_bytes: int | None) -> tuple[StorageLevel, str]:
    """Where to keep the labelled rows the split, the feature statistics and the preprocessing fits
    read again and again: (storage level, why). In memory (and disk) while they take at most half
    of the storage memory; beyond that on local disk only, so the heap stays free for the feature
    cache and the fits (10M rows in a 4 GB local driver ran out of heap with both in memory)."""
    memory = storage_memory(spark)
    if not table_bytes or memory is None or table_bytes * CACHE_TO_FILES <= memory[1] / 2:
        return StorageLevel.MEMORY_AND_DISK_DESER, "memory"
    return StorageLevel.DISK_ONLY, (f"local disk only: about {_size(int(table_bytes * CACHE_TO_FILES))} cached, more than half "
                                    f"of Spark's {_size(memory[1])} of storage memory (spark.driver_memory in local mode)")


def fit_parallelism(frames: list[DataFrame], wanted: int) -> tuple[int, str | None]:
    """How many fits may run at once: ``wanted``, unless that many copies of the largest cached
    training frame would take more than half of Spark's storage memory (each running fit caches its
    own copy: blocks for linear models, binned points for trees). (parallelism, why it was cut)."""
    sizes = [c.memory_bytes + c.disk_bytes for c in map(cached_size, frames) if c is not None]
    memory = storage_memory(frames[0].sparkSession) if frames else None
    if not sizes or memory is None or max(sizes) * wanted <= memory[1] / 2:
        return wanted, None
    fits = max(1, int(memory[1] / 2 // max(max(sizes), 1)))
    if fits >= wanted:
        return wanted, None
    return fits, (f"{fits} fit(s) at a time: each caches its own copy of its {_size(max(sizes))} of training rows, "
                  f"and Spark has {_size(memory[1])} of storage memory (spark.driver_memory in local mode)")


def refit_in_fold(prep: Pipeline, train_df: DataFrame, keep: list[str], k: int,
                  say: Callable[[str], None] | None = None) -> tuple[DataFrame, DataFrame, int]:
    """Fold ``k``: the preprocessing fitted on the rows of the other folds only (no label of
    fold ``k`` reaches it), (its training rows, its validation rows, the vector size), cached."""
    fit_rows = train_df.where(F.col(FOLD_COL) != k)
    fold_model, fitted_rows = fit_for_training(prep, fit_rows)  # out-of-fold target means for its learner
    train_k = cache_features(fitted_rows.select(*keep), f"fold {k + 1} training features", say)
    valid_k = cache_features(fold_model.transform(train_df.where(F.col(FOLD_COL) == k)).select(*keep))
    return train_k, valid_k, train_k.select(FEATURES_COL).first()[0].size


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
