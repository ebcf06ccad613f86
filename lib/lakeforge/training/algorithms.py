"""The model zoo: estimators by name, the parameters a grid may search, default grids.

Every entry builds a Spark ML estimator that fits and scores in the JVM: MLlib's, and XGBoost4J-
Spark's boosted trees (``xgboost``, lakeforge.training.xgboost). Binary-only classifiers (MLlib's
gradient-boosted trees, linear SVC, factorization machines) are wrapped in ``OneVsRest`` for
multiclass targets; ``xgboost`` does all three (multiclass: softmax). Grids are plain
``{param: [values]}`` mappings in the pipeline config; the parameter names are MLlib's own
(``regParam``, ``maxDepth``, ...) or XGBoost4J-Spark's setters' (``numRound``, ``eta``, ...), plus
``hiddenLayers`` for the multilayer perceptron (its input and output sizes come from the data) and
``validationFraction`` for boosted trees: the share of the training rows held out to stop boosting
early (lakeforge.training.early_stopping, lakeforge.training.xgboost). A zero-config search (no
``model.algorithms``) searches XGBoost, not MLlib's GBT: on the public tables of
docs/benchmarks.md it matched scikit-learn's HistGradientBoosting where MLlib's GBT did not, in a
fraction of the time. From EARLY_STOPPING_MIN_ROWS training rows it boosts until the held-out rows
stop improving (sized_defaults), as HistGradientBoosting does from
10,000 rows; on fewer rows the stop follows the noise of a few hundred held-out rows, so the grid
keeps its fixed rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lakeforge.core.columns import FEATURES_COL, LABEL_COL
from lakeforge.core.tasks import TASKS

# Convergence tolerance of the iterative linear models unless a grid sets ``tol``.
LINEAR_TOL = 1e-4


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"expected a number, got {v!r}")
    return float(v)


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"expected an integer, got {v!r}")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {v!r}")
    return v


def _choice(*allowed: str) -> Callable[[Any], str]:
    def cast(v: Any) -> str:
        if v not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {v!r}")
        return v

    return cast


def _share(v: Any) -> float:
    v = _float(v)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"expected a share in [0, 1), got {v!r}")
    return v


def _layers(v: Any) -> list[int]:
    if not isinstance(v, list) or not v or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v):
        raise ValueError(f"expected a list of positive layer sizes such as [16, 8], got {v!r}")
    return v


_TREE = {"maxDepth": _int, "maxBins": _int, "minInstancesPerNode": _int, "minInfoGain": _float}
_LINEAR = {"regParam": _float, "elasticNetParam": _float, "maxIter": _int, "tol": _float,
           "fitIntercept": _bool, "standardization": _bool, "aggregationDepth": _int}
_XGBOOST = {"numRound": _int, "maxDepth": _int, "eta": _float, "minChildWeight": _float, "subsample": _float,
            "colsampleBytree": _float, "lambda_": _float, "alpha": _float, "gamma": _float, "maxBins": _int,
            "validationFraction": _share, "earlyStoppingRounds": _int}
_FM = {"factorSize": _int, "regParam": _float, "stepSize": _float, "maxIter": _int,
       "miniBatchFraction": _float, "initStd": _float, "fitIntercept": _bool, "fitLinear": _bool,
       "solver": _choice("adamW", "gd")}


@dataclass(frozen=True)
class Algorithm:
    name: str
    tasks: tuple[str, ...]
    params: dict[str, Callable[[Any], Any]]
    default_grid: dict[str, dict[str, list]]  # per task
    binary_only: bool = False  # wrapped in OneVsRest for multiclass
    weights: bool = True  # supports weightCol
    has_probability: bool = True
    seeded: bool = False
    in_defaults: tuple[str, ...] = field(default=())  # tasks it is searched in by default
    # Model complexity for the one-standard-error rule: 0 linear, 1 naive Bayes, 2 one tree,
    # 3 factorization machines, 4 tree ensembles, 5 neural network.
    complexity: int = 0

    def grid_for(self, task: str) -> dict[str, list]:
        return self.default_grid.get(task) or self.default_grid.get("*", {})


# Zero-config GBT from this many training rows: boosting until a held-out tenth of the fitted rows
# stops improving, at most maxIter rounds (measured: docs/benchmarks.md, "Default search space: GBT with early stopping").
EARLY_STOPPING_MIN_ROWS = 20_000
GBT_EARLY_STOPPING = {"maxIter": [200], "maxDepth": [3, 5], "stepSize": [0.1], "validationFraction": [0.1],
                      "validationTol": [0.0]}
# Zero-config XGBoost from EARLY_STOPPING_MIN_ROWS: HistGradientBoosting's stop (10 rounds without
# a better loss on a held-out tenth), depth-6 trees with 256 bins, at most 1,000 rounds.
XGBOOST_EARLY_STOPPING = {"numRound": [1000], "maxDepth": [6], "eta": [0.1], "validationFraction": [0.1],
                          "earlyStoppingRounds": [10]}
EARLY_STOPPING = {"gbt": GBT_EARLY_STOPPING, "xgboost": XGBOOST_EARLY_STOPPING}

ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in [
        Algorithm(
            "logistic_regression", ("binary", "multiclass"), dict(_LINEAR),
            {"*": {"regParam": [0.001, 0.01, 0.1], "elasticNetParam": [0.0]}},
            in_defaults=("binary", "multiclass"),
        ),
        Algorithm(
            "decision_tree", ("binary", "multiclass", "regression"), dict(_TREE, impurity=_choice("gini", "entropy", "variance")),
            {"*": {"maxDepth": [5, 8]}}, seeded=True,
            complexity=2,
        ),
        Algorithm(
            "random_forest", ("binary", "multiclass", "regression"),
            dict(_TREE, numTrees=_int, subsamplingRate=_float,
                 featureSubsetStrategy=_choice("auto", "all", "onethird", "sqrt", "log2")),
            {"*": {"numTrees": [50], "maxDepth": [6, 10]}}, seeded=True, in_defaults=TASKS,
            complexity=4,
        ),
        Algorithm(
            "gbt", ("binary", "multiclass", "regression"),
            dict(_TREE, maxIter=_int, stepSize=_float, subsamplingRate=_float, validationFraction=_share,
                 validationTol=_float),
            {"*": {"maxIter": [30], "maxDepth": [3, 5], "stepSize": [0.1]}}, binary_only=True, seeded=True,
            complexity=4,
        ),
        Algorithm(
            "xgboost", TASKS, dict(_XGBOOST),
            {"*": {"numRound": [100], "maxDepth": [3, 6], "eta": [0.1]}}, seeded=True,
            in_defaults=TASKS,
            complexity=4,
        ),
        Algorithm(
            "linear_svc", ("binary", "multiclass"), dict(_LINEAR),
            {"*": {"regParam": [0.01, 0.1]}}, binary_only=True, has_probability=False,
        ),
        Algorithm(
            "naive_bayes", ("binary", "multiclass"),
            {"smoothing": _float, "modelType": _choice("gaussian", "multinomial", "bernoulli", "complement")},
            # Gaussian: the only type that accepts negative (scaled) feature values.
            {"*": {"modelType": ["gaussian"]}},
            complexity=1,
        ),
        Algorithm(
            "multilayer_perceptron", ("binary", "multiclass"),
            {"hiddenLayers": _layers, "maxIter": _int, "stepSize": _float, "blockSize": _int,
             "solver": _choice("l-bfgs", "gd"), "tol": _float},
            {"*": {"hiddenLayers": [[16]], "maxIter": [100]}}, weights=False, seeded=True,
            complexity=5,
        ),
        Algorithm(
            "factorization_machines", ("binary", "multiclass", "regression"), dict(_FM),
            {"*": {"factorSize": [4], "regParam": [0.01], "maxIter": [50]}},
            binary_only=True, weights=False, seeded=True,
            complexity=3,
        ),
        Algorithm(
            "linear_regression", ("regression",), dict(_LINEAR),
            # ridge, lasso and elastic net in one grid
            {"*": {"regParam": [0.01, 0.1], "elasticNetParam": [0.0, 0.5, 1.0]}},
            in_defaults=("regression",),
        ),
        Algorithm(
            "generalized_linear", ("regression",),
            {"family": _choice("gaussian", "poisson", "gamma", "tweedie"), "link": _choice("identity", "log", "inverse", "sqrt"),
             "regParam": _float, "maxIter": _int, "tol": _float, "fitIntercept": _bool},
            {"*": {"family": ["gaussian"], "regParam": [0.0, 0.01]}},
        ),
    ]
}


def default_algorithms(task: str) -> dict[str, dict[str, list]]:
    return {a.name: a.grid_for(task) for a in ALGORITHMS.values() if task in a.in_defaults}


def sized_defaults(algorithms: dict[str, dict], task: str, rows: int) -> dict[str, dict]:
    """A zero-config search's grids for ``rows`` training rows: from EARLY_STOPPING_MIN_ROWS,
    boosted trees stop early (XGBOOST_EARLY_STOPPING, GBT_EARLY_STOPPING) instead of their fixed
    rounds (not a multiclass GBT: it is one-vs-rest)."""
    if rows < EARLY_STOPPING_MIN_ROWS:
        return algorithms
    stops = {n: g for n, g in EARLY_STOPPING.items() if task != "multiclass" or n != "gbt"}
    return {name: dict(stops.get(name, grid)) for name, grid in algorithms.items()}


def validate_grid(algorithm: str, grid: dict[str, Any], where: str = "") -> dict[str, list]:
    """Check names and value types; raise ValueError naming the algorithm and parameter."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; available: {', '.join(ALGORITHMS)}")
    algo = ALGORITHMS[algorithm]
    out: dict[str, list] = {}
    for name, values in (grid or {}).items():
        if name not in algo.params:
            raise ValueError(
                f"{algorithm}: unknown parameter {name!r}; allowed: {', '.join(sorted(algo.params))}"
            )
        if not isinstance(values, list) or not values:
            raise ValueError(f"{algorithm}.{name}: expected a non-empty list of values, got {values!r}")
        try:
            out[name] = [algo.params[name](v) for v in values]
        except ValueError as exc:
            raise ValueError(f"{algorithm}.{name}: {exc}") from None
    return out


