"""Framing without a target (lakeforge frame --task clustering | recommendation), and the hint
that a table of user-item pairs may be a recommendation problem.

Clustering: every usable column is a feature (the same roles as for a target: numeric,
categorical, datetime parts, text; IDs and the key excluded). Recommendation: the user and item
columns must be IDs (integers or text, each repeated across rows), the rating column a number;
every other column is excluded (ALS learns from the pairs only).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import IntegralType, NumericType, StringType

from lakeforge.core.errors import InputDataError
from lakeforge.profiling.card import Column, ProblemCard
from lakeforge.profiling.frame_columns import choose_key, detect_columns, id_like_name, key_candidates, key_repeats

COUNT_WORDS = ("count", "plays", "clicks", "views", "purchases", "events", "visits", "quantity", "qty")
PAIR_WORDS = ("user", "item", "product", "movie", "customer", "member", "client", "article", "song", "book", "sku")


@dataclass
class TaskFraming:
    task: str  # clustering | recommendation
    name: str
    source: dict
    key: str | None
    renamed: dict[str, str]
    roles: dict[str, str | None] = field(default_factory=dict)  # user, item, rating (names in the data or bronze)


def frame_task(df: DataFrame, stats: dict, f: TaskFraming) -> ProblemCard:
    """The problem card of ``df`` (already with bronze names) for a task without a target."""
    rows = stats["__rows"]
    roles = {r: (f.renamed.get(c, c) if c else None) for r, c in f.roles.items()}
    columns, fallback = detect_columns(df, stats, None, f.key, f.source)
    key, row_id, key_note = f.key, None, ""
    if key is None:
        candidates = [c for c in key_candidates(columns, fallback) if c.name not in roles.values()]
        key, row_id, key_note = choose_key(candidates, key_repeats(df, [c.name for c in candidates]), df.columns)
    if f.task == "clustering":
        usable = [c.name for c in columns if c.role in ("numeric", "categorical", "datetime", "text")]
        if not usable:
            raise InputDataError("--task clustering: no numeric or categorical column to cluster on ("
                                 + ", ".join(f"{c.name}: {c.role}" for c in columns)[:300] + "); add feature columns")
        reason, metric, why, config = ("no target: rows are grouped by their features (--task clustering)",
                                       "silhouette", "how well separated the clusters are, on held-out rows", {})
    else:
        config = _recommendation_roles(df, stats, roles, columns)
        kind = ("implicit feedback (each row an interaction)" if config.get("rating") is None else
                f"implicit feedback ({config['rating']} counts events)" if config.get("implicit") else "explicit ratings")
        reason = f"user-item feedback, {kind} (--task recommendation)"
        metric, why = "ndcg_at_k", f"ranking quality of the top {config['k']} items per user, vs the most popular items"
    return ProblemCard(f.name, f.source, rows, None, f.task, reason, key, None, metric, why, {}, columns, [],
                       f.renamed, row_id, key_note, task_config=config)


def _recommendation_roles(df: DataFrame, stats: dict, roles: dict, columns: list[Column]) -> dict:
    """Check the user, item and rating columns and give them their roles; the
    model.recommendation section."""
    rows = stats["__rows"]
    for role in ("user", "item"):
        col = roles.get(role)
        if not col:
            raise InputDataError(f"--task recommendation needs --{role} COLUMN (the {role} id)")
        if col not in df.columns:
            raise InputDataError(f"--{role} column {col!r} not found; available columns: {', '.join(df.columns)[:300]}")
        t = df.schema[col].dataType
        distinct = stats[f"{col}__distinct"]
        if not isinstance(t, (IntegralType, StringType)):
            raise InputDataError(f"--{role} column {col!r} is {t.simpleString()}, not an ID: give a column of integer "
                                 "or text ids")
        if distinct >= 0.95 * rows and rows >= 20:
            raise InputDataError(f"--{role} column {col!r} has a different value in almost every row ({distinct:,} for "
                                 f"{rows:,} rows): not the id of a {role} seen in several interactions; pick the {role} id")
    rating = roles.get("rating")
    if rating:
        check_rating(df, rating)
    used = {roles["user"]: "user", roles["item"]: "item", **({rating: "rating"} if rating else {})}
    for c in columns:
        if c.name in used:
            c.role, c.reason = used[c.name], f"--{used[c.name]}"
        elif c.role != "key":
            c.role, c.reason = "excluded", "not used by ALS (it learns from the user-item pairs)"
    counts = bool(rating) and any(w in rating.lower() for w in COUNT_WORDS)  # a count of events, not a rating
    return {"user": roles["user"], "item": roles["item"], "rating": rating, **({"implicit": True} if counts else {}),
            "k": 10, "top_n": 10}


def check_rating(df: DataFrame, rating: str) -> None:
    """Raise one line when the rating column is missing or holds values that are not numbers."""
    if rating not in df.columns:
        raise InputDataError(f"--rating column {rating!r} not found; available columns: {', '.join(df.columns)[:300]}")
    if isinstance(df.schema[rating].dataType, NumericType):
        return
    col = F.col(f"`{rating}`")
    bad = df.where(col.isNotNull() & F.expr(f"try_cast(`{rating}` AS DOUBLE)").isNull()).select(col).first()
    if bad is not None:
        raise InputDataError(f"rating column {rating!r} holds {str(bad[0])[:40]!r}, not a number: ratings must be "
                             "numbers (or leave --rating out for implicit feedback)")


def interaction_hint(columns: list[Column], rows: int) -> str:
    """A hint when two repeated ID-like columns look like user-item pairs ("" otherwise)."""
    ids = [c for c in columns if (id_like_name(c.name) or any(w in c.name.lower() for w in PAIR_WORDS))
           and c.dtype in ("int", "bigint", "smallint", "string") and 1 < c.distinct < 0.95 * rows]
    if len(ids) < 2:
        return ""
    user, item = ids[0].name, ids[1].name
    rating = next((c.name for c in columns if c.role == "numeric" and c.name not in (user, item)
                   and any(w in c.name.lower() for w in ("rating", "score", "stars", "count", "plays"))), None)
    return (f"{user} x {item} look like user-item interactions: for recommendations, frame with --task recommendation "
            f"--user {user} --item {item}" + (f" --rating {rating}" if rating else ""))


def no_target_message(columns: list[Column], rows: int) -> str:
    hint = interaction_hint(columns, rows)
    return ("no --target: give --target COLUMN for classification or regression, or --task clustering"
            + (f"; {hint}" if hint else ", or --task recommendation --user COL --item COL"))
