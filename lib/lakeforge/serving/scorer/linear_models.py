"""Spark's linear-family models in numpy float64, with Spark's own formulas (Spark 4.1):
logistic regression (binary and multinomial), linear SVC, naive Bayes (all four model types),
the multilayer perceptron, factorization machines (classifier and regressor), linear and
generalized linear regression. Each reads the saved ``data/`` Parquet at load time; ``transform``
is a few matrix products (see lakeforge.serving.scorer.base for the frame and the stage protocol).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lakeforge.serving.scorer.base import (
    ClassifierStage, RegressorStage, UnsupportedStage, feature_matrix, matrix, param, read_data, register, vector,
)

CLS = "org.apache.spark.ml.classification."
REG = "org.apache.spark.ml.regression."


def _exp(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.exp(x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), as Spark writes it (exp overflow gives 0, as in Java)."""
    return 1.0 / (1.0 + _exp(-x))


def softmax(raw: np.ndarray) -> np.ndarray:
    """Spark's ``Utils.softmax``: exp(v - max) scaled by 1 / sum; a +inf is the whole mass."""
    top = raw.max(axis=1, initial=-np.inf, keepdims=True) if raw.shape[1] else raw[:, :0]
    with np.errstate(invalid="ignore"):
        e = _exp(raw - top)
        out = e * (1.0 / e.sum(axis=1, keepdims=True))
    inf = np.isposinf(raw)
    if inf.any():
        rows = inf.any(axis=1)
        first = inf[rows].argmax(axis=1)
        out[rows] = 0.0
        out[np.flatnonzero(rows), first] = 1.0
    return out


# --- logistic regression ------------------------------------------------------------------------

class LogisticRegressionStage(ClassifierStage):
    def __init__(self, meta: dict, row: dict):
        super().__init__(meta)
        self.coefficients = matrix(row["coefficientMatrix"])  # (classes or 1, features)
        self.intercepts = vector(row["interceptVector"])
        self.multinomial = bool(row["isMultinomial"])
        if self.thresholds is not None and not self.multinomial:  # getThreshold from thresholds
            t0, t1 = self.thresholds
            self.threshold = 1.0 / (1.0 + t0 / t1)
        else:
            self.threshold = float(param(meta, "threshold", 0.5))

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        margins = x @ self.coefficients.T + self.intercepts
        if self.multinomial:
            return margins
        m = margins[:, 0]
        return np.column_stack([-m, m])

    def raw_to_probability(self, raw: np.ndarray) -> np.ndarray:
        if not self.multinomial:
            return sigmoid(raw)
        top = raw.max(axis=1, keepdims=True)  # Spark: subtract the max margin only when > 0
        shifted = np.where(top > 0, raw - top, raw)
        e = _exp(shifted)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = e * (1.0 / e.sum(axis=1, keepdims=True))
        inf = np.isposinf(top[:, 0])
        if inf.any():
            out[inf] = 0.0
            out[np.flatnonzero(inf), raw[inf].argmax(axis=1)] = 1.0
        return out

    def raw_to_prediction(self, raw: np.ndarray) -> np.ndarray:
        if self.multinomial:
            return super().raw_to_prediction(raw)
        t = self.threshold
        cut = -math.inf if t == 0.0 else math.inf if t == 1.0 else math.log(t / (1.0 - t))
        return (raw[:, 1] > cut).astype(np.float64)

    def probability_to_prediction(self, probability: np.ndarray) -> np.ndarray:
        if self.multinomial:
            return super().probability_to_prediction(probability)
        return (probability[:, 1] > self.threshold).astype(np.float64)


@register(CLS + "LogisticRegressionModel")
def _load_logistic(path: Path, meta: dict) -> LogisticRegressionStage:
    return LogisticRegressionStage(meta, read_data(path)[0])


# --- linear SVC ---------------------------------------------------------------------------------

class LinearSVCStage(ClassifierStage):
    probabilistic = False

    def __init__(self, meta: dict, row: dict):
        super().__init__(meta)
        self.coefficients = vector(row["coefficients"])
        self.intercept = float(row["intercept"])
        self.threshold = float(param(meta, "threshold", 0.0))

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        m = x @ self.coefficients + self.intercept
        return np.column_stack([-m, m])

    def raw_to_prediction(self, raw: np.ndarray) -> np.ndarray:
        return (raw[:, 1] > self.threshold).astype(np.float64)


@register(CLS + "LinearSVCModel")
def _load_svc(path: Path, meta: dict) -> LinearSVCStage:
    return LinearSVCStage(meta, read_data(path)[0])


# --- naive Bayes --------------------------------------------------------------------------------

