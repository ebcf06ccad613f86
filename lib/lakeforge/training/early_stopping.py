"""Early stopping for MLlib's gradient-boosted trees, as scikit-learn's HistGradientBoosting does it.

``EarlyStopping`` wraps a ``GBTClassifier`` / ``GBTRegressor``. With ``validationFraction`` > 0
it marks that share of the rows it is fitted on (a training fold in the search, the training
split in the refit) as MLlib's validation set, by a seeded hash of the feature vector and label
(the same row lands on the same side in every fit), and fits with ``validationIndicatorCol``:
MLlib trains on the other rows and keeps the trees up to the round with the best validation loss,
stopping at the first round that does not improve it by ``validationTol`` x max(loss, 0.01).

What it returns is MLlib's own fitted model (``numTrees`` = the rounds kept, ``maxIter`` the
cap): the marking column exists only inside ``fit``, is never a feature, and the model scores
rows without it (Spark and the numpy scorer of lakeforge.serving). With ``validationFraction`` 0
(the default) it is a plain fit of the wrapped estimator.
"""

from __future__ import annotations

from pyspark.ml import Estimator
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

VALIDATION_COL = "_lf_early_stopping_validation"
_BUCKETS = 10_000  # the hash's resolution: the validation share is a multiple of 1/_BUCKETS


class EarlyStopping(Estimator):
    """A GBT estimator fitted with a validation share of its rows held out for early stopping."""

    validationFraction = Param(
        Params._dummy(), "validationFraction",
        "share of the fitted rows held out to stop boosting early (0: no early stopping)",
        typeConverter=TypeConverters.toFloat)

    def __init__(self, gbt, *, seed: int = 0, validationFraction: float = 0.0):
        super().__init__()
        self.gbt, self.seed = gbt, seed
        self._setDefault(validationFraction=0.0)
        self._set(validationFraction=validationFraction)

    def copy(self, extra=None):
        """A copy whose own param (``validationFraction``) and the wrapped estimator's params
        take the values in ``extra``."""
        extra = dict(extra or {})
        own = {p: v for p, v in extra.items() if p.parent == self.uid}
        that = super().copy(own)
        that.gbt = self.gbt.copy({p: v for p, v in extra.items() if p.parent != self.uid})
        return that

    def _fit(self, dataset: DataFrame):
        fraction = self.getOrDefault(self.validationFraction)
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"gbt.validationFraction: expected a share in [0, 1), got {fraction!r}")
        if fraction == 0.0:
            return self.gbt.fit(dataset)
        gbt = self.gbt
        marked = dataset.withColumn(VALIDATION_COL, validation_rows(gbt.getFeaturesCol(), gbt.getLabelCol(),
                                                                    fraction, self.seed))
        return gbt.copy({gbt.validationIndicatorCol: VALIDATION_COL}).fit(marked)


def validation_rows(features: str, label: str, fraction: float, seed: int):
    """True for about ``fraction`` of the rows: a seeded hash of the feature vector and label."""
    bucket = F.pmod(F.xxhash64(F.col(features), F.col(label), F.lit(seed)), F.lit(_BUCKETS))
    return bucket < F.lit(int(round(fraction * _BUCKETS)))


def rounds_used(model) -> int | None:
    """The boosting rounds an early-stopped GBT or XGBoost model kept (none for any other model)."""
    if hasattr(model, "booster_json"):  # lakeforge.training.xgboost.XGBoostModel
        return model.rounds if model.getOrDefault(model.validationFraction) > 0 else None
    if not hasattr(model, "validationIndicatorCol") or not model.isSet(model.validationIndicatorCol):
        return None
    return int(model.getNumTrees)
