#!/usr/bin/env python3
"""One dnsperf run against a server already listening, with the CPU both sides used.

  measure.py SERVER PID PORT QPS SECONDS QUERIES SET PHASE

QUERIES is a text file (dnsperf adds the ECS option) or, ending in .bin, dnsperf's binary
format (each query carries its own). The server's CPU is the user and system time of PID and
its descendants over the run (from /proc), dnsperf's its own (getrusage of the child). Prints
one JSON line: the rate asked and answered, queries completed and lost, latency, CPU seconds and
microseconds per answered query for each side.
"""
import json
import os
import re
import resource
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import proc_cpu  # noqa: E402

ECS = "8:00011800c63364"  # IPv4, source /24, scope 0, 198.51.100.0 (near eu-west)


cpu = proc_cpu.cpu


def main():
    server, pid, port, qps, seconds, queries, qset, phase = sys.argv[1:9]
    args = ["taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", port, "-d", queries,
            "-l", seconds, "-c", "4", "-Q", qps]
    args += ["-B"] if queries.endswith(".bin") else ["-E", ECS]
    before, tool_before = cpu(pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    after, tool_after = cpu(pid), resource.getrusage(resource.RUSAGE_CHILDREN)

    def number(label):
        return float(re.search(label + r":\s+([\d.]+)", out).group(1))

    completed = int(number("Queries completed"))
    user, system = after[0] - before[0], after[1] - before[1]
    tool = (tool_after.ru_utime - tool_before.ru_utime) + (tool_after.ru_stime - tool_before.ru_stime)
    per = 1e6 / max(completed, 1)
    print(json.dumps({
        "server": server, "kind": "dns" if phase == "open" else "dns-" + phase,
        "run": int(os.environ.get("RUN", "1")), "set": qset, "asked_qps": int(qps),
        "qps": number("Queries per second"), "completed": completed,
        "lost": int(number("Queries lost")), "latency_ms": number(r"Average Latency \(s\)") * 1000,
        "seconds": int(seconds), "server_user_s": round(user, 2), "server_sys_s": round(system, 2),
        "server_us_per_query": round((user + system) * per, 3),
        "server_user_us_per_query": round(user * per, 3),
        "dnsperf_cpu_s": round(tool, 2), "dnsperf_us_per_query": round(tool * per, 3),
    }))


main()
