"""Metrics in ONE Spark aggregation per evaluation, collected as a small summary.

- Binary: the scores are binned (``BINS`` equal-width bins of P(positive), as MLlib's
  BinaryClassificationEvaluator downsamples to 1,000 bins) with positives, negatives, log loss
  and the confusion counts of the model's own predictions per bin. From those few thousand rows
  the driver computes ROC-AUC, PR-AUC, accuracy, precision, recall, F1 and log loss, the ROC
  and PR curves for plots, and the decision threshold that maximises F1 (or meets a target
  precision or recall).
- Multiclass: the confusion matrix (label x prediction counts) with summed log loss: accuracy,
  per-class precision / recall / F1, macro and weighted F1, log loss.
- Regression: sums of errors: RMSE, MAE, R2, MAPE (over non-zero labels).

Nothing row-level reaches the driver.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

__all__ = ["BINS", "Evaluation", "evaluate", "evaluate_binary", "evaluate_multiclass", "evaluate_regression",
           "merge_binary", "positive_score"]

BINS = 10_000
EPS = 1e-15

@dataclass
class Evaluation:
    task: str
    metrics: dict[str, float]
    # binary: per-bin counts, best to worst score: (bin lower edge, positives, negatives)
    bins: list[tuple[float, float, float]] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)  # [actual][predicted]
    labels: list[str] = field(default_factory=list)

    def roc_curve(self) -> tuple[list[float], list[float], list[float]]:
        """(fpr, tpr, threshold) from the highest threshold down."""
        pos = sum(b[1] for b in self.bins) or 1.0
        neg = sum(b[2] for b in self.bins) or 1.0
        fpr, tpr, thr, tp, fp = [0.0], [0.0], [1.0], 0.0, 0.0
        for edge, p, n in self.bins:
            tp, fp = tp + p, fp + n
            fpr.append(fp / neg)
            tpr.append(tp / pos)
            thr.append(edge)
        return fpr, tpr, thr

    def pr_curve(self) -> tuple[list[float], list[float], list[float]]:
        """(recall, precision, threshold) from the highest threshold down."""
        pos = sum(b[1] for b in self.bins) or 1.0
        rec, prec, thr, tp, fp = [], [], [], 0.0, 0.0
        for edge, p, n in self.bins:
            tp, fp = tp + p, fp + n
            rec.append(tp / pos)
            prec.append(tp / (tp + fp) if tp + fp else 1.0)
            thr.append(edge)
        if prec:
            rec.insert(0, 0.0)
            prec.insert(0, prec[0])
            thr.insert(0, 1.0)
        return rec, prec, thr

    def choose_threshold(self, strategy: str = "max_f1", target: float | None = None) -> float:
        """Decision threshold on P(positive): max F1, or the lowest threshold reaching the target
        precision (most recall), or the highest threshold reaching the target recall."""
        pos = sum(b[1] for b in self.bins)
        if not self.bins or not pos:
            return 0.5
        best_t, best_f1, tp, fp = 0.5, -1.0, 0.0, 0.0
        chosen = None
        for edge, p, n in self.bins:  # predicting positive for score >= edge
            tp, fp = tp + p, fp + n
            precision = tp / (tp + fp) if tp + fp else 0.0
            recall = tp / pos
            if strategy == "max_f1":
                f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
                if f1 > best_f1:
                    best_t, best_f1 = edge, f1
            elif strategy == "precision" and precision >= target:
                chosen = edge  # keep lowering while precision holds
            elif strategy == "recall" and recall >= target and chosen is None:
                chosen = edge  # the first (highest) threshold with enough recall
        if strategy == "max_f1":
            return _threshold_below(best_t)
        return _threshold_below(chosen) if chosen is not None else 0.5


def _threshold_below(edge: float) -> float:
    # MLlib predicts positive when P > threshold; edges are bin lower bounds (score >= edge).
    return max(0.0, min(1.0, edge - 0.5 / BINS))


def positive_score(df: DataFrame) -> F.Column:
    """P(positive) from ``probability``, else the sigmoid of the raw margin (linear SVC)."""
    if "probability" in df.columns:
        return vector_to_array(F.col("probability"))[1]
    return 1.0 / (1.0 + F.exp(-vector_to_array(F.col("rawPrediction"))[1]))


def evaluate(task: str, predictions: DataFrame, label: str = "label", labels: list[str] | None = None) -> Evaluation:
    if task == "binary":
        return evaluate_binary(predictions, label)
    if task == "multiclass":
        return evaluate_multiclass(predictions, label, labels or [])
    return evaluate_regression(predictions, label)


def evaluate_binary(predictions: DataFrame, label: str = "label") -> Evaluation:
    y = F.col(label)
    s = positive_score(predictions)
    has_prob = "probability" in predictions.columns
    pred = F.col("prediction")
    p = F.least(F.greatest(s, F.lit(EPS)), F.lit(1 - EPS))
    rows = (
        predictions.select(y.alias("y"), s.alias("s"), pred.alias("yhat"), p.alias("p"))
        .groupBy(F.least(F.floor(F.col("s") * BINS), F.lit(BINS - 1)).cast("int").alias("bin"))
        .agg(
            F.sum(F.col("y")).alias("pos"),
            F.sum(1 - F.col("y")).alias("neg"),
            F.sum(-(F.col("y") * F.log(F.col("p")) + (1 - F.col("y")) * F.log(1 - F.col("p")))).alias("ll"),
            F.sum(((F.col("y") == 1) & (F.col("yhat") == 1)).cast("long")).alias("tp"),
            F.sum(((F.col("y") == 0) & (F.col("yhat") == 1)).cast("long")).alias("fp"),
            F.sum(((F.col("y") == 1) & (F.col("yhat") == 0)).cast("long")).alias("fn"),
            F.sum(((F.col("y") == 0) & (F.col("yhat") == 0)).cast("long")).alias("tn"),
        )
        .collect()
    )
    rows.sort(key=lambda r: -r["bin"])
    bins = [(r["bin"] / BINS, float(r["pos"]), float(r["neg"])) for r in rows]
    tp, fp, fn, tn = (sum(r[k] for r in rows) for k in ("tp", "fp", "fn", "tn"))
    n = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    ev = Evaluation("binary", {}, bins=bins, confusion=[[tn, fp], [fn, tp]], labels=["0", "1"])
    fpr, tpr, _ = ev.roc_curve()
    rec, prec, _ = ev.pr_curve()
    ev.metrics = {
        "roc_auc": _trapezoid(fpr, tpr),
        "pr_auc": _trapezoid(rec, prec),
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "log_loss": (sum(r["ll"] for r in rows) / n) if n and has_prob else float("nan"),
    }
    return ev


def evaluate_multiclass(predictions: DataFrame, label: str, labels: list[str]) -> Evaluation:
    y = F.col(label).cast("int")
    if "probability" in predictions.columns:
        p_true = F.element_at(vector_to_array(F.col("probability")), y + 1)
        ll = -F.log(F.least(F.greatest(p_true, F.lit(EPS)), F.lit(1 - EPS)))
    else:
        ll = F.lit(None).cast("double")
    rows = (
        predictions.groupBy(y.alias("y"), F.col("prediction").cast("int").alias("yhat"))
        .agg(F.count(F.lit(1)).alias("n"), F.sum(ll).alias("ll"))
        .collect()
    )
    k = max([len(labels)] + [max(r["y"], r["yhat"]) + 1 for r in rows])
    cm = [[0] * k for _ in range(k)]
    ll_sum, has_ll = 0.0, "probability" in predictions.columns
    for r in rows:
        cm[r["y"]][r["yhat"]] += r["n"]
        ll_sum += r["ll"] or 0.0
    n = sum(map(sum, cm))
    metrics: dict[str, float] = {"accuracy": sum(cm[i][i] for i in range(k)) / n if n else 0.0}
    f1s, support = [], []
    for i in range(k):
        tp = cm[i][i]
        pred_i = sum(cm[j][i] for j in range(k))
        true_i = sum(cm[i])
        p = tp / pred_i if pred_i else 0.0
        r = tp / true_i if true_i else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        name = labels[i] if i < len(labels) else str(i)
        metrics[f"precision[{name}]"], metrics[f"recall[{name}]"], metrics[f"f1[{name}]"] = p, r, f1
        if true_i:
            f1s.append(f1)
            support.append(true_i)
    metrics["f1_macro"] = sum(f1s) / len(f1s) if f1s else 0.0
    metrics["f1_weighted"] = sum(f * s for f, s in zip(f1s, support)) / sum(support) if support else 0.0
    metrics["log_loss"] = ll_sum / n if n and has_ll else float("nan")
    return Evaluation("multiclass", metrics, confusion=cm, labels=list(labels) or [str(i) for i in range(k)])


def evaluate_regression(predictions: DataFrame, label: str = "label") -> Evaluation:
    """RMSE, MAE, R2, MAPE in one aggregation; for plots, a second one bins the residuals
    (``Evaluation.bins``: (bin lower edge, rows, mean prediction))."""
    y, yhat = F.col(label), F.col("prediction")
    e = yhat - y
    r = predictions.agg(
        F.count(F.lit(1)).alias("n"), F.sum(y).alias("sy"), F.sum(y * y).alias("syy"),
        F.sum(e * e).alias("sse"), F.sum(F.abs(e)).alias("sae"),
        F.sum(F.when(y != 0, F.abs(e) / F.abs(y))).alias("sape"), F.count(F.when(y != 0, 1)).alias("nz"),
        F.min(e).alias("emin"), F.max(e).alias("emax"),
    ).first()
    n = r["n"] or 0
    if not n:
        return Evaluation("regression", {"rmse": float("nan"), "mae": float("nan"), "r2": float("nan"), "mape": float("nan")})
    sst = r["syy"] - r["sy"] ** 2 / n
    ev = Evaluation("regression", {
        "rmse": math.sqrt(r["sse"] / n),
        "mae": r["sae"] / n,
        "r2": 1 - r["sse"] / sst if sst > 0 else float("nan"),
        "mape": (r["sape"] / r["nz"]) if r["nz"] else float("nan"),
    })
    lo, hi = r["emin"], r["emax"]
    width = (hi - lo) / 40 if hi > lo else 1.0
    hist = (predictions.select(F.least(F.floor((e - F.lit(lo)) / F.lit(width)), F.lit(39)).cast("int").alias("b"), yhat.alias("p"))
            .groupBy("b").agg(F.count(F.lit(1)).alias("n"), F.avg("p").alias("p")).collect())
    ev.bins = sorted((lo + row["b"] * width, float(row["n"]), float(row["p"])) for row in hist)
    return ev


def merge_binary(evals: list[Evaluation]) -> Evaluation:
    """Pool the bins of several evaluations (the CV folds) for threshold selection."""
    acc: dict[float, list[float]] = {}
    for ev in evals:
        for edge, p, n in ev.bins:
            a = acc.setdefault(edge, [0.0, 0.0])
            a[0] += p
            a[1] += n
    bins = sorted(((e, a[0], a[1]) for e, a in acc.items()), key=lambda b: -b[0])
    return Evaluation("binary", {}, bins=bins)


def _trapezoid(x: list[float], y: list[float]) -> float:
    return sum((x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2 for i in range(1, len(x)))
