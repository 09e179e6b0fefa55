#!/usr/bin/env bash
# The DNS report: builds the release geo-router and runs benches/dns/compare.sh (the geo-router
# beside gdnsd and NSD: CPU per query at a fixed rate with one and with many client subnets, the
# open rate, and the highest rate with no loss), then writes benches/results/dns.md and
# benches/results/dns.jsonl. A benchmark, not a test: about 15 minutes with the defaults.
#
#   benches/dns/run.sh            RUNS=3 DURATION=10 LADDER=1 LADDER_SECONDS=30
#   BEFORE=<geo-router binary> BEFORE_LABEL=<its commit> benches/dns/run.sh   (an earlier router beside)
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v kdig >/dev/null || need+=(knot-dnsutils)
[ -x /usr/sbin/gdnsd ] || need+=(gdnsd)
[ -x /usr/sbin/nsd ] || need+=(nsd)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# The label names the code the binary is built from, taken before the run (edits made while it
# runs are not in it).
label="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- geo-router || echo '+changes')"
cargo build --release --locked -p geo-router
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
raw=benches/results/dns.jsonl
: >"$raw"
started=$(date +%s)
RUNS=${RUNS:-3} DURATION=${DURATION:-10} LADDER=${LADDER:-1} BIN=$PWD/target/release WORK=$work \
  RAW=$raw BEFORE=${BEFORE:-} bash benches/dns/compare.sh
python3 -c 'import json,sys; print(json.dumps({"kind":"meta","started":sys.argv[1],"seconds":int(sys.argv[2]),"machine":sys.argv[3],"before":sys.argv[4] or None}))' \
  "$(date -u -d "@$started" '+%Y-%m-%d %H:%M UTC')" "$(($(date +%s) - started))" \
  "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Linux $(uname -r)" \
  "${BEFORE:+${BEFORE_LABEL:-an earlier commit}}" >>"$raw"
python3 benches/dns/report.py "$raw" benches/results/dns.md "$label"
echo "benches/results/dns.md written" >&2
