#!/usr/bin/env bash
# Memory of large misses: N viewers fetch at once one large object through the release edge.
#   no-store (default): nginx serves it with `Cache-Control: no-store`; the edge may not keep it,
#     so each viewer's response is passed through on a fetch of its own.
#   store: nginx serves it with `Cache-Control: public, max-age=600`; one fill writes it through
#     to the store while every viewer streams it (late ones from the store's copy).
# Prints the edge's RSS before and its peak (VmHWM) after, per stream, the origin fetches, and
# checks that every viewer got the whole body. Appends to benches/results/passthrough.jsonl.
#   benches/passthrough/run.sh [viewers (200)] [size in MiB (500)] [no-store|store]
# Needs nginx and curl. Every process started here is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
viewers=${1:-200} size_mib=${2:-500} mode=${3:-no-store}
cargo build --release --locked -p edge >&2
. benches/lib/local-servers.sh
head -c "$((size_mib << 20))" /dev/urandom >"$work/www/big.mp4"
case "$mode" in
  no-store)
    start_nginx "add_header Cache-Control no-store;"
    start_edge --capacity 64MiB
    ;;
  store)
    start_nginx "add_header Cache-Control \"public, max-age=600\";"
    printf 'max_object_size = "%dMiB"\n' "$((size_mib + 1))" >"$work/edge.toml"
    start_edge --capacity "$((size_mib * 2 + 64))MiB" --config "$work/edge.toml"
    ;;
  *) echo "mode is no-store or store, not $mode" >&2; exit 2 ;;
esac
edge=$edge_url

kb() { awk -v f="$1" '$1 == f { print $2 }' "/proc/$edge_pid/status"; }
before=$(kb VmRSS:)
start_ns=$(date +%s%N)
want=$(cksum "$work/www/big.mp4" | cut -d" " -f1,2)
for i in $(seq "$viewers"); do
  (
    out=$(curl -s --max-time 600 "$edge/big.mp4" | cksum | cut -d" " -f1,2)
    echo "$out" >"$work/viewer.$i"
  ) &
done
wait_viewers() {
  for i in $(seq "$viewers"); do
    while [ ! -s "$work/viewer.$i" ]; do sleep 0.2; done
  done
}
wait_viewers
elapsed_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
peak=$(kb VmHWM:)
complete=$(cat "$work"/viewer.* | grep -c "^$want$" || true)
fetches=$(curl -s "$admin_url/metrics" | awk '$1 ~ /^meridian_edge_origin_fetches_total/ { n += $2 } END { print n + 0 }')
grown=$(((peak - before) * 1024))
per_stream=$((grown / viewers))
line=$(printf '{"date":"%s","mode":"%s","viewers":%d,"size_mib":%d,"complete":%d,"origin_fetches":%d,"rss_before_kib":%d,"rss_peak_kib":%d,"grown_bytes":%d,"per_stream_bytes":%d,"bound_bytes":%d,"ms":%d}' \
  "$(date -u +%F)" "$mode" "$viewers" "$size_mib" "$complete" "$fetches" "$before" "$peak" "$grown" "$per_stream" \
  "$((viewers * (1 << 20) + (64 << 20)))" "$elapsed_ms")
echo "$line"
echo "$line" >>benches/results/passthrough.jsonl
[ "$complete" -eq "$viewers" ] || { echo "only $complete of $viewers viewers got the whole body intact" >&2; exit 1; }
