#!/usr/bin/env bash
# A shared metastore for lakeforge: Apache Derby's network server on 127.0.0.1, serving the
# same metastore database the embedded default uses (<warehouse>/metastore_db), so that jobs,
# `lakeforge sql` and `lakeforge sql-server` can use the catalog at the same time.
#
#   scripts/metastore.sh start | stop | status
#
# Then run lakeforge with --env shared (catalog.metastore: derby-server). Environment:
# LAKEFORGE_METASTORE_PORT (1527), LAKEFORGE_METASTORE_DIR (<project>/.metastore: pid and log),
# LAKEFORGE_METASTORE_JAVA_OPTS (JVM options; default: SPARK_DAEMON_JAVA_OPTS, as Spark's daemons).
# For many users, prefer a server database (PostgreSQL: see README, "Shared metastore").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${LAKEFORGE_PYTHON:-$ROOT/.venv/bin/python}"
PORT="${LAKEFORGE_METASTORE_PORT:-1527}"
DIR="${LAKEFORGE_METASTORE_DIR:-$ROOT/.metastore}"
read -r -a JOPTS <<< "${LAKEFORGE_METASTORE_JAVA_OPTS:-${SPARK_DAEMON_JAVA_OPTS:-}}"
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }

spark_jars="$("$PY" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"
net="$(compgen -G "$ROOT/jars/derbynet-*.jar" | head -1 || true)"
[ -n "$net" ] || { echo "error: no derbynet jar in $ROOT/jars: run scripts/setup.sh" >&2; exit 2; }
CP="$net:$(ls "$spark_jars"/derby-[0-9]*.jar "$spark_jars"/derbyshared-*.jar "$spark_jars"/derbytools-*.jar | paste -sd:)"
control() { java "${JOPTS[@]}" -cp "$CP" org.apache.derby.drda.NetworkServerControl "$@" -h 127.0.0.1 -p "$PORT"; }
alive() { [ -f "$DIR/derby.pid" ] && kill -0 "$(cat "$DIR/derby.pid")" 2>/dev/null; }

case "${1:-}" in
  start)
    mkdir -p "$DIR"
    if alive; then echo "metastore server already running on 127.0.0.1:$PORT"; exit 0; fi
    setsid nohup java "${JOPTS[@]}" -Dderby.system.home="$DIR" -cp "$CP" org.apache.derby.drda.NetworkServerControl \
      start -h 127.0.0.1 -p "$PORT" -noSecurityManager > "$DIR/server.log" 2>&1 < /dev/null &
    echo $! > "$DIR/derby.pid"
    for _ in $(seq 1 60); do
      if control ping > /dev/null 2>&1; then echo "metastore server up on 127.0.0.1:$PORT (log $DIR/server.log)"; exit 0; fi
      sleep 0.5
    done
    echo "error: the metastore server did not start; see $DIR/server.log" >&2
    exit 1;;
  stop)
    if alive; then
      control shutdown > /dev/null 2>&1 || kill "$(cat "$DIR/derby.pid")" || true
      for _ in $(seq 1 40); do alive || break; sleep 0.25; done
      alive && kill -9 "$(cat "$DIR/derby.pid")" || true
      echo "metastore server stopped"
    else
      echo "metastore server not running"
    fi
    rm -f "$DIR/derby.pid";;
  status)
    if alive && control ping > /dev/null 2>&1; then echo "metastore server running on 127.0.0.1:$PORT"; else echo "metastore server not running"; exit 3; fi;;
  -h|--help|"") usage;;
  *) echo "unknown command $1" >&2; usage >&2; exit 2;;
esac
