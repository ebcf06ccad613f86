"""The training rows' null share per model input column, kept with the registered model version
(tag ``lakeforge.input_null_shares``, JSON) so that scoring can tell when an input column is
null far more often than in training (lakeforge.scoring.transforms.null_input_problem).

The shares come from the feature statistics training computes anyway
(lakeforge.features.statistics: missing values per feature over the training rows): no extra
pass. Only input columns that are features themselves have one (not, e.g., a date column read
by derived features).
"""

from __future__ import annotations

import json

from lakeforge.core import tracking
from lakeforge.features.plan import FeaturePlan

NULL_SHARES_TAG = "lakeforge.input_null_shares"


def input_null_shares(plan: FeaturePlan) -> dict[str, float]:
    """Input column -> the share of training rows where it is missing (null, or NaN for numbers)."""
    rows = plan.report.rows_profiled
    if not rows:
        return {}
    features = {*plan.numeric, *plan.categorical}
    return {c: round(plan.report.missing_counts.get(c, 0) / rows, 6) for c in plan.inputs if c in features}


def tag_null_shares(ref: tracking.ModelRef, plan: FeaturePlan) -> None:
    """Keep the shares with the registered version ``ref`` (its tag)."""
    tracking.MlflowClient().set_model_version_tag(ref.name, ref.version, NULL_SHARES_TAG, to_tag(input_null_shares(plan)))


def to_tag(shares: dict[str, float]) -> str:
    return json.dumps(shares, sort_keys=True)


def from_tag(value: str | None) -> dict[str, float] | None:
    """The shares stored in the tag; None without one (a model trained before it existed)."""
    if not value:
        return None
    return {str(k): float(v) for k, v in json.loads(value).items()}
