#!/usr/bin/env bash
# The handover matrix in a real browser: every failure kind of the serving edge (kill -9,
# frozen with SIGSTOP, black-holed by an iptables rule, its viewer port dropped while its admin
# port answers) x both players (hls.js, dash.js) x both stream kinds (live, VOD), on the local
# fleet, RUNS times over (default 3). It is the browser test (player/tests/failover.test.mjs)
# with MERIDIAN_MATRIX=full; each cell prints the stall, the buffer at the failure and who
# served after it. Writes benches/results/handover/run-<n>.jsonl and benches/results/handover.md;
# exits non-zero when a cell failed (over 1 s of stall, a fatal player error, or playback not
# advancing) in any run. Needs root (iptables), chromium, and the player's npm packages.
#   benches/handover/run.sh            (about 10 minutes a run on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-3}
cargo build --locked -p origin -p edge -p geo-router -p fleet-launcher --bins
(cd player && npm ci --no-audit --no-fund --silent)
out=benches/results/handover
mkdir -p "$out"
rm -f "$out"/run-*.jsonl
status=0
for n in $(seq 1 "$runs"); do
  echo "== run $n of $runs" >&2
  log=$(mktemp)
  # The fleet's own cases (drain, signed URLs, the nginx origin) are the test suite's; here
  # only the matrix's cells run.
  if ! (cd player && MERIDIAN_MATRIX=full node --test --test-name-pattern='within 1 s of stall' tests/) >"$log" 2>&1; then
    status=1
  fi
  # Each cell's line, and whether its test passed.
  python3 - "$log" >"$out/run-$n.jsonl" <<'PY'
import json, re, sys
cases, current = [], None
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("# CASE "):
        current = json.loads(line[len("# CASE "):])
        cases.append(current)
    m = re.match(r"(not ok|ok) \d+ - (.*within 1 s of stall)", line)
    if m and "# SKIP" not in line and current is not None and "passed" not in current:
        current["passed"] = m.group(1) == "ok"
        current["test"] = m.group(2)
for case in cases:
    print(json.dumps(case))
PY
  grep -E '^# [a-z]+ (hls|dash) (live|vod):' "$log" >&2 || true
  rm -f "$log"
done
python3 benches/handover/report.py "$out" "$(git rev-parse --short HEAD)" >benches/results/handover.md
cat benches/results/handover.md >&2
exit $status
