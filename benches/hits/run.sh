#!/usr/bin/env bash
# The hit-path benchmark: the edge beside nginx (proxy_cache; sendfile on, and sendfile off with
# open_file_cache) and Varnish (malloc), every response a HIT, objects of 1 KiB, 100 KiB and
# 1 MiB, at 16 and 64 connections. Every server runs at once, pinned to core 0; wrk (one thread)
# and the origin run on core 1; the runs are interleaved (repetition, connections, size, server)
# so that a slow minute of this shared machine falls on every server alike. The CPU of the
# server and of wrk is recorded for each run. Writes benches/results/hits.jsonl and hits.md.
# A benchmark, not a test: about 15 minutes with the defaults. Run as root.
#
#   benches/hits/run.sh                       RUNS=3 DURATION=8 CONNECTIONS="16 64"
#   BEFORE=<edge binary> BEFORE_LABEL=<commit> benches/hits/run.sh   (an earlier edge beside)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
RUNS=${RUNS:-3}
DUR=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-16 64}
SIZES="1KiB=1024 100KiB=102400 1MiB=1048576"
COUNT=16
WORK=$ROOT/target/hits-work
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
OUT=$ROOT/benches/results
ORIGIN=127.0.0.1:18180
ORIGIN_ADMIN=127.0.0.1:19180
started=$(date +%s)
log() { echo "[$(($(date +%s) - started))s] $*" >&2; }

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
[ -x /usr/sbin/varnishd ] || need+=(varnish)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
export PATH=$PATH:/usr/sbin
ulimit -n "$(ulimit -Hn)"

# The label names the code the binary is built from, taken before the run.
label="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- edge server-kit video-http || echo '+changes')"
log "building release binaries"
cargo build --release --locked -p origin -p edge 2>&1 | tail -1 >&2

rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"
raw=$WORK/hits.jsonl
: >"$raw"
# shellcheck disable=SC2086
python3 benches/hits/make-objects.py "$WORK" "$COUNT" $SIZES

PIDS=$WORK/pids
: >"$PIDS"
# shellcheck source=../lib.sh
. benches/lib.sh
trap 'stop_pids "$PIDS"' EXIT

log "starting the origin (core 1) and the servers (core 0)"
spawn origin 1 "$BIN/origin" --media "$WORK/media" --listen "$ORIGIN" --admin "$ORIGIN_ADMIN" >/dev/null
wait_line origin "^listening http "

servers=()
declare -A pid_of base_of
start_edge() { # name binary port
  local pid
  pid=$(spawn "$1" 0 env RUST_LOG=warn "$2" --listen "127.0.0.1:$3" --admin "127.0.0.1:$(($3 + 1000))" \
    --origin "http://$ORIGIN" --store "$WORK/$1.store" --capacity 512MiB \
    --name bench --region bench --prefetch 0)
  wait_line "$1" "^listening admin "
  servers+=("$1"); pid_of[$1]=$pid; base_of[$1]=http://127.0.0.1:$3
}
start_nginx() { # name port sendfile open_file_cache
  local pid
  sed -e "s|@WORK@|$WORK|g" -e "s|@NAME@|$1|g" -e "s|@ORIGIN@|$ORIGIN|g" \
    -e "s|@LISTEN@|127.0.0.1:$2|g" -e "s|@SENDFILE@|$3|g" -e "s|@OPEN_FILE_CACHE@|$4|g" \
    benches/hits/nginx.conf >"$WORK/$1.conf"
  pid=$(spawn "$1" 0 nginx -c "$WORK/$1.conf" -p "$WORK")
  wait_http "$1" "http://127.0.0.1:$2/"
  servers+=("$1"); pid_of[$1]=$pid; base_of[$1]=http://127.0.0.1:$2
}
start_edge edge "$BIN/edge" 18181
if [ -n "${BEFORE:-}" ]; then
  cp "$BEFORE" "$WORK/edge-before"
  start_edge edge-before "$WORK/edge-before" 18182
fi
start_nginx nginx 18183 on ""
start_nginx nginx-buffered 18184 off "open_file_cache max=10000 inactive=60s; open_file_cache_valid 60s;"
sed -e "s|@ORIGIN_HOST@|${ORIGIN%:*}|" -e "s|@ORIGIN_PORT@|${ORIGIN#*:}|" benches/hits/varnish.vcl >"$WORK/varnish.vcl"
pid=$(spawn varnish 0 varnishd -F -j none -n "$WORK/varnish" -a 127.0.0.1:18185 -T none \
  -f "$WORK/varnish.vcl" -s malloc,1024m)
wait_http varnish http://127.0.0.1:18185/
servers+=(varnish); pid_of[varnish]=$pid; base_of[varnish]=http://127.0.0.1:18185

log "warming every server; each object's second answer must be a HIT"
for server in "${servers[@]}"; do
  for spec in $SIZES; do
    while read -r p; do
      curl -s -o /dev/null "${base_of[$server]}$p"
      cache=$(curl -s -o /dev/null -w '%header{x-cache}' "${base_of[$server]}$p")
      [ "$cache" = HIT ] || { log "$server answered $p with X-Cache '$cache', not HIT"; exit 1; }
    done <"$WORK/paths-${spec%%=*}.txt"
  done
done

for rep in $(seq "$RUNS"); do
  for conns in $CONNECTIONS; do
    for spec in $SIZES; do
      for server in "${servers[@]}"; do
        line=$(python3 benches/hits/measure.py "$server" "${pid_of[$server]}" "${base_of[$server]}" \
          "${spec%%=*}" "${spec#*=}" "$conns" "$DUR" "$WORK/paths-${spec%%=*}.txt" "$rep")
        echo "$line" >>"$raw"
        log "$(python3 benches/hits/measure.py --summary "$line")"
      done
    done
  done
done

python3 -c 'import json,sys; print(json.dumps({"kind":"meta","started":sys.argv[1],"seconds":int(sys.argv[2]),"machine":sys.argv[3],"label":sys.argv[4],"before":sys.argv[5] or None,"runs":int(sys.argv[6]),"duration":int(sys.argv[7])}))' \
  "$(date -u -d "@$started" '+%Y-%m-%d %H:%M UTC')" "$(($(date +%s) - started))" \
  "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Linux $(uname -r)" \
  "$label" "${BEFORE:+${BEFORE_LABEL:-an earlier commit}}" "$RUNS" "$DUR" >>"$raw"
cp "$raw" "$OUT/hits.jsonl"
python3 benches/hits/report.py "$OUT/hits.jsonl" "$OUT/hits.md"
log "done: $OUT/hits.md"
