"""lakeforge: a Spark-native machine-learning workflow on Delta Lake and MLflow."""

__version__ = "0.1.0"
