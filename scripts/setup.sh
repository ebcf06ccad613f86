#!/usr/bin/env bash
# Set up lakeforge on a fresh machine: a virtualenv in .venv with the pinned Python
# packages, lakeforge itself (editable), and the Delta Lake jars in jars/.
# Safe to rerun: each step is skipped when it is already done.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"

log() { printf '[setup] %s\n' "$*"; }
WARM_IMPORTS='
import importlib, pkgutil, lakeforge
for m in pkgutil.walk_packages(lakeforge.__path__, "lakeforge."):
    try:
        importlib.import_module(m.name)
    except Exception:
        pass
import mlflow.spark, pyspark.ml.classification, pyspark.ml.regression, pyspark.ml.tuning
'

command -v java >/dev/null || { echo "[setup] error: java not found; install OpenJDK 17 (apt-get install openjdk-17-jdk-headless)" >&2; exit 1; }
java_version="$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -1)"
java_major="$(echo "$java_version" | sed -e 's/^1\.//' -e 's/[^0-9].*//')"
if [ -n "$java_major" ] && [ "$java_major" -lt 17 ]; then
  echo "[setup] error: java is version $java_version; Spark 4 needs Java 17 or 21 (apt-get install openjdk-17-jdk-headless, then put it first on the PATH or set JAVA_HOME)" >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.lakeforge-installed"
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing pinned Python packages (requirements.lock); the first time takes about a minute"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # --no-compile: Python compiles a module when it is first imported (and keeps the .pyc);
  # compiling every file of every package up front doubled the install's CPU (50 -> 24 CPU-s)
  "$VENV/bin/python" -m pip install --quiet --no-compile -r requirements.lock
  "$VENV/bin/python" -m pip install --quiet --no-deps -e .
  # ... unless PYTHONDONTWRITEBYTECODE is set (some containers set it, this machine's shell did):
  # then every command compiled its modules again, 6.4 instead of 2.8 CPU-s of imports for a
  # training command. So the modules lakeforge imports get their .pyc once, here (about 10 s).
  log "writing the bytecode of the modules lakeforge imports"
  env -u PYTHONDONTWRITEBYTECODE "$VENV/bin/python" -c "$WARM_IMPORTS" \
    || log "warning: some modules did not import; they compile when first used"
  echo "$want" > "$stamp"
else
  log "Python packages up to date"
fi

bash "$ROOT/scripts/fetch_jars.sh"
log "ready: activate with 'source .venv/bin/activate', then 'lakeforge --help'"
