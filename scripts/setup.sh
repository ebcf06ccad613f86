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

command -v java >/dev/null || { echo "[setup] error: java not found; install OpenJDK 17 (apt-get install openjdk-17-jdk-headless)" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.lakeforge-installed"
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing pinned Python packages (requirements.lock); the first time takes about a minute"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r requirements.lock
  "$VENV/bin/python" -m pip install --quiet --no-deps -e .
  echo "$want" > "$stamp"
else
  log "Python packages up to date"
fi

bash "$ROOT/scripts/fetch_jars.sh"
log "ready: activate with 'source .venv/bin/activate', then 'lakeforge --help'"
