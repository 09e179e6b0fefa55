# Shell helpers the benchmark scripts share (source it).

# Stops every process whose PID is listed in FILE: SIGTERM to all, then up to 5 s each to exit,
# then SIGKILL. By PID only, never by name.
stop_pids() { # FILE
  local pid
  while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done <"$1"
  while read -r pid; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done <"$1"
}
