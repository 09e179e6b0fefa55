#!/usr/bin/env bash
# A/B of two geo-router binaries on one machine state: A and B alternate ROUNDS times (default
# 4), each pinned to core 0 with one UDP thread and asked FIXED_QPS (default 100,000) for
# DURATION s (default 10) by dnsperf on core 1, one client subnet (SET=many: the DNS report's
# 131,072 distinct subnets). Appends JSON lines (server "A" or "B", measure.py's fields) to RAW
# and prints each side's median CPU per query.
#
#   A=<binary> B=<binary> RAW=benches/results/dns-ab.jsonl [SET=many] benches/dns/ab.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${A:?}" "${B:?}" "${RAW:?}"
ROUNDS=${ROUNDS:-4}
DURATION=${DURATION:-10}
FIXED_QPS=${FIXED_QPS:-100000}
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
SET=${SET:-one}
case $SET in
  one) queries=$work/queries; python3 benches/dns/queries.py text "$queries" ;;
  many) queries=$work/many.bin; python3 benches/dns/queries.py many "$queries" 131072 ;;
  *) echo "SET is one or many, not $SET" >&2; exit 2 ;;
esac
{
  echo "dns_udp_threads = 1"
  sed "s|^topology = .*|topology = \"$PWD/testdata/topology.toml\"|; s|^geoip = .*|geoip = \"$PWD/testdata/geoip/meridian-city.mmdb\"|" \
    testdata/geo-router.toml
} >"$work/router.toml"
for round in $(seq "$ROUNDS"); do
  for side in A B; do
    bin=${!side}
    setsid taskset -c 0 "$bin" --config "$work/router.toml" --dns 127.0.0.1:15357 \
      --http 127.0.0.1:0 --admin 127.0.0.1:0 >"$work/out" 2>"$work/log" </dev/null &
    pid=$!
    until grep -q '^listening dns-udp ' "$work/out"; do
      kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
      sleep 0.1
    done
    RUN=$round python3 benches/dns/measure.py "$side" "$pid" 15357 "$FIXED_QPS" "$DURATION" \
      "$queries" "$SET" fixed | tee -a "$RAW"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
  done
done
python3 - "$RAW" "$ROUNDS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-2 * int(sys.argv[2]):]
for side in "AB":
    us = [r["server_us_per_query"] for r in rows if r["server"] == side]
    user = [r["server_user_us_per_query"] for r in rows if r["server"] == side]
    print(f"{side}: median {statistics.median(us):.2f} us/query (user {statistics.median(user):.2f}) over {len(us)} runs: {us}")
PY
