"""XGBoost's gradient-boosted trees (XGBoost4J-Spark, in the JVM) as a lakeforge estimator.

``XGBoost`` fits ``ml.dmlc.xgboost4j.scala.spark.XGBoostClassifier`` / ``XGBoostRegressor`` (the
jar comes with scripts/fetch_jars.sh) on one Spark task with one thread per fit, so the search
runs several fits at once as it does MLlib's. What it adds around XGBoost4J-Spark 3.1.1, built for
Spark 3.5 and run here on Spark 4.1 (docs/benchmarks.md, "XGBoost4J-Spark on Spark 4.1"):

- **dense features**: XGBoost4J-Spark reads absent entries of Spark's sparse vectors as missing
  values in some rows and zeros in others (measured: a model's predictions differ by up to 0.94
  between the same rows stored dense and sparse). Both ``fit`` and the model's ``transform`` hand
  it the feature vector made dense in the JVM (``array_to_vector(vector_to_array(...))``, no Python),
  with values it would refuse (infinite, beyond float32) as missing.
- **early stopping** on a seeded-hash share of the fitted rows (``validationFraction``, the same
  rows in every fit; lakeforge.training.early_stopping.validation_rows), stopping after
  ``earlyStoppingRounds`` rounds without a better validation loss; the model keeps every round it
  fitted, as scikit-learn's HistGradientBoosting does.
- **its own persistence**: XGBoost4J-Spark's model writer and reader call json4s and Spark methods
  whose signatures changed in Spark 4, so they fail. ``XGBoostModel`` saves Spark's stage layout
  itself (``metadata/`` with the params; ``data/`` one Parquet row holding the booster as
  XGBoost's JSON) and rebuilds the JVM model from the booster on load. A PipelineModel holding it is
  saved and loaded by PySpark's pipeline writer, and lakeforge.serving's scorer reads the same
  files without a JVM (lakeforge.serving.scorer.xgboost_models).

Scoring stays in the JVM (XGBoost's native predictor in each task): no Python UDF.
"""

from __future__ import annotations

import json

from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReadable, MLReader, MLWritable, MLWriter
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.core.frames import local_frame
from lakeforge.training.early_stopping import validation_rows

FLOAT32_MAX = 3.4028234663852886e38  # larger magnitudes are infinite as float32
DENSE_COL = "_lf_xgboost_features"
_PREDICTION_TMP = "_lf_xgboost_prediction"
OBJECTIVES = {"binary": "binary:logistic", "multiclass": "multi:softprob", "regression": "reg:squarederror"}
# the booster params a grid may set -> XGBoost4J-Spark's setters (``lambda`` is a Python keyword)
BOOSTER_PARAMS = {"numRound": "setNumRound", "maxDepth": "setMaxDepth", "eta": "setEta",
                  "minChildWeight": "setMinChildWeight", "subsample": "setSubsample",
                  "colsampleBytree": "setColsampleBytree", "lambda_": "setLambda", "alpha": "setAlpha",
                  "gamma": "setGamma", "maxBins": "setMaxBins"}


def _p(name: str, doc: str, conv=TypeConverters.toFloat) -> Param:
    return Param(Params._dummy(), name, doc, typeConverter=conv)


class _XGBoostParams(Params):
    task = _p("task", "binary, multiclass or regression", TypeConverters.toString)
    numClasses = _p("numClasses", "classes of a multiclass target (labels 0 .. numClasses - 1)", TypeConverters.toInt)
    featuresCol = _p("featuresCol", "features column", TypeConverters.toString)
    labelCol = _p("labelCol", "label column", TypeConverters.toString)
    weightCol = _p("weightCol", "row weight column ('' for none)", TypeConverters.toString)
    predictionCol = _p("predictionCol", "prediction column", TypeConverters.toString)
    rawPredictionCol = _p("rawPredictionCol", "raw prediction column (classes)", TypeConverters.toString)
    probabilityCol = _p("probabilityCol", "probability column (classes)", TypeConverters.toString)
    numRound = _p("numRound", "boosting rounds (the cap when stopping early)", TypeConverters.toInt)
    validationFraction = _p("validationFraction", "share of the fitted rows held out to stop early (0: none)")

    def __init__(self):
        super().__init__()
        self._setDefault(task="binary", numClasses=0, featuresCol="features", labelCol="label", weightCol="",
                         predictionCol="prediction", rawPredictionCol="rawPrediction", probabilityCol="probability",
                         numRound=100, validationFraction=0.0)


