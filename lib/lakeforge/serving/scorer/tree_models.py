"""Spark's tree models in numpy: decision tree, random forest and gradient-boosted trees, for
classification and regression (Spark 4.1's formulas and saved layout).

Saved layout: a single tree's ``data/`` holds one row per node (id, prediction, impurity,
impurityStats, leftChild, rightChild, split {featureIndex, leftCategoriesOrThreshold,
numCategories}); an ensemble's rows are (treeID, nodeData) and ``treesMetadata/`` holds each tree's
weight. A continuous split sends a row left when value <= threshold (NaN goes right); a categorical
split when the value is one of the left categories.

At load time every tree of a model becomes one flat node table (feature, threshold, children;
leaves point to themselves) so that ``transform`` walks all rows through all trees at once, one
numpy step per level.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lakeforge.serving.scorer.base import (
    ClassifierStage, RegressorStage, UnsupportedStage, feature_matrix, param, read_data, register,
)

CLS = "org.apache.spark.ml.classification."
REG = "org.apache.spark.ml.regression."


@dataclass
class Forest:
    """The nodes of all trees in flat arrays (node index = tree offset + saved id)."""

    roots: np.ndarray        # (trees,) the root node of each tree
    feature: np.ndarray      # (nodes,) split feature (0 at leaves)
    threshold: np.ndarray    # (nodes,) continuous threshold (+inf at leaves and categorical nodes)
    left: np.ndarray         # (nodes,) left child (itself at leaves)
    right: np.ndarray        # (nodes,) right child (itself at leaves)
    categorical: np.ndarray  # (nodes,) bool: a categorical split
    left_cats: np.ndarray    # (nodes, max categories) bool: category goes left
    prediction: np.ndarray   # (nodes,) the node's prediction
    impurity: np.ndarray     # (nodes,) the node's impurity
    stats: np.ndarray        # (nodes, stats) the node's impurity stats (class counts)
    depth: int               # the deepest leaf's depth

    def prepare(self) -> "Forest":
        """Derived arrays, once the node table is filled: next node = children[2 * node + go_left];
        categorical nodes get a NaN threshold (never true) and their category count in
        ``n_cats`` (0 elsewhere), and ``cat_table[2 * node ... ]`` flattens ``left_cats``."""
        self.children = np.column_stack([self.right, self.left]).ravel()
        self.has_categorical = bool(self.categorical.any())
        self.threshold = np.where(self.categorical, np.nan, self.threshold)
        size = self.left_cats.shape[1]
        self.n_cats = np.where(self.categorical, size, 0).astype(np.float64)
        self.cat_offset = np.arange(len(self.feature), dtype=np.int64) * size
        self.cat_table = self.left_cats.ravel()
        return self

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """(rows, trees): the leaf each row reaches in each tree (flat gathers, one step per level)."""
        n, p = x.shape
        trees = len(self.roots)
        flat_x = np.ascontiguousarray(x).ravel()
        base = np.repeat(np.arange(n, dtype=np.int64) * p, trees)
        node = np.tile(self.roots, n)
        with np.errstate(invalid="ignore"):
            for _ in range(self.depth):
                v = flat_x.take(base + self.feature.take(node))
                go_left = v <= self.threshold.take(node)  # NaN (value or threshold) is false
                if self.has_categorical:
                    go_left |= self._category_left(node, v)
                node = self.children.take(2 * node + go_left)
        return node.reshape(n, trees)

    def _category_left(self, node: np.ndarray, v: np.ndarray) -> np.ndarray:
        """True where ``node`` is categorical and ``v`` is one of its left categories."""
        valid = (np.floor(v) == v) & (v >= 0) & (v < self.n_cats.take(node))
        idx = self.cat_offset.take(node) + np.where(valid, v, 0).astype(np.int64)
        return valid & self.cat_table.take(idx)


def _tree_nodes(rows: list[dict]) -> dict[int, dict]:
    return {r["id"]: r for r in rows}


def _depth(nodes: dict[int, dict]) -> int:
    deepest, todo = 0, [(0, 0)]
    while todo:
        i, d = todo.pop()
        deepest = max(deepest, d)
        n = nodes[i]
        if n["leftChild"] >= 0:
            todo += [(n["leftChild"], d + 1), (n["rightChild"], d + 1)]
    return deepest


def build_forest(trees: list[list[dict]]) -> Forest:
    """One flat node table from each tree's saved node rows."""
    tables = [_tree_nodes(t) for t in trees]
    sizes = [max(t) + 1 for t in tables]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    total = int(sum(sizes))
    n_stats = max(len(n["impurityStats"] or []) for t in tables for n in t.values())
    max_cats = max([n["split"]["numCategories"] for t in tables for n in t.values()
                    if n["leftChild"] >= 0 and n["split"]["numCategories"] > 0] or [0])
    f = Forest(offsets.copy(), np.zeros(total, np.int64), np.full(total, np.inf), np.arange(total),
               np.arange(total), np.zeros(total, bool), np.zeros((total, max_cats), bool),
               np.zeros(total), np.zeros(total), np.zeros((total, n_stats)), max(_depth(t) for t in tables))
    for off, table in zip(offsets, tables):
        for i, n in table.items():
            g = off + i
            f.prediction[g], f.impurity[g] = n["prediction"], n["impurity"]
            stats = n["impurityStats"] or []
            f.stats[g, :len(stats)] = stats
            if n["leftChild"] < 0:
                continue
            split = n["split"]
            f.feature[g], f.left[g], f.right[g] = split["featureIndex"], off + n["leftChild"], off + n["rightChild"]
            values = split["leftCategoriesOrThreshold"]
            if split["numCategories"] < 0:
                f.threshold[g] = values[0]
            else:
                f.categorical[g] = True
                f.left_cats[g, [int(c) for c in values if 0 <= c < max_cats]] = True
    return f.prepare()


