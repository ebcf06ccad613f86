"""lakeforge frame's encoding choice and memory note for the problem card.

Each categorical column gets its encoding from its approximate number of levels by the default
``preprocessing.encoding`` (``EncodingConfig.choose``: one-hot for few levels, a bounded encoding
for many), with the reason; training counts the levels again on its training rows and decides by
the same rule (lakeforge.features.encodings).

The memory note estimates the size of the cached feature frame the model search reads (rows x the
values a sparse feature vector stores, or its dense size when that is smaller) and the driver
memory that keeps it, and what the estimators cache beside it, in memory (Spark's unified
memory is 60 % of the heap above 300 MB).
"""

from __future__ import annotations

import math

from lakeforge.core.config_features import EncodingConfig
from lakeforge.profiling.card import Column

TFIDF_SLOTS, TFIDF_WORDS = 256, 20  # a free-text column's hashed slots and the words a row fills (a guess)
ROW_BYTES = 60  # a cached row beside its vector's values: label, fold, the vector's header
TRAIN_SHARE, FOLDS = 0.8, 3  # the card's defaults: test_fraction 0.2, folds 3


def card_encodings(columns: list[Column], cfg: EncodingConfig | None = None) -> None:
    """Set each categorical column's encoding and reason (by its approximate distinct count)."""
    cfg = cfg or EncodingConfig()
    for c in columns:
        if c.role == "categorical":
            c.encoding, c.encoding_reason = cfg.choose(c.distinct)


def memory_note(columns: list[Column], rows: int, supervised: bool, cfg: EncodingConfig | None = None) -> str:
    """The cached feature frame's estimated size and the driver memory that holds it."""
    cfg = cfg or EncodingConfig()
    width = stored = 0
    for c in columns:
        if c.role == "numeric":
            width, stored = width + 1, stored + 1
        elif c.role == "datetime":
            width, stored = width + len(c.date_parts), stored + len(c.date_parts)
        elif c.role == "text":
            width, stored = width + 1 + TFIDF_SLOTS, stored + 1 + TFIDF_WORDS
        elif c.role == "categorical":
            bounded = c.encoding == "bounded"
            extra = 1 if bounded and cfg.high_cardinality != "none" else 0
            width += (cfg.top_levels + 2 if bounded else c.distinct + 1) + extra
            stored += 1 + extra
    width += sum(len(c.derived) for c in columns)
    stored += sum(len(c.derived) for c in columns)
    per_row = ROW_BYTES + min(12 * stored, 8 * width)
    refits = supervised and any(c.encoding == "bounded" for c in columns) and cfg.high_cardinality == "target"
    copies = 1 + FOLDS if refits else 1  # the target mean is refitted per fold: each fold's rows cached too
    cached = rows * TRAIN_SHARE * per_row * copies
    driver_gb = max(2, math.ceil((300e6 + 2 * cached / 0.6) / 1e9))  # 2x: the estimators cache about as much
    why = f"; x{copies} with the per-fold refits of the target means" if copies > 1 else ""
    return (f"the search caches about {_mb(cached)} of features ({rows * TRAIN_SHARE:,.0f} training rows x "
            f"{stored} stored values of {width:,} slots{why}): spark.driver_memory {driver_gb}g or more keeps them in "
            "memory (conf/base.yaml sets 4g; training logs the real size and says when it spilled to disk)")


def _mb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e9 else f"{max(n / 1e6, 0.1):,.1f} MB"