@dataclass(frozen=True)
class Estimators:
    """How a candidate's MLlib estimator is built for one training: the same for every fit of the
    search and for the final refit."""

    task: str
    weight: str | None  # the weight column (algorithms that take one), or none
    seed: int
    max_iter: int | None
    num_classes: int  # 0 for regression
    features: str = FEATURES_COL
    label: str = LABEL_COL

    def build(self, algorithm: str, num_features: int):
        """The unfitted estimator (OneVsRest-wrapped where needed) for feature vectors of
        ``num_features`` slots."""
        from pyspark.ml import classification as C
        from pyspark.ml import regression as R

        from lakeforge.training.early_stopping import EarlyStopping

        task, weight = self.task, self.weight
        algo = ALGORITHMS[algorithm]
        if task not in algo.tasks:
            raise ValueError(f"{algorithm} does not do {task}; it does {', '.join(algo.tasks)}")
        common: dict[str, Any] = {"featuresCol": self.features, "labelCol": self.label}
        if weight and algo.weights:
            common["weightCol"] = weight
        if algo.seeded:
            common["seed"] = self.seed
        regression = task == "regression"
        # lakeforge's preprocessing already scales the numeric columns; MLlib's internal
        # standardization would also rescale the one-hot columns (as scikit-learn does not).
        # tol: scikit-learn's default (MLlib's is 1e-6); on 2M rows it saves 25-50 % of the L-BFGS
        # iterations with the same loss to 6 digits and the same validation AUC (docs/benchmarks.md).
        linear = {"standardization": False, "tol": LINEAR_TOL}
        if algorithm == "logistic_regression":
            est = C.LogisticRegression(**common, **linear, maxIter=self.max_iter or 100)
        elif algorithm == "decision_tree":
            est = (R.DecisionTreeRegressor if regression else C.DecisionTreeClassifier)(**common)
        elif algorithm == "random_forest":
            est = (R.RandomForestRegressor if regression else C.RandomForestClassifier)(**common)
        elif algorithm == "gbt":
            est = (R.GBTRegressor if regression else C.GBTClassifier)(**common)
            if task != "multiclass":  # one-vs-rest fits its classifiers on label and features only
                est = EarlyStopping(est, seed=self.seed)
        elif algorithm == "xgboost":
            from lakeforge.training.xgboost import XGBoost

            est = XGBoost(task=task, **common, **({"numClasses": self.num_classes} if task == "multiclass" else {}))
        elif algorithm == "linear_svc":
            est = C.LinearSVC(**common, **linear, maxIter=self.max_iter or 100)
        elif algorithm == "naive_bayes":
            est = C.NaiveBayes(**common, modelType="gaussian")
        elif algorithm == "multilayer_perceptron":
            est = C.MultilayerPerceptronClassifier(**common, layers=[num_features, 16, self.num_classes])
        elif algorithm == "factorization_machines":
            est = (R.FMRegressor if regression else C.FMClassifier)(**common)
        elif algorithm == "linear_regression":
            est = R.LinearRegression(**common, **linear, maxIter=self.max_iter or 100)
        elif algorithm == "generalized_linear":
            est = R.GeneralizedLinearRegression(**common, maxIter=self.max_iter or 25)
        else:  # pragma: no cover - ALGORITHMS and this function are kept in step
            raise ValueError(algorithm)
        if task == "multiclass" and algo.binary_only:
            ovr_args = {"featuresCol": self.features, "labelCol": self.label, "parallelism": 1}
            if weight and algo.weights:
                ovr_args["weightCol"] = weight
            est = C.OneVsRest(classifier=est, **ovr_args)
        return est

    def param_map(self, estimator, params: dict, num_features: int) -> dict:
        """A grid point as the estimator's MLlib param map (see param_map)."""
        return param_map(estimator, params, num_features, self.num_classes)


