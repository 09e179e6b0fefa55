#!/usr/bin/env bash
# Where sendfile from sealed copies pays: the edge with zero copy off (zero_copy_below = "0")
# beside the same edge with it on for every held body (zero_copy_below = "4MiB"), every response
# a HIT from memory, over a ladder of object sizes. Pinned as in run.sh (servers on core 0, wrk
# and the origin on core 1), runs interleaved. Writes benches/results/zero-copy.jsonl and
# zero-copy.md; the edge's default `zero_copy_below` is chosen from it. Run as root; about five
# minutes with the defaults.
#
#   benches/hits/zero-copy.sh        RUNS=2 DURATION=4 CONNECTIONS=16
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
RUNS=${RUNS:-2}
DUR=${DURATION:-4}
CONNECTIONS=${CONNECTIONS:-16}
SIZES="64KiB=65536 100KiB=102400 120KiB=122880 128KiB=131072 160KiB=163840 256KiB=262144 512KiB=524288 1MiB=1048576"
WORK=$ROOT/target/zero-copy-work
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
OUT=$ROOT/benches/results
ORIGIN=127.0.0.1:18380
started=$(date +%s)
log() { echo "[$(($(date +%s) - started))s] $*" >&2; }
command -v wrk >/dev/null || {
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk >/dev/null
}
ulimit -n "$(ulimit -Hn)"
label="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- edge server-kit || echo '+changes')"
cargo build --release --locked -p origin -p edge 2>&1 | tail -1 >&2

rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"
raw=$WORK/zero-copy.jsonl
: >"$raw"
# shellcheck disable=SC2086
python3 benches/hits/make-objects.py "$WORK" 16 $SIZES
PIDS=$WORK/pids
: >"$PIDS"
# shellcheck source=../lib.sh
. benches/lib.sh
trap 'stop_pids "$PIDS"' EXIT

spawn origin 1 "$BIN/origin" --media "$WORK/media" --listen "$ORIGIN" --admin 127.0.0.1:19380 >/dev/null
wait_line origin "^listening http "
declare -A pid_of base_of
servers=()
start_edge() { # name port zero_copy_below
  printf 'zero_copy_below = "%s"\nmemory_cache = "256MiB"\n' "$3" >"$WORK/$1.toml"
  local pid
  pid=$(spawn "$1" 0 env RUST_LOG=warn "$BIN/edge" --config "$WORK/$1.toml" \
    --listen "127.0.0.1:$2" --admin "127.0.0.1:$(($2 + 1000))" --origin "http://$ORIGIN" \
    --store "$WORK/$1.store" --capacity 1GiB --name bench --region bench --prefetch 0)
  wait_line "$1" "^listening admin "
  servers+=("$1"); pid_of[$1]=$pid; base_of[$1]=http://127.0.0.1:$2
}
start_edge copy 18381 0
start_edge zero-copy 18382 4MiB

log "warming: each object fetched until its hits come from memory"
for server in "${servers[@]}"; do
  for spec in $SIZES; do
    while read -r p; do
      for _ in 1 2 3; do curl -s -o /dev/null "${base_of[$server]}$p"; done
    done <"$WORK/paths-${spec%%=*}.txt"
  done
done

for rep in $(seq "$RUNS"); do
  for spec in $SIZES; do
    for server in "${servers[@]}"; do
      line=$(python3 benches/hits/measure.py "$server" "${pid_of[$server]}" "${base_of[$server]}" \
        "${spec%%=*}" "${spec#*=}" "$CONNECTIONS" "$DUR" "$WORK/paths-${spec%%=*}.txt" "$rep")
      echo "$line" >>"$raw"
      log "$(python3 benches/hits/measure.py --summary "$line")"
    done
  done
done
zero_copy_sent=$(curl -s "http://127.0.0.1:19382/metrics" | awk '/^meridian_edge_bytes_written_zero_copy_total /{print $2}')
copy_sent=$(curl -s "http://127.0.0.1:19381/metrics" | awk '/^meridian_edge_bytes_written_zero_copy_total /{print $2}')
python3 -c 'import json,sys; print(json.dumps({"kind":"meta","started":sys.argv[1],"seconds":int(sys.argv[2]),"machine":sys.argv[3],"label":sys.argv[4],"runs":int(sys.argv[5]),"duration":int(sys.argv[6]),"connections":int(sys.argv[7]),"zero_copy_bytes":{"zero-copy":float(sys.argv[8]),"copy":float(sys.argv[9])}}))' \
  "$(date -u -d "@$started" '+%Y-%m-%d %H:%M UTC')" "$(($(date +%s) - started))" \
  "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Linux $(uname -r)" \
  "$label" "$RUNS" "$DUR" "$CONNECTIONS" "${zero_copy_sent:-0}" "${copy_sent:-0}" >>"$raw"
cp "$raw" "$OUT/zero-copy.jsonl"
python3 - "$OUT/zero-copy.jsonl" "$OUT/zero-copy.md" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
meta = next(r for r in rows if r.get("kind") == "meta")
runs = [r for r in rows if r.get("kind") != "meta"]
sizes = list(dict.fromkeys(r["size"] for r in runs))
def med(server, size, key):
    return statistics.median(r[key] for r in runs if r["server"] == server and r["size"] == size)
out = ["# Zero copy against one copy, by object size", "",
       f"`benches/hits/zero-copy.sh` at {meta['label']}, started {meta['started']}, {meta['seconds']} s, on {meta['machine']}.", "",
       f"The same edge twice: `copy` (zero_copy_below = \"0\") and `zero-copy` (zero_copy_below = \"4MiB\"), every response a HIT from memory, {meta['connections']} connections, medians of {meta['runs']} interleaved runs of {meta['duration']} s. "
       f"Bytes sent with sendfile over the whole run: zero-copy {meta['zero_copy_bytes']['zero-copy']:.0f}, copy {meta['zero_copy_bytes']['copy']:.0f}.", "",
       "| size | copy req/s | zero-copy req/s | copy CPU-ms per 1k | zero-copy CPU-ms per 1k | zero-copy / copy CPU | copy busy | zero-copy busy | wrk CPU-ms per 1k, copy / zero-copy |",
       "|---|---|---|---|---|---|---|---|---|"]
for size in sizes:
    c, z = med("copy", size, "server_cpu_ms_per_1k"), med("zero-copy", size, "server_cpu_ms_per_1k")
    out.append(f"| {size} | {med('copy', size, 'rps')/1000:.1f}k | {med('zero-copy', size, 'rps')/1000:.1f}k | {c:.1f} | {z:.1f} | {z/c:.2f}× | "
               f"{med('copy', size, 'server_busy'):.2f} | {med('zero-copy', size, 'server_busy'):.2f} | "
               f"{med('copy', size, 'tool_cpu_ms_per_1k'):.1f} / {med('zero-copy', size, 'tool_cpu_ms_per_1k'):.1f} |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
EOF
log "done: $OUT/zero-copy.md"
