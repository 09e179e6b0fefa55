#!/usr/bin/env bash
# Start-up of a full store. The release edge fills a store (default 4 GiB) with objects of
# 16 KiB (default 260,000 requests; nginx serves one file under every path,
# `Cache-Control: max-age=86400`), and 2,000 of the objects it holds are sampled. Then, twice:
#   1. clean stop (SIGTERM: the edge writes its index checkpoint), page cache dropped, start;
#   2. start, first periodic index checkpoint written (`checkpoint_interval`, 10 s), new objects
#      written, kill -9 during the writes, page cache dropped, start (the checkpoint is loaded
#      and the entries written after it are walked);
# each start timed from exec to /readyz 200 and to the first HIT, and the sample replayed
# (hits, and bodies that differ from the origin's: corrupt). Appends to
# benches/results/start.jsonl.
#   [CAPACITY=4GiB] benches/start/run.sh [objects (260000)] [label]
# Needs root (to drop the page cache), nginx, curl and python3. Every process started here is
# stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
objects=${1:-260000} label=${2:-$(git rev-parse --short HEAD)} capacity=${CAPACITY:-4GiB}
[ "$(id -u)" = 0 ] || { echo "run as root: the page cache is dropped between runs" >&2; exit 1; }
cargo build --release --locked -p edge >&2
. benches/lib/local-servers.sh
start_one_file_origin
edge_args=(target/release/edge --listen 127.0.0.1:0 --admin 127.0.0.1:0 --origin "$origin_url"
  --store "$work/edge.store" --name bench-edge --region bench --capacity "$capacity" --prefetch 0)
args_json=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "${edge_args[@]}")
drop_cache() { sync; echo 3 >/proc/sys/vm/drop_caches; }

start_edge --capacity "$capacity" --prefetch 0
echo "filling: $objects requests" >&2
curl -s -o /dev/null "$edge_url/vod/t/seg_[1-$objects].m4s"
python3 - "$edge_url" "$objects" "$work/sample.txt" <<'PY'
import http.client, random, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1]); n = int(sys.argv[2])
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
random.seed(1)
kept = []
for i in random.sample(range(1, n + 1), min(n, 8000)):
    path = f"/vod/t/seg_{i}.m4s"
    conn.request("GET", path); r = conn.getresponse(); r.read()
    if r.getheader("x-cache") == "HIT":
        kept.append(path)
    if len(kept) == 2000:
        break
open(sys.argv[3], "w").write("\n".join(kept) + "\n")
print(f"sample: {len(kept)} stored objects", file=sys.stderr)
PY
objects_held=$(curl -s "$admin_url/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["objects"])')
kill -TERM "$edge_pid"; wait "$edge_pid" 2>/dev/null || true
drop_cache
clean=$(python3 benches/start/drive.py "$args_json" "$work/sample.txt" "$work/www/obj.bin")
echo "clean stop: $clean" >&2

start_edge --capacity "$capacity" --prefetch 0
# The edge checkpoints its index every 10 s: a crash of an edge that has run that long finds one.
for _ in $(seq 300); do [ -s "$work/edge.store.index" ] && break; sleep 0.1; done
[ -s "$work/edge.store.index" ] || { echo "no periodic checkpoint was written" >&2; exit 1; }
curl -s -o /dev/null "$edge_url/vod/new/seg_[1-20000].m4s" &
writer=$!
pids+=("$writer")
# Kill once the writer has stored some: a thousand new objects.
base=$(curl -s "$admin_url/metrics" | awk '$1 == "meridian_edge_store_evicted_objects" { print $2 }')
for _ in $(seq 600); do
  now=$(curl -s "$admin_url/metrics" | awk '$1 == "meridian_edge_store_evicted_objects" { print $2 }')
  [ "$((now - base))" -ge 1000 ] && break
  sleep 0.05
done
kill -9 "$edge_pid"; wait "$edge_pid" 2>/dev/null || true
kill "$writer" 2>/dev/null || true; wait "$writer" 2>/dev/null || true
drop_cache
killed=$(python3 benches/start/drive.py "$args_json" "$work/sample.txt" "$work/www/obj.bin")
echo "kill -9 during writes: $killed" >&2

python3 - "$label" "$capacity" "$objects_held" "$clean" "$killed" <<'PY' | tee -a benches/results/start.jsonl
import datetime, json, sys
label, capacity, held, clean, killed = sys.argv[1:]
for name, run in (("clean stop", clean), ("kill -9 during writes", killed)):
    r = json.loads(run)
    r.update(date=datetime.date.today().isoformat(), label=label, capacity=capacity,
             objects_held=int(held), test=name, hit_ratio=r["hits"] / max(r["sampled"], 1))
    print(json.dumps(r))
PY
