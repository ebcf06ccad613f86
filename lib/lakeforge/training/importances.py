"""Which input columns the winning model leans on: importances (trees) or absolute coefficients
(linear models), summed per ORIGINAL column of the bronze table."""

from __future__ import annotations

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame

from lakeforge.features.slots import slot_names


def feature_importances(fitted, prep_model: PipelineModel, raw_train: DataFrame) -> list[tuple[str, float]]:
    """Importances (trees) or absolute coefficients (linear models), summed per ORIGINAL column,
    largest first. Empty when the model exposes neither."""
    from pyspark.ml.classification import OneVsRestModel

    if isinstance(fitted, OneVsRestModel):
        return []
    values = None
    try:
        if hasattr(fitted, "featureImportances"):
            values = list(fitted.featureImportances.toArray())
        elif getattr(fitted, "numClasses", 2) > 2 and hasattr(fitted, "coefficientMatrix"):  # multinomial
            m = fitted.coefficientMatrix.toArray()
            values = [float(abs(m[:, j]).sum()) for j in range(m.shape[1])]
        elif hasattr(fitted, "coefficients"):
            values = [abs(x) for x in fitted.coefficients.toArray()]
    except Exception:  # noqa: BLE001 - importances are a report extra, never a reason to fail
        return []
    if not values:
        return []
    names = _slot_names(prep_model, raw_train, len(values))
    total: dict[str, float] = {}
    for name, v in zip(names, values):
        total[name] = total.get(name, 0.0) + float(v)
    return sorted(total.items(), key=lambda kv: -kv[1])


def _slot_names(prep_model: PipelineModel, raw_train: DataFrame, size: int) -> list[str]:
    """The original column behind each slot of the feature vector (lakeforge.features.slots.slot_names:
    from the vector's metadata, schema only, no Spark job)."""
    names = [source for _, source in slot_names(prep_model, raw_train)]
    return names if len(names) == size else [f"f{i}" for i in range(size)]
