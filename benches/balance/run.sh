#!/usr/bin/env bash
# The load balancer under load: 200 viewers from 200 client subnets near us-east stream through
# the local fleet (meridian-local), each following the geo-router as a player does (redirect,
# then content steering; benches/loadgen/src/bin/viewers.rs). Three runs, each on a fleet of its
# own topology:
#   equal    - every edge sized for 200 Mbit/s: the region's two edges share its viewers;
#   spill    - us-east's edges sized for 60 Mbit/s: the region must spill to its neighbour;
#   failure  - eu-west's edges sized for 80 Mbit/s, and both us-east edges killed (kill -9) at
#              30 s: their viewers are spread over eu-west and ap-southeast by room.
# Writes benches/results/balance/<run>.jsonl (a sample a second, then the summary) and
# benches/results/balance.md with an SVG of each edge's egress over time; exits non-zero when
# a check fails (spread > 1.25, an edge over 80% for 10 s or more while another had headroom,
# over 90% after the kill).
#   benches/balance/run.sh [viewers] [seconds]     (RUNS="spill" runs only that one, no report)
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-200} seconds=${2:-70}
cargo build --release --locked -p origin -p edge -p geo-router -p fleet-launcher -p loadgen --bins
bin=target/release
out=benches/results/balance
mkdir -p "$out"
work=$(mktemp -d)
launcher=
stop() { if [ -n "$launcher" ]; then kill -INT "$launcher" 2>/dev/null || true; wait "$launcher" 2>/dev/null || true; launcher=; fi; }
trap 'stop; rm -rf "$work"' EXIT

# A topology: testdata's, with the capacity of region $2's edges set to $3 Mbit/s (and again for
# more pairs).
topology() {
  local file=$1; shift
  cp testdata/topology.toml "$file"
  while [ $# -gt 0 ]; do
    sed -i "/name = \"$1-[0-9]\"/,/^capacity/ s/^capacity = .*/capacity = { egress_mbps = $2, connections = 2000 }/" "$file"
    shift 2
  done
}

run() {
  local name=$1 file=$2; shift 2
  rm -rf "$work/run"
  "$bin/meridian-local" --topology "$file" --loopback-block auto --run-dir "$work/run" \
    --bin-dir "$bin" >"$work/launcher.out" 2>"$work/launcher.err" &
  launcher=$!
  local control=
  for _ in $(seq 1 600); do
    control=$(awk '/^listening control/ {print $3}' "$work/launcher.out")
    [ -n "$control" ] && break
    kill -0 "$launcher" 2>/dev/null || { cat "$work/launcher.err" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$control" ] || { echo "the fleet did not start" >&2; exit 1; }
  echo "== $name ($control)" >&2
  "$bin/viewers" --control "$control" --count "$count" --duration "$seconds" "$@" >"$out/$name.jsonl"
  tail -1 "$out/$name.jsonl" >&2
  stop
}

runs=${RUNS:-equal spill failure}
for name in $runs; do
  case $name in
    equal) topology "$work/equal.toml"; run equal "$work/equal.toml" ;;
    spill) topology "$work/spill.toml" us-east 60; run spill "$work/spill.toml" ;;
    failure)
      topology "$work/failure.toml" eu-west 80
      run failure "$work/failure.toml" --kill-region us-east --kill-at 30 ;;
    *) echo "unknown run $name" >&2; exit 2 ;;
  esac
done
[ -n "${RUNS:-}" ] || python3 benches/balance/report.py "$out" "$(git rev-parse --short HEAD)" >benches/results/balance.md
