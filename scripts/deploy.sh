#!/usr/bin/env bash
# Deploy the federation across machines: certificates, SuperNode keys, and start / stop /
# status of a SuperLink and of SuperNodes (pid files + log files), secure by default
# (TLS + SuperNode authentication). See docs/deployment.md.
#
#   machine A:  bash scripts/deploy.sh certs coordinator.example.org 10.0.0.5   # [--force]
#               bash scripts/deploy.sh superlink start
#   machine B:  bash scripts/deploy.sh key sql-node            # then copy keys/sql-node.pub to A
#   machine A:  bash scripts/deploy.sh register sql-node.pub
#   machine B:  bash scripts/deploy.sh supernode start sql-node --superlink 10.0.0.5:8000 \
#                 --ca ca.crt --specialty sql_expert --data /data/sql.jsonl
#   machine A:  bash scripts/deploy.sh submit              # flwr run . fedmoe --stream
#               bash scripts/deploy.sh status | stop-all
#
# A thin wrapper: it creates or reuses .venv (scripts/venv.sh) and runs `fedmoe deploy` from
# the project root (the same command on Windows: .venv\Scripts\fedmoe deploy ...), so
# relative paths (--data, --ca, FEDMOE_DEPLOY) resolve against the project root.
# State lives in $FEDMOE_DEPLOY (default .fedmoe/deploy): certs/, keys/, pids/ (JSON: pid,
# create time, command line), logs/, secrets/, flwr-home/ (the `flwr` CLI's connection
# "fedmoe"), superlink.db (registered keys). --insecure (SuperLink, SuperNode) turns TLS and
# authentication off: only for a single trusted machine. Bad arguments: one
# "deploy: error: ..." line, exit status 2, nothing written or started.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/venv.sh"
cd "$ROOT"
exec fedmoe deploy "$@"
