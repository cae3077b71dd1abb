#!/usr/bin/env bash
# The test command: create or reuse .venv, lint, then the whole pytest suite
# (unit, hardening tables, tiny-model and end-to-end `flwr run` and deployment tests).
#
#   bash scripts/test.sh            # everything, as CI runs it
#   bash scripts/test.sh --fast     # the fast tier: everything not marked slow (under a minute)
#   bash scripts/test.sh -k fedavg  # any other arguments go to pytest
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/venv.sh"
cd "$ROOT"
ARGS=()
for a in "$@"; do
  if [ "$a" = --fast ]; then ARGS+=(-m "not slow"); else ARGS+=("$a"); fi
done
ruff check .
python -m pytest -p no:cacheprovider ${ARGS[@]+"${ARGS[@]}"}
