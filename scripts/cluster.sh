#!/usr/bin/env bash
# Starts and stops, on this machine, the layer servers a client config describes: every
# server entry with a "local" object (docs/CONFIG.md, "## Client"). Logs, pid files and port
# files go in one folder; `down` stops only the processes `up` started (it checks each pid
# still runs layer_server before signalling it).
#
#   scripts/cluster.sh up FILE       start the local servers, wait until each is ready
#   scripts/cluster.sh status FILE   which started servers run, then `layerwire status`
#   scripts/cluster.sh down FILE     SIGTERM (drain) each started server, SIGKILL after 30 s
#
# Environment: BUILD_DIR (default build) or LAYERWIRE / LAYER_SERVER (binaries);
# LW_CLUSTER_DIR (default /tmp/layerwire-cluster-<config name>) the state folder;
# LW_CLUSTER_READY_S (default 120) how long `up` waits for a server to become ready.
set -euo pipefail

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}
[ $# -eq 2 ] || usage
CMD=$1
CONFIG=$2
case "$CMD" in up|down|status) ;; *) usage ;; esac
[ -f "$CONFIG" ] || { echo "cluster.sh: no such config file: $CONFIG" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
LAYERWIRE=${LAYERWIRE:-$BUILD_DIR/tools/layerwire}
LAYER_SERVER=${LAYER_SERVER:-$BUILD_DIR/tools/layer_server}
NAME=$(basename "$CONFIG" .json)
STATE=${LW_CLUSTER_DIR:-/tmp/layerwire-cluster-$NAME}
READY_S=${LW_CLUSTER_READY_S:-120}

# True when pid $1 is alive and is a layer_server (not a recycled pid).
is_ours() {
  local pid=$1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "layer_server"
}

stop_one() {  # name
  local name=$1 pidfile="$STATE/$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if is_ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do is_ours "$pid" || break; sleep 0.1; done
    if is_ours "$pid"; then
      echo "cluster.sh: $name (pid $pid) did not drain in 30 s; SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "stopped $name (pid $pid)"
  else
    echo "$name (pid $pid) was not running"
  fi
  rm -f "$pidfile" "$STATE/$name.ports"
}

cmd_up() {
  [ -x "$LAYER_SERVER" ] || { echo "cluster.sh: $LAYER_SERVER not built" >&2; exit 2; }
  [ -x "$LAYERWIRE" ] || { echo "cluster.sh: $LAYERWIRE not built" >&2; exit 2; }
  mkdir -p "$STATE"
  local plan started=()
  plan=$("$LAYERWIRE" status --config "$CONFIG" --launch-plan)
  if [ -z "$plan" ]; then
    echo "cluster.sh: $CONFIG marks no server \"local\"; nothing to start" >&2
    exit 1
  fi
  while IFS=$'\t' read -r -a fields; do
    local name=${fields[0]} args=("${fields[@]:1}")
    if [ -f "$STATE/$name.pid" ] && is_ours "$(cat "$STATE/$name.pid")"; then
      echo "$name already running (pid $(cat "$STATE/$name.pid"))"
      continue
    fi
    rm -f "$STATE/$name.ports"
    "$LAYER_SERVER" "${args[@]}" --port-file "$STATE/$name.ports" \
      > "$STATE/$name.log" 2>&1 < /dev/null &
    echo $! > "$STATE/$name.pid"
    started+=("$name")
    echo "started $name (pid $!): layer_server ${args[*]}"
  done <<< "$plan"
  # Ready = the port file exists (written once fragments are verified and layers loaded).
  local name deadline=$((SECONDS + READY_S))
  for name in "${started[@]}"; do
    while [ ! -f "$STATE/$name.ports" ]; do
      if ! is_ours "$(cat "$STATE/$name.pid")"; then
        echo "cluster.sh: $name exited during startup; its log ($STATE/$name.log):" >&2
        tail -n 20 "$STATE/$name.log" >&2
        for n in "${started[@]}"; do stop_one "$n" >/dev/null; done
        exit 1
      fi
      if [ $SECONDS -ge $deadline ]; then
        echo "cluster.sh: $name not ready after ${READY_S} s (log: $STATE/$name.log)" >&2
        for n in "${started[@]}"; do stop_one "$n" >/dev/null; done
        exit 1
      fi
      sleep 0.1
    done
    echo "$name ready: $(cat "$STATE/$name.ports")"
  done
  echo "logs and pid files in $STATE"
}

cmd_down() {
  local f any=0
  for f in "$STATE"/*.pid; do
    [ -e "$f" ] || continue
    any=1
    stop_one "$(basename "$f" .pid)"
  done
  [ $any -eq 1 ] || echo "no servers started from $STATE"
}

cmd_status() {
  local f pid
  for f in "$STATE"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    if is_ours "$pid"; then
      echo "$(basename "$f" .pid): running (pid $pid)"
    else
      echo "$(basename "$f" .pid): NOT running (pid $pid; log $STATE/$(basename "$f" .pid).log)"
    fi
  done
  "$LAYERWIRE" status --config "$CONFIG"
}

"cmd_$CMD"
