#!/usr/bin/env bash
# Memory of uncacheable misses: N viewers fetch at once an object the edge may not store
# (nginx serves a SIZE_MIB file with `Cache-Control: no-store`), through the release edge. Prints
# the edge's RSS before and its peak (VmHWM) after, per stream, and checks that every viewer got
# the whole body. Appends the result to benches/results/passthrough.jsonl.
#   benches/passthrough/run.sh [viewers (200)] [size in MiB (500)]
# Needs nginx and curl. Every process started here is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
viewers=${1:-200} size_mib=${2:-500}
cargo build --release --locked -p edge >&2
. benches/lib/local-servers.sh
head -c "$((size_mib << 20))" /dev/zero >"$work/www/big.mp4"
start_nginx "add_header Cache-Control no-store;"
start_edge --capacity 64MiB
edge=$edge_url

kb() { awk -v f="$1" '$1 == f { print $2 }' "/proc/$edge_pid/status"; }
before=$(kb VmRSS:)
start_ns=$(date +%s%N)
for i in $(seq "$viewers"); do
  curl -s -o /dev/null -w '%{http_code} %{size_download}\n' --max-time 600 "$edge/big.mp4" >"$work/viewer.$i" &
done
wait_viewers() {
  for i in $(seq "$viewers"); do
    while [ ! -s "$work/viewer.$i" ]; do sleep 0.2; done
  done
}
wait_viewers
elapsed_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
peak=$(kb VmHWM:)
whole=$((size_mib << 20))
complete=$(cat "$work"/viewer.* | grep -c "^200 $whole$" || true)
grown=$(((peak - before) * 1024))
per_stream=$((grown / viewers))
line=$(printf '{"date":"%s","viewers":%d,"size_mib":%d,"complete":%d,"rss_before_kib":%d,"rss_peak_kib":%d,"grown_bytes":%d,"per_stream_bytes":%d,"bound_bytes":%d,"ms":%d}' \
  "$(date -u +%F)" "$viewers" "$size_mib" "$complete" "$before" "$peak" "$grown" "$per_stream" \
  "$((viewers * (1 << 20) + (64 << 20)))" "$elapsed_ms")
echo "$line"
echo "$line" >>benches/results/passthrough.jsonl
[ "$complete" -eq "$viewers" ] || { echo "only $complete of $viewers viewers got the whole body" >&2; exit 1; }