def inner(estimator):
    """The estimator whose params a grid sets (the wrapped classifier of a OneVsRest, the wrapped
    GBT of an EarlyStopping)."""
    from pyspark.ml.classification import OneVsRest

    from lakeforge.training.early_stopping import EarlyStopping

    if isinstance(estimator, EarlyStopping):
        return estimator.gbt
    return estimator.getClassifier() if isinstance(estimator, OneVsRest) else estimator


def grid_points(grid: dict[str, list]) -> list[dict]:
    """The cartesian product of a grid, as plain {param: value} dicts (one per candidate)."""
    from itertools import product

    names = list(grid)
    return [dict(zip(names, combo)) for combo in product(*(grid[n] for n in names))] if names else [{}]


def param_map(estimator, point: dict, num_features: int, num_classes: int) -> dict:
    """One grid point as an MLlib param map of ``estimator`` (of its wrapped classifier for a
    OneVsRest); ``hiddenLayers`` becomes the perceptron's ``layers``, ``validationFraction`` the
    EarlyStopping's own param."""
    from lakeforge.training.early_stopping import EarlyStopping

    target = inner(estimator)
    pm = {}
    for name, value in point.items():
        if name == "hiddenLayers":
            pm[target.getParam("layers")] = [num_features, *value, num_classes]
        elif name == "validationFraction" and not target.hasParam(name):  # MLlib's GBT: the wrapper's param
            if not isinstance(estimator, EarlyStopping):
                raise ValueError("gbt.validationFraction: early stopping needs a binary or regression target "
                                 "(a multiclass GBT is one-vs-rest); remove it from the grid")
            pm[estimator.validationFraction] = value
        else:
            pm[target.getParam(name)] = value
    return pm
