#!/usr/bin/env bash
# Meridian's CDN benchmark: the edge beside nginx (proxy_cache) and Varnish (malloc), same
# origin, same cache capacity, same load tools, same pinning, one run. Writes
# benches/results/report.md (tables, SVG charts, goals met or not) from the raw figures in
# benches/results/raw.jsonl. Run as root on a 2-core machine:  benches/cdn/run.sh
#
# Core 0 runs the server under test; core 1 runs the load tool and the origin.
# Environment: DURATION (seconds per throughput/latency run, default 10), QUICK=1 (a smoke run:
# 2 s runs, small traces), SEG_RATE and PL_RATE (open-loop rates for segments and playlists).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
QUICK=${QUICK:-0}
DUR=${DURATION:-$([ "$QUICK" = 1 ] && echo 2 || echo 10)}
SEG_RATE=${SEG_RATE:-300}
REPEATS=${REPEATS:-$([ "$QUICK" = 1 ] && echo 1 || echo 3)}
PL_RATE=${PL_RATE:-3000}
ZIPF_COUNT=$([ "$QUICK" = 1 ] && echo 500 || echo 3000)
SESSIONS=$([ "$QUICK" = 1 ] && echo 40 || echo 300)
BURST_CLIENTS=1000
BURST_SEGMENTS=$([ "$QUICK" = 1 ] && echo 2 || echo 5)
TITLES=40
SEGMENTS=25
CAPACITY_MB=256
WORK=$ROOT/target/bench-work
OUT=$ROOT/benches/results
RAW=$WORK/raw.jsonl
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
ORIGIN=127.0.0.1:18080
ORIGIN_ADMIN=127.0.0.1:19080
EDGE=127.0.0.1:18081
EDGE_TLS=127.0.0.1:18443
EDGE_ADMIN=127.0.0.1:19081
NGINX=127.0.0.1:18082
VARNISH=127.0.0.1:18083
started=$(date +%s)

log() { echo "[$(($(date +%s) - started))s] $*" >&2; }

# --- what the run needs ------------------------------------------------------------------
need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
[ -x /usr/sbin/varnishd ] || need+=(varnish)
command -v wrk >/dev/null || need+=(wrk)
command -v dnsperf >/dev/null || need+=(dnsperf)
[ -x /usr/sbin/nsd ] || need+=(nsd)
[ -x /usr/sbin/gdnsd ] || need+=(gdnsd)
command -v kdig >/dev/null || need+=(knot-dnsutils)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
export PATH=$PATH:/usr/sbin
# 1,000 burst clients, each on its own connection, and the servers' side of them.
ulimit -n "$(ulimit -Hn)"

log "building release binaries"
cargo build --release --locked -p origin -p edge -p geo-router -p loadgen 2>&1 | tail -1 >&2

mkdir -p "$WORK" "$OUT"
: >"$RAW"
if [ ! -f "$WORK/media/.complete-$TITLES-$SEGMENTS" ]; then
  log "writing the catalogue ($TITLES titles x $SEGMENTS segments of 1 MiB)"
  rm -rf "$WORK/media"
  python3 benches/cdn/make-catalogue.py "$WORK/media" "$TITLES" "$SEGMENTS" edge,edge-prefetch,nginx,varnish 20
  touch "$WORK/media/.complete-$TITLES-$SEGMENTS"
fi
if [ ! -f "$WORK/cert.pem" ]; then
  # A throwaway CA and the edge's certificate for 127.0.0.1, signed by it.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=meridian-bench-ca -keyout "$WORK/ca-key.pem" -out "$WORK/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 \
    -keyout "$WORK/key.pem" -out "$WORK/edge.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$WORK/edge.ext"
  openssl x509 -req -in "$WORK/edge.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca-key.pem" -CAcreateserial \
    -days 30 -extfile "$WORK/edge.ext" -out "$WORK/cert.pem" 2>/dev/null
fi
hot_segments=$WORK/hot-segments.txt
hot_playlists=$WORK/hot-playlists.txt
for t in 0 1; do for s in $(seq 0 15); do printf '/vod/bench/t%03d/seg_%05d.m4s\n' "$t" "$s"; done; done >"$hot_segments"
for t in $(seq 0 $((TITLES - 1))); do printf '/vod/bench/t%03d/index.m3u8\n' "$t"; done >"$hot_playlists"

# --- processes: every one started here is stopped by its PID, whatever happens -------------
# (A file, not an array: servers are started inside command substitutions.)
PIDS=$WORK/pids
: >"$PIDS"
# shellcheck source=../lib.sh
. benches/lib.sh
trap 'stop_pids "$PIDS"' EXIT

