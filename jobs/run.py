"""spark-submit entry point for `lakeforge run`.

    spark-submit --jars "$(ls jars/*.jar | paste -sd,)" --py-files dist/lakeforge.zip \
        jobs/run.py [--env cluster] conf/pipelines/telco_churn.yaml [--run-date YYYY-MM-DD]

scripts/submit.sh run ... does the same with the project's jars and library.
"""

import sys

from lakeforge.app.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main("run"))
