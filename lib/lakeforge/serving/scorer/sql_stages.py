"""SQLTransformer: the ``SELECT *, <expr> AS <col>, ... FROM __THIS__`` statements lakeforge
generates (lakeforge.features.pipeline / stages / plan), evaluated without Spark.

At load time the statement is parsed with sqlglot (Spark dialect) and compiled into closures, one
per output column (lakeforge.serving.scorer.sql_expr, sql_functions, sql_builtins); an expression, function or clause the
interpreter does not implement raises ``UnsupportedStage`` naming it, so a model is never scored
with a guessed value. Values follow Spark 4's semantics (ANSI mode, its default): null
propagation, three-valued logic, NaN equal to itself and above every number, ``try_cast`` to null
but ``CAST`` failing the batch, ``/`` by zero failing. Output columns are ``object`` arrays.

``SELECT *`` keeps the input columns; an output named like an input column would be a duplicate
column in Spark (an ambiguous reference for every later stage), so it fails here too. As in
Spark, an expression may read an alias defined earlier in the same SELECT when no input column
has that name (lateral column alias).
"""

from __future__ import annotations

from collections import ChainMap
from pathlib import Path

import numpy as np
import sqlglot
from sqlglot import expressions as E

from lakeforge.serving.scorer import sql_builtins, sql_functions  # noqa: F401 - they register the SQL operators and functions
from lakeforge.serving.scorer.base import Frame, UnsupportedStage, num_rows, param, register
from lakeforge.serving.scorer.sql_expr import SqlError, compile_expr


class SQLTransformerStage:
    name = "SQLTransformer"

    def __init__(self, statement: str):
        self.statement = statement
        try:
            tree = sqlglot.parse_one(statement, read="spark")
        except sqlglot.errors.ParseError as exc:
            raise UnsupportedStage(f"SQLTransformer: cannot parse {statement[:120]!r}: {str(exc)[:200]}") from None
        self.star, self.outputs = _select_list(tree, statement)

    def transform(self, frame: Frame) -> Frame:
        n = num_rows(frame)
        new: dict[str, np.ndarray] = {}
        scope = ChainMap(frame, new)
        scope.memo = {}  # sub-expression values (sql_expr.compile_expr), for this call only
        for name, fn in self.outputs:
            if self.star and name in frame:
                raise ValueError(f"SQLTransformer: the output column {name!r} is also an input column: Spark would hold it "
                                 "twice (an ambiguous reference)")
            values = fn(scope, n)
            col = np.empty(n, dtype=object)
            col[:] = values
            for v in values:
                if type(v) is SqlError:
                    raise ValueError(f"SQLTransformer: column {name!r}: {v.message}")
            new[name] = col
        out = dict(frame) if self.star else {}
        out.update(new)
        return out


def _select_list(tree, statement: str) -> tuple[bool, list]:
    if not isinstance(tree, E.Select):
        raise UnsupportedStage(f"SQLTransformer: not a SELECT statement: {statement[:120]!r}")
    source = tree.args.get("from_") or tree.args.get("from")
    table = source.this if source is not None else None
    if not isinstance(table, E.Table) or table.name.upper() != "__THIS__":
        raise UnsupportedStage(f"SQLTransformer: only SELECT ... FROM __THIS__ is supported: {statement[:120]!r}")
    for clause in ("where", "group", "having", "order", "limit", "joins", "distinct", "qualify", "windows", "with"):
        if tree.args.get(clause):
            raise UnsupportedStage(f"SQLTransformer: the {clause.upper()} clause is not supported: {statement[:120]!r}")
    star, outputs = False, []
    for e in tree.expressions:
        if isinstance(e, E.Star):
            if any(e.args.get(k) for k in ("except", "replace", "rename")):
                raise UnsupportedStage("SQLTransformer: SELECT * EXCEPT/REPLACE is not supported")
            star = True
        elif isinstance(e, E.Alias):
            outputs.append((e.alias, compile_expr(e.this)))
        elif isinstance(e, E.Column) and isinstance(e.this, E.Identifier):
            outputs.append((e.name, compile_expr(e)))
        else:
            raise UnsupportedStage(f"SQLTransformer: an output without a name (AS ...): {e.sql('spark')[:80]!r}")
    return star, outputs


@register("org.apache.spark.ml.feature.SQLTransformer")
def _load(path: Path, meta: dict) -> SQLTransformerStage:
    statement = param(meta, "statement")
    if not statement:
        raise UnsupportedStage("SQLTransformer: no statement saved")
    return SQLTransformerStage(statement)
