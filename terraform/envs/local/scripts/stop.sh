#!/usr/bin/env bash
# Stops one fleet process by the PID start.sh recorded: SIGTERM (it drains), then SIGKILL after
# GRACE seconds. The PID file is kept as <name>.pid.stopped so a check can prove it is gone.
# Usage: NAME=… RUN_DIR=… BINARY=… stop.sh
set -euo pipefail
: "${NAME:?}" "${RUN_DIR:?}" "${BINARY:?}"
pidfile="$RUN_DIR/$NAME.pid"
[ -f "$pidfile" ] || { echo "stop $NAME: not running (no $pidfile)"; exit 0; }
pid="$(cat "$pidfile")"
# Only a PID that still runs our binary is ours: a PID can be reused after a crash.
exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
if [ -n "$exe" ] && [ "${exe% (deleted)}" = "$(readlink -f "$BINARY")" ]; then
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + ${GRACE:-15}))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  echo "stopped $NAME (PID $pid)"
else
  echo "stop $NAME: PID $pid is not $BINARY any more; nothing to stop"
fi
mv -f "$pidfile" "$pidfile.stopped"
