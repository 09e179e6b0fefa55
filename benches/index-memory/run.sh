#!/usr/bin/env bash
# RAM per stored object: the release edge stores N objects of 16 KiB (nginx serves the same
# file under N paths, `Cache-Control: max-age=3600`), fetched one after another by one curl
# (URL globbing, one connection). Prints the edge's anonymous RSS (RssAnon) growth per object,
# measured from after 1,000 warm-up objects, and appends it to
# benches/results/index-memory.jsonl.
#   benches/index-memory/run.sh [objects (20000)] [label]
# Needs nginx and curl. Every process started here is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
objects=${1:-20000} label=${2:-$(git rev-parse --short HEAD)}
cargo build --release --locked -p edge >&2
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -p "$work/www" "$work/temp"
head -c 16384 /dev/urandom >"$work/www/obj.bin"
cat >"$work/nginx.conf" <<CONF
daemon off;
master_process off;
pid $work/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/temp;
    proxy_temp_path $work/temp;
    fastcgi_temp_path $work/temp;
    uwsgi_temp_path $work/temp;
    scgi_temp_path $work/temp;
    server {
        listen 127.0.0.1:$port;
        root $work/www;
        location / {
            default_type video/iso.segment;
            add_header Cache-Control "public, max-age=3600";
            try_files /obj.bin =404;
        }
    }
}
CONF
"$(command -v nginx || echo /usr/sbin/nginx)" -e stderr -p "$work" -c "$work/nginx.conf" &
pids+=($!)
for _ in $(seq 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$port/probe" && break
  sleep 0.1
done

target/release/edge --listen 127.0.0.1:0 --admin 127.0.0.1:0 --origin "http://127.0.0.1:$port" \
  --store "$work/edge.store" --capacity 1GiB --name bench-edge --region bench --prefetch 0 \
  >"$work/edge.out" 2>"$work/edge.log" &
edge_pid=$!
pids+=("$edge_pid")
edge=
for _ in $(seq 300); do
  edge="$(awk '$1 == "listening" && $2 == "http" { print $3; exit }' "$work/edge.out")"
  [ -n "$edge" ] && break
  sleep 0.1
done
[ -n "$edge" ] || { echo "the edge did not start:" >&2; cat "$work/edge.log" >&2; exit 1; }
admin="$(awk '$1 == "listening" && $2 == "admin" { print $3; exit }' "$work/edge.out")"
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