class NaiveBayesStage(ClassifierStage):
    def __init__(self, meta: dict, row: dict):
        super().__init__(meta)
        self.model_type = param(meta, "modelType", "multinomial")
        self.pi = vector(row["pi"])
        self.theta = matrix(row["theta"])  # (classes, features)
        if self.model_type == "gaussian":
            self.sigma = matrix(row["sigma"])
            self.log_var_sum = np.array([sum(math.log(v) for v in r) for r in self.sigma])
        elif self.model_type == "bernoulli":
            neg = np.log1p(-np.exp(self.theta))
            self.theta_minus_neg = self.theta - neg
            self.pi_minus_theta_sum = self.pi + neg.sum(axis=1)
        elif self.model_type not in ("multinomial", "complement"):
            raise UnsupportedStage(f"{self.name} modelType={self.model_type}")

    def _require(self, x: np.ndarray) -> None:
        if self.model_type in ("multinomial", "complement") and (x < 0).any():
            raise ValueError(f"{self.name} ({self.model_type}) requires nonnegative feature values")
        if self.model_type == "bernoulli" and not np.isin(x, (0.0, 1.0)).all():
            raise ValueError(f"{self.name} (bernoulli) requires 0 or 1 feature values")

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        self._require(x)
        if self.model_type == "multinomial":
            return x @ self.theta.T + self.pi
        if self.model_type == "bernoulli":
            return x @ self.theta_minus_neg.T + self.pi_minus_theta_sum
        if self.model_type == "complement":
            p = x @ self.theta.T
            top = p.max(axis=1, keepdims=True)
            return p - (np.log(_exp(p - top).sum(axis=1, keepdims=True)) + top)
        d = x[:, None, :] - self.theta[None, :, :]  # gaussian: (rows, classes, features)
        s = (d * d / self.sigma[None, :, :]).sum(axis=2)
        return self.pi - (s + self.log_var_sum) / 2

    def raw_to_probability(self, raw: np.ndarray) -> np.ndarray:
        return softmax(raw)


@register(CLS + "NaiveBayesModel")
def _load_naive_bayes(path: Path, meta: dict) -> NaiveBayesStage:
    return NaiveBayesStage(meta, read_data(path)[0])


# --- multilayer perceptron ----------------------------------------------------------------------

class PerceptronStage(ClassifierStage):
    """Affine layers (weights column-major out x in, then the bias) with sigmoid between them; the
    raw prediction is the last affine output, the probability its softmax."""

    def __init__(self, meta: dict, row: dict):
        super().__init__(meta)
        layers = [int(n) for n in param(meta, "layers")]
        weights = vector(row["weights"])
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []
        at = 0
        for n_in, n_out in zip(layers[:-1], layers[1:]):
            w = weights[at:at + n_in * n_out].reshape((n_out, n_in), order="F")
            b = weights[at + n_in * n_out:at + n_in * n_out + n_out]
            self.layers.append((w.T.copy(), b))
            at += n_in * n_out + n_out

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                x = sigmoid(x)
        return x

    def raw_to_probability(self, raw: np.ndarray) -> np.ndarray:
        top = raw.max(axis=1, keepdims=True)
        e = _exp(raw - top)
        return e / e.sum(axis=1, keepdims=True)


@register(CLS + "MultilayerPerceptronClassificationModel")
def _load_perceptron(path: Path, meta: dict) -> PerceptronStage:
    return PerceptronStage(meta, read_data(path)[0])


# --- factorization machines ---------------------------------------------------------------------

