#!/usr/bin/env bash
# DNS load benchmark for the geo-router with GeoIP and ECS on, using dnsperf (a benchmark, not a
# test). It builds the release binary, starts one router on a free loopback port over the example
# fleet, sends queries for 10 s (each carrying an EDNS Client Subnet option from a test range),
# prints dnsperf's report, and stops the router by PID.
#
#   benches/dns/run.sh [seconds] [clients]
#
# Peers for the side-by-side comparison (gdnsd, NSD) join with the benchmark issue.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
clients=${2:-4}
if ! command -v dnsperf >/dev/null; then
  apt-get update -q && apt-get install -y -q --no-install-recommends dnsperf
fi
cargo build --release --locked -p geo-router
work=$(mktemp -d)
router_pid=
cleanup() {
  [ -n "$router_pid" ] && kill "$router_pid" 2>/dev/null && wait "$router_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

./target/release/geo-router --config testdata/geo-router.toml --dns 127.0.0.1:0 \
  --http 127.0.0.1:0 --admin 127.0.0.1:0 >"$work/out" 2>"$work/log" &
router_pid=$!
until grep -q '^listening dns-udp ' "$work/out"; do
  kill -0 "$router_pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
  sleep 0.1
done
addr=$(awk '$2 == "dns-udp" {print $3}' "$work/out")
printf 'video.meridian.test A\nvideo.meridian.test A\nmeridian.test SOA\nnope.meridian.test A\n' >"$work/queries"
# ECS option (code 8): family 1 (IPv4), source /24, scope 0, address 198.51.100.0 (near eu-west).
taskset -c 1 dnsperf -s "${addr%:*}" -p "${addr##*:}" -d "$work/queries" -l "$seconds" \
  -c "$clients" -Q 200000 -E 8:00011800c63364
