#!/usr/bin/env bash
# Set up lakeforge (venv, packages, Delta jars) and run the whole test suite, including the
# slow end-to-end and standalone-cluster tests. Extra arguments go to pytest, e.g.
#   scripts/test.sh -m "not slow"      # the quick tests only
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
case "${1:-}" in -h|--help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0;; esac

bash scripts/setup.sh
bash scripts/system_packages.sh   # PostgreSQL and Chromium for the ingest and report tests
exec "$ROOT/.venv/bin/python" -m pytest "$@"
