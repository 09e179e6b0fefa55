#!/usr/bin/env python3
"""Writes the load balancer report (markdown on stdout, an SVG per run beside the JSON lines)
from benches/balance/run.sh's runs; exits 1 when a check fails. Usage: report.py DIR LABEL"""
import json
import sys
from pathlib import Path

out, label = Path(sys.argv[1]), sys.argv[2]
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def load(name):
    samples, summary = [], None
    for line in (out / f"{name}.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "summary" in row:
            summary = row["summary"]
        else:
            samples.append(row)
    return samples, summary


def svg(name, samples, title):
    """Each edge's egress (Mbit/s) over time, one line per edge; gaps where it is down."""
    edges = sorted(samples[0]["edges"])
    width, height, left, bottom = 720, 300, 50, 30
    t_max = max(s["t"] for s in samples)
    top = max((s["edges"][e].get("egress_mbps", 0) for s in samples for e in edges), default=1) * 1.1 or 1
    x = lambda t: left + (width - left - 130) * t / t_max
    y = lambda v: height - bottom - (height - bottom - 20) * v / top
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="14" font-size="13">{title}</text>',
             f'<line x1="{left}" y1="{y(0)}" x2="{x(t_max)}" y2="{y(0)}" stroke="#333"/>',
             f'<line x1="{left}" y1="{y(0)}" x2="{left}" y2="20" stroke="#333"/>',
             f'<text x="{x(t_max) / 2}" y="{height - 5}">seconds</text>']
    for v in range(0, int(top) + 1, max(1, int(top / 5) // 10 * 10 or 10)):
        parts.append(f'<text x="{left - 5}" y="{y(v) + 4}" text-anchor="end">{v}</text>')
    parts.append(f'<text x="5" y="{y(top / 2)}" transform="rotate(-90 12 {y(top / 2)})">Mbit/s</text>')
    for i, e in enumerate(edges):
        colour = COLOURS[i % len(COLOURS)]
        runs, run = [], []
        for s in samples:
            v = s["edges"][e].get("egress_mbps")
            if v is None:
                if run:
                    runs.append(run)
                run = []
            else:
                run.append(f"{x(s['t']):.1f},{y(v):.1f}")
        if run:
            runs.append(run)
        for r in runs:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(r)}"/>')
        parts.append(f'<text x="{width - 120}" y="{30 + 15 * i}" fill="{colour}">{e}</text>')
    parts.append("</svg>")
    (out / f"{name}.svg").write_text("\n".join(parts) + "\n")


RUNS = [
    ("equal", "Equal capacities (200 Mbit/s each)"),
    ("spill", "us-east sized for 60 Mbit/s per edge: it must spill"),
    ("failure", "eu-west sized for 80 Mbit/s per edge; both us-east edges killed at 30 s"),
]
failed = []
w = print
w(f"# The load balancer under load ({label})\n")
w("`benches/balance/run.sh`: 200 viewers, each from its own /24 near us-east (100.64.0.0/14 in the "
  "test GeoIP database), stream the 720p rendition of `vod/big-clock` through the local fleet, each "
  "following the router as a player does (its redirect, then content steering every 10 s and on a "
  "failed segment). Every second each edge's own measured egress and load (its `/status`) is "
  "sampled. Spread: over the steady window (after 15 s, before a kill), the busiest us-east edge's "
  "mean egress over the region's mean. Overloaded: the longest run of seconds in which one edge "
  "stayed over 80% (after a kill, also 90%) while another edge had headroom (under 70%). Loads are "
  "each edge's 1 s moving average, which swings with the 2 s segments (the viewers fetch in step).\n")
for name, title in RUNS:
    samples, s = load(name)
    svg(name, samples, title)
    w(f"## {name}: {title}\n")
    w(f"![{title}](balance/{name}.svg)\n")
    means = ", ".join(f"{e} {m:.1f}" for e, m in s["region_edge_mean_egress_mbps"].items())
    w(f"- us-east edges' mean egress (Mbit/s): {means}; spread {s['spread']:.2f}")
    w(f"- longest overloaded run before the kill: {s['overloaded_seconds']} s")
    if s.get("after_kill_over_90_seconds") is not None:
        w(f"- after the kill (from 10 s after it): longest run over 80% with another under 70%: "
          f"{s['after_kill_overloaded_seconds']} s; over 90%: {s['after_kill_over_90_seconds']} s")
    went = ", ".join(f"{e} {n}" for e, n in s["viewers_at_end"].items() if n)
    w(f"- viewers at the end: {went}; {s['moves']} pathway moves, {s['failed_requests']} failed "
      f"segment requests, {s['segments']} segments, {s['viewer_errors']} viewers stopped by an error\n")
    if s["viewer_errors"]:
        failed.append(f"{name}: {s['viewer_errors']} viewers stopped")
    if name == "equal" and not s["spread"] <= 1.25:
        failed.append(f"equal: spread {s['spread']:.2f} > 1.25")
    if s["overloaded_seconds"] >= 10:
        failed.append(f"{name}: an edge over 80% for {s['overloaded_seconds']} s while another had headroom")
    if (s.get("after_kill_over_90_seconds") or 0) > 0:
        failed.append(f"{name}: an edge over 90% for {s['after_kill_over_90_seconds']} s after the kill while another had room")
w("Result: " + ("every check passed." if not failed else "FAILED: " + "; ".join(failed)))
sys.exit(1 if failed else 0)
