"""The problem card: what lakeforge frame found out about a dataset and its target (Column,
ProblemCard), and ``to_yaml``, the pipeline config it writes with the framing as comments."""

from __future__ import annotations

from dataclasses import dataclass, field

from lakeforge.core.config_features import EncodingConfig


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
    encoding: str = ""  # categorical: onehot or bounded (preprocessing.encoding), with ``encoding_reason``
    encoding_reason: str = ""


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
    key_note: str = ""  # why no column is the key ("title is not unique: ..."); "": none looked like one
    task_config: dict = field(default_factory=dict)  # model.<task> of a clustering / recommendation card
    hint: str = ""  # e.g. the table looks like user-item pairs (lakeforge.profiling.frame_tasks)
    memory: str = ""  # the cached feature frame's estimated size and the driver memory it wants
    encoding: dict = field(default_factory=lambda: EncodingConfig().model_dump())  # preprocessing.encoding it writes

    def roles(self, role: str) -> list[str]:
        return [c.name for c in self.columns if c.role == role]


def to_yaml(card: ProblemCard) -> str:
    """The pipeline config with the framing as comments (the problem card)."""
    lines = _comments(card)
    lines += _source_lines(card)
    lines += _feature_lines(card)
    lines += _model_lines(card)
    return "\n".join(lines)


def _q(v) -> str:
    """``v`` as a YAML flow value."""
    import yaml

    return yaml.safe_dump(v, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()


def _comments(card: ProblemCard) -> list[str]:
    """The framing: task, classes, metric, leakage suspects, renamed columns, key, every column."""
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
    if card.hint:
        lines.append(f"# Hint: {card.hint}.")
    if card.leakage:
        lines.append("# LEAKAGE SUSPECTS (excluded below; put them back only if known at prediction time):")
        lines += [f"#   - {x}" for x in card.leakage]
    else:
        lines.append("# Leakage suspects: none found.")
    if card.renamed:
        lines.append("# Column names as the bronze table has them (not valid identifiers in the data): "
                     + ", ".join(f"{a!r} -> {b}" for a, b in card.renamed.items()) + ".")
    if card.row_id:
        why = card.key_note or "no ID-like column in the data"
        lines.append(f"# Key: {why}, so ingest adds {card.row_id}, a hash of each row's "
                     "content (source.row_id; identical rows get -2, -3...). Name a real key column instead if there is one.")
    lines.append("# Columns:")
    for c in card.columns:
        lines.append(f"#   {c.name:<28} {c.role:<11} {c.reason}; {c.nulls:,} nulls")
    lines += _encoding_comments(card)
    return lines


def _encoding_comments(card: ProblemCard) -> list[str]:
    """Each categorical column's encoding and why (preprocessing.encoding), and the memory note."""
    coded = [c for c in card.columns if c.role == "categorical" and c.encoding]
    if not coded:
        return [f"# Memory: {card.memory}."] if card.memory else []
    lines = ["# Encodings (by the number of levels, preprocessing.encoding; training counts them again on its rows):"]
    onehot = [c for c in coded if c.encoding == "onehot"]
    if onehot:
        lines.append(f"#   one-hot: {', '.join(c.name for c in onehot)} (at most {max(c.distinct for c in onehot):,} levels each)")
    lines += [f"#   {c.name}: {c.encoding_reason}" for c in coded if c.encoding != "onehot"]
    if card.memory:
        lines.append(f"# Memory: {card.memory}.")
    return lines


def _source_lines(card: ProblemCard) -> list[str]:
    """name, source (with a unique(key) check when the key is a column of the data), key, target,
    positive_class, tables."""
    src = card.source
    lines = [
        f"name: {card.name}",
        "source:",
        f"  format: {src['format']}",
        f"  path: {_q(src['path'])}",
    ]
    if src.get("options"):
        lines.append("  options:")
        lines += [f"    {k}: {_q(v)}" for k, v in src["options"].items()]
    if card.row_id:
        lines.append(f"  row_id: {card.row_id}")
    else:  # the key must stay unique: a load that repeats one fails (the row id is unique by construction)
        lines.append("  checks:")
        lines.append(f"    - {{type: unique, column: {_q(card.key)}, severity: error}}  # a load that repeats a key fails")
    lines.append(f"key: {_q(card.key)}")
    if card.target is not None:  # clustering and recommendation have none
        lines.append(f"target: {_q(card.target)}")
    if card.positive_class is not None:
        lines.append(f"positive_class: {_q(card.positive_class)}")
    lines += [
        "tables:",
        f"  bronze: bronze_{card.name}",
        f"  predictions: predictions_{card.name}",
        f"  leaderboard: leaderboard_{card.name}",
    ]
    return lines


def _feature_lines(card: ProblemCard) -> list[str]:
    """The features by role (leakage suspects excluded), derived features, date parts, free text."""
    leaked = {x.split(":")[0] for x in card.leakage}
    numeric = [c for c in card.roles("numeric") if c not in leaked]
    categorical = [c for c in card.roles("categorical") if c not in leaked]
    excluded = [c.name for c in card.columns if c.role in ("id", "excluded")] + sorted(leaked)
    taken = {c.name for c in card.columns} | {card.target} | {n for c in card.columns for n in c.derived}
    dates = {c.name: [p for p in c.date_parts if f"{c.name}_{p}" not in taken]
             for c in card.columns if c.role == "datetime" and c.name not in leaked}
    dates = {c: parts for c, parts in dates.items() if parts}
    texts = [c.name for c in card.columns if c.role == "text" and c.name not in leaked and f"{c.name}_length" not in taken]
    lines = [
        "features:",
        f"  numeric: {_q(numeric)}",
        f"  categorical: {_q(categorical)}",
        f"  exclude: {_q(excluded)}",
    ]
    derived = {n: spec for c in card.columns for n, spec in c.derived.items()}
    if derived:
        lines.append("  derived:                     # features parsed from text columns, nested records or lists")
        lines += [f"    {n}: {_q(spec)}" for n, spec in derived.items()]
    if dates:
        lines.append("  dates:                       # date parts as numeric features <column>_<part>")
        lines += [f"    {_q(n)}: {{parts: {_q(parts)}}}" for n, parts in dates.items()]
    if texts:
        lines.append(f"  text_length: {_q(texts)}  # free text: its length as a feature <column>_length")
        lines.append(f"  text_tfidf: {_q(texts)}   # and its words: TF-IDF weights in text_tfidf_size hashed slots")
        lines.append("  text_tfidf_size: 256")
    return lines


def _model_lines(card: ProblemCard) -> list[str]:
    """preprocessing, model, scoring."""
    enc = card.encoding
    notes = {"max_onehot_levels": "at most this many levels: one-hot, every level (null: always)",
             "top_levels": "more: the most frequent levels one-hot, the rest one slot,",
             "min_count": "each kept level seen in this many training rows,",
             "high_cardinality": "plus the target mean per level, fitted in-fold (or frequency, none)",
             "smoothing": "of the target mean: (sum + smoothing * prior) / (count + smoothing)"}
    lines = [
        "preprocessing:",
        "  numeric_impute: median",
        "  scale: true",
        "  encoding:                     # categorical columns by their number of levels (see the comments above)",
        *[f"    {f'{k}: {_q(enc[k])}':<28}# {why}" for k, why in notes.items()],
        "model:",
        f"  registered_name: {card.name}",
        f"  task: {card.task}",
        *([f"  {card.task}: {_q(card.task_config)}"] if card.task_config else []),
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
    return lines
