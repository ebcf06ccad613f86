"""SQL text helpers: quoted identifiers and literals for the SQL statements lakeforge generates
(SQLTransformer statements, checks, DDL)."""

from __future__ import annotations

import math


def q(name: str) -> str:
    """A backquoted SQL identifier."""
    return "`" + name.replace("`", "``") + "`"


def lit(value: str) -> str:
    """A Spark SQL string literal (backslash escapes, the parser's default)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def dbl(value: float) -> str:
    """A double literal that round-trips exactly."""
    if math.isnan(value):
        return "CAST('NaN' AS DOUBLE)"
    if math.isinf(value):
        return "CAST('Infinity' AS DOUBLE)" if value > 0 else "CAST('-Infinity' AS DOUBLE)"
    return repr(float(value)) + "D"


def select_sql(exprs: list[str]) -> str:
    """``SELECT *, <exprs> FROM __THIS__``: new columns next to the input's (scoring keeps its
    passthrough columns)."""
    return "SELECT *, " + ", ".join(exprs) + " FROM __THIS__"
