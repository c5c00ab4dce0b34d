#!/usr/bin/env bash
# Runs keysync's benchmarks in release mode (pull, history, then pacing), with the sqlite-utils
# baseline available.
# Usage: benches/run.sh            (100,000 keys, 5 runs per case)
#        KEYSYNC_BENCH_KEYS=20000 KEYSYNC_BENCH_RUNS=3 benches/run.sh
#        KEYSYNC_BENCH_BEFORE=path/to/older/keysync benches/run.sh   (both builds, side by side)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench-venv
if [ ! -x "$venv/bin/python3" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet sqlite-utils requests
fi
KEYSYNC_BENCH_PYTHON="$PWD/$venv/bin/python3" cargo bench --bench pull
cargo bench --bench history
cargo bench --bench pacing
