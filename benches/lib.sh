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

# The scripts below expect WORK (each process's log is $WORK/<name>.log), PIDS (the file of
# PIDs to stop) and a log function.

# Starts a command pinned to CORE in its own session (so its CPU is the session's), records its
# PID in $PIDS and prints it.
spawn() { # name core cmd...
  local name=$1 core=$2
  shift 2
  setsid taskset -c "$core" "$@" </dev/null >"$WORK/$name.log" 2>&1 &
  echo $! >>"$PIDS"
  echo $!
}
# Waits (up to 30 s) for a process's log to show PATTERN: its readiness line.
wait_line() { # name pattern
  for _ in $(seq 300); do grep -q "$2" "$WORK/$1.log" && return 0; sleep 0.1; done
  log "$1 never printed '$2':"; cat "$WORK/$1.log" >&2; exit 1
}
# Waits (up to 30 s) for URL to answer: the readiness probe of servers that print no line.
wait_http() { # name url
  for _ in $(seq 300); do curl -s -o /dev/null "$2" && return 0; sleep 0.1; done
  log "$1 does not answer at $2:"; cat "$WORK/$1.log" >&2; exit 1
}
