#!/usr/bin/env bash
# RAM per stored object: the release edge stores N objects of 16 KiB (nginx serves the same
# file under N paths, `Cache-Control: max-age=86400`), fetched one after another by one curl
# (URL globbing, one connection). Prints the edge's anonymous RSS (RssAnon) growth per object,
# measured from after 1,000 warm-up objects, and appends it to
# benches/results/index-memory.jsonl.
#   [CAPACITY=1GiB] benches/index-memory/run.sh [objects (20000)] [label]
# Needs nginx and curl. Every process started here is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
objects=${1:-20000} label=${2:-$(git rev-parse --short HEAD)}
cargo build --release --locked -p edge >&2
. benches/lib/local-servers.sh
start_one_file_origin
start_edge --capacity "${CAPACITY:-1GiB}" --prefetch 0
edge=$edge_url admin=$admin_url
stored() { curl -s "$admin/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["objects"])'; }
anon() { awk '$1 == "RssAnon:" { print $2 }' "/proc/$edge_pid/status"; }

curl -s -o /dev/null "$edge/warm/seg_[1-1000].m4s"
sleep 1
before=$(anon)
before_objects=$(stored)
curl -s -o /dev/null "$edge/vod/title/seg_[1-$objects].m4s"
sleep 1 # stores are written on the blocking pool just after each response
after=$(anon)
after_objects=$(stored)
added=$((after_objects - before_objects))
per_object=$(( (after - before) * 1024 / (added > 0 ? added : 1) ))
line=$(printf '{"date":"%s","label":"%s","objects_added":%d,"rss_anon_before_kib":%d,"rss_anon_after_kib":%d,"bytes_per_object":%d}' \
  "$(date -u +%F)" "$label" "$added" "$before" "$after" "$per_object")
echo "$line"
echo "$line" >>benches/results/index-memory.jsonl
