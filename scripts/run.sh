#!/usr/bin/env bash
# The main job: a real Flower simulation of the federation on the embedded tiny Qwen.
#
#   bash scripts/run.sh                      # default: 4 SuperNodes (python twice), ~2 min of training
#   bash scripts/run.sh --run-config conf/fedasync.toml  # extra args go to `flwr run`
#
# Starts its own local SuperLink (simulation mode) on a free port, submits the
# app with `flwr run . --stream`, and stops that SuperLink (by its pid) when the
# run ends or the script is interrupted: nothing keeps running afterwards.
# Relative paths in the run config (run.output-dir = "outputs", the data files)
# resolve against this directory, where the SuperLink and so the apps start.
# Several --run-config values (preset files and "k=v" strings) are merged in order, later
# ones winning, into one file: flwr 1.41 itself keeps only the last --run-config.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/venv.sh"
cd "$ROOT"

STATE="${FEDMOE_STATE:-$ROOT/.fedmoe}"        # Flower home, logs, model cache
export FLWR_HOME="$STATE/flwr-home"
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1  # everything is in .venv already
export FLWR_DISABLE_UPDATE_CHECK=1
export FEDMOE_CACHE="${FEDMOE_CACHE:-$STATE/cache}"
NUM_SUPERNODES="${NUM_SUPERNODES:-4}"  # python_expert twice (a fast and a 2x slower node), sql, docs
# Simulated nodes share a pool of SIM_ACTORS Ray actors (processes, each with its own
# torch and model: ~0.5 GB with the tiny Qwen). Any actor serves any node, so 100 nodes
# need not mean 100 processes. Default: one actor per node, at most max(4, cores), and
# no more than a quarter of the available memory at 0.6 GB each. Ray resources are
# whole numbers, so we tell Ray the machine has one "CPU" per actor (each node uses one
# torch thread) and give each node one.
SIM_ACTORS="${SIM_ACTORS:-$(python -m fedmoe_flwr.tools.actors "$NUM_SUPERNODES")}"
mkdir -p "$FLWR_HOME" "$STATE/logs"

PORT="$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export FLWR_LOCAL_SUPERLINK_HTTP_API_PORT="$PORT"
export FLWR_LOCAL_CONTROL_API_PORT="$PORT"
LOG="$STATE/logs/superlink-$PORT.log"
flower-superlink --insecure --simulation --isolation subprocess --host 127.0.0.1 \
  --port "$PORT" >"$LOG" 2>&1 &
SUPERLINK_PID=$!
cleanup() {
  # The SuperLink starts the ServerApp and simulation as its children: stop them all.
  pkill -TERM -P "$SUPERLINK_PID" 2>/dev/null || true
  kill -TERM "$SUPERLINK_PID" 2>/dev/null || true
  wait "$SUPERLINK_PID" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  kill -0 "$SUPERLINK_PID" 2>/dev/null || { echo "SuperLink failed to start, see $LOG" >&2; exit 1; }
  sleep 0.5
done

echo "SuperLink pid $SUPERLINK_PID on 127.0.0.1:$PORT (log: $LOG); $NUM_SUPERNODES simulated nodes on $SIM_ACTORS actor(s)"
ARGS=() OVERRIDES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --run-config|-c) OVERRIDES+=("${2:?--run-config needs a value}"); shift 2 ;;
    --run-config=*) OVERRIDES+=("${1#--run-config=}"); shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
if [ ${#OVERRIDES[@]} -gt 0 ]; then
  MERGED="$STATE/run-config-$PORT.toml"
  python -m fedmoe_flwr.tools.overrides "$MERGED" "${OVERRIDES[@]}"
  ARGS+=(--run-config "$MERGED")
fi
flwr run . --stream \
  --federation-config "num-supernodes=$NUM_SUPERNODES client-resources-num-cpus=1 init-args-num-cpus=$SIM_ACTORS" \
  ${ARGS[@]+"${ARGS[@]}"}
# `flwr run --stream` exits 0 even when the ServerApp failed: ask the SuperLink how it ended.
STATUS="$(flwr ls --format json 2>/dev/null | python -c 'import json, sys
runs = json.load(sys.stdin).get("runs", [])
print(max(runs, key=lambda r: int(r["run-id"]))["status"] if runs else "unknown")' || echo unknown)"
if [ "$STATUS" != "finished:completed" ]; then
  echo "The run did not complete (SuperLink status: $STATUS); its error is above." >&2
  exit 1
fi
echo
echo "Results: the 'results:' line above (default: $ROOT/outputs/latest)."
echo "  experts/<specialty>/ and gateway/ are PEFT adapters; summary.json holds the eval matrix."
