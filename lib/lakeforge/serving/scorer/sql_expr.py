"""A compiler from sqlglot expression trees (Spark dialect) to column closures.

``compile_expr(node)`` returns ``fn(scope, n) -> list`` giving the expression's value for each of
the ``n`` rows (``scope`` maps column names to arrays). Errors Spark would raise (ANSI casts,
division by zero) are ``SqlError`` values that propagate like nulls and fail the statement only
if they reach an output, so a branch CASE never takes or an AND already false does not fail,
as in Spark. The operators and functions (lakeforge.serving.scorer.sql_functions and
sql_builtins) register themselves in ``HANDLERS`` (by sqlglot node class) and ``ANONYMOUS`` (by
the name of a function sqlglot does not model).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from typing import Callable

from sqlglot import expressions as E

from lakeforge.serving.scorer.base import UnsupportedStage
from lakeforge.serving.scorer import sql_values as V
from lakeforge.serving.scorer.sql_values import cast_value

Fn = Callable[[object, int], list]
HANDLERS: dict[type, Callable[[E.Expression], Fn]] = {}
ANONYMOUS: dict[str, Callable[[E.Expression], Fn]] = {}


class SqlError:
    """An error value (Spark would fail the query if it reached the result)."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


def is_bad(v) -> bool:
    return v is None or type(v) is SqlError


def call(fn, *args):
    """fn(*args) with Spark's failures as SqlError values."""
    try:
        return fn(*args)
    except (ValueError, ArithmeticError, TypeError) as exc:
        return SqlError(str(exc)[:200])


# --- columns and literals -----------------------------------------------------------------------


def _resolve(scope, name: str) -> str:
    if name in scope:
        return name
    hits = [k for k in scope if k.lower() == name.lower()]
    if len(hits) != 1:
        raise ValueError(f"SQLTransformer: column {name!r} " + ("is ambiguous" if hits else "is not in the input"))
    return hits[0]


def _column(node: E.Column) -> Fn:
    parts = [p.name for p in node.parts]
    head, fields = parts[0], parts[1:]

    def run(scope, n):
        values = scope[_resolve(scope, head)].tolist()
        for f in fields:
            values = [v if is_bad(v) else field(v, f) for v in values]
        return values

    return run


def field(struct, name: str):
    if not isinstance(struct, dict):
        return SqlError(f"{type(struct).__name__} has no field {name!r}")
    if name in struct:
        return struct[name]
    hits = [k for k in struct if k.lower() == name.lower()]
    return struct[hits[0]] if len(hits) == 1 else SqlError(f"no struct field {name!r}")


def literal_value(node: E.Expression):
    """The Python value of a literal (numbers as Spark types them), else raises UnsupportedStage."""
    if isinstance(node, E.Literal):
        text = node.this
        if node.is_string:
            return text
        if re.fullmatch(r"[0-9]+", text):
            return int(text)
        if "e" in text.lower():
            return float(text)
        return Decimal(text)
    if isinstance(node, E.Null):
        return None
    if isinstance(node, E.Boolean):
        return bool(node.this)
    if isinstance(node, E.Neg):
        return -literal_value(node.this)
    if isinstance(node, (E.Cast, E.TryCast)):
        return cast_value(literal_value(node.this), node.to, safe=False)
    raise UnsupportedStage(f"SQLTransformer: expected a literal, got {node.sql('spark')[:80]!r}")


def constant(value) -> Fn:
    return lambda scope, n: [value] * n


# --- Spark's comparison -------------------------------------------------------------------------


def compare(a, b) -> int:
    """Spark's ordering of two non-null values: NaN equals NaN and is above every number."""
    if isinstance(a, float) or isinstance(b, float):
        a, b = _as_float(a), _as_float(b)
        an, bn = a != a, b != b
        if an or bn:
            return int(an) - int(bn)
    elif type(a) is not type(b) and not (isinstance(a, (int, Decimal)) and isinstance(b, (int, Decimal))):
        a, b = _coerce_pair(a, b)
    return (a > b) - (a < b)


def _as_float(v) -> float:
    if isinstance(v, str):
        return V.parse_double(v)
    return float(v)


