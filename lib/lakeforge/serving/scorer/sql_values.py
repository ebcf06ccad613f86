"""Spark SQL's value semantics in Python, for the SQLTransformer interpreter (sql_stages) and the
StringIndexer (which casts its input to text): casts between text, numbers, booleans, dates and
timestamps, Java's double formatting and parsing, and the date parts.

Values are Python objects: ``None`` (null), ``bool``, ``int`` (Spark's integral types), ``float``
(double), ``decimal.Decimal`` (decimal literals), ``str``, ``datetime.date``, ``datetime.datetime``
(a timestamp in the local time zone, naive, as Spark's session time zone defaults to the JVM's),
``list`` (array) and ``dict`` (struct). A cast that fails raises ``CastError``: the caller turns it
into null (``try_cast``) or an error (ANSI ``CAST``, Spark 4's default).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal

import numpy as np
from sqlglot import expressions as E

from lakeforge.serving.scorer.base import UnsupportedStage


class CastError(ValueError):
    """A value Spark cannot cast (null under try_cast, an error under ANSI CAST)."""


# --- text -> double, as java.lang.Double.parseDouble plus Spark's special literals -------------

_JAVA_DEC = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[fFdD]?", re.ASCII)
_JAVA_HEX = re.compile(r"([+-]?)0[xX]((?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+)[fFdD]?", re.ASCII)
_SPECIAL = {"inf": math.inf, "+inf": math.inf, "infinity": math.inf, "+infinity": math.inf,
            "-inf": -math.inf, "-infinity": -math.inf, "nan": math.nan}


def java_trim(s: str) -> str:
    """Java's String.trim / Scala's: strips the characters <= U+0020 at both ends."""
    i, j = 0, len(s)
    while i < j and s[i] <= " ":
        i += 1
    while j > i and s[j - 1] <= " ":
        j -= 1
    return s[i:j]


def parse_double(s: str) -> float:
    """Spark's CAST(text AS DOUBLE)."""
    t = java_trim(s)
    if _JAVA_DEC.fullmatch(t):
        return float(t.rstrip("fFdD"))
    if t in ("NaN", "+NaN", "-NaN"):
        return math.nan
    if t in ("Infinity", "+Infinity"):
        return math.inf
    if t == "-Infinity":
        return -math.inf
    m = _JAVA_HEX.fullmatch(t)
    if m:
        v = float.fromhex(m.group(2))
        return -v if m.group(1) == "-" else v
    special = _SPECIAL.get(t.lower())
    if special is None:
        raise CastError(f"cannot cast {s!r} to DOUBLE")
    return special


# --- double -> text, as java.lang.Double.toString ----------------------------------------------


def java_double_str(d: float) -> str:
    if math.isnan(d):
        return "NaN"
    if math.isinf(d):
        return "Infinity" if d > 0 else "-Infinity"
    if d == 0:
        return "-0.0" if math.copysign(1.0, d) < 0 else "0.0"
    if abs(d) == 5e-324:  # Double.MIN_VALUE: Java 17 prints two digits
        return "-4.9E-324" if d < 0 else "4.9E-324"
    sign = "-" if d < 0 else ""
    a = abs(d)
    if a.is_integer() and a < 2.0**63:
        ds, point = _java_long_digits(int(a))
    else:
        _, digits, exp = Decimal(repr(a)).as_tuple()
        ds = "".join(map(str, digits)).rstrip("0") or "0"
        point = len(digits) + exp  # decimal point position relative to the digits' start
    if 1e-3 <= a < 1e7:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{ds}"
        whole = ds[:point].ljust(point, "0")
        frac = ds[point:] or "0"
        return f"{sign}{whole}.{frac}"
    return f"{sign}{ds[0]}.{ds[1:] or '0'}E{point - 1}"


def _java_long_digits(n: int) -> tuple[str, int]:
    """FloatingDecimal's exact path for integral doubles below 2^63 (JDK 17): all the integer's
    digits, the last 1-2 of them rounded away above 2^54 (not the shortest repr)."""
    bin_exp = n.bit_length() - 1
    p2 = bin_exp - 54
    insignificant = (0, 0, 0, 0, 1, 1, 1, 2, 2)[p2] if 1 < p2 < 9 else 0
    if insignificant:
        pow10 = 10**insignificant
        n, residue = divmod(n, pow10)
        if residue >= pow10 >> 1:
            n += 1
    text = str(n)
    return text.rstrip("0") or "0", len(text) + insignificant


def _timestamp_str(t: dt.datetime) -> str:
    s = t.strftime("%Y-%m-%d %H:%M:%S")
    if t.microsecond:
        s += "." + f"{t.microsecond:06d}".rstrip("0")
    return s


