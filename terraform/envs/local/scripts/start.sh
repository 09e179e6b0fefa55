#!/usr/bin/env bash
# Starts one fleet process detached from Terraform (setsid nohup, stdin from /dev/null, output
# to a log), records its PID, and waits for each of its `listening <kind>` lines.
# Usage: NAME=… RUN_DIR=… KINDS="http admin" start.sh <binary> [args…]
set -euo pipefail
: "${NAME:?}" "${RUN_DIR:?}" "${KINDS:?}"
mkdir -p "$RUN_DIR"
log="$RUN_DIR/$NAME.log"
pidfile="$RUN_DIR/$NAME.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "start $NAME: already running as PID $(cat "$pidfile") ($pidfile); run terraform destroy first" >&2
  exit 1
fi
RUST_LOG="${RUST_LOG:-info}" setsid nohup "$@" </dev/null >"$log" 2>&1 &
pid=$!
echo "$pid" >"$pidfile"
deadline=$((SECONDS + ${READY_TIMEOUT:-60}))
for kind in $KINDS; do
  # Readiness is the process's own `listening` line; the loop only polls the log for it.
  until grep -q "^listening $kind " "$log"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "start $NAME: exited before it was ready; its log:" >&2
      cat "$log" >&2
      rm -f "$pidfile"
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "start $NAME: no 'listening $kind' line within ${READY_TIMEOUT:-60} s; stopping it. Its log:" >&2
      cat "$log" >&2
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$pidfile"
      exit 1
    fi
    sleep 0.1
  done
done
echo "started $NAME (PID $pid): $(grep '^listening ' "$log" | tr '\n' ' ')"