def fm_raw(x: np.ndarray, intercept: float, linear: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """intercept + x.linear + sum over factors of 0.5 * ((sum v x)^2 - sum (v x)^2)."""
    raw = intercept + x @ linear
    vx = x[:, :, None] * factors[None, :, :]  # (rows, features, factors)
    s = vx.sum(axis=1)
    sq = (vx * vx).sum(axis=1)
    for f in range(factors.shape[1]):
        raw = raw + 0.5 * (s[:, f] * s[:, f] - sq[:, f])
    return raw


def _fm_data(row: dict) -> tuple[float, np.ndarray, np.ndarray]:
    return float(row["intercept"]), vector(row["linear"]), matrix(row["factors"])


class FMClassifierStage(ClassifierStage):
    def __init__(self, meta: dict, row: dict):
        super().__init__(meta)
        self.data = _fm_data(row)

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        r = fm_raw(x, *self.data)
        return np.column_stack([-r, r])

    def raw_to_probability(self, raw: np.ndarray) -> np.ndarray:
        p1 = sigmoid(raw[:, 1])
        return np.column_stack([1.0 - p1, p1])


class FMRegressorStage(RegressorStage):
    def __init__(self, meta: dict, row: dict):
        super().__init__(meta)
        self.data = _fm_data(row)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return fm_raw(x, *self.data)


@register(CLS + "FMClassificationModel")
def _load_fm_classifier(path: Path, meta: dict) -> FMClassifierStage:
    return FMClassifierStage(meta, read_data(path)[0])


@register(REG + "FMRegressionModel")
def _load_fm_regressor(path: Path, meta: dict) -> FMRegressorStage:
    return FMRegressorStage(meta, read_data(path)[0])


# --- linear and generalized linear regression ---------------------------------------------------

class LinearRegressionStage(RegressorStage):
    def __init__(self, meta: dict, row: dict):
        super().__init__(meta)
        self.coefficients = vector(row["coefficients"])
        self.intercept = float(row["intercept"])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x @ self.coefficients + self.intercept


@register(REG + "LinearRegressionModel")
def _load_linear(path: Path, meta: dict) -> LinearRegressionStage:
    return LinearRegressionStage(meta, read_data(path)[0])


EPSILON = 1e-16
MAX = np.finfo(np.float64).max


def glm_family_link(meta: dict) -> tuple[str, float | str]:
    """(family, link) as Spark's FamilyAndLink picks them: tweedie with variance power 0/1/2 is
    gaussian/poisson/gamma; a link (linkPower for tweedie) only when set, else the family's
    default (tweedie: power 1 - variancePower). A power link is returned as a float."""
    family = param(meta, "family", "gaussian").lower()
    is_set = meta.get("paramMap", {})
    if family == "tweedie":
        vp = float(param(meta, "variancePower", 0.0))
        family = {0.0: "gaussian", 1.0: "poisson", 2.0: "gamma"}.get(vp, "tweedie")
        if "linkPower" in is_set:
            lp = float(is_set["linkPower"])
            return family, {0.0: "log", 1.0: "identity", -1.0: "inverse", 0.5: "sqrt"}.get(lp, lp)
        if family == "tweedie":
            return family, 1.0 - vp
    elif "link" in is_set:
        return family, is_set["link"].lower()
    return family, {"gaussian": "identity", "binomial": "logit", "poisson": "log", "gamma": "inverse"}[family]


def glm_unlink(link: float | str, eta: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if link == "identity":
            return eta.copy()
        if link == "log":
            return np.exp(eta)
        if link == "inverse":
            return 1.0 / eta
        if link == "sqrt":
            return eta * eta
        if link == "logit":
            return 1.0 / (1.0 + np.exp(-1.0 * eta))
        if link == "cloglog":
            return 1.0 - np.exp(-1.0 * np.exp(eta))
        if link == "probit":
            from scipy.special import ndtr

            return ndtr(eta)
        if isinstance(link, float):
            return np.exp(eta) if link == 0.0 else np.power(eta, 1.0 / link)
    raise UnsupportedStage(f"GeneralizedLinearRegressionModel link={link}")


def glm_project(family: str, mu: np.ndarray) -> np.ndarray:
    """Spark's Family.project: the fitted value trimmed into the family's range."""
    if family == "gaussian":
        return np.where(np.isneginf(mu), -MAX, np.where(np.isposinf(mu), MAX, mu))
    if family == "binomial":
        return np.where(mu < EPSILON, EPSILON, np.where(mu > 1.0 - EPSILON, 1.0 - EPSILON, mu))
    return np.where(mu < EPSILON, EPSILON, np.where(np.isinf(mu), MAX, mu))  # tweedie, poisson, gamma


class GeneralizedLinearStage(RegressorStage):
    def __init__(self, meta: dict, row: dict):
        super().__init__(meta)
        self.coefficients = vector(row["coefficients"])
        self.intercept = float(row["intercept"])
        self.family, self.link = glm_family_link(meta)
        self.link_col = param(meta, "linkPredictionCol", "") or ""
        if param(meta, "offsetCol", ""):
            raise UnsupportedStage("GeneralizedLinearRegressionModel with offsetCol")

    def predict(self, x: np.ndarray) -> np.ndarray:
        return glm_project(self.family, glm_unlink(self.link, self._eta(x)))

    def _eta(self, x: np.ndarray) -> np.ndarray:
        return x @ self.coefficients + self.intercept

    def transform(self, frame):
        out = super().transform(frame)
        if self.link_col:
            out[self.link_col] = self._eta(feature_matrix(frame, self.features_col))
        return out


@register(REG + "GeneralizedLinearRegressionModel")
def _load_glm(path: Path, meta: dict) -> GeneralizedLinearStage:
    return GeneralizedLinearStage(meta, read_data(path)[0])