def _coerce_pair(a, b):
    for x, y, flip in ((a, b, False), (b, a, True)):
        if isinstance(x, str) and not isinstance(y, str):
            if isinstance(y, dt.datetime):
                x = V.to_timestamp(x)
            elif isinstance(y, dt.date):
                x = V.to_date(x)
            elif isinstance(y, bool):
                x = V.to_boolean(x)
            elif isinstance(y, (int, Decimal)):
                x = V.parse_double(x)
                y = float(y)
            return (y, x) if flip else (x, y)
    if isinstance(a, dt.datetime) != isinstance(b, dt.datetime):
        return V.to_timestamp(a), V.to_timestamp(b)
    return a, b


def equal(a, b):
    """Spark's ``=`` (null and errors propagate)."""
    if is_bad(a):
        return a
    if is_bad(b):
        return b
    c = call(compare, a, b)
    return c if type(c) is SqlError else c == 0


# --- the dispatcher -----------------------------------------------------------------------------


def compile_expr(node: E.Expression) -> Fn:
    fn = _compile(node)
    if isinstance(node, (E.Column, E.Literal, E.Null, E.Boolean, E.Paren)):
        return fn
    key = node.sql("spark")

    def memo(scope, n):  # the statement's scope carries a dict: a sub-expression is evaluated once
        cache = getattr(scope, "memo", None)
        if cache is None:
            return fn(scope, n)
        if key not in cache:
            cache[key] = fn(scope, n)
        return cache[key]

    return memo


def _compile(node: E.Expression) -> Fn:
    if isinstance(node, E.Paren):
        return compile_expr(node.this)
    if isinstance(node, E.Column):
        return _column(node)
    if isinstance(node, (E.Literal, E.Null, E.Boolean)):
        return constant(literal_value(node))
    if isinstance(node, E.Anonymous):
        handler = ANONYMOUS.get(node.name.lower())
        if handler is None:
            raise UnsupportedStage(f"SQLTransformer: the SQL function {node.name.lower()}() is not supported by the numpy scorer")
        return handler(node)
    handler = HANDLERS.get(type(node))
    if handler is None:
        raise UnsupportedStage(f"SQLTransformer: the SQL {_what(node)} is not supported by the numpy scorer")
    return handler(node)


def _what(node: E.Expression) -> str:
    name = node.key.upper()
    try:
        text = node.sql("spark")[:80]
    except Exception:  # noqa: BLE001 - only for the message
        text = name
    return f"function/operator {name} ({text!r})"


_FAILURES = (ValueError, ArithmeticError, TypeError)


def unary(fn, arg: Fn) -> Fn:
    """Elementwise ``fn`` over one column; null and errors pass through."""

    def run(scope, n):
        out = []
        add = out.append
        for v in arg(scope, n):
            if v is None or type(v) is SqlError:
                add(v)
                continue
            try:
                add(fn(v))
            except _FAILURES as exc:
                add(SqlError(str(exc)[:200]))
        return out

    return run


def nary(fn, args: list[Fn]) -> Fn:
    """Elementwise ``fn`` over several columns; a null (or error) argument gives null (or it)."""
    if len(args) == 2:
        first, second = args

        def run2(scope, n):
            out = []
            add = out.append
            for a, b in zip(first(scope, n), second(scope, n)):
                if a is None or type(a) is SqlError:
                    add(a)
                elif b is None or type(b) is SqlError:
                    add(b)
                else:
                    try:
                        add(fn(a, b))
                    except _FAILURES as exc:
                        add(SqlError(str(exc)[:200]))
            return out

        return run2

    def run(scope, n):
        out = []
        for vals in zip(*[a(scope, n) for a in args]):
            bad = next((v for v in vals if is_bad(v)), 0)
            out.append(call(fn, *vals) if bad == 0 else bad)
        return out

    return run


def finite_or_nan(fn):
    """A math function with Java's results where Python raises (NaN for a domain error, inf for
    an overflow)."""

    def g(*args):
        try:
            return fn(*args)
        except OverflowError:
            return math.inf
        except ValueError:
            return math.nan

    return g