def _single_tree(path: Path) -> Forest:
    return build_forest([read_data(path)])


def _ensemble(path: Path) -> tuple[Forest, np.ndarray]:
    """The ensemble's trees (by treeID) and their weights."""
    by_tree: dict[int, list[dict]] = {}
    for r in read_data(path):
        by_tree.setdefault(r["treeID"], []).append(r["nodeData"])
    meta_rows = read_data(path, "treesMetadata")
    weights = {r["_1"]: float(r["_3"]) for r in meta_rows}
    ids = sorted(by_tree)
    return build_forest([by_tree[i] for i in ids]), np.array([weights.get(i, 1.0) for i in ids])


def _no_leaf_col(meta: dict) -> None:
    if param(meta, "leafCol", ""):
        raise UnsupportedStage(f"{meta['class']} with leafCol")


def normalize(stats: np.ndarray) -> np.ndarray:
    """Spark's normalizeToProbabilitiesInPlace: divide by the row sum unless it is 0."""
    total = stats.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total != 0, stats / total, stats)


# --- classification ------------------------------------------------------------------------------

class DecisionTreeClassifierStage(ClassifierStage):
    """Raw prediction: the leaf's class counts; probability: them normalized."""

    def __init__(self, meta: dict, forest: Forest):
        super().__init__(meta)
        self.forest = forest
        self.num_classes = int(meta.get("numClasses", forest.stats.shape[1]))

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        return self.forest.stats[self.forest.leaves(x)[:, 0], :self.num_classes]

    def raw_to_probability(self, raw: np.ndarray) -> np.ndarray:
        return normalize(raw)


class RandomForestClassifierStage(DecisionTreeClassifierStage):
    """Raw prediction: the sum over trees of each leaf's normalized class counts (in tree order)."""

    def __init__(self, meta: dict, forest: Forest):
        super().__init__(meta, forest)
        self.leaf_probability = normalize(forest.stats[:, :self.num_classes])

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        per_tree = self.leaf_probability[self.forest.leaves(x)]  # (rows, trees, classes)
        votes = np.zeros((len(x), self.num_classes))
        for t in range(per_tree.shape[1]):  # Spark's order of the sum
            votes += per_tree[:, t]
        return votes


