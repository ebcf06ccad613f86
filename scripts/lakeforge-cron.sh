#!/usr/bin/env bash
# Cron-ready wrapper: runs one lakeforge job for a pipeline with a clean environment, from the
# project folder, appending to a log file per job and day. Exit code = lakeforge's (0 success,
# 2 a problem lakeforge explains in one line, 1 unexpected); the log ends with the reason and the exit code.
#
#   scripts/lakeforge-cron.sh JOB PIPELINE_YAML [lakeforge job options...]
#
# JOB is ingest | train | score | run | maintain. Options such as --run-date, --from/--to and
# --env are passed through. Logs go to $LAKEFORGE_LOG_DIR (default <project>/logs).
# Example crontab (score daily at 06:15, retrain Mondays at 02:00, compact Sundays):
#   15 6 * * *  /opt/lakeforge/scripts/lakeforge-cron.sh score conf/pipelines/telco_churn.yaml
#   0  2 * * 1  /opt/lakeforge/scripts/lakeforge-cron.sh train conf/pipelines/telco_churn.yaml
#   0  4 * * 0  /opt/lakeforge/scripts/lakeforge-cron.sh maintain conf/pipelines/telco_churn.yaml
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ $# -lt 2 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
job="$1"; shift
case "$job" in ingest|train|score|run|maintain) ;; *) echo "unknown job '$job' (ingest|train|score|run|maintain)" >&2; exit 2;; esac
[ -x "$ROOT/.venv/bin/lakeforge" ] || { echo "lakeforge is not set up in $ROOT: run scripts/setup.sh" >&2; exit 2; }

export LAKEFORGE_HOME="$ROOT"
export PATH="$ROOT/.venv/bin:/usr/local/bin:/usr/bin:/bin"
log_dir="${LAKEFORGE_LOG_DIR:-$ROOT/logs}"
mkdir -p "$log_dir"
log="$log_dir/$job-$(date +%Y-%m-%d).log"
cd "$ROOT"
{
  echo "=== $(date -Is) lakeforge $job $*"
  set +e
  lakeforge "$job" "$@"
  rc=$?
  set -e
  echo "=== $(date -Is) exit $rc"
} >>"$log" 2>&1
exit "$rc"
