#!/usr/bin/env bash
# Set up lakeforge (venv, packages, Delta jars) and run the whole test suite, including the
# slow end-to-end and standalone-cluster tests, on two pytest-xdist workers (one file per
# worker at a time). Extra arguments go to pytest, e.g.
#   scripts/test.sh -m "not slow"      # the quick tests only
#   scripts/test.sh -n 0 tests/test_score.py   # one file, in this process
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
case "${1:-}" in -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0;; esac

# the suite's ~40 Python processes keep their compiled modules (.pyc) in the venv and the clone;
# with PYTHONDONTWRITEBYTECODE set (this machine's shell sets it) each compiled them again
unset PYTHONDONTWRITEBYTECODE
# the suite prints its duration and this command's (set-up included) above pytest's last line
export LAKEFORGE_TEST_STARTED="${LAKEFORGE_TEST_STARTED:-$(date +%s)}"
bash scripts/setup.sh
bash scripts/system_packages.sh   # PostgreSQL and Chromium for the ingest and report tests
exec "$ROOT/.venv/bin/python" -m pytest -n "${LAKEFORGE_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder --durations=30 "$@"
