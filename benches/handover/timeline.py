#!/usr/bin/env python3
"""Draws one handover as a timeline (SVG on stdout) from the browser test's record of it
(target/handover/<case>.json, which benches/handover/run.sh keeps in benches/results/handover/):
the failure, when the router's view (as the page polled it, once a second) showed the edge
down, which edge served each segment, and the player's buffer. Usage: timeline.py CASE.json"""
import json
import sys

case = json.load(open(sys.argv[1]))
t0 = case["failing"]
start, end = -10.0, 15.0
width, height, left, right = 800, 330, 100, 20
lanes_top, lane_h = 60, 18
edges = []
for e in case["log"]:
    if e.get("ok") and e.get("edge") and e["edge"] != "?" and e["edge"] not in edges:
        edges.append(e["edge"])
buffer_top = lanes_top + lane_h * len(edges) + 30
buffer_bottom = height - 40
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def x(ms):
    s = (ms - t0) / 1000.0
    return left + (width - left - right) * (s - start) / (end - start)


top_buffer = max([b["ahead"] for b in case["buffer"]] + [1.0]) * 1.1


def y_buffer(v):
    return buffer_bottom - (buffer_bottom - buffer_top) * v / top_buffer


seen_down = next((v["at"] for v in case["router"] if v["at"] >= t0 and case["edge"] in v["down"]), None)
first_elsewhere = next((e["at"] for e in case["log"] if e.get("ok") and e["at"] > case["failedAt"] and e.get("edge") not in ("", "?", case["edge"])), None)
title = f'{case["label"]}: {case["edge"]} {case["what"]}; stall {case["stall_ms"]} ms'
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
         '<rect width="100%" height="100%" fill="white"/>',
         f'<text x="{left}" y="20" font-size="13">{title}</text>']
for s in range(int(start), int(end) + 1, 5):
    xs = x(t0 + s * 1000)
    parts.append(f'<line x1="{xs:.1f}" y1="{lanes_top - 10}" x2="{xs:.1f}" y2="{buffer_bottom}" stroke="#eee"/>')
    parts.append(f'<text x="{xs:.1f}" y="{height - 22}" text-anchor="middle">{s:+d} s</text>')
parts.append(f'<text x="{(left + width) / 2}" y="{height - 6}" text-anchor="middle">time from the failure</text>')
for i, edge in enumerate(edges):
    y = lanes_top + i * lane_h
    colour = COLOURS[i % len(COLOURS)]
    parts.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{edge}</text>')
    for e in case["log"]:
        if e.get("ok") and e.get("edge") == edge and start <= (e["at"] - t0) / 1000 <= end:
            parts.append(f'<rect x="{x(e["at"]) - 1.5:.1f}" y="{y + 2}" width="3" height="{lane_h - 4}" fill="{colour}"><title>{e["url"].rsplit("/", 2)[-2]}/{e["url"].rsplit("/", 1)[-1]}</title></rect>')
parts.append(f'<text x="{left - 6}" y="{lanes_top - 16}" text-anchor="end" fill="#555">segments</text>')
points = " ".join(f'{x(b["at"]):.1f},{y_buffer(b["ahead"]):.1f}' for b in case["buffer"] if start <= (b["at"] - t0) / 1000 <= end)
parts.append(f'<polyline points="{points}" fill="none" stroke="#333" stroke-width="1.5"/>')
parts.append(f'<line x1="{left}" y1="{buffer_bottom}" x2="{width - right}" y2="{buffer_bottom}" stroke="#333"/>')
for v in range(0, int(top_buffer) + 1, 2):
    parts.append(f'<text x="{left - 6}" y="{y_buffer(v) + 4:.1f}" text-anchor="end">{v} s</text>')
parts.append(f'<text x="{left + 4}" y="{buffer_top - 4}" fill="#555">buffer ahead of the playhead</text>')
marks = [(t0, "#d62728", "failure"), (seen_down, "#9467bd", "router sees it down"), (first_elsewhere, "#2ca02c", "first segment from elsewhere")]
for n, (at, colour, text) in enumerate(marks):
    if at is None:
        continue
    xs = x(at)
    parts.append(f'<line x1="{xs:.1f}" y1="{lanes_top - 10}" x2="{xs:.1f}" y2="{buffer_bottom}" stroke="{colour}" stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{xs + 3:.1f}" y="{buffer_top + 12 + 12 * n}" fill="{colour}">{text} ({(at - t0) / 1000:+.1f} s)</text>')
parts.append("</svg>")
print("\n".join(parts))
