#!/usr/bin/env bash
# A local Spark standalone cluster for lakeforge: one master and N workers, all on 127.0.0.1,
# started with pyspark's own spark-class (no separate Spark install needed).
#
#   scripts/cluster.sh start [--workers N]   # default 2 workers, 1 core and 1g each
#   scripts/cluster.sh status
#   scripts/cluster.sh stop
#
# Environment: LAKEFORGE_MASTER_PORT (7077), LAKEFORGE_MASTER_UI_PORT (8080),
# LAKEFORGE_WORKER_CORES (1), LAKEFORGE_WORKER_MEMORY (1g), LAKEFORGE_CLUSTER_DIR (<project>/.cluster:
# pids, logs, worker scratch). Submit jobs with scripts/submit.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${LAKEFORGE_PYTHON:-$ROOT/.venv/bin/python}"
DIR="${LAKEFORGE_CLUSTER_DIR:-$ROOT/.cluster}"
MASTER_PORT="${LAKEFORGE_MASTER_PORT:-7077}"
UI_PORT="${LAKEFORGE_MASTER_UI_PORT:-8080}"
CORES="${LAKEFORGE_WORKER_CORES:-1}"
MEMORY="${LAKEFORGE_WORKER_MEMORY:-1g}"
export SPARK_LOCAL_IP=127.0.0.1 SPARK_MASTER_HOST=127.0.0.1
export SPARK_HOME="${SPARK_HOME:-$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}"
export SPARK_LOG_DIR="$DIR/logs" SPARK_WORKER_DIR="$DIR/work"
MASTER_URL="spark://127.0.0.1:$MASTER_PORT"

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

alive_workers() {
  "$PY" - "$UI_PORT" <<'PYCODE' 2>/dev/null || echo 0
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/json/", timeout=5) as r:
    print(sum(w["state"] == "ALIVE" for w in json.load(r)["workers"]))
PYCODE
}

start() {
  local workers=2
  while [ $# -gt 0 ]; do
    case "$1" in
      --workers) workers="$2"; shift 2;;
      *) echo "unknown option $1" >&2; usage >&2; exit 2;;
    esac
  done
  mkdir -p "$DIR/logs" "$DIR/work"
  if alive "$DIR/master.pid"; then
    echo "master already running: $MASTER_URL"
  else
    setsid nohup "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master \
      --host 127.0.0.1 --port "$MASTER_PORT" --webui-port "$UI_PORT" \
      >"$DIR/logs/master.out" 2>&1 < /dev/null &
    echo $! > "$DIR/master.pid"
  fi
  for i in $(seq 1 "$workers"); do
    if alive "$DIR/worker-$i.pid"; then continue; fi
    # --webui-port 0: any free port, so several clusters (or tests) can coexist
    setsid nohup "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker \
      --host 127.0.0.1 --cores "$CORES" --memory "$MEMORY" --webui-port 0 \
      --work-dir "$DIR/work/worker-$i" "$MASTER_URL" \
      >"$DIR/logs/worker-$i.out" 2>&1 < /dev/null &
    echo $! > "$DIR/worker-$i.pid"
  done
  for _ in $(seq 1 120); do
    if [ "$(alive_workers)" -ge "$workers" ]; then
      echo "cluster up: $MASTER_URL with $workers worker(s) (UI http://127.0.0.1:$UI_PORT, logs $DIR/logs)"
      return 0
    fi
    sleep 0.5
  done
  echo "error: the cluster did not come up within 60 s; see $DIR/logs" >&2
  tail -5 "$DIR"/logs/*.out >&2 || true
  exit 1
}

stop() {
  local stopped=0
  for pidfile in "$DIR"/worker-*.pid "$DIR/master.pid"; do
    [ -f "$pidfile" ] || continue
    if alive "$pidfile"; then
      pid="$(cat "$pidfile")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
      stopped=$((stopped + 1))
    fi
    rm -f "$pidfile"
  done
  echo "stopped $stopped process(es)"
}

status() {
  if alive "$DIR/master.pid"; then
    echo "master: running ($MASTER_URL, UI http://127.0.0.1:$UI_PORT), alive workers: $(alive_workers)"
  else
    echo "master: not running"
    return 3
  fi
}

case "${1:-}" in
  start) shift; start "$@";;
  stop) stop;;
  status) status;;
  -h|--help|"") usage;;
  *) echo "unknown command $1" >&2; usage >&2; exit 2;;
esac
