#!/usr/bin/env bash
# The main job: a real Flower simulation of the federation on the embedded tiny Qwen.
#
#   bash scripts/run.sh                      # default: 4 SuperNodes (python twice), ~2 min of training
#   bash scripts/run.sh --run-config conf/fedasync.toml  # extra args go to `flwr run`
#
# Creates or reuses .venv with the pinned packages, then runs `fedmoe run` (the same
# command on Windows: .venv\Scripts\fedmoe run): its own local SuperLink on a free port,
# `flwr run . --stream`, and every process it started stopped by pid at the end or on
# Ctrl-C. Relative paths in the run config (run.output-dir = "outputs", the data files)
# resolve against this directory. NUM_SUPERNODES and SIM_ACTORS size the simulation.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/venv.sh"
cd "$ROOT"
exec fedmoe run "$@"
