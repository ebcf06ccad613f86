"""The SQL functions the SQLTransformer interpreter implements (Spark semantics): try_element_at /
element_at / subscripts over literal maps, arrays and structs, size; text (length, trim, lower,
upper, concat, substring); math (log1p, ln, log, exp, sqrt, pow, abs, floor, ceil, round, sign,
isnan); dates (year, month, dayofmonth, dayofweek, dayofyear, quarter, hour, minute, second,
to_date, try_to_timestamp, datediff, current_date). Anything else raises UnsupportedStage at
load time, naming the function.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import ROUND_HALF_UP, Decimal

from sqlglot import expressions as E

from lakeforge.serving.scorer import sql_values as V
from lakeforge.serving.scorer.base import UnsupportedStage
from lakeforge.serving.scorer.sql_expr import (ANONYMOUS, HANDLERS, Fn, SqlError, compile_expr, field, finite_or_nan, is_bad,
                                               literal_value, nary, unary)
from lakeforge.serving.scorer.sql_functions import if_node, is_node, negate

# --- maps, arrays, structs ----------------------------------------------------------------------


def _bracket(node) -> Fn:
    if len(node.expressions) != 1:
        raise UnsupportedStage("SQLTransformer: a subscript with several keys")
    key, target = compile_expr(node.expressions[0]), node.this
    safe, offset = bool(node.args.get("safe")), int(node.args.get("offset") or 0)
    if isinstance(target, E.VarMap):
        keys = [literal_value(k) for k in target.args["keys"].expressions]
        vals = [literal_value(v) for v in target.args["values"].expressions]
        table = dict(zip(keys, vals))

        def lookup(k):
            if k in table:
                return table[k]
            return None if safe or not offset else SqlError(f"[MAP_KEY_DOES_NOT_EXIST] key {k!r}")

        return lambda scope, n: [k if is_bad(k) else lookup(k) for k in key(scope, n)]
    items = _literal_array(target)
    if items is not None:  # array(<literals>)[i]: built once (a level encoding's values: thousands of them)
        return nary(lambda k: _element(items, k, safe, offset), [key])
    container = compile_expr(target)

    def one(c, k):
        if isinstance(c, dict):
            return c.get(k) if k in c or safe or not offset else SqlError(f"[MAP_KEY_DOES_NOT_EXIST] key {k!r}")
        return _element(c, k, safe, offset)

    return nary(one, [container, key])


def _literal_array(node) -> list | None:
    """The values of an ``array(...)`` of literals, else None."""
    if not isinstance(node, E.Array):
        return None
    try:
        return [literal_value(e) for e in node.expressions]
    except UnsupportedStage:
        return None


def _element(items: list, k, safe: bool, offset: int):
    """``element_at`` (offset 1) / ``[]`` (offset 0) of a Python list with Spark's index rules."""
    i = int(k) - offset if k > 0 or not offset else len(items) + int(k)
    if 0 <= i < len(items):
        return items[i]
    return None if safe else SqlError(f"[INVALID_ARRAY_INDEX] index {k} for an array of {len(items)}")


def _size(node) -> Fn:
    return unary(len, compile_expr(node.this))


def _dot(node) -> Fn:
    name = node.expression.name
    return unary(lambda s: field(s, name), compile_expr(node.this))


# --- text ---------------------------------------------------------------------------------------


def _trim(node) -> Fn:
    if node.args.get("expression") is not None or node.args.get("collation") is not None:
        raise UnsupportedStage("SQLTransformer: trim with characters is not supported")
    strip = {"LEADING": str.lstrip, "TRAILING": str.rstrip}.get((node.args.get("position") or "").upper(), str.strip)
    return unary(lambda s: strip(V.to_string(s), " "), compile_expr(node.this))


def _substring(node) -> Fn:
    args = [compile_expr(node.this), compile_expr(node.args["start"])]
    if node.args.get("length") is not None:
        args.append(compile_expr(node.args["length"]))

    def sub(s, pos, length=2**31 - 1):
        s = V.to_string(s)
        start = pos - 1 if pos > 0 else len(s) + pos if pos < 0 else 0
        end = start + length
        start = max(start, 0)
        return "" if start >= end else s[start:max(min(end, len(s)), start)]

    return nary(sub, args)


def _concat(node) -> Fn:
    args = [compile_expr(e) for e in node.expressions] if node.expressions else [compile_expr(node.this),
                                                                                  compile_expr(node.expression)]
    return nary(lambda *vals: "".join(V.to_string(v) for v in vals), args)


# --- math ---------------------------------------------------------------------------------------


def _log1p(x):
    x = V.to_double(x)
    return None if x <= -1.0 else math.log1p(x)


def _ln(x):
    x = V.to_double(x)
    return None if x <= 0 else math.log(x)


def _log(node) -> Fn:
    base = node.this
    if isinstance(base, E.Literal) and base.this == "10":
        return unary(lambda x: None if V.to_double(x) <= 0 else math.log10(V.to_double(x)), compile_expr(node.expression))

    def log(b, x):
        b, x = V.to_double(b), V.to_double(x)
        return None if b <= 0 or x <= 0 else math.log(x) / math.log(b)

    return nary(log, [compile_expr(base), compile_expr(node.expression)])


