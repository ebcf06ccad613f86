"""The held-out test split and the search's folds, decided once per training.

The test rows are a hash of the key (each class keeps about the test fraction: stratified as
scikit-learn's ``train_test_split(stratify=y)``) or, with ``model.split.by: time``, the latest
rows by a timestamp column. The folds are a hash of the key too (stratified as
``StratifiedKFold``), so every algorithm sees the SAME folds. Also here: the per-split class
counts, the checks on them, and the class weights built from them.
"""

from __future__ import annotations

import datetime as dt
import math

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.core.columns import FOLD_COL, LABEL_COL, WEIGHT_COL
from lakeforge.core.config import PipelineConfig
from lakeforge.core.config_model import ModelConfig
from lakeforge.core.errors import InputDataError, LakeforgeError
from lakeforge.training.target import Target

SPLIT_BUCKETS = 10_000
LONG_MAX = 2**63 - 1
QUANTILE_ACCURACY = 10_000  # split cut points: brackets of about 6 n / 10,000 rows, then exact


def split_by_key(key: str, test_fraction: float, seed: int):
    """Deterministic train/test split from a hash of the key: the same rows land in the same
    split on every run, whatever the partitioning. Returns the is-test column expression."""
    bucket = F.pmod(key_hash(key, seed), F.lit(SPLIT_BUCKETS))
    return bucket < F.lit(int(round(test_fraction * SPLIT_BUCKETS)))


def fold_of(key: str, folds: int, seed: int):
    return F.pmod(key_hash(key, seed + 1), F.lit(folds)).cast("int")


def key_hash(key: str, seed: int):
    """A seeded 64-bit hash of the key (as text): the same for a key on every run."""
    return F.xxhash64(F.col(key).cast("string"), F.lit(seed))


def split_rows(labelled: DataFrame, cfg: ModelConfig, key: str, task: str, table: str) -> tuple[DataFrame, dict]:
    """``labelled`` with the held-out test rows marked (``_is_test``) and the search's folds
    (``FOLD_COL``: 0..k-1 for cross-validation; 0 = validation and -1 = training for a
    train/validation split), and what the split was, for the record. Cache ``labelled`` first:
    the cut points are small aggregations over it.

    Rows are ordered by seeded hashes of the key, so the same data lands in the same place on
    every run. For classification the test set and the folds are stratified, as scikit-learn's
    ``train_test_split(stratify=y)`` and ``StratifiedKFold`` are: within each class, the first round(test_fraction x n) rows in hash order are test rows, and
    the class's training rows are cut into runs of equal size, one per fold, so rare classes
    keep their share everywhere (a class of one row stays in training). The cut points are the
    exact per-class quantiles of the hash, whatever the partitioning (see _first_shares; 2M rows,
    2 classes: a few seconds against 0.4-0.6 s for a plain hash split). They follow the data:
    when rows are added, a few existing rows change sides (7 of 10,000 when a table grew by
    10 %), so a champion re-scored on a later test set may have trained on those few; a plain
    hash split never moves a row but is only stratified on average. Regression: hash buckets. A time split takes its test rows by time.
    """
    info: dict = {"by": cfg.split.by, "test_fraction": cfg.test_fraction, "seed": cfg.seed,
                  "stratified": "no" if task == "regression" else "folds" if cfg.split.by == "time" else "test and folds"}
    data = labelled
    if task != "regression":  # 53-bit hashes: percentile_approx works in doubles, which hold them exactly
        data = (data.withColumn("_h", F.shiftright(key_hash(key, cfg.seed), 11))
                .withColumn("_hf", F.shiftright(key_hash(key, cfg.seed + 1), 11)))
    if cfg.split.by == "time":
        is_test, cut = _time_split(data, cfg.split.column, cfg.test_fraction, table)
        info.update(column=cfg.split.column, test_from=dt.datetime.fromtimestamp(cut, dt.timezone.utc).isoformat())
    elif task == "regression":
        is_test = split_by_key(key, cfg.test_fraction, cfg.seed)
    else:
        is_test = _first_shares(data, "_h", [cfg.test_fraction])[0]
    data = data.withColumn("_is_test", F.coalesce(is_test, F.lit(False)))  # no timestamp: training
    cv = cfg.search == "cross_validation"
    if task == "regression":
        bucket = F.pmod(key_hash(key, cfg.seed + 1), F.lit(SPLIT_BUCKETS))
        fold = fold_of(key, cfg.folds, cfg.seed) if cv else F.when(
            bucket >= F.lit(int(round(cfg.train_ratio * SPLIT_BUCKETS))), 0).otherwise(-1)
    else:
        shares = [j / cfg.folds for j in range(1, cfg.folds)] if cv else [cfg.train_ratio]
        # a row's fold: how many of the cut points its hash is past
        fold = sum((~first).cast("int") for first in _first_shares(data.where(~F.col("_is_test")), "_hf", shares))
        fold = fold if cv else F.when(fold == 1, 0).otherwise(-1)
    return data.withColumn(FOLD_COL, fold.cast("int")).drop("_h", "_hf"), info


