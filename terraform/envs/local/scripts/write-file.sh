#!/usr/bin/env bash
# Writes CONTENT to FILE atomically (a reader never sees half a file), then, when RELOAD_PIDFILE
# names a running process, sends it SIGHUP so it re-reads the file (the geo-router's topology).
set -euo pipefail
[ -n "${FILE:-}" ] || exit 0 # nothing to write
mkdir -p "$(dirname "$FILE")"
tmp="$FILE.tmp.$$"
printf '%s' "${CONTENT:-}" >"$tmp"
mv -f "$tmp" "$FILE"
if [ -n "${RELOAD_PIDFILE:-}" ] && [ -f "$RELOAD_PIDFILE" ]; then
  pid="$(cat "$RELOAD_PIDFILE")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -HUP "$pid"
    echo "reloaded PID $pid with $FILE"
  fi
fi
