#!/usr/bin/env bash
# Fetch the Delta Lake JVM artifacts from Maven Central into jars/ (once), so that every
# later Spark start works offline. Uses Maven (scripts/jars.pom.xml) and keeps only the
# jars that pyspark does not already ship, so Spark's own versions are never shadowed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JARS="${LAKEFORGE_JARS_DIR:-$ROOT/jars}"
POM="$ROOT/scripts/jars.pom.xml"
PY="${LAKEFORGE_PYTHON:-$ROOT/.venv/bin/python}"

want="$(sha256sum "$POM" | cut -c1-16)"
if [ "$(cat "$JARS/.complete" 2>/dev/null)" = "$want" ]; then
  echo "[setup] Delta jars present in $JARS"
  exit 0
fi
command -v mvn >/dev/null || { echo "[setup] error: mvn not found; install Maven (apt-get install maven) or pass --packages to spark-submit" >&2; exit 1; }

echo "[setup] fetching Delta jars from Maven Central into $JARS"
staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT
if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$staging" > "$staging/mvn.log" 2>&1; then
  cat "$staging/mvn.log" >&2
  echo "[setup] error: Maven could not fetch the Delta jars (is Maven Central reachable?)" >&2
  exit 1
fi

spark_jars="$("$PY" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"
rm -rf "$JARS" && mkdir -p "$JARS"
for jar in "$staging"/*.jar; do
  base="$(basename "$jar" .jar)"
  artifact="${base%-[0-9]*}"
  if compgen -G "$spark_jars/${artifact}-[0-9]*.jar" >/dev/null; then
    continue   # pyspark ships its own version of this library
  fi
  cp "$jar" "$JARS/"
done
echo "$want" > "$JARS/.complete"
echo "[setup] $(ls "$JARS"/*.jar | wc -l) jars in $JARS"