class XGBoost(Estimator, _XGBoostParams):
    """Boosted trees by XGBoost4J-Spark; params named as its setters (``numRound``, ``maxDepth``,
    ``eta``, ...) plus ``validationFraction`` / ``earlyStoppingRounds`` and ``seed``."""

    maxDepth = _p("maxDepth", "tree depth", TypeConverters.toInt)
    eta = _p("eta", "learning rate")
    minChildWeight = _p("minChildWeight", "minimum hessian sum in a leaf")
    subsample = _p("subsample", "share of rows per tree")
    colsampleBytree = _p("colsampleBytree", "share of features per tree")
    lambda_ = _p("lambda_", "L2 penalty on leaf weights (XGBoost's lambda)")
    alpha = _p("alpha", "L1 penalty on leaf weights")
    gamma = _p("gamma", "minimum loss reduction to split")
    maxBins = _p("maxBins", "histogram bins per feature", TypeConverters.toInt)
    earlyStoppingRounds = _p("earlyStoppingRounds", "rounds without a better validation loss before stopping",
                             TypeConverters.toInt)
    seed = _p("seed", "random seed", TypeConverters.toInt)

    def __init__(self, **kwargs):
        super().__init__()
        self._setDefault(maxDepth=6, eta=0.3, minChildWeight=1.0, subsample=1.0,
                         colsampleBytree=1.0, lambda_=1.0, alpha=0.0, gamma=0.0, maxBins=256,
                         validationFraction=0.0, earlyStoppingRounds=10, seed=0)
        self._set(**kwargs)

    def _fit(self, dataset: DataFrame) -> "XGBoostModel":
        task = self.getOrDefault(self.task)
        if task not in OBJECTIVES:
            raise ValueError(f"xgboost does {' and '.join(OBJECTIVES)} targets, not {task}")
        fraction = self.getOrDefault(self.validationFraction)
        label, weight = self.getOrDefault(self.labelCol), self.getOrDefault(self.weightCol)
        # multiclass: every class, also one a fold lacks (XGBoost4J-Spark reads Spark's label attribute)
        classes = {"ml_attr": {"type": "nominal", "name": label, "num_vals": self.getOrDefault(self.numClasses)}}
        y = F.col(label).cast("double").alias(label, metadata=classes if task == "multiclass" else {})
        data = dataset.select(dense_features(self.getOrDefault(self.featuresCol)), y, *([F.col(weight)] if weight else []))
        est = self._java_estimator(dataset.sparkSession, task)
        if fraction > 0:
            held_out = validation_rows(DENSE_COL, label, fraction, self.getOrDefault(self.seed))
            est.setEvalDataset(data.filter(held_out)._jdf)
            est.setNumEarlyStoppingRounds(self.getOrDefault(self.earlyStoppingRounds))
            data = data.filter(~held_out)
        booster = est.fit(data._jdf).nativeBooster()
        model = XGBoostModel(bytes(booster.toByteArray("json")).decode())
        for p in model.params:  # the columns, the task and the rounds' cap (not the model's thresholds)
            if self.hasParam(p.name):
                model._set(**{p.name: self.getOrDefault(p.name)})
        return model

    def _java_estimator(self, spark: SparkSession, task: str):
        pkg = xgboost4j(spark).scala.spark
        est = pkg.XGBoostRegressor() if task == "regression" else pkg.XGBoostClassifier()
        est.setFeaturesCol(DENSE_COL).setLabelCol(self.getOrDefault(self.labelCol))
        if weight := self.getOrDefault(self.weightCol):
            est.setWeightCol(weight)
        # one task with one thread per fit: XGBoost refuses more threads than spark.task.cpus (1)
        est.setNumWorkers(1).setNthread(1).setMissing(float("nan")).setObjective(OBJECTIVES[task])
        est.setSeed(self.getOrDefault(self.seed)).setTreeMethod("hist")
        est.setRabitTrackerHostIp(spark.conf.get("spark.driver.host", "127.0.0.1"))
        for name, setter in BOOSTER_PARAMS.items():
            getattr(est, setter)(self.getOrDefault(name))
        return est


def xgboost4j(spark: SparkSession):
    """The JVM package ``ml.dmlc.xgboost4j``; a clear error when its jar is not on the classpath."""
    from py4j.java_gateway import JavaClass

    from lakeforge.core.errors import RuntimeSetupError

    pkg = spark.sparkContext._jvm.ml.dmlc.xgboost4j
    if not isinstance(pkg.java.XGBoost, JavaClass):
        raise RuntimeSetupError(
            "XGBoost's jar (ml.dmlc:xgboost4j-spark_2.13:3.1.1) is not on Spark's classpath: run scripts/fetch_jars.sh "
            "(it puts it in jars/, which lakeforge's sessions load), or pass it to spark-submit with --jars")
    return pkg


def dense_features(col: str):
    """The vector column ``col`` as dense vectors (JVM functions), named DENSE_COL. A value XGBoost
    cannot take as float32 (infinite, or beyond float32's range) becomes NaN, its missing value:
    XGBoost would fail the whole task on it where MLlib's models give that row an infinite score."""
    from pyspark.ml.functions import array_to_vector, vector_to_array

    finite = F.transform(vector_to_array(F.col(col)),
                         lambda v: F.when(F.abs(v) <= F.lit(FLOAT32_MAX), v).otherwise(F.lit(float("nan"))))
    return array_to_vector(finite).alias(DENSE_COL)


