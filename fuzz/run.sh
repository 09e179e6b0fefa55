#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, then replays each target's corpus under valgrind
# (the store's unsafe code and everything else, on the inputs the fuzzer kept), and prints, per
# target, executions, corpus size, crashes and valgrind's verdict; the table also goes to
# benches/results/fuzz.md. Not part of the test suite.
#   fuzz/run.sh [SECONDS_PER_TARGET]   (default 60)
# Needs cargo-fuzz (installed from crates.io when missing), a C++ compiler for libFuzzer, and
# valgrind. On this stable toolchain there are no sanitizers: `-s none`, coverage only.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
targets=(dns http_headers manifests store config)
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz >&2
command -v valgrind >/dev/null || { echo "valgrind is needed to replay the corpora (apt-get install valgrind)" >&2; exit 1; }
cargo fuzz build -s none >&2
bin=target/x86_64-unknown-linux-gnu/release

# Seeds: real inputs for each target, made fresh (the corpora themselves are not committed).
seed() { mkdir -p "corpus/$1"; }
for t in "${targets[@]}"; do seed "$t"; mkdir -p "artifacts/$t"; done
# Inputs that once found a bug (fuzz/regressions/<target>/) stay seeds for ever.
for t in "${targets[@]}"; do
  [ -d "regressions/$t" ] && cp regressions/"$t"/* "corpus/$t/"
done
cp ../testdata/*.toml corpus/config/
find ../testdata/media -name '*.m3u8' -o -name '*.mpd' | head -n 40 | while read -r f; do
  cp "$f" "corpus/manifests/$(echo "$f" | tr '/' '_')"
done
python3 - <<'PY'
import struct
def query(name, qtype, ecs=None):
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    extra = b""
    if ecs:
        option = struct.pack(">HBB", 1, 24, 0) + bytes(ecs[:3])
        extra = b"\0" + struct.pack(">HHIH", 41, 1232, 0, 4 + len(option)) + struct.pack(">HH", 8, len(option)) + option
    return struct.pack(">HHHHHH", 7, 0, 1, 0, 0, 1 if ecs else 0) + labels + struct.pack(">HH", qtype, 1) + extra
seeds = {
    "a": query("video.meridian.test", 1), "aaaa": query("video.meridian.test", 28),
    "ecs": query("video.meridian.test", 1, [198, 51, 100]), "soa": query("meridian.test", 6),
    "ns": query("meridian.test", 2), "nx": query("nothing.meridian.test", 1), "out": query("example.com", 1),
}
for name, q in seeds.items():
    for who in range(4):
        open(f"corpus/dns/{name}-{who}", "wb").write(bytes([who]) + q)
open("corpus/http_headers/basic", "wb").write(
    b"\xc8\x00\x00\x01\x00\x00\x00\x00\x00\ncache-control: public, max-age=60, stale-if-error=30\n"
    b"range: bytes=0-99,200-\nif-none-match: W/\"a\", \"b\"\netag: \"b\"\nage: 12\n"
    b"date: Tue, 01 Dec 2026 10:00:00 GMT\nlast-modified: Mon, 30 Nov 2026 10:00:00 GMT\n")
open("corpus/store/empty", "wb").write(b"")
PY

printf '| Target | Seconds | Executions | Inputs at start | Corpus after | Crashes | valgrind replay |\n|---|---|---|---|---|---|---|\n' >"$bin/summary.md"
status=0
for t in "${targets[@]}"; do
  log="artifacts/$t/run.log"
  before=$(find "corpus/$t" -type f | wc -l)
  set +e
  cargo fuzz run -s none "$t" "corpus/$t" -- -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" >"$log" 2>&1
  set -e
  execs=$(awk '/stat::number_of_executed_units/ { print $NF }' "$log" | tail -n 1)
  crashes=$(find "artifacts/$t" -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' | wc -l)
  corpus=$(find "corpus/$t" -type f | wc -l)
  # Each kept input once, under valgrind (memcheck): invalid reads or writes, uses of
  # uninitialised memory, and leaks that nothing frees fail it.
  if valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
      "$bin/$t" -runs=0 "corpus/$t" >"artifacts/$t/valgrind.log" 2>&1; then
    verdict="clean ($corpus inputs)"
  else
    verdict="**errors** (fuzz/artifacts/$t/valgrind.log)"
    status=1
  fi
  [ "$crashes" -eq 0 ] || status=1
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$seconds" "${execs:-?}" "$before" "$corpus" "$crashes" "$verdict" | tee -a "$bin/summary.md"
done
{
  echo "# Fuzzing"
  echo
  echo "One run of \`fuzz/run.sh $seconds\` ($(date -u +%F), $(git rev-parse --short HEAD)): cargo-fuzz (libFuzzer) without"
  echo "sanitizers, each target for $seconds s from its seeds (testdata's configs and playlists, DNS queries"
  echo "written by the script) and whatever corpus earlier runs left, then every kept input replayed once"
  echo "under valgrind memcheck (definite leaks and memory errors fail it). Crash inputs, logs and corpora"
  echo "stay in \`fuzz/artifacts/\` and \`fuzz/corpus/\` (not committed)."
  echo
  cat "$bin/summary.md"
} >../benches/results/fuzz.md
echo "wrote benches/results/fuzz.md" >&2
exit "$status"
