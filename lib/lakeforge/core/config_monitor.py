"""The pipeline config's ``monitoring:`` section (lakeforge monitor / retrain).

Defaults follow Evidently's (test choice and thresholds) and Databricks MLOps Stacks' alert rule
(2 of the last 5 windows). Every key is optional.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lakeforge.core.config_base import StrictModel

DriftTest = Literal["ks", "chi2", "wasserstein", "jensenshannon", "psi"]


class DriftThresholds(StrictModel):
    ks_p: float = Field(0.05, gt=0, lt=1)  # drift when the p-value is below
    chi2_p: float = Field(0.05, gt=0, lt=1)
    wasserstein: float = Field(0.1, gt=0)  # drift when the normalised distance is at least
    jensenshannon: float = Field(0.1, gt=0)
    psi: float = Field(0.1, gt=0)


class AlertConfig(StrictModel):
    breaches: int = Field(2, ge=1)  # M: windows that breach ...
    of_last: int = Field(5, ge=1)  # ... among the last N windows (the latest must breach too)
    webhook_env: str | None = None  # name of an environment variable holding a webhook URL
    performance_drop: float = Field(0.05, ge=0)  # a window whose metric is this far below training breaches

    @model_validator(mode="after")
    def _m_of_n(self) -> "AlertConfig":
        if self.breaches > self.of_last:
            raise ValueError(f"breaches ({self.breaches}) cannot exceed of_last ({self.of_last})")
        return self


class ActualsConfig(StrictModel):
    table: str  # a table of true outcomes
    key: str | None = None  # default: the pipeline's key
    label: str | None = None  # default: the pipeline's target
    date: str = "label_date"  # when the outcome became known


class RetrainConfig(StrictModel):
    recent_windows: int = Field(30, ge=1)  # the challenger trains on the labelled rows of these windows
    margin: float = Field(0.0, ge=0)  # the challenger must beat the champion by more than this


class MonitoringConfig(StrictModel):
    granularity_days: int = Field(1, ge=1)  # one window = this many run dates
    columns: list[str] | None = None  # default: the model's input columns (its signature)
    min_rows: int = Field(500, ge=1)  # smaller windows report "too few rows" instead of a verdict
    max_points: int = Field(100, ge=2)  # numbers with at most this many distinct values: exact bins
    bins: int = Field(100, ge=10, le=1000)  # quantile bins of the reference otherwise
    psi_bins: int = Field(10, ge=2)  # PSI / JS on numbers: bins merged into this many
    small_reference_rows: int = Field(1000, ge=1)  # reference up to this size: KS / chi-squared
    thresholds: DriftThresholds = DriftThresholds()
    column_tests: dict[str, DriftTest] = Field(default_factory=dict)  # per column: the test to use
    column_thresholds: dict[str, float] = Field(default_factory=dict)  # per column: its threshold
    dataset_drift_share: float = Field(0.5, gt=0, le=1)  # dataset drift when this share of columns drift
    performance_lookback_days: int = Field(30, ge=1)  # late labels recompute the windows this far back
    follow_minutes: int = Field(5, ge=1)  # --follow: window length on the prediction log
    follow_late_minutes: int = Field(2, ge=0)  # --follow: a window closes this long after its end (watermark)
    follow_trigger_seconds: int = Field(10, ge=1)  # --follow: how often new log records are read
    prediction_log: str | None = None  # --follow reads this table (default prediction_log_<pipeline>)
    alert: AlertConfig = AlertConfig()
    actuals: ActualsConfig | None = None
    retrain: RetrainConfig = RetrainConfig()
