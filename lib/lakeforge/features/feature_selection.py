"""Feature selection on the assembled feature vector (which features the model sees; choosing
the winning model is lakeforge.training's), fitted as built-in Spark ML stages.

Steps, in this order, each configured under the top-level ``selection`` key
(lakeforge.core.config_features.FeatureSelectionConfig):

1. variance threshold: VarianceThresholdSelector (scores: Summarizer variances);
2. correlation filter: of each pair with |Pearson r| above the threshold, the feature with the
   larger mean |r| to all others is dropped (Correlation.corr on the vector: a d x d matrix);
   fitted as a VectorSlicer;
3. univariate test: UnivariateFeatureSelector (chi-squared / ANOVA F / F-regression; scores from
   the same tests: ChiSquareTest, ANOVATest, FValueTest);
4. model-based: random forest feature importances or |coefficients| of an L1 model
   (elasticNetParam=1), fitted as a VectorSlicer of the kept slots;
5. PCA.

Every step adds rows to a ranking (feature, source column, method, score, rank, kept); the slot
names come from the vector's ML attributes (lakeforge.features.stages.SlotNamer). The fitted
result is a PipelineModel of built-in stages (spliced into the preprocessing model by
FlatPipeline).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pyspark.ml import Estimator, PipelineModel
from pyspark.ml.feature import PCA, UnivariateFeatureSelector, VarianceThresholdSelector, VectorSlicer
from pyspark.ml.stat import ChiSquareTest, Correlation, Summarizer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.core.config_features import FeatureSelectionConfig
from lakeforge.core.errors import InputDataError
from lakeforge.features.stages import SlotNamer

# Above this many slots the correlation matrix (d x d doubles on the driver) is refused.
MAX_CORRELATION_SLOTS = 2000
_MODES = {"top": "numTopFeatures", "percentile": "percentile", "fpr": "fpr", "fdr": "fdr", "fwe": "fwe"}
_TYPES = {"chi2": ("categorical", "categorical"), "anova": ("continuous", "categorical"),
          "f_regression": ("continuous", "continuous")}


@dataclass(frozen=True)
class SelectionTarget:
    """What the supervised steps are fitted against: the label column and the task (binary,
    multiclass or regression); ``seed``: the model-based step's random forest."""

    label_col: str
    task: str
    seed: int