def gbt_margin(forest: Forest, weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    """sum over trees of weight * the leaf's prediction, in tree order."""
    terms = forest.prediction[forest.leaves(x)] * weights  # (rows, trees)
    margin = np.zeros(len(x))
    for t in range(terms.shape[1]):  # Spark's order of the sum
        margin += terms[:, t]
    return margin


class GBTClassifierStage(ClassifierStage):
    """Raw prediction (-margin, margin); P(class 0) = 1 / (1 + exp(-2 * -margin)) (log loss),
    P(class 1) = 1 - P(class 0)."""

    def __init__(self, meta: dict, forest: Forest, weights: np.ndarray):
        super().__init__(meta)
        self.forest, self.weights = forest, weights

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        m = gbt_margin(self.forest, self.weights, x)
        return np.column_stack([-m, m])

    def raw_to_probability(self, raw: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            p0 = 1.0 / (1.0 + np.exp(-2.0 * raw[:, 0]))
        return np.column_stack([p0, 1.0 - p0])


@register(CLS + "DecisionTreeClassificationModel")
def _load_dt_classifier(path: Path, meta: dict) -> DecisionTreeClassifierStage:
    _no_leaf_col(meta)
    return DecisionTreeClassifierStage(meta, _single_tree(path))


@register(CLS + "RandomForestClassificationModel")
def _load_rf_classifier(path: Path, meta: dict) -> RandomForestClassifierStage:
    _no_leaf_col(meta)
    return RandomForestClassifierStage(meta, _ensemble(path)[0])


@register(CLS + "GBTClassificationModel")
def _load_gbt_classifier(path: Path, meta: dict) -> GBTClassifierStage:
    _no_leaf_col(meta)
    return GBTClassifierStage(meta, *_ensemble(path))


# --- regression ----------------------------------------------------------------------------------

class DecisionTreeRegressorStage(RegressorStage):
    """The leaf's prediction; ``varianceCol`` (when set) is the leaf's impurity."""

    def __init__(self, meta: dict, forest: Forest):
        super().__init__(meta)
        self.forest = forest
        self.variance_col = param(meta, "varianceCol", "") or ""

    def transform(self, frame):
        out = dict(frame)
        leaves = self.forest.leaves(feature_matrix(frame, self.features_col))[:, 0]
        if self.prediction_col:
            out[self.prediction_col] = self.forest.prediction[leaves]
        if self.variance_col:
            out[self.variance_col] = self.forest.impurity[leaves]
        return out


class RandomForestRegressorStage(RegressorStage):
    """The mean of the trees' leaf predictions (summed in tree order, divided by the count)."""

    def __init__(self, meta: dict, forest: Forest):
        super().__init__(meta)
        self.forest = forest

    def predict(self, x: np.ndarray) -> np.ndarray:
        values = self.forest.prediction[self.forest.leaves(x)]
        total = np.zeros(len(x))
        for t in range(values.shape[1]):  # Spark's order of the sum
            total += values[:, t]
        return total / values.shape[1]


class GBTRegressorStage(RegressorStage):
    def __init__(self, meta: dict, forest: Forest, weights: np.ndarray):
        super().__init__(meta)
        self.forest, self.weights = forest, weights

    def predict(self, x: np.ndarray) -> np.ndarray:
        return gbt_margin(self.forest, self.weights, x)


@register(REG + "DecisionTreeRegressionModel")
def _load_dt_regressor(path: Path, meta: dict) -> DecisionTreeRegressorStage:
    _no_leaf_col(meta)
    return DecisionTreeRegressorStage(meta, _single_tree(path))


@register(REG + "RandomForestRegressionModel")
def _load_rf_regressor(path: Path, meta: dict) -> RandomForestRegressorStage:
    _no_leaf_col(meta)
    return RandomForestRegressorStage(meta, _ensemble(path)[0])


@register(REG + "GBTRegressionModel")
def _load_gbt_regressor(path: Path, meta: dict) -> GBTRegressorStage:
    _no_leaf_col(meta)
    return GBTRegressorStage(meta, *_ensemble(path))

