#!/usr/bin/env python3
"""Renders benches/results/dns.md from the JSON lines of benches/dns/compare.sh.

  report.py RAW OUT LABEL
"""
import json
import statistics
import sys

raw, out, label = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [json.loads(line) for line in open(raw) if line.strip()]
meta = next((r for r in rows if r.get("kind") == "meta"), {})
servers = [s for s in ("geo-router", "geo-router-before", "gdnsd", "nsd")
           if any(r.get("server") == s for r in rows)]
lines = []
w = lines.append


def median(values):
    return statistics.median(values) if values else None


def pick(kind, server, qset=None):
    return [r for r in rows if r.get("kind") == kind and r.get("server") == server
            and (qset is None or r.get("set") == qset)]


runs = max((r.get("run", 1) for r in rows if r.get("kind", "").startswith("dns")), default=0)
w("# DNS: the geo-router beside gdnsd and NSD\n")
w(f"One run of `benches/dns/run.sh` ({meta.get('started', '?')}, label {label}, "
  f"{meta.get('machine', '?')}). Each server pinned to core 0 with one UDP thread (the "
  "geo-router `dns_udp_threads = 1`, gdnsd `udp_threads => 1`, NSD `server-count: 1`), dnsperf "
  "(4 clients) pinned to core 1. The geo-router and gdnsd answer per client location from the "
  "same GeoIP City database and regions, with the ECS option honoured; NSD serves a static zone "
  "(rate limiting off), for scale. Names: the service name (A, twice in four), the apex SOA and "
  "a name that does not exist. " + (f"geo-router-before is the router built at {meta['before']}, "
  "for the effect of the changes since in the same run. "
  if meta.get("before") else "") + "Figures are medians of "
  f"{runs} runs, servers interleaved; compare within this run only.\n")

w("## CPU per query at a fixed rate\n")
fixed_qps = next((r["asked_qps"] for r in rows if r.get("kind") == "dns-fixed"), None)
seconds = next((r["seconds"] for r in rows if r.get("kind") == "dns-fixed"), None)
w(f"dnsperf asks {fixed_qps:,} q/s for {seconds} s. Set **one**: every query from one client "
  "subnet (198.51.100.0/24). Set **many**: 131,072 queries, each from a /24 of its own (the "
  "test database's 3,072 located /24s among them, the rest mostly unlocated), so nothing "
  "per subnet can be reused. CPU is user + system time of the server's processes, in "
  "microseconds per answered query.\n")
w("| Set | Server | answered q/s | lost | server µs/query | of which user | dnsperf µs/query | vs gdnsd |")
w("|---|---|---|---|---|---|---|---|")
best = {}
for qset in ("one", "many"):
    g = median([r["server_us_per_query"] for r in pick("dns-fixed", "gdnsd", qset)])
    for s in servers:
        rs = pick("dns-fixed", s, qset)
        if not rs:
            continue
        us = median([r["server_us_per_query"] for r in rs])
        best[(qset, s)] = us
        ratio = f"{us / g:.2f}×" if g else "—"
        w(f"| {qset} | {s} | {median([r['qps'] for r in rs]):,.0f} | {sum(r['lost'] for r in rs)} | "
          f"{us:.2f} | {median([r['server_user_us_per_query'] for r in rs]):.2f} | "
          f"{median([r['dnsperf_us_per_query'] for r in rs]):.2f} | {ratio} |")
w("")

w("## As fast as dnsperf can ask\n")
w("dnsperf asks 500,000 q/s. Its CPU seconds are shown beside the run's length: when they "
  "are close, dnsperf's core is the limit, not the server.\n")
w("| Server | answered q/s | lost | latency ms | server CPU s | dnsperf CPU s / run s |")
w("|---|---|---|---|---|---|")
for s in servers:
    rs = pick("dns", s)
    if rs:
        w(f"| {s} | {median([r['qps'] for r in rs]):,.0f} | {sum(r['lost'] for r in rs)} | "
          f"{median([r['latency_ms'] for r in rs]):.3f} | "
          f"{median([r['server_user_s'] + r['server_sys_s'] for r in rs]):.2f} | "
          f"{median([r['dnsperf_cpu_s'] for r in rs]):.2f} / {rs[0]['seconds']} |")
w("")

ladder = [r for r in rows if r.get("kind") == "dns-ladder"]
highest = {}
if ladder:
    secs = ladder[0]["seconds"]
    w("## The highest rate held\n")
    w(f"Set one, {secs} s per step, rates in turn until one is not held twice in a row: a "
      "query lost, or fewer answers than 98% of the rate asked (a step not held is asked once "
      "more, for every server alike: on a shared machine a step is now and then disturbed with "
      "neither core busy). When dnsperf's CPU seconds reach the step's length, dnsperf could "
      "not ask faster: the step measured the load tool.\n")
    w("| Server | rate asked | answered q/s | lost | held | server CPU s | dnsperf CPU s |")
    w("|---|---|---|---|---|---|---|")

    def held(r):
        return r["lost"] == 0 and r["qps"] >= 0.98 * r["asked_qps"]

    for s in servers:
        for r in pick("dns-ladder", s):
            w(f"| {s} | {r['asked_qps']:,} | {r['qps']:,.0f} | {r['lost']} | "
              f"{'yes' if held(r) else 'no'} | "
              f"{r['server_user_s'] + r['server_sys_s']:.2f} | {r['dnsperf_cpu_s']:.2f} |")
        ok = [r["asked_qps"] for r in pick("dns-ladder", s) if held(r)]
        highest[s] = max(ok) if ok else 0
    w("")
    w("Highest rate held: " + ", ".join(f"{s} {highest[s]:,}" for s in servers) + ".\n")

w("## Goals\n")
for qset in ("one", "many"):
    r, g = best.get((qset, "geo-router")), best.get((qset, "gdnsd"))
    if r is not None and g is not None:
        verdict = "**met**" if r <= g else "**not met**"
        w(f"- CPU per query at {fixed_qps:,} q/s, set {qset}, at most gdnsd's: {verdict} "
          f"({r:.2f} µs against {g:.2f}, {r / g:.2f}×).")
if highest:
    r, g = highest.get("geo-router", 0), highest.get("gdnsd", 0)
    top = max(int(x) for x in ladder_rates) if (ladder_rates := {x["asked_qps"] for x in ladder}) else 0
    verdict = "**met**" if r >= g else "**not met**"
    note = " (both at the top of the ladder)" if r == g == top else ""
    w(f"- Highest rate held with no loss at least gdnsd's: {verdict} ({r:,} against {g:,}){note}.")
else:
    w("- Highest rate with no loss: **not measured** in this run (LADDER=1).")
open(out, "w").write("\n".join(lines) + "\n")
