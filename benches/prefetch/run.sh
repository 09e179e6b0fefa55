#!/usr/bin/env bash
# The prefetch benchmark: viewing sessions through one edge with prefetch off, with the next two
# segments prefetched (no CMCD from the player), and with the player's own next object (CMCD
# `nor`) prefetched. Every session starts at a title's first segment after its playlist and
# leaves after each segment with probability ABANDON; a session's requests are PACE_MS apart
# (a player's pace for 2 s segments, sped up 4 times: 2 requests a second, the edge's
# per-client prefetch rate, as a player catching up would ask), and each session is a viewer of its own (its own connection and
# loopback address, as the edge's per-client prefetch rate counts them). Runs are interleaved
# (repetition, mode). Writes benches/results/prefetch.jsonl and prefetch.md.
# A benchmark, not a test: about 5 minutes with the defaults. Run as root.
#
#   benches/prefetch/run.sh        RUNS=3 SESSIONS=300 ABANDON=0.1 PACE_MS=500 CONCURRENCY=64
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
RUNS=${RUNS:-3}
SESSIONS=${SESSIONS:-300}
ABANDON=${ABANDON:-0.1}
PACE_MS=${PACE_MS:-500}
CONCURRENCY=${CONCURRENCY:-64}
TITLES=20
SEGMENTS=25
WORK=$ROOT/target/prefetch-work
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
OUT=$ROOT/benches/results
ORIGIN=127.0.0.1:18280
ORIGIN_ADMIN=127.0.0.1:19280
EDGE=127.0.0.1:18281
EDGE_ADMIN=127.0.0.1:19281
started=$(date +%s)
log() { echo "[$(($(date +%s) - started))s] $*" >&2; }

label="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- edge benches/loadgen || echo '+changes')"
log "building release binaries"
cargo build --release --locked -p origin -p edge -p loadgen 2>&1 | tail -1 >&2
mkdir -p "$WORK" "$OUT"
if [ ! -f "$WORK/media/.complete-$TITLES-$SEGMENTS" ]; then
  log "writing the catalogue ($TITLES titles x $SEGMENTS segments of 1 MiB)"
  rm -rf "$WORK/media"
  python3 benches/cdn/make-catalogue.py "$WORK/media" "$TITLES" "$SEGMENTS" none 0
  touch "$WORK/media/.complete-$TITLES-$SEGMENTS"
fi
raw=$WORK/prefetch.jsonl
: >"$raw"
PIDS=$WORK/pids
: >"$PIDS"
# shellcheck source=../lib.sh
. benches/lib.sh
trap 'stop_pids "$PIDS"' EXIT

origin_pid=$(spawn origin 1 "$BIN/origin" --media "$WORK/media" --listen "$ORIGIN" --admin "$ORIGIN_ADMIN")
wait_line origin "^listening http "
origin_counter() { # metric
  curl -s "http://$ORIGIN_ADMIN/metrics" | awk -v m="$1" '$1 ~ "^"m"(_total)?({|$)" {s += $NF} END {printf "%.0f\n", s}'
}
edge_prefetches() { # outcome
  curl -s "http://$EDGE_ADMIN/metrics" | awk -v o="$1" '$1 ~ "^meridian_edge_prefetches(_total)?[{]" && $1 ~ "outcome=\""o"\"" {s += $NF} END {printf "%.0f\n", s}'
}

for rep in $(seq "$RUNS"); do
  for mode in off next-two cmcd; do
    depth=2 cmcd=()
    [ "$mode" = off ] && depth=0
    [ "$mode" = cmcd ] && cmcd=(--cmcd)
    rm -f "$WORK"/edge.store*
    pid=$(spawn edge 0 env RUST_LOG=warn "$BIN/edge" --listen "$EDGE" --admin "$EDGE_ADMIN" \
      --origin "http://$ORIGIN" --store "$WORK/edge.store" --capacity 1GiB \
      --name bench --region bench --prefetch "$depth")
    wait_line edge "^listening admin "
    r0=$(origin_counter meridian_origin_requests)
    b0=$(origin_counter meridian_origin_body_bytes_sent)
    out=$(taskset -c 1 "$BIN/loadgen" --base "http://$EDGE" trace --kind sessions --titles "$TITLES" \
      --segments "$SEGMENTS" --count "$SESSIONS" --abandon "$ABANDON" --concurrency "$CONCURRENCY" \
      --pace-ms "$PACE_MS" --viewer-addresses --seed "$rep" "${cmcd[@]}")
    # Prefetches still in flight when the last viewer left are origin bytes too.
    for _ in $(seq 100); do
      curl -s "http://$EDGE_ADMIN/status" | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["fills_in_flight"] == 0 else 1)' && break
      sleep 0.1
    done
    line=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(mode=sys.argv[2], rep=int(sys.argv[3]), origin_requests=int(sys.argv[5])-int(sys.argv[4]), origin_mb=(int(sys.argv[7])-int(sys.argv[6]))/1e6, prefetch_issued=int(sys.argv[8]), prefetch_used=int(sys.argv[9]), prefetch_not_named=int(sys.argv[10]), prefetch_limited=int(sys.argv[11])); print(json.dumps(d))' \
      "$out" "$mode" "$rep" "$r0" "$(origin_counter meridian_origin_requests)" "$b0" "$(origin_counter meridian_origin_body_bytes_sent)" \
      "$(edge_prefetches issued)" "$(edge_prefetches used)" "$(edge_prefetches not_named)" "$(edge_prefetches limited)")
    echo "$line" >>"$raw"
    log "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["mode"], "rep", d["rep"], "hit ratio", round(d["hit_ratio"], 3), "origin MB", round(d["origin_mb"], 1), "p99 ms", d["latency"]["p99_ms"], "issued", d["prefetch_issued"], "used", d["prefetch_used"])' "$line")"
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
done
kill -TERM "$origin_pid"

python3 -c 'import json,sys; print(json.dumps({"kind":"meta","started":sys.argv[1],"seconds":int(sys.argv[2]),"machine":sys.argv[3],"label":sys.argv[4],"runs":int(sys.argv[5]),"sessions":int(sys.argv[6]),"abandon":float(sys.argv[7]),"pace_ms":int(sys.argv[8]),"concurrency":int(sys.argv[9]),"titles":int(sys.argv[10]),"segments":int(sys.argv[11])}))' \
  "$(date -u -d "@$started" '+%Y-%m-%d %H:%M UTC')" "$(($(date +%s) - started))" \
  "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Linux $(uname -r)" \
  "$label" "$RUNS" "$SESSIONS" "$ABANDON" "$PACE_MS" "$CONCURRENCY" "$TITLES" "$SEGMENTS" >>"$raw"
cp "$raw" "$OUT/prefetch.jsonl"
python3 benches/prefetch/report.py "$OUT/prefetch.jsonl" "$OUT/prefetch.md"
log "done: $OUT/prefetch.md"
