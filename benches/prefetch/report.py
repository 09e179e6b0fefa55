#!/usr/bin/env python3
"""Writes the prefetch report (markdown) from benches/prefetch/run.sh's JSON lines.

  report.py prefetch.jsonl prefetch.md

Each figure is the median of the runs (range in brackets). The session goal of issue 17 is
judged from the medians: with prefetch, a user-visible segment hit ratio of at least 0.9 with
origin bytes at most 1.05 times the run without prefetch.
"""
import json
import statistics
import sys

LABELS = {
    "off": "prefetch off",
    "next-two": "next two segments (no CMCD)",
    "cmcd": "the player's next object (CMCD `nor`)",
}


def main():
    src, dst = sys.argv[1:3]
    rows = [json.loads(l) for l in open(src) if l.strip()]
    meta = next((r for r in rows if r.get("kind") == "meta"), {})
    runs = [r for r in rows if r.get("kind") != "meta"]
    modes = [m for m in LABELS if any(r["mode"] == m for r in runs)]

    def cell(mode, get):
        values = [get(r) for r in runs if r["mode"] == mode]
        return statistics.median(values), min(values), max(values)

    fields = {
        "hit ratio": lambda r: r["hit_ratio"],
        "origin MB": lambda r: r["origin_mb"],
        "origin requests": lambda r: r["origin_requests"],
        "p99 ms": lambda r: r["latency"]["p99_ms"],
        "prefetches issued": lambda r: r["prefetch_issued"],
        "used": lambda r: r["prefetch_used"],
        "not named": lambda r: r["prefetch_not_named"],
        "limited": lambda r: r["prefetch_limited"],
    }
    out = ["# Prefetch: viewing sessions through one edge", ""]
    out += [f"`benches/prefetch/run.sh` at {meta.get('label', '?')}, started {meta.get('started', '?')}, "
            f"{meta.get('seconds', '?')} s, on {meta.get('machine', '?')}.", "",
            f"{meta.get('sessions', '?')} viewing sessions over {meta.get('titles', '?')} titles of "
            f"{meta.get('segments', '?')} 1 MiB segments (titles by Zipf 0.8), each from the title's first "
            f"segment after its playlist, leaving after each segment with probability "
            f"**{meta.get('abandon', '?')}** (the abandonment rate); a session's requests "
            f"{meta.get('pace_ms', '?')} ms apart, {meta.get('concurrency', '?')} sessions at a time, each "
            "a viewer of its own (its own connection and loopback address). The store holds the whole "
            "catalogue, so every extra origin byte is a prefetch nobody watched. The hit ratio is the "
            "viewers' own: segment responses that said `X-Cache: HIT`. Each figure is the median of "
            f"{meta.get('runs', '?')} interleaved runs (different seeds), the range in brackets.", ""]
    out += ["| mode | " + " | ".join(fields) + " |", "|---" * (len(fields) + 1) + "|"]
    for mode in modes:
        cells = []
        for name, get in fields.items():
            m, lo, hi = cell(mode, get)
            fmt = (lambda v: f"{v:.3f}") if name == "hit ratio" else (lambda v: f"{v:.1f}" if isinstance(v, float) else f"{v}")
            cells.append(f"{fmt(m)} [{fmt(lo)}–{fmt(hi)}]")
        out.append(f"| {LABELS[mode]} | " + " | ".join(cells) + " |")
    out += ["", "## Goal (issue 17), judged from the medians above", ""]
    if "off" in modes:
        off_mb = cell("off", fields["origin MB"])[0]
        for mode in [m for m in modes if m != "off"]:
            ratio = cell(mode, fields["hit ratio"])[0]
            mb = cell(mode, fields["origin MB"])[0]
            met = ratio >= 0.9 and mb <= 1.05 * off_mb
            out.append(f"- {LABELS[mode]}: hit ratio {ratio:.3f} (goal ≥ 0.9; {cell('off', fields['hit ratio'])[0]:.3f} "
                       f"without prefetch), origin bytes {mb / off_mb:.3f}× the run without prefetch "
                       f"(goal ≤ 1.05×): **{'met' if met else 'not met'}**.")
    open(dst, "w").write("\n".join(out) + "\n")


main()