class FeatureSelection(Estimator):
    """Fits the configured selection steps on (features, label); ``ranking`` (a list, if given)
    receives one row per slot and step."""

    def __init__(self, cfg: FeatureSelectionConfig, input_col: str, output_col: str, target: SelectionTarget,
                 namer: SlotNamer, ranking: list | None = None):
        super().__init__()
        self.cfg, self.input_col, self.output_col = cfg, input_col, output_col
        self.label_col, self.task, self.seed = target.label_col, target.task, target.seed
        self.namer, self.ranking = namer, ranking

    def _steps(self) -> list[str]:
        c = self.cfg
        return [name for name, on in (("variance", c.variance_threshold is not None),
                                      ("correlation", c.correlation_threshold is not None),
                                      ("univariate", c.univariate is not None),
                                      ("model", c.model is not None), ("pca", c.pca is not None)) if on]

    def _fit(self, dataset: DataFrame) -> PipelineModel:
        base = dataset.select(self.input_col, self.label_col).cache()
        try:
            stages, data, col = [], base, self.input_col
            steps = self._steps()
            rows: list[dict] = []
            for i, step in enumerate(steps):
                out = self.output_col if i == len(steps) - 1 else f"__selected_{i}"
                names = self.namer.names(data.schema[col])
                stage, step_rows = getattr(self, f"_{step}")(data, col, out, names)
                for r in step_rows:
                    r["step"] = i + 1
                rows += step_rows
                stages.append(stage)
                data = stage.transform(data).select(out, self.label_col)
                col = out
                if step != "pca" and not any(r["kept"] for r in step_rows):
                    raise InputDataError(f"selection ({step}) kept no feature; loosen its threshold in the pipeline config")
            final = {r["feature"] for r in rows if r["step"] == len(steps) and r["kept"]}
            for r in rows:
                r["selected"] = r["feature"] in final if steps[-1] != "pca" else r["method"] == "pca"
            if self.ranking is not None:
                self.ranking.extend(rows)
            return PipelineModel(stages=stages)
        finally:
            base.unpersist()

    # --- steps: each returns (fitted stage, ranking rows) ---

    def _variance(self, data, col, out, names):
        t = self.cfg.variance_threshold
        var = data.select(Summarizer.metrics("variance").summary(F.col(col)).alias("s")).first()["s"]["variance"].toArray()
        model = VarianceThresholdSelector(featuresCol=col, outputCol=out, varianceThreshold=t).fit(data)
        kept = set(model.selectedFeatures)
        return model, _rank(names, [float(v) for v in var], kept, "variance", note=f"kept if variance > {t}")

    def _correlation(self, data, col, out, names):
        t = self.cfg.correlation_threshold
        d = len(names)
        if d > MAX_CORRELATION_SLOTS:
            raise InputDataError(
                f"selection.correlation_threshold: the feature vector has {d} slots (more than {MAX_CORRELATION_SLOTS}); "
                "group rare levels (preprocessing.rare_levels) or use a univariate / model-based step instead")
        r = np.nan_to_num(Correlation.corr(data, col).first()[0].toArray(), nan=0.0)
        a = np.abs(r)
        np.fill_diagonal(a, 0.0)
        mean_abs = a.mean(axis=1) if d > 1 else np.zeros(d)
        dropped: dict[int, tuple[int, float]] = {}
        ii, jj = np.where(np.triu(a, 1) > t)
        for k in np.argsort(-a[ii, jj], kind="stable"):
            i, j = int(ii[k]), int(jj[k])
            if i in dropped or j in dropped:
                continue
            lose, keep = (j, i) if (mean_abs[j], j) >= (mean_abs[i], i) else (i, j)
            dropped[lose] = (keep, float(r[i, j]))
        kept = [i for i in range(d) if i not in dropped]
        rows = _rank(names, [float(a[i].max()) if d > 1 else 0.0 for i in range(d)], set(kept), "correlation",
                     higher_first=False)
        for row in rows:
            if row["index"] in dropped:
                partner, rv = dropped[row["index"]]
                row["note"] = f"r = {rv:.3f} with {names[partner][0]}"
        return VectorSlicer(inputCol=col, outputCol=out, indices=kept), rows

    def _univariate(self, data, col, out, names):
        u = self.cfg.univariate
        test = u.test
        if test == "auto":
            test = "f_regression" if self.task == "regression" else "anova"
        if self.task == "regression" and test != "f_regression":
            raise InputDataError(f"selection.univariate.test {test!r} needs a class target; for a numeric target use f_regression (or auto)")
        spark = data.sparkSession
        try:
            if test == "chi2":
                res = ChiSquareTest.test(data, col, self.label_col).first()
                stats, pvals = res["statistics"].toArray(), res["pValues"].toArray()
            else:
                jvm_test = getattr(spark._jvm.org.apache.spark.ml.stat, "ANOVATest" if test == "anova" else "FValueTest")
                res = DataFrame(jvm_test.test(data._jdf, col, self.label_col), spark).first()
                stats, pvals = res["fValues"].toArray(), res["pValues"].toArray()
            ftype, ltype = _TYPES[test]
            sel = UnivariateFeatureSelector(featuresCol=col, outputCol=out, labelCol=self.label_col,
                                            selectionMode=_MODES[u.mode])
            sel.setFeatureType(ftype).setLabelType(ltype).setSelectionThreshold(float(u.threshold))
            model = sel.fit(data)
        except Exception as exc:
            if isinstance(exc, InputDataError):
                raise
            raise InputDataError(f"selection.univariate ({test}): {str(exc).splitlines()[0][:300]}"
                                 + ("; chi2 suits 0/1 features: use test anova for continuous ones" if test == "chi2" else "")) from None
        rows = _rank(names, [float(s) for s in stats], set(model.selectedFeatures), test)
        for row in rows:
            row["p_value"] = float(pvals[row["index"]])
        return model, rows

    def _model(self, data, col, out, names):
        m = self.cfg.model
        from pyspark.ml import classification as C
        from pyspark.ml import regression as R

        classify = self.task != "regression"
        if m.method == "random_forest":
            est = (C.RandomForestClassifier if classify else R.RandomForestRegressor)(
                featuresCol=col, labelCol=self.label_col, numTrees=m.num_trees, maxDepth=m.max_depth, seed=self.seed)
            fitted = est.fit(data)
            scores = fitted.featureImportances.toArray()
        else:
            est = (C.LogisticRegression(elasticNetParam=1.0, regParam=m.reg_param, maxIter=100) if classify else
                   R.LinearRegression(elasticNetParam=1.0, regParam=m.reg_param, maxIter=100))
            est.setFeaturesCol(col).setLabelCol(self.label_col)
            fitted = est.fit(data)
            scores = (np.abs(fitted.coefficientMatrix.toArray()).sum(axis=0) if classify
                      else np.abs(fitted.coefficients.toArray()))
        scores = [float(s) for s in scores]
        total = sum(scores) or 1.0
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        if m.top is not None:
            kept = set(order[: m.top])
        elif m.min_importance is not None:
            kept = {i for i in order if scores[i] / total >= m.min_importance}
        else:
            kept = {i for i in order if scores[i] > 0}
        method = "random_forest" if m.method == "random_forest" else "lasso"
        return VectorSlicer(inputCol=col, outputCol=out, indices=sorted(kept)), _rank(names, scores, kept, method)

    def _pca(self, data, col, out, names):
        k = self.cfg.pca
        if k > len(names):
            raise InputDataError(f"selection.pca: {k} components but only {len(names)} features reach PCA; lower selection.pca")
        model = PCA(k=k, inputCol=col, outputCol=out).fit(data)
        ev = model.explainedVariance.toArray()
        rows = [{"index": i, "feature": f"pc{i + 1}", "column": "pca", "method": "pca", "score": float(ev[i]), "p_value": None,
                 "rank": i + 1, "kept": True, "note": "share of variance explained"} for i in range(k)]
        return model, rows


def _rank(names, scores, kept: set, method: str, higher_first: bool = True, note: str | None = None) -> list[dict]:
    def key(i):
        s = scores[i]
        s = -math.inf if s is None or math.isnan(s) else s
        return (-s if higher_first else s, i)

    order = sorted(range(len(names)), key=key)
    rank = {i: r + 1 for r, i in enumerate(order)}
    return [{"index": i, "feature": names[i][0], "column": names[i][1], "method": method,
             "score": None if scores[i] is None or math.isnan(scores[i]) else scores[i], "p_value": None,
             "rank": rank[i], "kept": i in kept, "note": note} for i in range(len(names))]
