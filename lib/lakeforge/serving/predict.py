"""One /predict request: JSON body -> checked records -> the scorer's frame -> the predictions
table's fields per record.

Checks (each a ``RequestError`` with an HTTP status, a kind for /metrics, and a message naming
the column and the expected type, never a value of the request): malformed JSON (400), a body
that is not an object or a list of objects (400), more than ``max_records`` (413), an input
column missing (422), a field that is neither an input nor the key (422 unless ignored), a value
of the wrong type for the MLflow signature (422), NaN/Infinity where not allowed (422), a record
the model cannot compute, as Spark's batch scoring cannot (422, naming the record and the stage).

The outputs are those of lakeforge.scoring.transforms.with_predictions: binary score =
P(positive) (the sigmoid of the raw margin without probabilities), predicted_label = the model's
``prediction`` (its stored threshold); multiclass score = the largest probability,
predicted_label = ``predicted_class``; regression score = ``prediction`` and no label.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass

import numpy as np

from lakeforge.serving.model_store import InputColumn, ServedModel

INT_RANGE = {"integer": 2**31, "long": 2**63}
STAGE_OR_ERROR = re.compile(r"^(?:([A-Za-z][A-Za-z0-9]*):|(\[[A-Z_.]+\]))")  # "IndexToString: ...", "[DIVIDE_BY_ZERO] ..."


class RequestError(Exception):
    def __init__(self, status: int, kind: str, detail: str):
        super().__init__(detail)
        self.status, self.kind, self.detail = status, kind, detail


@dataclass(frozen=True)
class Limits:
    max_records: int = 10_000
    ignore_unknown_fields: bool = False
    allow_non_finite: bool = False


def _reject_constant(token: str):
    raise RequestError(422, "non_finite", f"{token} is not allowed in a request (JSON has no {token})")


def parse_body(body: bytes, limits: Limits) -> tuple[list[dict], bool]:
    """The records of a body and whether it was a single object."""
    try:
        data = json.loads(body, parse_constant=None if limits.allow_non_finite else _reject_constant)
    except RequestError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise RequestError(400, "bad_json", f"the body is not valid JSON{where}") from None
    single = isinstance(data, dict)
    records = [data] if single else data
    if not isinstance(records, list):
        raise RequestError(400, "bad_json", "the body must be a JSON object (one record) or a list of objects")
    if len(records) > limits.max_records:
        raise RequestError(413, "too_many_records",
                           f"{len(records):,} records in one request; at most {limits.max_records:,} (serving.max_records)")
    if not records:
        raise RequestError(422, "empty", "no records to score: send an object or a non-empty list of objects")
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise RequestError(400, "bad_json", f"record {i} is not a JSON object")
    return records, single


def _name(field: str) -> str:
    return field if len(field) <= 60 else field[:57] + "..."


def check_fields(records: list[dict], model: ServedModel, limits: Limits) -> None:
    """Every input column present in every record; no other field unless ignored."""
    required = model.input_names
    allowed = set(required) | ({model.key} if model.key else set())
    first = records[0].keys()
    uniform = all(r.keys() == first for r in records)
    for i, r in enumerate(records if not uniform else records[:1]):
        keys = r.keys()
        missing = [c for c in required if c not in keys]
        if missing:
            where = "" if len(records) == 1 else f"record {i}: "
            raise RequestError(422, "missing_column", f"{where}input column(s) missing: {', '.join(missing[:20])}")
        if not limits.ignore_unknown_fields:
            unknown = [k for k in keys if k not in allowed]
            if unknown:
                where = "" if len(records) == 1 else f"record {i}: "
                names = ", ".join(_name(str(u)) for u in unknown[:10])
                raise RequestError(422, "unknown_field", f"{where}field(s) not among the model's inputs: {names} "
                                   "(send only the input columns and the key, or set serving.ignore_unknown_fields)")


def _type_error(col: InputColumn, i: int, n: int, expected: str) -> RequestError:
    where = "" if n == 1 else f"record {i}: "
    return RequestError(422, "wrong_type", f"{where}column {col.name!r}: expected {expected} or null")


def _first_bad(values: list, ok) -> int:
    return next(i for i, v in enumerate(values) if not ok(v))


def check_column(col: InputColumn, values: list, limits: Limits) -> np.ndarray:
    """The column's values as the frame's object array, after the type checks of its signature type."""
    n, t = len(values), col.type
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if t == "string":
        if kinds - {str}:
            raise _type_error(col, _first_bad(values, lambda v: v is None or type(v) is str), n, "a string")
    elif t in ("double", "float"):
        if kinds - {float, int}:
            raise _type_error(col, _first_bad(values, lambda v: v is None or type(v) in (float, int)), n, "a number")
        if float in kinds and not limits.allow_non_finite:
            bad = next((i for i, v in enumerate(values) if type(v) is float and not math.isfinite(v)), None)
            if bad is not None:
                raise RequestError(422, "non_finite", f"{'' if n == 1 else f'record {bad}: '}column {col.name!r}: "
                                   "NaN and Infinity are not allowed (serving.allow_non_finite)")
        values = [float(v) if type(v) is int else v for v in values] if int in kinds else values
    elif t in INT_RANGE:
        values = _integers(col, values, kinds, n)
    elif t == "boolean":
        if kinds - {bool}:
            raise _type_error(col, _first_bad(values, lambda v: v is None or type(v) is bool), n, "true/false")
    elif t == "datetime":
        values = _datetimes(col, values, n)
    elif t == "object" and kinds - {dict, list}:
        raise _type_error(col, _first_bad(values, lambda v: v is None or type(v) in (dict, list)), n, "an object or list")
    out = np.empty(n, dtype=object)
    out[:] = values
    return out


def _integers(col: InputColumn, values: list, kinds: set, n: int) -> list:
    limit = INT_RANGE[col.type]
    expected = f"an integer ({'32' if col.type == 'integer' else '64'}-bit)"
    if kinds - {int, float}:
        raise _type_error(col, _first_bad(values, lambda v: v is None or type(v) in (int, float)), n, expected)
    if float in kinds:  # 3.0 is the integer 3; 3.5 is not an integer
        for i, v in enumerate(values):
            if type(v) is float and not (math.isfinite(v) and v.is_integer()):
                raise _type_error(col, i, n, expected)
        values = [int(v) if type(v) is float else v for v in values]
    for i, v in enumerate(values):
        if v is not None and not -limit <= v < limit:
            raise _type_error(col, i, n, expected)
    return values


def _datetimes(col: InputColumn, values: list, n: int) -> list:
    out = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        if type(v) is not str:
            raise _type_error(col, i, n, "an ISO date or timestamp string")
        try:
            out.append(dt.date.fromisoformat(v) if len(v) == 10 else dt.datetime.fromisoformat(v))
        except ValueError:
            raise _type_error(col, i, n, "an ISO date or timestamp string") from None
    return out


def to_frame(records: list[dict], model: ServedModel, limits: Limits) -> dict[str, np.ndarray]:
    check_fields(records, model, limits)
    return {c.name: check_column(c, [r[c.name] for r in records], limits) for c in model.inputs}


def _finite(values: np.ndarray) -> list:
    return [float(v) if math.isfinite(v) else None for v in values.tolist()]


def scores_and_labels(model: ServedModel, out: dict[str, np.ndarray]) -> tuple[list, list | None]:
    """The score and predicted label of every row of the scorer's output frame."""
    if model.task == "regression":
        return _finite(np.asarray(out["prediction"], dtype=np.float64)), None
    if model.task == "multiclass":
        prob = out.get("probability")
        scores = _finite(np.asarray(prob).max(axis=1)) if prob is not None else [None] * len(out["prediction"])
        return scores, [None if v is None else str(v) for v in out["predicted_class"]]
    if "probability" in out:
        scores = np.asarray(out["probability"], dtype=np.float64)[:, 1]
    else:  # a large negative margin overflows exp to inf: score 0.0, as Spark's exp gives
        with np.errstate(over="ignore"):
            scores = 1.0 / (1.0 + np.exp(-np.asarray(out["rawPrediction"], dtype=np.float64)[:, 1]))
    return _finite(scores), [int(v) for v in np.asarray(out["prediction"], dtype=np.float64).tolist()]


