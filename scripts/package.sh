#!/usr/bin/env bash
# Build dist/lakeforge.zip: the lakeforge library for spark-submit --py-files. Prints its path.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in -h|--help) sed -n '2p' "$0" | sed 's/^# //'; exit 0;; esac
mkdir -p "$ROOT/dist"
out="$ROOT/dist/lakeforge.zip"
rm -f "$out"
(cd "$ROOT/lib" && "${LAKEFORGE_PYTHON:-$ROOT/.venv/bin/python}" - "$out" <<'PY'
import sys, zipfile
from pathlib import Path
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for f in sorted(Path("lakeforge").rglob("*.py")):
        z.write(f)
PY
)
echo "$out"
