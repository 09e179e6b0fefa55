#!/usr/bin/env python3
"""The handover matrix's report (markdown on stdout) from benches/handover/run.sh's runs: each
cell's stall in every run and the largest, the buffer at the failure and when the first segment
came from elsewhere. Usage: report.py DIR COMMIT"""
import json
import sys
from pathlib import Path

out, commit = Path(sys.argv[1]), sys.argv[2]
runs = sorted(out.glob("run-*.jsonl"), key=lambda p: int(p.stem.split("-")[1]))
cells = {}
for n, path in enumerate(runs, 1):
    for line in path.read_text().splitlines():
        case = json.loads(line)
        cells.setdefault(case["label"], {})[n] = case

print(f"# Handover matrix\n")
print(f"`benches/handover/run.sh` at {commit}: {len(runs)} runs, headless Chromium, the local fleet "
      "(debug build, 2 cores). A cell passes at 1 s of stall or less, with no fatal player error "
      "and playback advancing 15 s after the failure. Stall in ms per run; buffer: seconds buffered "
      "ahead when the edge failed; first: ms from the failure to the first segment from another edge.\n")
header = "| cell | what | " + " | ".join(f"run {n}" for n in range(1, len(runs) + 1)) + " | largest | buffer (s) | first (ms) | served after |"
print(header)
print("|" + "---|" * (header.count("|") - 1))
failed = 0
for label in sorted(cells):
    by_run = cells[label]
    stalls = []
    for n in range(1, len(runs) + 1):
        case = by_run.get(n)
        if case is None:
            stalls.append("missing")
            failed += 1
            continue
        mark = "" if case.get("passed", False) else " FAILED"
        failed += bool(mark)
        stalls.append(f"{case['stall_ms']}{mark}")
    values = [c["stall_ms"] for c in by_run.values()]
    buffers = [c["buffered_s"] for c in by_run.values()]
    firsts = [c["first_elsewhere_ms"] for c in by_run.values() if c["first_elsewhere_ms"] is not None]
    after = sorted({e for c in by_run.values() for e in c["then"]})
    what = next(iter(by_run.values()))["what"]
    print(f"| {label} | {what} | " + " | ".join(stalls) + f" | {max(values)} | "
          f"{min(buffers):.1f}-{max(buffers):.1f} | {min(firsts) if firsts else '-'}-{max(firsts) if firsts else '-'} | {', '.join(after)} |")
print(f"\n{len(cells)} cells; {failed} failed or missing.")
