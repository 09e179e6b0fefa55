#!/usr/bin/env bash
# Runs the public HTTP cache test suite (npm http-cache-tests, pinned in package-lock.json)
# through the Meridian edge in front of the suite's own origin, and prints one summary line per
# cache: required passed/total, optional passed/total, checks answered yes.
#   benches/cache-tests/run.sh [--failures] [--min-required N]
# --failures lists every required and optional test that did not pass; --min-required N fails
# the run when the edge passes fewer required tests (CI keeps the edge from slipping back).
# Binaries come from MERIDIAN_BIN_DIR (default target/debug); results go to
# target/cache-tests/. Every process it starts, it stops by PID.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${MERIDIAN_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/debug}"
out="${CARGO_TARGET_DIR:-$root/target}/cache-tests"
failures="" min_required=0
while [ $# -gt 0 ]; do
  case "$1" in
    --failures) failures=--failures ;;
    --min-required) min_required="$2"; shift ;;
    *) echo "usage: $0 [--failures] [--min-required N]" >&2; exit 2 ;;
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

required="$(node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse).find(r=>r.server==="edge"); console.log(l.required[0])' "$out/summary.jsonl")"
if [ "$required" -lt "$min_required" ]; then
  echo "cache-tests: the edge passed $required required tests, fewer than the $min_required it must" >&2
  exit 1
fi