stop() { # pid
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}
# CPU seconds (user + system) of every process in a session.
cpu() {
  python3 - "$1" <<'PY'
import os, sys
sid, total = sys.argv[1], 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    if fields[3] == sid:  # field 6 of stat: the session id
        total += int(fields[11]) + int(fields[12])
print(total / os.sysconf("SC_CLK_TCK"))
PY
}
origin_counter() { # metric
  curl -s "http://$ORIGIN_ADMIN/metrics" | awk -v m="$1" '$1 ~ "^"m"(_total)?({|$)" {s += $NF} END {printf "%.0f\n", s}'
}
record() { echo "$1" >>"$RAW"; }

log "starting the origin (core 1)"
origin_pid=$(spawn origin 1 "$BIN/origin" --media "$WORK/media" --listen "$ORIGIN" --admin "$ORIGIN_ADMIN")
wait_line origin "^listening http "

start_server() { # server prefetch → prints "pid base"
  local server=$1 prefetch=${2:-0} pid
  case $server in
    edge)
      rm -f "$WORK/edge.store"
      pid=$(spawn edge 0 env RUST_LOG=warn "$BIN/edge" --listen "$EDGE" --tls-listen "$EDGE_TLS" \
        --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" --admin "$EDGE_ADMIN" \
        --origin "http://$ORIGIN" --store "$WORK/edge.store" --capacity "${CAPACITY_MB}MiB" \
        --name bench --region bench --prefetch "$prefetch")
      wait_line edge "^listening https "
      wait_line edge "^listening admin "
      echo "$pid http://$EDGE"
      ;;
    nginx)
      rm -rf "$WORK/nginx-cache"
      sed -e "s|@WORK@|$WORK|g" -e "s|@CAPACITY_MB@|$CAPACITY_MB|g" -e "s|@ORIGIN@|$ORIGIN|g" \
        -e "s|@LISTEN@|$NGINX|g" benches/cdn/nginx.conf >"$WORK/nginx.conf"
      pid=$(spawn nginx 0 nginx -c "$WORK/nginx.conf" -p "$WORK")
      wait_http nginx "http://$NGINX/"
      echo "$pid http://$NGINX"
      ;;
    varnish)
      sed -e "s|@ORIGIN_HOST@|${ORIGIN%:*}|" -e "s|@ORIGIN_PORT@|${ORIGIN#*:}|" \
        benches/cdn/varnish.vcl >"$WORK/varnish.vcl"
      rm -rf "$WORK/varnish"
      pid=$(spawn varnish 0 varnishd -F -j none -n "$WORK/varnish" -a "$VARNISH" -T none \
        -f "$WORK/varnish.vcl" -s "malloc,${CAPACITY_MB}m")
      wait_http varnish "http://$VARNISH/"
      echo "$pid http://$VARNISH"
      ;;
  esac
}

# One wrk run (closed loop, 32 connections, core 1) → a JSON line with CPU per 1,000 requests.
# Repeated REPEATS times (default 3): this machine is shared and one run can be off by a third;
# the report takes the median and shows the range.
measure_wrk() { # server pid base test paths
  local rep
  for rep in $(seq "$REPEATS"); do measure_wrk_once "$@" "$rep"; done
}
measure_wrk_once() { # server pid base test paths rep
  local server=$1 pid=$2 base=$3 test=$4 paths=$5 rep=$6 c0 c1 out
  c0=$(cpu "$pid")
  out=$(WRK_PATHS=$paths taskset -c 1 wrk -t1 -c32 -d"${DUR}s" -s benches/cdn/wrk-paths.lua "$base" | grep '^WRKJSON' | cut -d' ' -f2-)
  c1=$(cpu "$pid")
  record "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); s=d["duration_us"]/1e6; print(json.dumps({"server":sys.argv[2],"test":sys.argv[3],"kind":"closed","rep":int(sys.argv[6]),"rps":d["requests"]/s,"mb_per_s":d["bytes"]/s/1e6,"errors":d["errors"],"p50_ms":d["p50_us"]/1e3,"p99_ms":d["p99_us"]/1e3,"p999_ms":d["p999_us"]/1e3,"cpu_s_per_1k":(float(sys.argv[5])-float(sys.argv[4]))/max(d["requests"],1)*1000}))' "$out" "$server" "$test" "$c0" "$c1" "$rep")"
  log "  $server $test: $(tail -1 "$RAW")"
}

