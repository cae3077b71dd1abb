#!/usr/bin/env bash
# The test command: create or reuse .venv, lint, then the whole pytest suite
# (unit, tiny-model and end-to-end `flwr run` and deployment tests; about 21 minutes on 2 cores).
#
#   bash scripts/test.sh                 # everything, as CI runs it
#   bash scripts/test.sh -m "not slow"   # only the fast unit tests (seconds)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/venv.sh"
cd "$ROOT"
ruff check .
python -m pytest -p no:cacheprovider "$@"
