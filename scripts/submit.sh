#!/usr/bin/env bash
# spark-submit a lakeforge job (jobs/JOB.py) with the project's Delta jars and library.
#
#   scripts/submit.sh JOB [job arguments...]
#   e.g. SPARK_MASTER=spark://127.0.0.1:7077 scripts/submit.sh run --env cluster conf/pipelines/telco_churn.yaml
#
# JOB: ingest | train | score | run. The master comes from $SPARK_MASTER (default
# spark://127.0.0.1:$LAKEFORGE_MASTER_PORT, port 7077: scripts/cluster.sh start); more
# spark-submit options from $SPARK_SUBMIT_ARGS (split on spaces). The driver runs here with the
# project's .venv; executors need only Java and the jars (lakeforge's models are pure JVM stages).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${LAKEFORGE_PYTHON:-$ROOT/.venv/bin/python}"
if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
job="$1"; shift
[ -f "$ROOT/jobs/$job.py" ] || { echo "error: no job '$job' (jobs/: $(cd "$ROOT/jobs" && ls *.py | sed 's/\.py//' | paste -sd' '))" >&2; exit 2; }
compgen -G "$ROOT/jars/*.jar" >/dev/null || { echo "error: no jars in $ROOT/jars: run scripts/setup.sh" >&2; exit 2; }

export SPARK_HOME="${SPARK_HOME:-$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}"
export PYSPARK_PYTHON="$PY" PYSPARK_DRIVER_PYTHON="$PY" LAKEFORGE_HOME="$ROOT"
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
zip="$(bash "$ROOT/scripts/package.sh")"
jars="$(ls "$ROOT"/jars/*.jar | paste -sd,)"
master="${SPARK_MASTER:-spark://127.0.0.1:${LAKEFORGE_MASTER_PORT:-7077}}"
# shellcheck disable=SC2086
exec "$SPARK_HOME/bin/spark-submit" \
  --master "$master" \
  --name "lakeforge-$job" \
  --jars "$jars" \
  --py-files "$zip" \
  --conf "spark.driver.extraJavaOptions=-Dlog4j.configurationFile=file:$ROOT/conf/log4j2.properties" \
  --conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1 \
  --driver-class-path "$(ls "$ROOT"/jars/derbyclient-*.jar 2>/dev/null | head -1)" \
  ${SPARK_SUBMIT_ARGS:-} \
  "$ROOT/jobs/$job.py" "$@"
