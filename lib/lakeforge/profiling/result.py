"""The EDA profile's result: one ColumnProfile per column, the TargetProfile, and the
ProfileResult that holds them with the correlation matrices, the flagged pairs and the leakage
suspects (lakeforge.profiling.eda computes it; lakeforge.profiling.page renders it;
lakeforge.profiling.job writes it to the profile tables and MLflow).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import pandas as pd


@dataclass
class ColumnProfile:
    name: str
    dtype: str
    role: str            # numeric | categorical | text | datetime | id | key | target | excluded
    reason: str
    count: int = 0       # non-missing values
    missing: int = 0     # nulls (and blanks of text numbers, NaN of doubles)
    distinct: int = 0    # approximate
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    q1: float | None = None
    median: float | None = None
    q3: float | None = None
    max: float | None = None
    skew: float | None = None
    min_text: str | None = None  # datetime columns
    max_text: str | None = None
    mean_length: float | None = None  # text
    unparsed: int = 0    # text numbers: non-blank values that are not numbers (counted as missing)
    outliers_low: int = 0
    outliers_high: int = 0
    iqr_low: float | None = None
    iqr_high: float | None = None
    percentiles: list[float] | None = None  # 1 %, 2 %, ..., 100 % (percentile_approx)
    top: list[tuple[str, int]] = field(default_factory=list)
    histogram: list[tuple[float, float, int]] = field(default_factory=list)  # (from, to, rows)
    # the target per level / decile bin: {label, rows, rate | mean | shares}
    by_target: list[dict] = field(default_factory=list)
    association: float | None = None   # with the target (see association_measure)
    association_measure: str | None = None
    target_pearson: float | None = None
    target_spearman: float | None = None
    predictive: float | None = None    # how well the column alone predicts a class target:
    predictive_measure: str | None = None  # Goodman-Kruskal lambda, or ROC-AUC of the decile bins
    leakage: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def outliers(self) -> int:
        return self.outliers_low + self.outliers_high


@dataclass
class TargetProfile:
    name: str
    task: str
    positive_class: str | None
    classes: list[tuple[str, int]]   # classification: (class, rows), most frequent first
    missing: int
    rate_name: str                   # "Churn rate" / "mean price" / "class shares"


@dataclass
class ProfileResult:
    rows: int
    target: TargetProfile
    columns: list[ColumnProfile]
    pearson: pd.DataFrame            # numeric columns (+ the target when binary/numeric)
    spearman: pd.DataFrame
    cramers_v: pd.DataFrame          # categorical columns (+ a class target)
    correlations: list[dict]         # long form: column_a, column_b, method, value, flagged
    flagged: list[dict]
    leakage: list[dict]
    warnings: list[str]
    passes: int
    seconds: dict[str, float]
    threshold: float

    def column(self, name: str) -> ColumnProfile:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def correlation(self, a: str, b: str, method: str = "pearson") -> float | None:
        for r in self.correlations:
            if r["method"] == method and {r["column_a"], r["column_b"]} == {a, b}:
                return r["value"]
        return None

    def to_dict(self) -> dict:
        """Plain JSON-ready numbers (NaN becomes null)."""
        def matrix(m: pd.DataFrame) -> dict:
            return {"columns": list(m.columns), "values": [[finite(v) for v in row] for row in m.to_numpy().tolist()]}

        return json_ready({
            "rows": self.rows, "passes": self.passes, "seconds": self.seconds, "threshold": self.threshold,
            "target": asdict(self.target),
            "columns": [asdict(c) | {"outliers": c.outliers} for c in self.columns],
            "pearson": matrix(self.pearson), "spearman": matrix(self.spearman), "cramers_v": matrix(self.cramers_v),
            "correlations": self.correlations, "flagged": self.flagged, "leakage": self.leakage,
            "warnings": self.warnings,
        })


def finite(v) -> float | None:
    """``v`` as a float, or None when it is missing, NaN or infinite."""
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) or math.isinf(v) else v


def json_ready(obj):
    """``obj`` with numpy scalars as Python values, NaN / infinite floats as None, keys as text."""
    if hasattr(obj, "item") and not isinstance(obj, (list, dict, str)):  # numpy scalars
        obj = obj.item()
    if isinstance(obj, float):
        return finite(obj)
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    return obj