def _first_failing(scorer, frame: dict[str, np.ndarray], n: int) -> int:
    """The first record the scorer cannot compute (its rows are independent: a binary search over
    prefixes, log2(n) transforms)."""
    def fails(lo: int, hi: int) -> bool:
        try:
            scorer.transform({c: v[lo:hi] for c, v in frame.items()})
        except (ValueError, ArithmeticError):
            return True
        return False

    lo, hi = 0, n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fails(lo, mid) else (mid, hi)
    return lo


def score_frame(model: ServedModel, frame: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The scorer's output; a record it cannot compute (a stage Spark's batch scoring fails on too:
    an ANSI cast or division error, a OneVsRest predicting no class for IndexToString...) is a 422
    naming the record and the stage, never the values."""
    try:
        return model.scorer.transform(frame)
    except (ValueError, ArithmeticError) as exc:
        failing = STAGE_OR_ERROR.match(str(exc))
        if failing is None:  # not a failure the scorer mirrors from Spark: an internal error (500, logged)
            raise
        what = failing.group(1) or failing.group(2)
        where = "" if n == 1 else f"record {_first_failing(model.scorer, frame, n)}: "
        raise RequestError(422, "unscorable", f"{where}{what} cannot compute the record "
                           "(Spark's batch scoring fails on it too)") from None


def predict(model: ServedModel, records: list[dict], limits: Limits) -> list[dict]:
    """The predictions table's fields for each record (key, score, predicted_label, model name/version)."""
    out = score_frame(model, to_frame(records, model, limits), len(records))
    scores, labels = scores_and_labels(model, out)
    key = model.key
    rows = []
    for i, r in enumerate(records):
        row = {key: r.get(key)} if key else {}
        row["score"] = scores[i]
        if labels is not None:
            row["predicted_label"] = labels[i]
        row["model_name"] = model.name
        row["model_version"] = model.version
        rows.append(row)
    return rows
