#!/usr/bin/env python3
"""Writes the hit-path report (markdown) from benches/hits/run.sh's JSON lines.

  report.py hits.jsonl hits.md

Each figure is the median of the runs, with the range beside it. The goals of issue 17 are
judged from these medians and marked met or not; a comparison of requests per second is made
only where the edge's core was busy (at least 90%), since elsewhere the load tool was the limit.
"""
import json
import statistics
import sys

PEERS = ["nginx", "nginx-buffered", "varnish"]
BUSY = 0.9


def main():
    src, dst = sys.argv[1:3]
    rows = [json.loads(l) for l in open(src) if l.strip()]
    meta = next((r for r in rows if r.get("kind") == "meta"), {})
    runs = [r for r in rows if r.get("kind") != "meta"]
    servers = list(dict.fromkeys(r["server"] for r in runs))
    sizes = list(dict.fromkeys(r["size"] for r in runs))
    conns = sorted({r["connections"] for r in runs})

    def cell(server, size, c, field):
        values = [r[field] for r in runs if r["server"] == server and r["size"] == size
                  and r["connections"] == c and r[field] is not None]
        return (statistics.median(values), min(values), max(values)) if values else None

    out = ["# The hit path: the edge beside nginx and Varnish", ""]
    out += [f"`benches/hits/run.sh` at {meta.get('label', '?')}, started {meta.get('started', '?')}, "
            f"{meta.get('seconds', '?')} s, on {meta.get('machine', '?')}."]
    if meta.get("before"):
        out += [f"`edge-before` is the edge built from {meta['before']}, run beside in the same run."]
    out += ["",
            "Every response is a HIT (checked before the runs). Every server runs at once, pinned to core 0; "
            "wrk (one thread) and the origin run on core 1. Objects: 16 random objects of each size, "
            "cycled by wrk. nginx is measured with its default `sendfile on` and as `nginx-buffered` "
            "(`sendfile off`, `open_file_cache`). Each figure is the median of "
            f"{meta.get('runs', '?')} interleaved runs of {meta.get('duration', '?')} s, the range in brackets. "
            "CPU is user plus system time of the server's processes (wrk's, of wrk) over the run; "
            "`busy` is that CPU over the run's seconds (1.0 is the whole core). A server under "
            f"{BUSY:.0%} busy was not the limit: the load tool was.", ""]
    for c in conns:
        out += [f"## {c} connections", "",
                "| size | server | req/s | GB/s | server CPU-ms per 1k req | server CPU-s per GB | server busy | wrk busy | wrk CPU-ms per 1k | p99 ms | errors |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for size in sizes:
            for s in servers:
                rps = cell(s, size, c, "rps")
                if not rps:
                    continue
                cpu = cell(s, size, c, "server_cpu_ms_per_1k")
                gb = cell(s, size, c, "server_cpu_s_per_gb")
                errors = sum(r["errors"] for r in runs if r["server"] == s and r["size"] == size and r["connections"] == c)
                out.append(f"| {size} | {s} | {rps[0]/1e3:.1f}k [{rps[1]/1e3:.1f}–{rps[2]/1e3:.1f}] | "
                           f"{cell(s, size, c, 'gb_per_s')[0]:.2f} | {cpu[0]:.1f} [{cpu[1]:.1f}–{cpu[2]:.1f}] | "
                           f"{gb[0]:.2f} | {cell(s, size, c, 'server_busy')[0]:.2f} | {cell(s, size, c, 'tool_busy')[0]:.2f} | "
                           f"{cell(s, size, c, 'tool_cpu_ms_per_1k')[0]:.1f} | {cell(s, size, c, 'p99_ms')[0]:.2f} | {errors} |")
        out.append("")

    out += ["## Goals (issue 17), judged from the medians above", ""]
    peers = [p for p in PEERS if p in servers]
    for c in conns:
        for size in sizes:
            if not cell("edge", size, c, "rps"):
                continue
            e_rps, e_cpu, e_busy = (cell("edge", size, c, f)[0] for f in ("rps", "server_cpu_ms_per_1k", "server_busy"))
            best = max(peers, key=lambda p: cell(p, size, c, "rps")[0])
            b_rps, b_cpu = cell(best, size, c, "rps")[0], cell(best, size, c, "server_cpu_ms_per_1k")[0]
            lowest = min(peers, key=lambda p: cell(p, size, c, "server_cpu_ms_per_1k")[0])
            l_cpu = cell(lowest, size, c, "server_cpu_ms_per_1k")[0]
            if size == "1KiB":
                ok_rps, ok_cpu = e_rps >= 1.3 * b_rps, e_cpu <= 0.8 * b_cpu
                out.append(f"- {size}, {c} connections: req/s {e_rps/b_rps:.2f}× the best peer ({best}; goal ≥ 1.3×): "
                           f"**{'met' if ok_rps else 'not met'}**; CPU per request {e_cpu/b_cpu:.2f}× {best}'s "
                           f"(goal ≤ 0.8×): **{'met' if ok_cpu else 'not met'}**.")
            else:
                lowest_gb = min(peers, key=lambda p: cell(p, size, c, "server_cpu_s_per_gb")[0])
                e_gb, l_gb = cell("edge", size, c, "server_cpu_s_per_gb")[0], cell(lowest_gb, size, c, "server_cpu_s_per_gb")[0]
                ok_cpu = e_cpu <= 0.9 * l_cpu and e_gb <= 0.9 * l_gb
                line = (f"- {size}, {c} connections: CPU per request {e_cpu/l_cpu:.2f}× the lowest peer's ({lowest}), "
                        f"per GB {e_gb/l_gb:.2f}× ({lowest_gb}) (goal ≤ 0.9× both): **{'met' if ok_cpu else 'not met'}**; ")
                if e_busy >= BUSY:
                    ok_rps = e_rps >= 1.1 * b_rps
                    line += f"req/s {e_rps/b_rps:.2f}× the best peer ({best}; goal ≥ 1.1×): **{'met' if ok_rps else 'not met'}**."
                else:
                    line += (f"req/s not judged: the edge's core was {e_busy:.0%} busy, so wrk was the limit "
                             f"({e_rps/b_rps:.2f}× {best}).")
                out.append(line)
    if "edge-before" in servers:
        out += ["", "## The edge against its earlier build", ""]
        for c in conns:
            for size in sizes:
                a, b = cell("edge", size, c, "server_cpu_ms_per_1k"), cell("edge-before", size, c, "server_cpu_ms_per_1k")
                ra, rb = cell("edge", size, c, "rps"), cell("edge-before", size, c, "rps")
                if a and b:
                    out.append(f"- {size}, {c} connections: CPU per request {a[0]/b[0]:.2f}× the earlier build's, req/s {ra[0]/rb[0]:.2f}×.")
    open(dst, "w").write("\n".join(out) + "\n")


main()
