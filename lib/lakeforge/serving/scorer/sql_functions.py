"""The SQL operators the SQLTransformer interpreter implements, with Spark 4's semantics: casts,
arithmetic (``/`` and ``%`` by zero fail, ``try_divide`` gives null), comparisons (NaN equal to
itself and above every number), AND/OR/NOT (three-valued), IS NULL, IN, BETWEEN, LIKE, CASE/IF,
COALESCE, NULLIF, GREATEST/LEAST (nulls skipped). Functions (text, math, dates, maps, arrays,
structs) are in lakeforge.serving.scorer.sql_builtins; both register into sql_expr.HANDLERS.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal

from sqlglot import expressions as E

from lakeforge.serving.scorer import sql_values as V
from lakeforge.serving.scorer.base import UnsupportedStage
from lakeforge.serving.scorer.sql_expr import (HANDLERS, Fn, SqlError, call, compare, compile_expr, constant, equal, is_bad,
                                               literal_value, nary, unary)


def _cast(node) -> Fn:
    fn, arg = V.caster(node.to), compile_expr(node.this)
    safe = bool(node.args.get("safe"))
    if fn is V.to_double:
        fn = V.to_double_fast

    def run(scope, n):
        out = []
        add = out.append
        for v in arg(scope, n):
            if v is None or type(v) is SqlError:
                add(v)
                continue
            try:
                add(fn(v))
            except (V.CastError, ValueError, OverflowError) as exc:
                add(None if safe else SqlError(f"[CAST_INVALID_INPUT] {exc}"))
        return out

    return run


# --- arithmetic ---------------------------------------------------------------------------------


def _num_pair(a, b):
    if isinstance(a, (str, dt.date)) or isinstance(b, (str, dt.date)):
        a, b = V.to_double(a), V.to_double(b)
    if isinstance(a, float) or isinstance(b, float):
        return float(a), float(b)
    return a, b


def _add(a, b):
    a, b = _num_pair(a, b)
    return a + b


def _sub(a, b):
    a, b = _num_pair(a, b)
    return a - b


def _mul(a, b):
    a, b = _num_pair(a, b)
    return a * b


def _div(a, b):
    a, b = _num_pair(a, b)
    if b == 0:
        raise ArithmeticError("[DIVIDE_BY_ZERO] Division by zero")
    return float(a) / float(b)


def _try_div(a, b):
    a, b = _num_pair(a, b)
    return None if b == 0 else float(a) / float(b)


def _mod(a, b):
    a, b = _num_pair(a, b)
    if b == 0:
        raise ArithmeticError("[DIVIDE_BY_ZERO] Division by zero")
    if isinstance(a, float):
        return math.fmod(a, b)
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def _int_div(a, b):
    a, b = _num_pair(a, b)
    if b == 0:
        raise ArithmeticError("[DIVIDE_BY_ZERO] Division by zero")
    q = abs(a) // abs(b)
    return int(q if (a < 0) == (b < 0) else -q)


def _binary(fn):
    return lambda node: nary(fn, [compile_expr(node.this), compile_expr(node.expression)])


def _cmp(test):
    def fn(a, b):
        return test(compare(a, b))

    return _binary(fn)


# --- logic --------------------------------------------------------------------------------------


def _and(node) -> Fn:
    left, right = compile_expr(node.this), compile_expr(node.expression)

    def one(a, b):
        if a is False or b is False:
            return False
        if type(a) is SqlError:
            return a
        if type(b) is SqlError:
            return b
        return None if a is None or b is None else True

    return lambda scope, n: [one(a, b) for a, b in zip(left(scope, n), right(scope, n))]


def _or(node) -> Fn:
    left, right = compile_expr(node.this), compile_expr(node.expression)

    def one(a, b):
        if a is True or b is True:
            return True
        if type(a) is SqlError:
            return a
        if type(b) is SqlError:
            return b
        return None if a is None or b is None else False

    return lambda scope, n: [one(a, b) for a, b in zip(left(scope, n), right(scope, n))]


def is_node(node) -> Fn:
    if not isinstance(node.expression, E.Null):
        raise UnsupportedStage(f"SQLTransformer: {node.sql('spark')[:80]!r} (only IS NULL / IS NOT NULL)")
    arg = compile_expr(node.this)
    return lambda scope, n: [v if type(v) is SqlError else v is None for v in arg(scope, n)]


def _in(node) -> Fn:
    if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
        raise UnsupportedStage("SQLTransformer: IN (subquery) is not supported")
    arg = compile_expr(node.this)
    values = [literal_value(e) for e in node.expressions]
    has_null = any(v is None for v in values)
    values = [v for v in values if v is not None]
    strings = frozenset(values) if all(type(v) is str for v in values) else None

    miss = None if has_null else False

    def one(v):
        return True if any(compare(v, x) == 0 for x in values) else miss

    def run(scope, n):
        out = []
        add = out.append
        for v in arg(scope, n):
            if v is None or type(v) is SqlError:
                add(v)
            elif strings is not None and type(v) is str:
                add(True if v in strings else miss)
            else:
                add(call(one, v))
        return out

    return run


def _between(node) -> Fn:
    lo, hi = node.args["low"], node.args["high"]
    ge = E.GTE(this=node.this, expression=lo)
    le = E.LTE(this=node.this.copy(), expression=hi)
    return _and(E.And(this=ge, expression=le))


def _like(node) -> Fn:
    pattern = literal_value(node.expression)
    if node.args.get("escape") is not None or not isinstance(pattern, str):
        raise UnsupportedStage("SQLTransformer: LIKE with an escape or a non-literal pattern is not supported")
    rx = re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern), re.S)
    return unary(lambda s: rx.fullmatch(V.to_string(s)) is not None, compile_expr(node.this))


def _case(node) -> Fn:
    subject = compile_expr(node.this) if node.this is not None else None
    branches = [(compile_expr(i.this), compile_expr(i.args["true"])) for i in node.args["ifs"]]
    default = compile_expr(node.args["default"]) if node.args.get("default") is not None else constant(None)
    return promote(_choose(subject, branches, default), [i.args["true"] for i in node.args["ifs"]] + [node.args.get("default")])


def if_node(node) -> Fn:
    false = node.args.get("false")
    chosen = _choose(None, [(compile_expr(node.this), compile_expr(node.args["true"]))],
                     compile_expr(false) if false is not None else constant(None))
    return promote(chosen, [node.args["true"], false])


_DOUBLE_NODES = (E.Div, E.SafeDivide, E.Ln, E.Log, E.Exp, E.Sqrt, E.Pow)


def is_double(node: E.Expression) -> bool:
    """True when the expression is a double whatever the input (a cast to double, a division, a
    double literal, log/exp/sqrt/pow...): Spark then types CASE / COALESCE / GREATEST as double."""
    if isinstance(node, E.Paren):
        return is_double(node.this)
    if isinstance(node, (E.Cast, E.TryCast)):
        return str(getattr(node.to.this, "value", node.to.this)).upper() in ("DOUBLE", "FLOAT")
    if isinstance(node, E.Literal):
        return not node.is_string and "e" in node.this.lower()
    if isinstance(node, E.Anonymous):
        return node.name.lower() == "log1p"
    if isinstance(node, (E.Add, E.Sub, E.Mul, E.Mod)):
        return is_double(node.this) or is_double(node.expression)
    if isinstance(node, E.Neg):
        return is_double(node.this)
    return isinstance(node, _DOUBLE_NODES)


def promote(fn: Fn, nodes: list) -> Fn:
    """``fn`` with integer and decimal results as doubles when one of ``nodes`` is a double (the
    common type Spark gives the branches)."""
    if not any(n is not None and is_double(n) for n in nodes):
        return fn

    def run(scope, n):
        return [float(v) if type(v) is int or isinstance(v, Decimal) else v for v in fn(scope, n)]

    return run


def _choose(subject, branches, default) -> Fn:
    """The first branch whose condition is true (an error condition is the result), else the
    default: branches applied last to first over whole columns."""

    def run(scope, n):
        out = default(scope, n)
        s = subject(scope, n) if subject is not None else None
        for cond_fn, value_fn in reversed(branches):
            cond = cond_fn(scope, n)
            if s is not None:
                cond = [equal(a, b) for a, b in zip(s, cond)]
            values = value_fn(scope, n)
            out = [v if c is True else c if type(c) is SqlError else o for c, v, o in zip(cond, values, out)]
        return out

    return run


def _coalesce(node) -> Fn:
    args = [compile_expr(node.this)] + [compile_expr(e) for e in node.expressions]

    def run(scope, n):
        cols = [a(scope, n) for a in args]
        return [next((v for v in vals if v is not None), None) for vals in zip(*cols)]

    return promote(run, [node.this, *node.expressions])


def _nullif(node) -> Fn:
    return nary(lambda a, b: None if compare(a, b) == 0 else a, [compile_expr(node.this), compile_expr(node.expression)])


def _extreme(sign: int):
    def build(node) -> Fn:
        args = [compile_expr(node.this)] + [compile_expr(e) for e in node.expressions]

        def one(vals):
            err = next((v for v in vals if type(v) is SqlError), None)
            if err is not None:
                return err
            vals = [v for v in vals if v is not None]
            if not vals:
                return None
            best = vals[0]
            for v in vals[1:]:
                if compare(v, best) * sign > 0:
                    best = v
            return float(best) if any(isinstance(v, float) for v in vals) else best

        run = lambda scope, n: [call(one, vals) for vals in zip(*[a(scope, n) for a in args])]  # noqa: E731
        return promote(run, [node.this, *node.expressions])

    return build


def negate(fn: Fn) -> Fn:
    return lambda scope, n: [v if is_bad(v) else not v for v in fn(scope, n)]


def _null_safe_eq(node) -> Fn:
    left, right = compile_expr(node.this), compile_expr(node.expression)

    def one(a, b):
        if a is None or b is None:
            return a is None and b is None
        return equal(a, b)

    return lambda scope, n: [one(a, b) for a, b in zip(left(scope, n), right(scope, n))]


HANDLERS.update({
    E.Cast: _cast,
    E.TryCast: _cast,
    E.Add: _binary(_add),
    E.Sub: _binary(_sub),
    E.Mul: _binary(_mul),
    E.Div: _binary(_div),
    E.SafeDivide: _binary(_try_div),
    E.Mod: _binary(_mod),
    E.IntDiv: _binary(_int_div),
    E.Neg: lambda node: unary(lambda v: -v, compile_expr(node.this)),
    E.EQ: _cmp(lambda c: c == 0),
    E.NEQ: _cmp(lambda c: c != 0),
    E.GT: _cmp(lambda c: c > 0),
    E.GTE: _cmp(lambda c: c >= 0),
    E.LT: _cmp(lambda c: c < 0),
    E.LTE: _cmp(lambda c: c <= 0),
    E.NullSafeEQ: lambda node: _null_safe_eq(node),
    E.And: _and,
    E.Or: _or,
    E.Not: lambda node: negate(compile_expr(node.this)),
    E.Is: is_node,
    E.In: _in,
    E.Between: _between,
    E.Like: _like,
    E.Case: _case,
    E.If: if_node,
    E.Coalesce: _coalesce,
    E.Nullif: _nullif,
    E.Greatest: _extreme(1),
    E.Least: _extreme(-1),
})
