#!/usr/bin/env bash
# The lakeforge demo on the bundled Telco churn data, with embedded defaults:
# set up (venv, packages, Delta jars), run the whole pipeline (ingest -> train -> register ->
# score), then query the predictions by table name from a second process.
# Usage: scripts/demo.sh [--run-date YYYY-MM-DD]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
case "${1:-}" in -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0;; esac

bash scripts/setup.sh
LF="$ROOT/.venv/bin/lakeforge"
PIPELINE=conf/pipelines/telco_churn.yaml

echo
echo "== lakeforge run $PIPELINE $*"
"$LF" run "$PIPELINE" "$@"

echo
echo "== Predictions, queried by name from a new process:"
"$LF" sql "SELECT run_date, model_name, model_version, count(*) AS predictions,
                  round(avg(score), 4) AS mean_score, sum(predicted_label) AS predicted_churners
           FROM lakeforge.predictions_telco GROUP BY ALL ORDER BY run_date"
cat <<MSG

Tables live under $ROOT/warehouse (Delta), the MLflow store in $ROOT/mlflow.
Next:
  source .venv/bin/activate
  lakeforge sql "SELECT * FROM lakeforge.predictions_telco ORDER BY score DESC LIMIT 10"
  lakeforge tables
  mlflow ui --backend-store-uri sqlite:///$ROOT/mlflow/mlflow.db --host 127.0.0.1   # then http://127.0.0.1:5000
MSG
