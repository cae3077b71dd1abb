#!/usr/bin/env bash
# Deploy the federation across machines: certificates, SuperNode keys, and start / stop /
# status of a SuperLink and of SuperNodes (pid files + log files), secure by default
# (TLS + SuperNode authentication). See docs/deployment.md.
#
#   machine A:  bash scripts/deploy.sh certs coordinator.example.org 10.0.0.5
#               bash scripts/deploy.sh superlink start
#   machine B:  bash scripts/deploy.sh key sql-node            # then copy keys/sql-node.pub to A
#   machine A:  bash scripts/deploy.sh register sql-node.pub
#   machine B:  bash scripts/deploy.sh supernode start sql-node --superlink 10.0.0.5:8000 \
#                 --ca ca.crt --specialty sql_expert --data /data/sql.jsonl
#   machine A:  bash scripts/deploy.sh submit              # flwr run . fedmoe --stream
#               bash scripts/deploy.sh status | stop-all
#
# State lives in $FEDMOE_DEPLOY (default .fedmoe/deploy): certs/, keys/, pids/, logs/,
# flwr-home/ (the `flwr` CLI's connection "fedmoe"), superlink.db (registered keys).
# --insecure (SuperLink, SuperNode, submit) turns TLS and authentication off: only for a
# single trusted machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/venv.sh"
DEPLOY="${FEDMOE_DEPLOY:-$ROOT/.fedmoe/deploy}"
CERTS="$DEPLOY/certs" KEYS="$DEPLOY/keys" PIDS="$DEPLOY/pids" LOGS="$DEPLOY/logs"
export FLWR_HOME="$DEPLOY/flwr-home"
export FLWR_DISABLE_UPDATE_CHECK=1
export FEDMOE_CACHE="${FEDMOE_CACHE:-$ROOT/.fedmoe/cache}"
PORT="${FEDMOE_SUPERLINK_PORT:-8000}"  # the SuperLink's HTTP API (SuperNodes and flwr CLI)
mkdir -p "$CERTS" "$KEYS" "$PIDS" "$LOGS" "$FLWR_HOME"

