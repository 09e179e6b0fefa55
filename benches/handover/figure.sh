#!/usr/bin/env bash
# The README's handover figure: one cell of the matrix (the serving edge frozen under live DASH),
# played once in the browser test with its record kept (segments, buffer, the router's view as
# the page saw it), drawn by timeline.py into docs/handover.svg; the record is kept beside the
# matrix's report (benches/results/handover/timeline-freeze-dash-live.json).
#   benches/handover/figure.sh      (about 2 minutes; needs root for nothing but the matrix)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --locked -p origin -p edge -p geo-router -p fleet-launcher --bins
(cd player && npm ci --no-audit --no-fund --silent)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd player && MERIDIAN_MATRIX=full MERIDIAN_HANDOVER_RECORDS="$work" \
  node --test --test-name-pattern='frozen \(SIGSTOP\): live/big-clock over dash.js' tests/) >"$work/log" 2>&1 \
  || { cat "$work/log" >&2; exit 1; }
grep -E '^# freeze dash live:' "$work/log" >&2
mkdir -p benches/results/handover
cp "$work/freeze-dash-live.json" benches/results/handover/timeline-freeze-dash-live.json
python3 benches/handover/timeline.py benches/results/handover/timeline-freeze-dash-live.json >docs/handover.svg
echo "wrote docs/handover.svg" >&2
