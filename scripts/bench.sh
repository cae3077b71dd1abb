#!/usr/bin/env bash
# Run a benchmark from bench/ in the project's virtual environment (created if missing).
#
#   bash scripts/bench.sh async_vs_sync            # ~24 min on 2 CPU cores
#   bash scripts/bench.sh async_vs_sync --help     # options (budget, steps, scenarios)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/venv.sh"
cd "$ROOT"
# Same model cache as scripts/run.sh, so the benchmark scores with the nodes' exact tiny model.
export FEDMOE_CACHE="${FEDMOE_CACHE:-${FEDMOE_STATE:-$ROOT/.fedmoe}/cache}"
NAME="${1:?usage: bash scripts/bench.sh NAME [options]; NAME is one of: $(cd bench && ls *.py | sed 's/\.py$//' | tr '\n' ' ')}"
shift
exec python "bench/$NAME.py" "$@"
