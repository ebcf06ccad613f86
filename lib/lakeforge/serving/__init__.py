"""Online use of a registered model without a JVM: the numpy scorer of lakeforge's PipelineModels
(lakeforge.serving.scorer), the HTTP server (``lakeforge serve``), the model export and the
dashboard. Nothing in this package imports pyspark: an exported model is served on a host with
Python only.
"""