def to_string(v):
    """Spark's CAST(v AS STRING) (None stays None)."""
    if v is None or type(v) is str:
        return v
    if type(v) is bool:
        return "true" if v else "false"
    if type(v) is int:
        return str(v)
    if type(v) is float:
        return java_double_str(v)
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, dt.datetime):
        return _timestamp_str(local(v))
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join("null" if x is None else to_string(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join("null" if x is None else to_string(x) for x in v.values()) + "}"
    if isinstance(v, (int, float)):  # numpy scalars
        return to_string(float(v) if isinstance(v, float) else int(v))
    raise CastError(f"cannot cast {type(v).__name__} to STRING")


# --- other casts ----------------------------------------------------------------------------

_TRUE = {"t", "true", "y", "yes", "1"}
_FALSE = {"f", "false", "n", "no", "0"}
_INT_TEXT = re.compile(r"[+-]?\d+(?:\.\d*)?|[+-]?\.\d+", re.ASCII)
_INT_RANGES = {"TINYINT": 8, "SMALLINT": 16, "INT": 32, "BIGINT": 64}


def to_double(v) -> float:
    if type(v) is float:
        return v
    if type(v) is str:
        return parse_double(v)
    if isinstance(v, (bool, int, float, Decimal)):
        return float(v)
    if isinstance(v, dt.datetime):
        return v.timestamp()
    raise CastError(f"cannot cast {type(v).__name__} to DOUBLE")


def to_double_fast(v) -> float:
    """to_double with the common cases first (float, int, a plain decimal text)."""
    t = type(v)
    if t is float:
        return v
    if t is int:
        return float(v)
    if t is str and v and v[0] in _PLAIN_START and v[-1] in _DIGITS and _PLAIN.fullmatch(v):
        return float(v)
    return to_double(v)


_DIGITS = frozenset("0123456789")
_PLAIN_START = frozenset("0123456789-.")
_PLAIN = re.compile(r"-?\d+(?:\.\d+)?", re.ASCII)


def to_boolean(v) -> bool:
    if type(v) is bool:
        return v
    if type(v) is str:
        t = v.strip(" \t\n\r\x0b\x0c\x00\x1c\x1d\x1e\x1f").lower()
        if t in _TRUE:
            return True
        if t in _FALSE:
            return False
        raise CastError(f"cannot cast {v!r} to BOOLEAN")
    if isinstance(v, (int, float, Decimal)):
        return v != 0
    raise CastError(f"cannot cast {type(v).__name__} to BOOLEAN")


def to_integral(v, kind: str = "INT") -> int:
    bits = _INT_RANGES[kind]
    if type(v) is bool:
        return int(v)
    if type(v) is str:
        t = java_trim(v)
        if not _INT_TEXT.fullmatch(t):
            raise CastError(f"cannot cast {v!r} to {kind}")
        out = int(Decimal(t))
    elif isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise CastError(f"cannot cast {v!r} to {kind}")
        out = int(v)
    elif isinstance(v, (int, Decimal)):
        out = int(v)
    else:
        raise CastError(f"cannot cast {type(v).__name__} to {kind}")
    if not -(1 << (bits - 1)) <= out < (1 << (bits - 1)):
        raise CastError(f"{v!r} is out of the {kind} range")
    return out


_DATE_TEXT = re.compile(r"([+-]?\d{4,7})(?:-(\d{1,2})(?:-(\d{1,2}))?)?(?:[T ].*)?", re.ASCII | re.S)
_TS_TEXT = re.compile(
    r"(\d{4,7})(?:-(\d{1,2})(?:-(\d{1,2})(?:[T ](?:(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{0,9}))?)?)?"
    r"(Z|[+-]\d{1,2}(?::?\d{2})?|UTC|GMT)?)?)?)?", re.ASCII)


def to_date(v) -> dt.date:
    if isinstance(v, dt.datetime):
        return local(v).date()
    if isinstance(v, dt.date):
        return v
    if type(v) is str:
        m = _DATE_TEXT.fullmatch(v.strip())
        if m:
            try:
                return dt.date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
            except ValueError:
                pass
        raise CastError(f"cannot cast {v!r} to DATE")
    raise CastError(f"cannot cast {type(v).__name__} to DATE")


def _zone(z: str | None) -> dt.tzinfo | None:
    if z is None:
        return None
    if z in ("Z", "UTC", "GMT"):
        return dt.timezone.utc
    sign = -1 if z[0] == "-" else 1
    body = z[1:].replace(":", "")
    hours, minutes = (int(body[:-2]), int(body[-2:])) if len(body) > 2 else (int(body), 0)
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


def local(t: dt.datetime) -> dt.datetime:
    """An aware datetime as the naive local time Spark's session time zone shows."""
    return t.astimezone().replace(tzinfo=None) if t.tzinfo is not None else t


def to_timestamp(v) -> dt.datetime:
    if isinstance(v, dt.datetime):
        return local(v) if v.tzinfo is not None else v
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day)
    if type(v) is str:
        m = _TS_TEXT.fullmatch(v.strip())
        if m:
            y, mo, d, h, mi, s, frac, z = m.groups()
            try:
                t = dt.datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(s or 0),
                                int((frac or "").ljust(6, "0")[:6] or 0), _zone(z))
                return local(t)
            except ValueError:
                pass
        raise CastError(f"cannot cast {v!r} to TIMESTAMP")
    raise CastError(f"cannot cast {type(v).__name__} to TIMESTAMP")


