"""Pipeline config, the model: the train/test split, the search over algorithms and how the
winner is chosen (``model``, with ``split`` and ``threshold``), and batch scoring (``scoring``)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from lakeforge.core.config_base import StrictModel
from lakeforge.core.tasks import ALL_METRICS, METRICS


class SplitConfig(StrictModel):
    # key:  a hash of the key column (stable across runs and partitionings);
    # time: the latest rows by ``column`` form the test set.
    by: Literal["key", "time"] = "key"
    column: str | None = None

    @model_validator(mode="after")
    def _column(self) -> "SplitConfig":
        if self.by == "time" and not self.column:
            raise ValueError("split.by 'time' needs split.column (a timestamp or date column)")
        return self


class ThresholdConfig(StrictModel):
    # max_f1:    the threshold on P(positive) that maximises F1 on the validation folds;
    # precision: the lowest threshold whose precision reaches ``value`` (the most recall);
    # recall:    the highest threshold whose recall reaches ``value``;
    # fixed:     ``value`` itself.
    strategy: Literal["max_f1", "precision", "recall", "fixed"] = "max_f1"
    value: float | None = Field(None, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _value(self) -> "ThresholdConfig":
        if self.strategy != "max_f1" and self.value is None:
            raise ValueError(f"threshold.strategy {self.strategy!r} needs threshold.value (between 0 and 1)")
        return self


class ClusteringConfig(StrictModel):
    """model.clustering (task clustering): the search over k x algorithm, judged by silhouette."""

    k: list[int] = Field(default_factory=lambda: list(range(2, 13)))
    algorithms: list[Literal["kmeans", "bisecting_kmeans", "gaussian_mixture"]] = Field(
        default_factory=lambda: ["kmeans", "bisecting_kmeans", "gaussian_mixture"])
    # Held-out rows the silhouette is computed on (a sample of the test split, at most this many).
    eval_rows: int = Field(20_000, ge=10)
    # Features per cluster named in the profile (largest standardised difference from all rows).
    profile_features: int = Field(5, ge=1)
    # coarse_to_fine: every other k of the list (and its largest) first, then, per algorithm, the
    # listed k between its best k's coarse neighbours; every_k: each listed k.
    k_search: Literal["coarse_to_fine", "every_k"] = "coarse_to_fine"
    # Iterations per fit, merged over the defaults {kmeans: 20, bisecting_kmeans: 10,
    # gaussian_mixture: 30} (model.max_iter is the supervised algorithms').
    max_iter: dict[Literal["kmeans", "bisecting_kmeans", "gaussian_mixture"], int] = Field(default_factory=dict)

    @field_validator("k")
    @classmethod
    def _k(cls, v: list[int]) -> list[int]:
        if not v or min(v) < 2:
            raise ValueError("expected cluster counts of at least 2")
        return sorted(set(v))

    @field_validator("max_iter")
    @classmethod
    def _max_iter(cls, v: dict[str, int]) -> dict[str, int]:
        if any(n < 1 for n in v.values()):
            raise ValueError("expected iterations of at least 1 per algorithm")
        return v


class RecommendationConfig(StrictModel):
    """model.recommendation (task recommendation): ALS on user-item feedback."""

    user: str
    item: str
    # null: implicit feedback (each row is one interaction); else the rating column.
    rating: str | None = None
    # true: the rating column counts events (implicit feedback, confidence = count); null: implicit
    # only when there is no rating column.
    implicit: bool | None = None
    grid: dict[Literal["rank", "regParam", "alpha"], list[float]] = Field(default_factory=dict)
    max_iter: int = Field(10, ge=1)
    k: int = Field(10, ge=1)  # the cut-off of precision@K, recall@K, NDCG@K, MAP@K
    top_n: int = Field(10, ge=1)  # items per user written by scoring
    # Ranking relevance of a held-out explicit rating: at least this value (null: every held-out item).
    relevant_rating: float | None = None

    @property
    def is_implicit(self) -> bool:
        return self.rating is None or bool(self.implicit)


class ModelConfig(StrictModel):
    registered_name: str
    # auto: binary for two target values, regression for a numeric target with many values,
    # multiclass otherwise.
    task: Literal["auto", "binary", "multiclass", "regression", "clustering", "recommendation"] = "auto"
    # Algorithms to search, each with a grid {MLlib param: [values]} merged over its default
    # grid; null: the task's default algorithms (lakeforge.training.algorithms).
    algorithms: dict[str, dict[str, list[Any]] | None] | None = None
    search: Literal["cross_validation", "train_validation_split"] = "cross_validation"
    # Model selection (which candidate wins; feature selection is the top-level ``selection``):
    # best_mean: the best CV mean wins; one_standard_error: the simplest algorithm within one
    # standard error of the best (differences below the fold noise do not buy complexity).
    selection: Literal["best_mean", "one_standard_error"] = "one_standard_error"
    # Successive halving across folds: all candidates on the first fold; on the rest the best
    # third and the best of each algorithm. null: true for recommendation (ALS grid points),
    # false for the other tasks.
    halving: bool | None = None
    folds: int = Field(3, ge=2, le=20)
    train_ratio: float = Field(0.75, gt=0.0, lt=1.0)  # train_validation_split only
    # null: roc_auc (binary), f1_macro (multiclass), rmse (regression)
    metric: Literal[ALL_METRICS] | None = None  # type: ignore[valid-type]
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split: SplitConfig = SplitConfig()
    seed: int = 42
    max_iter: int = Field(100, ge=1)
    # Candidates fitted at once; null: twice the cores Spark has, at most 4.
    parallelism: int | None = Field(None, ge=1)
    # After this many minutes from the start of training no new algorithm starts (started ones
    # finish; the first always runs); the leaderboard lists the skipped candidates.
    max_minutes: float | None = Field(None, gt=0)
    # The most rows a supervised training reads (a hash-of-the-key sample beyond; scoring reads all):
    # auto: as many as an eighth of Spark's storage memory holds cached (at least 100,000;
    # lakeforge.training.sample); N: at most N; all: every row.
    max_train_rows: int | Literal["auto", "all"] = "auto"
    # Weight classes inversely to their frequency (algorithms that take a weight column).
    class_weights: bool = False
    threshold: ThresholdConfig = ThresholdConfig()
    # The new version becomes champion only if its test metric beats the champion's by more.
    promotion_margin: float = Field(0.0, ge=0.0)
    clustering: ClusteringConfig = ClusteringConfig()
    recommendation: RecommendationConfig | None = None  # required with task recommendation

    @field_validator("max_train_rows")
    @classmethod
    def _max_train_rows(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 100:
            raise ValueError("expected at least 100 rows, 'auto' or 'all'")
        return v

    @field_validator("registered_name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9_.-]+$", v):
            raise ValueError("expected letters, digits, '_', '.' or '-'")
        return v

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, v: dict[str, dict[str, list[Any]] | None] | None) -> dict[str, dict[str, list[Any]]] | None:
        from lakeforge.training.algorithms import validate_grid

        if v is None:
            return None
        if not v:
            raise ValueError("expected at least one algorithm (or null for the defaults)")
        return {name: validate_grid(name, grid or {}) for name, grid in v.items()}

    @model_validator(mode="after")
    def _metric_fits_task(self) -> "ModelConfig":
        if self.metric and self.task != "auto" and self.metric not in METRICS[self.task]:
            raise ValueError(f"metric {self.metric!r} does not apply to task {self.task!r}; use one of {', '.join(METRICS[self.task])}")
        if self.algorithms and self.task != "auto":
            from lakeforge.training.algorithms import ALGORITHMS

            for name in self.algorithms:
                if self.task not in ALGORITHMS[name].tasks:
                    raise ValueError(f"algorithm {name!r} does not do {self.task}")
        return self

    @model_validator(mode="after")
    def _task_sections(self) -> "ModelConfig":
        if self.task == "recommendation" and self.recommendation is None:
            raise ValueError("task recommendation needs model.recommendation with user and item (and rating) columns")
        return self

    @property
    def n_folds(self) -> int:
        """Folds the search fits each candidate on: ``folds`` for cross-validation, else 1 (one
        train/validation split)."""
        return self.folds if self.search == "cross_validation" else 1

    @property
    def search_label(self) -> str:
        """The search in words: "3-fold cross-validation" or "train/validation split"."""
        return f"{self.folds}-fold cross-validation" if self.search == "cross_validation" else "train/validation split"


class ScoringConfig(StrictModel):
    # Table to score; default: the bronze table.
    input_table: str | None = None
    model_alias: str = "champion"
    # Input columns copied to the predictions table as they are (e.g. a segment for dashboards).
    passthrough: list[str] = Field(default_factory=list)
    # full:        every input row is scored for the run date.
    # incremental: only rows that are new or changed (any non-metadata column) since the input
    #              version scored by the last successful run of an earlier date; `score --full`
    #              forces a full rescore.
    mode: Literal["full", "incremental"] = "full"
    # A model input column null in every row to score, or null in a share of them more than 0.5
    # above the training rows' share (e.g. a renamed source column under schema_evolution):
    # fail: refuse, nothing is written; warn: score anyway, with a warning line.
    on_null_inputs: Literal["fail", "warn"] = "fail"
