"""What every stage shares: config and settings, errors, the Spark session, table I/O, MLflow, job runs and
the names defined once (columns, tasks and metrics, SQL quoting, plotting)."""