# One open-loop loadgen run at a fixed rate → latency from scheduled send times.
measure_open() { # server pid base test rate paths...
  local server=$1 pid=$2 base=$3 test=$4 rate=$5 c0 c1 out args=()
  shift 5
  for p in "$@"; do args+=(--path "$p"); done
  c0=$(cpu "$pid")
  out=$(taskset -c 1 "$BIN/loadgen" --base "$base" --ca "$WORK/ca.pem" open --rate "$rate" --duration "$DUR" --connections 64 "${args[@]}")
  c1=$(cpu "$pid")
  record "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(json.dumps({"server":sys.argv[2],"test":sys.argv[3],"kind":"open","rate":d["rate"],"rps":d["achieved_rps"],"mb_per_s":d["mb_per_s"],"errors":d["errors"],"p50_ms":d["latency"]["p50_ms"],"p99_ms":d["latency"]["p99_ms"],"p999_ms":d["latency"]["p999_ms"],"cpu_s_per_1k":(float(sys.argv[5])-float(sys.argv[4]))/max(d["requests"],1)*1000}))' "$out" "$server" "$test" "$c0" "$c1")"
  log "  $server $test: $(tail -1 "$RAW")"
}

warm() { # base
  while read -r p; do curl -s -o /dev/null "$1$p"; curl -s -o /dev/null "$1$p"; done < <(cat "$hot_segments" "$hot_playlists")
}

# --- hits: throughput (closed loop) and latency (open loop) ---------------------------------
for server in edge nginx varnish; do
  log "$server: cache hits"
  read -r pid base < <(start_server "$server")
  warm "$base"
  measure_wrk "$server" "$pid" "$base" "segment 1 MiB" "$hot_segments"
  measure_wrk "$server" "$pid" "$base" "playlist 1 KiB" "$hot_playlists"
  mapfile -t seg_paths <"$hot_segments"
  mapfile -t pl_paths <"$hot_playlists"
  measure_open "$server" "$pid" "$base" "segment 1 MiB" "$SEG_RATE" "${seg_paths[@]}"
  measure_open "$server" "$pid" "$base" "playlist 1 KiB" "$PL_RATE" "${pl_paths[@]}"
  if [ "$server" = edge ]; then
    tls="https://$EDGE_TLS"
    measure_wrk edge-tls "$pid" "$tls" "segment 1 MiB" "$hot_segments"
    measure_wrk edge-tls "$pid" "$tls" "playlist 1 KiB" "$hot_playlists"
    measure_open edge-tls "$pid" "$tls" "segment 1 MiB" "$SEG_RATE" "${seg_paths[@]}"
    measure_open edge-tls "$pid" "$tls" "playlist 1 KiB" "$PL_RATE" "${pl_paths[@]}"
  fi
  stop "$pid"
done

# --- workloads: Zipf over a catalogue four times the cache, live bursts, viewing sessions ----
# What a cache holds now, in bytes (each server's own account: the store's used bytes, the
# files in nginx's cache directory, Varnish's malloc storage).
cache_bytes() { # server
  case $1 in
    edge*) curl -s "http://$EDGE_ADMIN/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["used_bytes"])' ;;
    nginx) du -sb "$WORK/nginx-cache" | cut -f1 ;;
    varnish) varnishstat -n "$WORK/varnish" -1 -f SMA.s0.g_bytes | awk '{print $2}' ;;
  esac
}

run_trace() { # server base label args...
  local server=$1 base=$2 label=$3 r0 b0 out
  shift 3
  r0=$(origin_counter meridian_origin_requests)
  b0=$(origin_counter meridian_origin_body_bytes_sent)
  out=$(taskset -c 1 "$BIN/loadgen" --base "$base" trace --titles "$TITLES" --segments "$SEGMENTS" "$@")
  record "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(server=sys.argv[2], test=sys.argv[3], kind="trace", origin_requests=int(sys.argv[5])-int(sys.argv[4]), origin_mb=(int(sys.argv[7])-int(sys.argv[6]))/1e6, cache_mb=int(sys.argv[8] or 0)/1e6); print(json.dumps(d))' \
    "$out" "$server" "$label" "$r0" "$(origin_counter meridian_origin_requests)" "$b0" "$(origin_counter meridian_origin_body_bytes_sent)" "$(cache_bytes "$server")")"
  log "  $server $label: hit ratio $(tail -1 "$RAW" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["hit_ratio"],3))')"
}