class XGBoostModel(Model, _XGBoostParams, MLReadable, MLWritable):
    """A fitted booster. ``transform`` scores in the JVM; binary targets get Spark's columns
    (rawPrediction [-margin, margin], probability [1 - p, p], prediction by ``thresholds``),
    multiclass targets XGBoost4J-Spark's (rawPrediction: each class's margin, probability: their
    softmax, prediction: the most probable class)."""

    thresholds = _p("thresholds", "per-class thresholds on the probability (binary)", TypeConverters.toListFloat)

    def __init__(self, booster_json: str = ""):
        super().__init__()
        self.booster_json = booster_json
        self._java_model = None

    @property
    def rounds(self) -> int:
        """The boosting rounds the booster holds (a multiclass round is one tree per class)."""
        model = json.loads(self.booster_json)["learner"]["gradient_booster"]["model"]
        per_round = self.num_classes if self.getOrDefault(self.task) == "multiclass" else 1
        return int(model["gbtree_model_param"]["num_trees"]) // per_round

    @property
    def num_classes(self) -> int:
        """The classes the booster scores (2 for a binary target, 0 for regression)."""
        task = self.getOrDefault(self.task)
        if task != "multiclass":
            return 2 if task == "binary" else 0
        return int(json.loads(self.booster_json)["learner"]["learner_model_param"]["num_class"])

    @property
    def featureImportances(self):
        """Each slot's share of the loss reduction of all splits on it (XGBoost's "total gain"),
        summing to 1 as MLlib's tree importances do."""
        from pyspark.ml.linalg import Vectors

        learner = json.loads(self.booster_json)["learner"]
        gain = [0.0] * int(learner["learner_model_param"]["num_feature"])
        for tree in learner["gradient_booster"]["model"]["trees"]:
            for left, feature, change in zip(tree["left_children"], tree["split_indices"], tree["loss_changes"]):
                if left != -1:  # a split, not a leaf
                    gain[feature] += change
        total = sum(gain)
        return Vectors.dense([g / total for g in gain] if total > 0 else gain)

    def getMaxIter(self) -> int:
        """The cap on the boosting rounds (``numRound``), as MLlib's GBT models name it."""
        return self.getOrDefault(self.numRound)

    def _java(self, spark: SparkSession):
        if self._java_model is None:
            xgb = xgboost4j(spark)
            booster = xgb.scala.Booster(xgb.java.XGBoost.loadModel(bytearray(self.booster_json.encode())))
            none = spark.sparkContext._jvm.scala.Option.empty()
            pkg = xgb.scala.spark
            task = self.getOrDefault(self.task)
            if task == "regression":
                self._java_model = pkg.XGBoostRegressionModel(self.uid, booster, none)
            else:
                self._java_model = pkg.XGBoostClassificationModel(self.uid, self.num_classes, booster, none)
            self._java_model.setFeaturesCol(DENSE_COL).setMissing(float("nan"))
        return self._java_model

    def _transform(self, dataset: DataFrame) -> DataFrame:
        jm = self._java(dataset.sparkSession)
        task = self.getOrDefault(self.task)
        binary = task == "binary"
        jm.setPredictionCol(_PREDICTION_TMP if binary else self.getOrDefault(self.predictionCol))
        if task != "regression":
            jm.setRawPredictionCol(self.getOrDefault(self.rawPredictionCol))
            jm.setProbabilityCol(self.getOrDefault(self.probabilityCol))
        scored = DataFrame(jm.transform(dataset.withColumn(DENSE_COL, dense_features(self.getOrDefault(
            self.featuresCol)))._jdf), dataset.sparkSession).drop(DENSE_COL)
        if not binary:
            return scored
        return scored.withColumn(self.getOrDefault(self.predictionCol), self._prediction()).drop(_PREDICTION_TMP)

    def _prediction(self):
        """Spark's probability2prediction: the first class with the largest probability / threshold."""
        from pyspark.ml.functions import vector_to_array

        t = self.getOrDefault(self.thresholds) if self.isSet(self.thresholds) else [0.5, 0.5]
        p = vector_to_array(F.col(self.getOrDefault(self.probabilityCol)))
        if t[1] == 0.0:
            return F.lit(1.0)
        if t[0] == 0.0:
            return F.lit(0.0)
        return F.when(p[1] / F.lit(t[1]) > p[0] / F.lit(t[0]), 1.0).otherwise(0.0)

    def write(self) -> MLWriter:
        return _ModelWriter(self)

    @classmethod
    def read(cls) -> MLReader:
        return _ModelReader()


class _ModelWriter(MLWriter):
    def __init__(self, instance: XGBoostModel):
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sparkSession,
                                         extraMetadata={"xgboostVersion": "3.1.1", "rounds": self.instance.rounds})
        booster = local_frame(self.sparkSession, [(self.instance.booster_json,)], "booster string")
        booster.coalesce(1).write.mode("overwrite").parquet(f"{path.rstrip('/')}/data")


class _ModelReader(MLReader):
    def load(self, path: str) -> XGBoostModel:
        metadata = DefaultParamsReader.loadMetadata(path, self.sparkSession)
        booster = self.sparkSession.read.parquet(f"{path.rstrip('/')}/data").first()["booster"]
        model = XGBoostModel(booster)
        model._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(model, metadata)
        return model
