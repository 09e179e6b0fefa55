#!/usr/bin/env bash
# Runs the public HTTP cache test suite (npm http-cache-tests, pinned in package-lock.json)
# through the Meridian edge in front of the suite's own origin and, with --peers, through nginx
# (proxy_cache), Varnish, Squid and Apache Traffic Server as reverse-proxy caches in front of
# the same origin, one after another in the same run. It prints one summary line per cache:
# required passed/total, optional passed/total, checks answered yes.
#   benches/cache-tests/run.sh [--peers] [--failures] [--min-required N]
# --failures lists every required and optional test that did not pass; --min-required N fails
# the run when the edge passes fewer required tests (CI keeps the edge from slipping back).
# Binaries come from MERIDIAN_BIN_DIR (default target/debug); results go to
# target/cache-tests/. Every process it starts, it stops by PID.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${MERIDIAN_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/debug}"
out="${CARGO_TARGET_DIR:-$root/target}/cache-tests"
failures="" min_required=0 peers=0
while [ $# -gt 0 ]; do
  case "$1" in
    --failures) failures=--failures ;;
    --peers) peers=1 ;;
    --min-required) min_required="$2"; shift ;;
    *) echo "usage: $0 [--peers] [--failures] [--min-required N]" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$bin/edge" ] || { echo "cache-tests: no edge binary in $bin (cargo build -p edge)" >&2; exit 1; }
(cd "$here" && npm ci --no-audit --no-fund --silent)
rm -rf "$out" && mkdir -p "$out"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# Waits (at most 20 s) until file $1 has a line matching $2, and prints that line.
wait_line() {
  local deadline=$((SECONDS + 20))
  until grep -m1 -E "$2" "$1" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then echo "cache-tests: no '$2' in $1 within 20 s:" >&2; cat "$1" >&2; exit 1; fi
    sleep 0.05
  done
}

# The suite's origin, on a free port (it prints "Listening on http://...:PORT/").
suite="$here/node_modules/http-cache-tests"
(cd "$out" && npm_config_protocol=http npm_config_port=0 npm_config_pidfile="$out/origin.pid" \
  exec node "$suite/server/server.mjs" >"$out/origin.log" 2>&1) &
pids+=($!)
origin="$(wait_line "$out/origin.log" '^Listening on ' | sed -E 's|^Listening on (http://[^/]+)/.*|\1|; s|//\[::\]|//127.0.0.1|; s|//::|//127.0.0.1|')"
origin="http://127.0.0.1:${origin##*:}"

# Runs the suite against base URL $2 and summarizes it as cache $1.
run_suite() {
  local name=$1 base=$2
  (cd "$here" && npm_config_base="$base" npm_config_id="" npm_package_config_id="" node --no-warnings "$suite/cli.mjs" >"$out/$name.json" 2>"$out/$name.log") || true
  node "$here/summary.mjs" "$name" "$out/$name.json" $failures | tee -a "$out/summary.jsonl"
}

"$bin/edge" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --origin "$origin" --store "$out/edge.store" \
  --capacity 64MiB --name cache-tests --region local >"$out/edge.out" 2>"$out/edge.log" &
pids+=($!)
edge="$(wait_line "$out/edge.out" '^listening http ' | awk '{print $3}')"
wait_line "$out/edge.out" '^listening admin ' >/dev/null
run_suite edge "$edge"

if [ "$peers" -eq 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  missing=()
  [ -x /usr/sbin/nginx ] || missing+=(nginx)
  [ -x /usr/sbin/varnishd ] || missing+=(varnish)
  [ -x /usr/sbin/squid ] || missing+=(squid)
  [ -x /usr/bin/traffic_server ] || missing+=(trafficserver)
  if [ ${#missing[@]} -gt 0 ]; then apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; fi
  port="${origin##*:}"
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  # Waits (at most 20 s) until something answers HTTP on $1.
  wait_http() {
    local deadline=$((SECONDS + 20))
    until curl -s -o /dev/null "http://$1/"; do
      if [ $SECONDS -ge $deadline ]; then echo "cache-tests: nothing answers on $1 within 20 s" >&2; exit 1; fi
      sleep 0.1
    done
  }
  stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

  listen="127.0.0.1:$(free_port)"
  mkdir -p "$out/nginx"
  sed -e "s|@WORK@|$out/nginx|g" -e "s|@ORIGIN@|127.0.0.1:$port|g" -e "s|@LISTEN@|$listen|g" \
    "$here/nginx.conf" >"$out/nginx/nginx.conf"
  nginx -c "$out/nginx/nginx.conf" -p "$out/nginx" 2>"$out/nginx/stderr" & pid=$!; pids+=("$pid")
  wait_http "$listen"; run_suite nginx "http://$listen"; stop "$pid"

  listen="127.0.0.1:$(free_port)"
  varnishd -F -j none -n "$out/varnish" -a "$listen" -T none -b "127.0.0.1:$port" \
    -s malloc,64m -p default_ttl=0 >"$out/varnish.log" 2>&1 & pid=$!; pids+=("$pid")
  wait_http "$listen"; run_suite varnish "http://$listen"; stop "$pid"

  listen_port="$(free_port)"
  mkdir -p "$out/squid" && chmod 777 "$out/squid"
  sed -e "s|@WORK@|$out/squid|g" -e "s|@ORIGIN_PORT@|$port|g" -e "s|@PORT@|$listen_port|g" \
    "$here/squid.conf" >"$out/squid/squid.conf"
  squid -N -f "$out/squid/squid.conf" >"$out/squid/stderr" 2>&1 & pid=$!; pids+=("$pid")
  wait_http "127.0.0.1:$listen_port"; run_suite squid "http://127.0.0.1:$listen_port"; stop "$pid"

  listen_port="$(free_port)"
  "$here/trafficserver.sh" "$out/ats" "$listen_port" "$port" >"$out/ats.log" 2>&1 & pid=$!; pids+=("$pid")
  wait_http "127.0.0.1:$listen_port"; run_suite trafficserver "http://127.0.0.1:$listen_port"; stop "$pid"
fi

required="$(node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse).find(r=>r.server==="edge"); console.log(l.required[0])' "$out/summary.jsonl")"
if [ "$required" -lt "$min_required" ]; then
  echo "cache-tests: the edge passed $required required tests, fewer than the $min_required it must; what it did not pass:" >&2
  node "$here/summary.mjs" edge "$out/edge.json" --failures >&2 || true
  exit 1
fi