for server in edge nginx varnish; do
  for alpha in 0.8 1.0; do
    log "$server: Zipf alpha $alpha"
    read -r pid base < <(start_server "$server")
    run_trace "$server" "$base" "zipf $alpha" --kind zipf --alpha "$alpha" --count "$ZIPF_COUNT" --concurrency 16
    stop "$pid"
  done
  log "$server: live burst, $BURST_CLIENTS clients"
  read -r pid base < <(start_server "$server")
  r0=$(origin_counter meridian_origin_requests)
  out=$(taskset -c 1 "$BIN/loadgen" --base "$base" burst --template "/vod/burst/$server/seg_{k}.m4s" --clients "$BURST_CLIENTS" --segments "$BURST_SEGMENTS")
  r1=$(origin_counter meridian_origin_requests)
  record "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(server=sys.argv[2], test="live burst", kind="burst", origin_fetches_per_segment=(int(sys.argv[4])-int(sys.argv[3]))/d["segments"]); print(json.dumps(d))' "$out" "$server" "$r0" "$r1")"
  log "  $server burst: $(tail -1 "$RAW")"
  stop "$pid"
  for prefetch in 0 2; do
    [ "$server" != edge ] && [ "$prefetch" != 0 ] && continue
    label=$server
    [ "$prefetch" != 0 ] && label=edge-prefetch
    log "$label: viewing sessions"
    read -r pid base < <(start_server "$server" "$prefetch")
    run_trace "$label" "$base" "sessions" --kind sessions --alpha 0.8 --count "$SESSIONS" --length 10 --concurrency 32
    stop "$pid"
  done
done

# --- warm restart: the edge after SIGTERM and after kill -9 ---------------------------------
log "edge: warm restart"
warm_objects=$WORK/warm-objects.txt
for t in $(seq 0 7); do for s in $(seq 0 $((SEGMENTS - 1))); do printf '/vod/bench/t%03d/seg_%05d.m4s\n' "$t" "$s"; done; done >"$warm_objects"
check_restart() { # signal
  local hits=0 corrupt=0 total=0 status cache
  read -r pid base < <(start_server edge)
  while read -r p; do curl -s -o /dev/null "$base$p"; done <"$warm_objects"
  # The store has every object when its fills are done: /status says so.
  for _ in $(seq 100); do
    curl -s "http://$EDGE_ADMIN/status" | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s["objects"] >= int(sys.argv[1]) and s["fills_in_flight"] == 0 else 1)' "$(wc -l <"$warm_objects")" && break
    sleep 0.1
  done
  kill -"$1" "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  pid=$(spawn edge 0 env RUST_LOG=warn "$BIN/edge" --listen "$EDGE" --tls-listen "$EDGE_TLS" \
    --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" --admin "$EDGE_ADMIN" \
    --origin "http://$ORIGIN" --store "$WORK/edge.store" --capacity "${CAPACITY_MB}MiB" \
    --name bench --region bench --prefetch 0)
  wait_line edge "^listening admin "
  while read -r p; do
    total=$((total + 1))
    cache=$(curl -s -o "$WORK/body" -w '%header{x-cache}' "$base$p")
    [ "$cache" = HIT ] && hits=$((hits + 1))
    cmp -s "$WORK/body" "$WORK/media$p" || corrupt=$((corrupt + 1))
  done <"$warm_objects"
  record "{\"server\":\"edge\",\"test\":\"restart after $1\",\"kind\":\"restart\",\"objects\":$total,\"hits\":$hits,\"corrupt\":$corrupt}"
  log "  after $1: $hits of $total hits, $corrupt corrupt"
  stop "$pid"
}
check_restart TERM
check_restart KILL

# --- the hit-ratio simulator on the same traces --------------------------------------------
log "hit-ratio simulator"
# The edge's store of 256 MiB: a small log of 25.6 MiB and a main log of 230.4 MiB; a 1 MiB
# record with its header takes 1 MiB + 512 B, so the edge holds 25 + 230 of the 256 objects
# the others hold.
"$BIN/hitsim" --titles "$TITLES" --segments "$SEGMENTS" --capacity "$CAPACITY_MB" --edge-small 25 --edge-main 230 \
  --count "$ZIPF_COUNT" --sessions "$SESSIONS" --length 10 --concurrency 32 |
  while read -r line; do record "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(server="simulator", kind="sim"); print(json.dumps(d))' "$line")"; done

stop "$origin_pid"

# --- DNS: the geo-router beside gdnsd and NSD -----------------------------------------------
if [ "${SKIP_DNS:-0}" != 1 ]; then
  log "DNS"
  DURATION=$DUR WORK=$WORK BIN=$BIN RAW=$RAW bash benches/dns/compare.sh
fi

record "$(python3 -c 'import json,sys; print(json.dumps({"kind":"meta","started":sys.argv[1],"seconds":int(sys.argv[2]),"machine":sys.argv[3]}))' \
  "$(date -u -d "@$started" '+%Y-%m-%d %H:%M UTC')" "$(($(date +%s) - started))" \
  "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Linux $(uname -r)")"
cp "$RAW" "$OUT/raw.jsonl"
python3 benches/cdn/report.py "$OUT/raw.jsonl" "$OUT"
log "done in $(($(date +%s) - started)) s: $OUT/report.md"