def _first_shares(df: DataFrame, hash_col: str, shares: list[float]) -> list:
    """For each share, a boolean column: whether a row is among the first round(share x n) of
    the n rows of its class (``LABEL_COL``) in ``df``, in ``hash_col`` order.

    Exact, whatever the partitioning: approximate quantiles (rank error at most n / accuracy)
    bracket the wanted rank; one more pass counts the rows below the bracket and collects the
    few hashes inside it (about 6 n / accuracy per cut point), and the driver picks the exact
    one. Three small jobs over ``df``."""
    counts = {c: n for c, n in df.groupBy(LABEL_COL).count().collect()}
    ranks = {(c, s): int(math.floor(s * n + 0.5)) for c, n in counts.items() for s in shares}
    wanted = {(c, r) for (c, _), r in ranks.items() if 0 < r < counts[c]}
    exact: dict[tuple, int] = {}
    margin = 2
    while wanted - exact.keys() and margin <= 200:
        todo = sorted(wanted - exact.keys())
        # percentile_approx returns the value of rank ceil(p x n) (within n / accuracy)
        err = {c: margin * math.ceil(n / QUANTILE_ACCURACY) + 1 for c, n in counts.items()}
        bounds = {(c, r): (max(r - err[c], 1) / counts[c], min(r + err[c], counts[c]) / counts[c]) for c, r in todo}
        pcts = sorted({p for pair in bounds.values() for p in pair})
        q = {c: dict(zip(pcts, v)) for c, v in df.groupBy(LABEL_COL).agg(
            F.percentile_approx(hash_col, F.array(*map(F.lit, pcts)), QUANTILE_ACCURACY)).collect()}
        h, label = F.col(hash_col), F.col(LABEL_COL)
        aggs = []
        for i, (c, r) in enumerate(todo):
            lo, hi = (q[c][p] for p in bounds[(c, r)])
            mine = label == F.lit(c)
            aggs += [F.sum((mine & (h < F.lit(lo))).cast("long")).alias(f"b{i}"),
                     F.sort_array(F.collect_list(F.when(mine & (h >= F.lit(lo)) & (h <= F.lit(hi)), h))).alias(f"w{i}")]
        row = df.agg(*aggs).first()
        for i, (c, r) in enumerate(todo):
            below, window = row[f"b{i}"] or 0, row[f"w{i}"]
            if 0 <= r - below - 1 < len(window):
                exact[(c, r)] = window[r - below - 1]
        margin *= 10  # the bracket missed (not expected): wider
    if wanted - exact.keys():  # approximate quantiles outside their documented error, three times
        raise LakeforgeError(f"stratified split: no exact cut point for class(es) "
                             f"{sorted({str(c) for c, _ in wanted - exact.keys()})} (approximate quantiles outside their "
                             "error bound); please report this as a bug with the Spark version")
    out = []
    for s in shares:
        cuts = {}  # class -> the last hash in its first share; none when the share is empty
        for c, n in counts.items():
            r = ranks[(c, s)]
            if r >= n:
                cuts[c] = LONG_MAX
            elif r > 0:
                cuts[c] = exact[(c, r)]
        lookup = F.create_map(*[x for c, v in cuts.items() for x in (F.lit(c), F.lit(v))])[F.col(LABEL_COL)] \
            if cuts else F.lit(None)
        out.append(F.coalesce(F.col(hash_col) <= lookup, F.lit(False)))
    return out


