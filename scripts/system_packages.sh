#!/usr/bin/env bash
# Install the Debian packages the test suite uses, when they are missing:
#   postgresql  - a real PostgreSQL server for the JDBC ingest tests (started by the tests on 127.0.0.1)
#   chromium    - a real headless browser that renders the HTML reports in the tests
# Needs root (or sudo). Safe to rerun: nothing is installed twice.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0;; esac

log() { printf '[system] %s\n' "$*"; }
want=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || want+=(postgresql)
command -v chromium >/dev/null 2>&1 || want+=(chromium)
if [ ${#want[@]} -eq 0 ]; then
  log "Debian packages present (postgresql, chromium)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "[system] error: need root or sudo to install: ${want[*]} (apt-get install ${want[*]})" >&2; exit 1; }
  SUDO="sudo"
fi
log "installing ${want[*]} from Debian's packages (about a minute)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
log "installed ${want[*]}"