die() { echo "deploy: error: $*" >&2; exit 1; }
need() { [ -e "$1" ] || die "$1 is missing; $2"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

group_alive() { [ -n "$(pgrep -g "$1" 2>/dev/null)" ]; }

stop_pid() {  # stop a process and everything it started: each runs in its own process group
  local pidfile="$1" what="$2" pid
  [ -f "$pidfile" ] || { echo "$what is not running"; return 0; }
  pid="$(cat "$pidfile")"
  if ! group_alive "$pid"; then echo "$what is not running"; rm -f "$pidfile"; return 0; fi
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do group_alive "$pid" || break; sleep 0.2; done
  group_alive "$pid" && kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "stopped $what (pid $pid)"
}

stop_all() {  # every process group of this machine's pid files, stopped together
  local f
  for f in "$PIDS"/*.pid; do [ -e "$f" ] && kill -TERM -- "-$(cat "$f")" 2>/dev/null; done
  for f in "$PIDS"/*.pid; do
    [ -e "$f" ] && stop_pid "$f" "$(basename "$f" .pid)"
  done
  return 0
}

cmd_certs() {
  [ $# -ge 1 ] || die "usage: deploy.sh certs HOST_OR_IP [HOST_OR_IP ...] (names SuperNodes use to reach the SuperLink)"
  [ -f "$CERTS/ca.crt" ] && [ "${FORCE:-0}" != 1 ] && die "$CERTS/ca.crt exists (set FORCE=1 to replace every certificate)"
  local san="" i=1 j=1 h
  for h in "$@" localhost 127.0.0.1; do
    if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then san+="IP.$i = $h"$'\n'; i=$((i + 1))
    else san+="DNS.$j = $h"$'\n'; j=$((j + 1)); fi
  done
  openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=FedMoE-Flower CA" \
    -keyout "$CERTS/ca.key" -out "$CERTS/ca.crt" 2>/dev/null
  cat >"$CERTS/server.cnf" <<EOF
[req]
distinguished_name = dn
req_extensions = ext
prompt = no
[dn]
CN = $1
[ext]
subjectAltName = @alt
[alt]
$san
EOF
  openssl req -newkey rsa:3072 -nodes -keyout "$CERTS/server.key" -out "$CERTS/server.csr" \
    -config "$CERTS/server.cnf" 2>/dev/null
  openssl x509 -req -in "$CERTS/server.csr" -CA "$CERTS/ca.crt" -CAkey "$CERTS/ca.key" \
    -CAcreateserial -days 825 -extensions ext -extfile "$CERTS/server.cnf" \
    -out "$CERTS/server.pem" 2>/dev/null
  chmod 600 "$CERTS/ca.key" "$CERTS/server.key"
  echo "CA $CERTS/ca.crt (copy it to every SuperNode machine) and SuperLink certificate for: $* localhost 127.0.0.1"
}

cmd_key() {
  local name="${1:?usage: deploy.sh key NAME}"
  [ -f "$KEYS/$name" ] && die "$KEYS/$name exists; pick another name or delete it"
  ssh-keygen -q -t ecdsa -b 384 -N "" -C "$name" -f "$KEYS/$name"
  echo "SuperNode key pair $KEYS/$name(.pub); register the .pub on the SuperLink machine:"
  echo "  bash scripts/deploy.sh register $name.pub"
}

write_connection() {  # the flwr CLI's connection "fedmoe" to this SuperLink
  local address="$1" insecure="$2" ca="$3"
  {
    echo '[superlink]'
    echo 'default = "fedmoe"'
    echo
    echo '[superlink.fedmoe]'
    echo "address = \"$address\""
    if [ "$insecure" = 1 ]; then echo 'insecure = true'; else echo "root-certificates = \"$ca\""; fi
  } >"$FLWR_HOME/config.toml"
}

cmd_superlink() {
  local action="${1:-status}"; shift || true
  local pidfile="$PIDS/superlink.pid" insecure=0 host="${FEDMOE_SUPERLINK_HOST:-}"
  while [ $# -gt 0 ]; do
    case "$1" in
      --insecure) insecure=1; shift ;;
      --host) host="${2:?--host needs an address}"; shift 2 ;;
      *) die "unknown option $1 (superlink start [--insecure] [--host ADDR])" ;;
    esac
  done
  # Without TLS nothing but this machine may connect, unless --host says otherwise.
  [ -n "$host" ] || { [ "$insecure" = 1 ] && host=127.0.0.1 || host=0.0.0.0; }
  case "$action" in
    start)
      alive "$pidfile" && die "the SuperLink is already running (pid $(cat "$pidfile")); 'deploy.sh superlink stop' first"
      local args=(--host "$host" --port "$PORT" --database "$DEPLOY/superlink.db"
                  --isolation subprocess --disable-runtime-dependency-installation)
      if [ "$insecure" = 1 ]; then
        echo "WARNING: insecure SuperLink: no TLS, no SuperNode authentication (single trusted machine only)"
        args+=(--insecure)
      else
        need "$CERTS/server.pem" "run 'deploy.sh certs HOST...' first"
        args+=(--ssl-ca-certfile "$CERTS/ca.crt" --ssl-certfile "$CERTS/server.pem"
               --ssl-keyfile "$CERTS/server.key" --enable-supernode-auth)
      fi
      (cd "$ROOT" && exec setsid flower-superlink "${args[@]}" >"$LOGS/superlink.log" 2>&1) &
      echo $! >"$pidfile"
      write_connection "127.0.0.1:$PORT" "$insecure" "$CERTS/ca.crt"
      local scheme=https probe="$host"; [ "$insecure" = 1 ] && scheme=http
      [ "$host" = 0.0.0.0 ] && probe=127.0.0.1
      for _ in $(seq 1 120); do
        curl -fsk "$scheme://$probe:$PORT/health" >/dev/null 2>&1 && break
        alive "$pidfile" || die "the SuperLink exited; see $LOGS/superlink.log"
        sleep 0.5
      done
      echo "SuperLink pid $(cat "$pidfile") on $host:$PORT ($([ "$insecure" = 1 ] && echo insecure || echo 'TLS + SuperNode auth')); log $LOGS/superlink.log"
      ;;
    stop) stop_pid "$pidfile" "SuperLink" ;;
    status) alive "$pidfile" && echo "SuperLink running (pid $(cat "$pidfile"), port $PORT)" || echo "SuperLink not running" ;;
    *) die "usage: deploy.sh superlink start [--insecure] | stop | status" ;;
  esac
}

cmd_register() {
  local pub="${1:?usage: deploy.sh register KEY.pub}"
  [ -f "$pub" ] || pub="$KEYS/$pub"
  need "$pub" "copy the SuperNode's public key here"
  need "$FLWR_HOME/config.toml" "start the SuperLink on this machine first ('deploy.sh superlink start')"
  flwr supernode register "$pub" fedmoe
}

start_worker() {  # the warm ClientApp worker next to SuperNode $1 (Runtime API port $2)
  local name="$1" port="$2" secret="$3" pidfile="$PIDS/worker-$1.pid"
  (cd "$ROOT" && exec setsid python -m fedmoe_flwr.node.worker --runtime-api "127.0.0.1:$port" \
     --secret-file "$secret" --supernode-pid "$(cat "$PIDS/supernode-$name.pid")" \
     >"$LOGS/worker-$name.log" 2>&1) &
  echo $! >"$pidfile"
}

worker_status() {  # "worker pid P (process W)" or "no worker (cold: a process per message)"
  local f="$PIDS/worker-$1.pid" child
  [ -f "$f" ] || { echo "cold: a new ClientApp process per message"; return; }
  alive "$f" || { echo "worker NOT running (stale pid file)"; return; }
  child="$(pgrep -P "$(cat "$f")" -f fedmoe_flwr.node.worker | head -n 1)"
  echo "warm worker: supervisor pid $(cat "$f"), worker pid ${child:-starting}"
}

cmd_supernode() {
  local action="${1:-status}"; shift || true
  case "$action" in
    start)
      local name="${1:?usage: deploy.sh supernode start NAME --superlink HOST:PORT --specialty S --data FILE [--speed F] [--model-source S] [--port P] [--ca FILE] [--insecure] [--cold]}"
      shift
      local superlink="127.0.0.1:$PORT" specialty="" data="" speed=1 port="" ca="$CERTS/ca.crt" insecure=0 cold=0 msource=""
      while [ $# -gt 0 ]; do
        case "$1" in
          --superlink) superlink="$2"; shift 2 ;;
          --specialty) specialty="$2"; shift 2 ;;
          --data) data="$2"; shift 2 ;;
          --speed) speed="$2"; shift 2 ;;
          --model-source) msource="$2"; shift 2 ;;
          --port) port="$2"; shift 2 ;;
          --ca) ca="$2"; shift 2 ;;
          --insecure) insecure=1; shift ;;
          --cold) cold=1; shift ;;
          *) die "unknown option $1" ;;
        esac
      done
      [[ "$name" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$ ]] || die "NAME must be letters, digits, '_', '-' or '.', got '$name'"
      [ -n "$specialty" ] || die "--specialty is required (e.g. sql_expert)"
      [[ "$specialty" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$ ]] || die "--specialty must be letters, digits, '_', '-' or '.', got '$specialty'"
      [[ "$speed" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--speed must be a number >= 1, got '$speed'"
      [[ "$msource" =~ ^(|auto|huggingface|modelscope|local)$ ]] || die "--model-source must be auto, huggingface, modelscope or local, got '$msource'"
      [ -n "$data" ] || die "--data is required (the node's JSONL file)"
      [ -f "$data" ] || die "data file $data does not exist"
      data="$(cd "$(dirname "$data")" && pwd)/$(basename "$data")"
      [[ "$data" != *[\'\"\\]* ]] || die "--data path must not contain quotes or backslashes: $data"
      local pidfile="$PIDS/supernode-$name.pid"
      alive "$pidfile" && die "SuperNode $name is already running (pid $(cat "$pidfile"))"
      if [ -f "$pidfile" ] && group_alive "$(cat "$pidfile")"; then  # a crashed node's children
        stop_pid "$pidfile" "leftover processes of crashed SuperNode $name"
      fi
      stop_pid "$PIDS/worker-$name.pid" "the previous worker of $name" >/dev/null
      # Each SuperNode on a machine needs its own Runtime API port.
      [ -n "$port" ] || port="$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
      local args=(--superlink "$superlink" --port "$port" --host 127.0.0.1
                  --node-config "specialty='$specialty' data-path='$data' speed-factor=$speed${msource:+ model-source='$msource'}")
      local secret="$DEPLOY/secrets/$name.secret"
      if [ "$cold" = 1 ]; then
        args+=(--isolation subprocess)
      else  # a warm worker runs the tasks; only it holds the Runtime API's secret
        mkdir -p "$DEPLOY/secrets" && chmod 700 "$DEPLOY/secrets"
        (umask 077 && head -c 32 /dev/urandom >"$secret")
        args+=(--isolation process --superexec-auth-secret-file "$secret")
      fi
      if [ "$insecure" = 1 ]; then
        args+=(--insecure)
      else
        need "$ca" "copy the SuperLink's CA certificate (certs/ca.crt) here and pass --ca"
        need "$KEYS/$name" "create the key pair with 'deploy.sh key $name' and register its .pub"
        args+=(--root-certificates "$ca" --auth-supernode-private-key "$KEYS/$name")
      fi
      (cd "$ROOT" && exec setsid flower-supernode "${args[@]}" >"$LOGS/supernode-$name.log" 2>&1) &
      echo $! >"$pidfile"
      [ "$cold" = 1 ] || start_worker "$name" "$port" "$secret"
      sleep 1
      alive "$pidfile" || die "SuperNode $name exited at once; see $LOGS/supernode-$name.log"
      echo "SuperNode $name pid $(cat "$pidfile"): $specialty on $data -> $superlink; $(worker_status "$name"); logs $LOGS/{supernode,worker}-$name.log"
      ;;
    stop)
      local name="${1:?usage: deploy.sh supernode stop NAME | --all}" f n
      if [ "$name" = --all ]; then
        for f in "$PIDS"/supernode-*.pid; do
          [ -e "$f" ] || continue
          n="$(basename "$f" .pid | sed 's/^supernode-//')"
          stop_pid "$f" "SuperNode $n"; stop_pid "$PIDS/worker-$n.pid" "worker of $n" >/dev/null
        done
      else
        stop_pid "$PIDS/supernode-$name.pid" "SuperNode $name"
        stop_pid "$PIDS/worker-$name.pid" "worker of $name"
      fi
      ;;
    status)
      local any=0 f n
      for f in "$PIDS"/supernode-*.pid; do
        [ -e "$f" ] || continue; any=1
        n="$(basename "$f" .pid | sed 's/^supernode-//')"
        if alive "$f"; then echo "SuperNode $n running (pid $(cat "$f")); $(worker_status "$n")"
        else echo "SuperNode $n not running (stale pid file)"; fi
      done
      [ "$any" = 1 ] || echo "no SuperNodes started from this machine"
      ;;
    *) die "usage: deploy.sh supernode start|stop|status ..." ;;
  esac
}

cmd_submit() {
  need "$FLWR_HOME/config.toml" "start the SuperLink ('deploy.sh superlink start') or write $FLWR_HOME/config.toml"
  cd "$ROOT"
  exec flwr run . fedmoe --stream "$@"
}

case "${1:-}" in
  certs) shift; cmd_certs "$@" ;;
  key) shift; cmd_key "$@" ;;
  register) shift; cmd_register "$@" ;;
  superlink) shift; cmd_superlink "$@" ;;
  supernode) shift; cmd_supernode "$@" ;;
  submit) shift; cmd_submit "$@" ;;
  status) cmd_superlink status; cmd_supernode status ;;
  stop-all) stop_all ;;
  *) sed -n '2,18p' "$0"; exit 2 ;;
esac
