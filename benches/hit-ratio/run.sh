#!/usr/bin/env bash
# Hit ratio on long traces: the simulator (`hitsim`: the edge's policy, LRU, S3-FIFO and
# Belady's optimum at equal capacity) at 1, 5 and 10% of the catalogue, and the same traces
# replayed through the live release edge (prefetch off, one request at a time, a fresh store
# per trace) at 5%, whose measured hit ratio is set beside the simulator's for the edge's
# policy with the edge's real room (its record size measured from the live store).
#
# Catalogue: 100 titles of 100 segments of 16 KiB (10,000 objects), served by nginx with
# `Cache-Control: public, max-age=86400`. Traces (seed 1): Zipf 0.8 and 1.0, 100,000 requests;
# viewing sessions from a title's start, leaving after each segment with probability 0.05,
# 6,000 sessions. Appends one JSON line per trace and capacity to
# benches/results/hit-ratio.jsonl.
#   benches/hit-ratio/run.sh [label]
# Needs nginx and curl. Every process started here is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
label=${1:-$(git rev-parse --short HEAD)}
titles=100 segments=100 count=100000 sessions=6000 abandon=0.05 size=16384
objects=$((titles * segments))
cargo build --release --locked -p edge -p loadgen >&2
. benches/lib/local-servers.sh
python3 - "$work/www" "$titles" "$segments" "$size" <<'PY'
import os, sys
root, titles, segments, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for t in range(titles):
    folder = os.path.join(root, "vod", "bench", f"t{t:03}")
    os.makedirs(folder, exist_ok=True)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:4", "#EXT-X-PLAYLIST-TYPE:VOD"]
    for s in range(segments):
        name = f"seg_{s:05}.m4s"
        with open(os.path.join(folder, name), "wb") as f:
            f.write((f"{t}/{s} ".encode() * size)[:size])
        lines += ["#EXTINF:4.0,", name]
    with open(os.path.join(folder, "index.m3u8"), "w") as f:
        f.write("\n".join(lines + ["#EXT-X-ENDLIST", ""]))
PY
start_nginx 'location / {
            types { application/vnd.apple.mpegurl m3u8; video/iso.segment m4s; }
            add_header Cache-Control "public, max-age=86400";
        }'
out=benches/results/hit-ratio.jsonl
status() { curl -s "$admin_url/status"; }

# The edge's record size for these objects, from a store holding one.
start_edge --capacity 8MiB --prefetch 0
curl -s -o /dev/null "$edge_url/vod/bench/t000/seg_00000.m4s"
record=$(status | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["used_bytes"] // s["objects"])')
kill "$edge_pid"; wait "$edge_pid" 2>/dev/null || true; rm -f "$work/edge.store"
echo "record size: $record bytes" >&2

for percent in 1 5 10; do
  cap_objects=$((objects * percent / 100))
  capacity=$((cap_objects * size))
  # The edge's logs (see edge/src/store/format.rs): 4 KiB superblock, a tenth of the rest.
  room=$(( (capacity - 4096) / 128 * 128 ))
  small_len=$(( room / 10 / 128 * 128 ))
  edge_small=$((small_len / record)) edge_main=$(( (room - small_len) / record ))
  target/release/hitsim --titles $titles --segments $segments --capacity $cap_objects \
    --edge-small $edge_small --edge-main $edge_main --count $count --sessions $sessions \
    --abandon $abandon --concurrency 1 >"$work/sim.jsonl"
  live=()
  if [ "$percent" = 5 ]; then
    for kind in zipf0.8 zipf1.0 sessions; do
      start_edge --capacity "$capacity" --prefetch 0
      case $kind in
        zipf*) args=(--kind zipf --alpha "${kind#zipf}" --count $count) ;;
        sessions) args=(--kind sessions --abandon $abandon --count $sessions) ;;
      esac
      target/release/loadgen --base "$edge_url" trace "${args[@]}" --titles $titles \
        --segments $segments --concurrency 1 >"$work/live-$kind.json"
      live+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hit_ratio"])' "$work/live-$kind.json")")
      kill "$edge_pid"; wait "$edge_pid" 2>/dev/null || true; rm -f "$work/edge.store"
    done
  fi
  python3 - "$work/sim.jsonl" "$out" "$label" "$percent" "$record" "${live[@]}" <<'PY'
import datetime, json, sys
sim, out, label, percent, record, live = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6:]
with open(sim) as f, open(out, "a") as o:
    for i, line in enumerate(f):
        r = json.loads(line)
        r.update(date=datetime.date.today().isoformat(), label=label, capacity_percent=percent,
                 edge_record_bytes=record)
        h = r["hit_ratio"]
        r["edge_over_belady"] = h["edge (S3-FIFO logs)"] / h["Belady (optimum)"]
        if live:
            r["live_edge_hit_ratio"] = float(live[i])
            r["live_minus_sim_points"] = (float(live[i]) - h["edge (S3-FIFO logs)"]) * 100
        print(json.dumps(r, ensure_ascii=False))
        o.write(json.dumps(r, ensure_ascii=False) + "\n")
PY
done

# The CDN benchmark's short traces (benches/cdn/run.sh: 1,000 objects of 1 MiB, 256 MiB), in
# the simulator only: the edge's 256 MiB store holds 25 + 230 records of 1 MiB + 512 B.
target/release/hitsim --titles 40 --segments 25 --capacity 256 --edge-small 25 --edge-main 230 \
  --count 3000 --sessions 300 --length 10 --concurrency 32 |
  python3 -c '
import datetime, json, sys
for line in sys.stdin:
    r = json.loads(line)
    h = r["hit_ratio"]
    r.update(date=datetime.date.today().isoformat(), label=sys.argv[1], capacity_percent=25.6,
             edge_over_belady=h["edge (S3-FIFO logs)"] / h["Belady (optimum)"])
    print(json.dumps(r, ensure_ascii=False))' "$label" | tee -a "$out"