def _floor_ceil(fn):
    def one(x):
        if isinstance(x, float):
            if x != x:
                return 0
            if math.isinf(x):
                return 2**63 - 1 if x > 0 else -(2**63)
        return int(fn(x))

    return lambda node: unary(one, compile_expr(node.this))


def _round(node) -> Fn:
    digits = int(literal_value(node.args["decimals"])) if node.args.get("decimals") is not None else 0

    def one(x):
        if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
            return x
        q = Decimal(repr(x) if isinstance(x, float) else x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
        return float(q) if isinstance(x, float) else int(q) if isinstance(x, int) else q

    return unary(one, compile_expr(node.this))


def _isnan(node) -> Fn:
    arg = compile_expr(node.this)
    return lambda scope, n: [v if type(v) is SqlError else isinstance(v, float) and v != v for v in arg(scope, n)]


def _math(fn):
    return lambda node: unary(lambda x: finite_or_nan(fn)(V.to_double(x)), compile_expr(node.this))


# --- dates --------------------------------------------------------------------------------------


def _date_part(fn):
    return lambda node: unary(lambda v: fn(V.to_date(v)), compile_expr(node.this))


def _time_part(fn):
    return lambda node: unary(lambda v: fn(V.to_timestamp(v)), compile_expr(node.this))


def _to_date(node) -> Fn:
    if node.args.get("format") is not None:
        raise UnsupportedStage("SQLTransformer: to_date with a format is not supported (use try_to_timestamp)")
    return unary(V.to_date, compile_expr(node.this))


def _datediff(node) -> Fn:
    return nary(lambda a, b: (V.to_date(a) - V.to_date(b)).days, [compile_expr(node.this), compile_expr(node.expression)])


def _try_to_timestamp(node) -> Fn:
    args = node.expressions
    rx = None
    if len(args) == 2:
        fmt = literal_value(args[1])
        try:
            rx = V.compile_pattern(fmt)
        except ValueError as exc:
            raise UnsupportedStage(f"SQLTransformer: try_to_timestamp format {fmt!r}: {exc} is not supported") from None
    elif len(args) != 1:
        raise UnsupportedStage("SQLTransformer: try_to_timestamp takes 1 or 2 arguments")

    def one(v):
        try:
            if rx is not None and isinstance(v, str):
                return V.parse_with_pattern(v, rx)
            return V.to_timestamp(v)
        except V.CastError:
            return None

    return unary(one, compile_expr(args[0]))


def _sign(x):
    x = V.to_double(x)
    return x if x != x or x == 0 else math.copysign(1.0, x)


ANONYMOUS.update({
    "log1p": lambda node: unary(_log1p, compile_expr(node.expressions[0])),
    "try_to_timestamp": _try_to_timestamp,
    "isnull": lambda node: is_node(E.Is(this=node.expressions[0], expression=E.Null())),
    "isnotnull": lambda node: negate(is_node(E.Is(this=node.expressions[0], expression=E.Null()))),
    "cardinality": lambda node: unary(len, compile_expr(node.expressions[0])),
    "iff": lambda node: if_node(E.If(this=node.expressions[0], true=node.expressions[1], false=node.expressions[2])),
    "weekday": lambda node: unary(lambda v: V.to_date(v).weekday(), compile_expr(node.expressions[0])),
    "char_length": lambda node: unary(lambda s: len(V.to_string(s)), compile_expr(node.expressions[0])),
})

HANDLERS.update({
    E.Bracket: _bracket,
    E.ArraySize: _size,
    E.Dot: _dot,
    E.Length: lambda node: unary(lambda s: len(V.to_string(s)), compile_expr(node.this)),
    E.Lower: lambda node: unary(lambda s: V.to_string(s).lower(), compile_expr(node.this)),
    E.Upper: lambda node: unary(lambda s: V.to_string(s).upper(), compile_expr(node.this)),
    E.Trim: _trim,
    E.Substring: _substring,
    E.Concat: _concat,
    E.DPipe: _concat,
    E.Ln: lambda node: unary(_ln, compile_expr(node.this)),
    E.Log: _log,
    E.Exp: _math(math.exp),
    E.Sqrt: _math(math.sqrt),
    E.Pow: lambda node: nary(lambda a, b: finite_or_nan(math.pow)(V.to_double(a), V.to_double(b)),
                             [compile_expr(node.this), compile_expr(node.expression)]),
    E.Abs: lambda node: unary(abs, compile_expr(node.this)),
    E.Floor: _floor_ceil(math.floor),
    E.Ceil: _floor_ceil(math.ceil),
    E.Round: _round,
    E.Sign: lambda node: unary(_sign, compile_expr(node.this)),
    E.IsNan: _isnan,
    E.Year: _date_part(lambda d: d.year),
    E.Month: _date_part(lambda d: d.month),
    E.DayOfMonth: _date_part(lambda d: d.day),
    E.DayOfWeek: _date_part(V.day_of_week),
    E.DayOfYear: _date_part(lambda d: d.timetuple().tm_yday),
    E.Quarter: _date_part(lambda d: (d.month - 1) // 3 + 1),
    E.Hour: _time_part(lambda t: t.hour),
    E.Minute: _time_part(lambda t: t.minute),
    E.Second: _time_part(lambda t: t.second),
    E.TsOrDsToDate: _to_date,
    E.DateDiff: _datediff,
    E.CurrentDate: lambda node: lambda scope, n: [dt.date.today()] * n,
})
