#!/usr/bin/env bash
# Run the test suite in .venv (extra arguments go to pytest). Selecting no test is a failure
# (pytest's exit code 5): a typo in a path or -k expression must not look like a green run.
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$PWD/.cache/torch_extensions}
.venv/bin/python -m pytest -q -ra --durations=15 "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "tools/run_tests.sh: no test was collected (pytest exit code 5)" >&2; fi
exit "$rc"
