#!/usr/bin/env bash
# Run `make test` several times in a row while busy processes compete for the CPUs: the suite
# must pass every time on a loaded machine (see docs/reliability.md, "Tests under load").
#
# usage: tools/test_under_load.sh [RUNS] [HOGS]     defaults: 3 runs beside 2 busy processes
# Each run's output goes to $LOG_DIR/runN.log (default .cache/test_under_load); one summary
# line per run is printed and appended to $LOG_DIR/summary.txt. Exit code 0 only if every
# run passed. The busy processes are killed on exit, also on Ctrl-C.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
hogs=${2:-2}
case "$runs$hogs" in *[!0-9]*) echo "usage: $0 [RUNS] [HOGS] (whole numbers)" >&2; exit 2 ;; esac
log_dir=${LOG_DIR:-.cache/test_under_load}
mkdir -p "$log_dir"

make venv >/dev/null || { echo "make venv failed" >&2; exit 1; }

hog_pids=()
stop_hogs() { for pid in "${hog_pids[@]}"; do kill "$pid" 2>/dev/null; done; }
trap stop_hogs EXIT
trap 'exit 130' INT TERM
for _ in $(seq "$hogs"); do
    (while :; do :; done) &
    hog_pids+=("$!")
done

failed=0
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null) $runs runs beside $hogs busy processes, $(nproc) CPUs" | tee -a "$log_dir/summary.txt"
for run in $(seq "$runs"); do
    start=$(date +%s)
    make test >"$log_dir/run$run.log" 2>&1
    rc=$?
    result=$(grep -E "[0-9]+ (passed|failed|error)" "$log_dir/run$run.log" | tail -1)
    echo "run $run/$runs: exit $rc in $(($(date +%s) - start)) s: ${result:-no pytest summary}" | tee -a "$log_dir/summary.txt"
    [ "$rc" -eq 0 ] || failed=1
done
exit "$failed"