# Spark datetime pattern letters -> a regex group (strict widths as Spark's formatter parses)
_PATTERN_PARTS = {"yyyy": r"(?P<y>\d{4})", "yy": r"(?P<y2>\d{2})", "MM": r"(?P<M>\d{2})", "M": r"(?P<M>\d{1,2})",
                  "dd": r"(?P<d>\d{2})", "d": r"(?P<d>\d{1,2})", "HH": r"(?P<H>\d{2})", "H": r"(?P<H>\d{1,2})",
                  "mm": r"(?P<m>\d{2})", "m": r"(?P<m>\d{1,2})", "ss": r"(?P<s>\d{2})", "s": r"(?P<s>\d{1,2})",
                  "SSSSSS": r"(?P<f>\d{6})", "SSS": r"(?P<f>\d{3})", "SS": r"(?P<f>\d{2})", "S": r"(?P<f>\d)"}


def compile_pattern(pattern: str) -> re.Pattern:
    """A Spark datetime pattern (yyyy, MM, dd, HH, mm, ss, S..., quoted literals) as a regex;
    ``ValueError`` names a letter it does not know."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "'":
            j = pattern.index("'", i + 1)
            out.append(re.escape(pattern[i + 1:j]) if j > i + 1 else "'")
            i = j + 1
            continue
        if c.isalpha():
            j = i
            while j < len(pattern) and pattern[j] == c:
                j += 1
            token = pattern[i:j]
            if token not in _PATTERN_PARTS:
                raise ValueError(f"datetime pattern letter {token!r}")
            out.append(_PATTERN_PARTS[token])
            i = j
            continue
        out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.ASCII)


def parse_with_pattern(s: str, rx: re.Pattern) -> dt.datetime:
    m = rx.fullmatch(s)
    if not m:
        raise CastError(f"{s!r} does not match the pattern")
    g = m.groupdict()
    year = int(g["y"]) if g.get("y") else 2000 + int(g["y2"]) if g.get("y2") else 1970
    try:
        return dt.datetime(year, int(g.get("M") or 1), int(g.get("d") or 1), int(g.get("H") or 0),
                           int(g.get("m") or 0), int(g.get("s") or 0), int((g.get("f") or "").ljust(6, "0")[:6] or 0))
    except ValueError:
        raise CastError(f"{s!r} is not a valid date") from None


def day_of_week(d: dt.date) -> int:
    """Spark's dayofweek: 1 = Sunday ... 7 = Saturday."""
    return (d.weekday() + 1) % 7 + 1


# --- CAST(... AS type) --------------------------------------------------------------------------------------

_CASTS = {"DOUBLE": to_double, "TEXT": to_string, "VARCHAR": to_string, "CHAR": to_string,
          "BOOLEAN": to_boolean, "DATE": to_date, "TIMESTAMP": to_timestamp, "TIMESTAMPTZ": to_timestamp,
          "TIMESTAMPNTZ": to_timestamp, "TIMESTAMPLTZ": to_timestamp,
          "FLOAT": lambda v: float(np.float32(to_double(v))),
          "INT": lambda v: to_integral(v, "INT"), "BIGINT": lambda v: to_integral(v, "BIGINT"),
          "SMALLINT": lambda v: to_integral(v, "SMALLINT"), "TINYINT": lambda v: to_integral(v, "TINYINT")}


def caster(to: E.DataType):
    kind = to.this.value if hasattr(to.this, "value") else str(to.this)
    fn = _CASTS.get(kind.upper())
    if fn is None or to.expressions:
        raise UnsupportedStage(f"SQLTransformer: CAST to {to.sql('spark')} is not supported by the numpy scorer")
    return fn


def cast_value(v, to: E.DataType, safe: bool):
    if v is None:
        return None
    try:
        return caster(to)(v)
    except (CastError, ValueError, OverflowError) as exc:
        if safe:
            return None
        raise ValueError(str(exc)) from None
