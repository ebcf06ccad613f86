"""The learning tasks lakeforge frames and their metrics, defined once."""

from __future__ import annotations

TASKS = ("binary", "multiclass", "regression")
# Tasks without a target column (lakeforge.training.clustering, lakeforge.training.recommend).
UNSUPERVISED = ("clustering", "recommendation")

# primary metric name -> higher is better
METRICS = {
    "binary": {"roc_auc": True, "pr_auc": True, "f1": True, "accuracy": True, "precision": True,
               "recall": True, "log_loss": False},
    "multiclass": {"f1_macro": True, "f1_weighted": True, "accuracy": True, "log_loss": False},
    "regression": {"rmse": False, "mae": False, "r2": True, "mape": False},
    "clustering": {"silhouette": True},
    "recommendation": {"ndcg_at_k": True, "precision_at_k": True, "recall_at_k": True, "map_at_k": True},
}

ALL_METRICS = tuple(dict.fromkeys(m for per_task in METRICS.values() for m in per_task))


def higher_is_better(task: str, metric: str) -> bool:
    return METRICS[task][metric]
