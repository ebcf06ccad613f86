"""spark-submit entry point for `lakeforge train`.

    spark-submit --jars "$(ls jars/*.jar | paste -sd,)" --py-files dist/lakeforge.zip \
        jobs/train.py [--env cluster] conf/pipelines/telco_churn.yaml [--run-date YYYY-MM-DD]

scripts/submit.sh train ... does the same with the project's jars and library.
"""

import sys

from lakeforge.app.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main("train"))