def _time_split(df: DataFrame, column: str, test_fraction: float, table: str):
    if column not in df.columns:
        raise InputDataError(f"{table}: model.split.column {column!r} is not a column")
    ts = F.col(column).cast("timestamp").cast("double")
    q = df.select(ts.alias("t")).where(F.col("t").isNotNull()).approxQuantile("t", [1 - test_fraction], 0.001)
    if not q:
        raise InputDataError(f"{table}: model.split.column {column!r} has no timestamp value")
    return ts >= F.lit(q[0]), q[0]


def split_counts(data: DataFrame, task: str) -> dict[tuple[bool, float], int]:
    """Rows per (is test, class) of ``split_rows``' output (regression: one class, 0.0)."""
    cls = (F.col(LABEL_COL) if task != "regression" else F.lit(0.0)).alias("cls")
    return {(r["_is_test"], r["cls"]): r["count"] for r in data.groupBy("_is_test", cls).count().collect()}


def check_counts(counts: dict, target: Target, pipeline: PipelineConfig, table: str, n_folds: int) -> None:
    """Refuse a split with an empty side, fewer training rows than the folds need, or a single
    class in training."""
    for split in (False, True):
        if not any(v for (is_test, _), v in counts.items() if is_test == split):
            name = "test" if split else "training"
            raise InputDataError(f"{table}: the {name} split is empty; adjust model.test_fraction (or model.split)")
    rows_train = sum(v for (t, _), v in counts.items() if not t)
    if rows_train < max(2, n_folds) * 2:
        raise InputDataError(
            f"{table}: only {rows_train} training rows for {pipeline.model.folds} folds; "
            "add data or lower model.folds"
        )
    if target.task != "regression":
        present = {c for (t, c), v in counts.items() if not t and v}
        if len(present) < 2:
            raise InputDataError(f"{table}: the training split holds only one class of {pipeline.target!r}; nothing to learn")


def record_counts(split_info: dict, counts: dict, target: Target) -> tuple[int, int]:
    """Add the row counts (and, for classification, each class's test share) to ``split_info``;
    returns (training rows, test rows)."""
    rows_train = sum(v for (t, _), v in counts.items() if not t)
    rows_test = sum(v for (t, _), v in counts.items() if t)
    split_info["rows_train"], split_info["rows_test"] = rows_train, rows_test
    if target.task != "regression":
        split_info["test_share_per_class"] = {
            target.labels[int(c)]: round(counts.get((True, c), 0) / (counts.get((True, c), 0) + counts.get((False, c), 0)), 4)
            for c in sorted({c for (_, c) in counts})
        }
    return rows_train, rows_test


def with_class_weights(data: DataFrame, counts: dict, rows_train: int) -> DataFrame:
    """``WEIGHT_COL``: each class weighted inversely to its training rows (n / (k x n_class))."""
    per_class = {c: sum(v for (t, cc), v in counts.items() if cc == c and not t) for (_, c) in counts}
    k = len(per_class)
    wmap = F.create_map(*[x for c, n in per_class.items() for x in (F.lit(c), F.lit(rows_train / (k * n) if n else 0.0))])
    return data.withColumn(WEIGHT_COL, wmap[F.col(LABEL_COL)])
