"""Example Apache Airflow DAGs for lakeforge (Airflow 2.x/3.x): daily ingest -> score -> monitor
(-> retrain when an alert is confirmed), weekly train. Copy to your DAG folder and set LAKEFORGE_HOME to the project checkout on the workers.

Each task runs one lakeforge job for the DAG run's logical date ({{ ds }}), so Airflow's
retries and backfills (`airflow dags backfill`) are idempotent: rerunning a date replaces that
date's output. lakeforge itself refuses a second concurrent run of the same job and pipeline.

Two ways to run a job: BashOperator (the lakeforge CLI on the worker, Spark in local mode or
--env cluster) or SparkSubmitOperator (the jobs/*.py entry points on your cluster; needs the
apache-airflow-providers-apache-spark package and a spark_default connection).
"""

import os
from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

HOME = os.environ.get("LAKEFORGE_HOME", "/opt/lakeforge")
PIPELINE = "conf/pipelines/telco_churn.yaml"
CLI = f"cd {HOME} && LAKEFORGE_HOME={HOME} {HOME}/.venv/bin/lakeforge --env cluster"
defaults = {"retries": 2, "retry_delay": timedelta(minutes=10)}

with DAG(
    "lakeforge_telco_daily",
    start_date=datetime(2026, 1, 1),
    schedule="15 6 * * *",
    catchup=False,
    max_active_runs=1,
    default_args=defaults,
) as daily:
    ingest = BashOperator(task_id="ingest", bash_command=f"{CLI} ingest {PIPELINE} --run-date {{{{ ds }}}}")
    score = BashOperator(task_id="score", bash_command=f"{CLI} score {PIPELINE} --run-date {{{{ ds }}}}")
    # monitor exits 3 when a drift / performance alert is confirmed (2 of the last 5 windows breach):
    # that exit code is Airflow's "skip" (skip_on_exit_code), anything else non-zero fails the task.
    # "alerted" succeeds only when monitor exited 3, so retrain runs only then (trigger_rule).
    monitor = BashOperator(
        task_id="monitor",
        bash_command=f"{CLI} monitor {PIPELINE} --run-date {{{{ ds }}}}",
        skip_on_exit_code=3,
    )
    alerted = BashOperator(task_id="alerted", bash_command="echo 'alert confirmed: retraining'",
                           trigger_rule="all_skipped")
    retrain = BashOperator(task_id="retrain", bash_command=f"{CLI} retrain {PIPELINE} --run-date {{{{ ds }}}}")
    ingest >> score >> monitor >> alerted >> retrain

with DAG(
    "lakeforge_telco_weekly_train",
    start_date=datetime(2026, 1, 1),
    schedule="0 2 * * 1",
    catchup=False,
    max_active_runs=1,
    default_args=defaults,
) as weekly:
    try:  # the same job through spark-submit, when the Spark provider is installed
        from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

        SparkSubmitOperator(
            task_id="train",
            application=f"{HOME}/jobs/train.py",
            application_args=["--env", "cluster", f"{HOME}/{PIPELINE}", "--run-date", "{{ ds }}"],
            py_files=f"{HOME}/dist/lakeforge.zip",
            jars=",".join(f"{HOME}/jars/{j}" for j in sorted(os.listdir(f"{HOME}/jars")) if j.endswith(".jar"))
            if os.path.isdir(f"{HOME}/jars") else None,
            env_vars={"LAKEFORGE_HOME": HOME, "PYSPARK_PYTHON": f"{HOME}/.venv/bin/python"},
            conn_id="spark_default",
        )
    except ImportError:
        BashOperator(task_id="train", bash_command=f"{CLI} train {PIPELINE} --run-date {{{{ ds }}}}")
