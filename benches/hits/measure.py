#!/usr/bin/env python3
"""One wrk run against a server already listening, with the CPU both sides used.

  measure.py SERVER PID BASE SIZE BYTES CONNECTIONS SECONDS PATHS REP
  measure.py --summary LINE      (one line of its output, for a person)

wrk runs on core 1 (one thread, CONNECTIONS keep-alive connections, cycling through PATHS).
The server's CPU is the user and system time of PID and its descendants over the run (from
/proc); wrk's is its own (getrusage of the child). Prints one JSON line: requests per second,
CPU per 1,000 requests and per GB served for each side, and how busy each side's core was (a
server under 90% busy was not the limit: the load tool was).
"""
import json
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import proc_cpu  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu(pid):
    return sum(proc_cpu.cpu(pid))


def summary(line):
    d = json.loads(line)
    print(f"{d['server']} {d['size']} c{d['connections']} rep {d['rep']}: {d['rps']:.0f} req/s, "
          f"{d['server_cpu_ms_per_1k']:.1f} CPU-ms/1k, server {d['server_busy']:.0%} busy, "
          f"wrk {d['tool_busy']:.0%}, errors {d['errors']}")


def main():
    if sys.argv[1] == "--summary":
        return summary(sys.argv[2])
    server, pid, base, size, size_bytes, conns, seconds, paths, rep = sys.argv[1:10]
    args = ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{seconds}s",
            "-s", os.path.join(HERE, "..", "cdn", "wrk-paths.lua"), base]
    before, tool_before = cpu(pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(args, capture_output=True, text=True, check=True,
                         env=dict(os.environ, WRK_PATHS=paths)).stdout
    after, tool_after = cpu(pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(l for l in out.splitlines() if l.startswith("WRKJSON "))
    d = json.loads(line.split(" ", 1)[1])
    secs = d["duration_us"] / 1e6
    requests = max(d["requests"], 1)
    server_cpu = after - before
    tool_cpu = (tool_after.ru_utime + tool_after.ru_stime) - (tool_before.ru_utime + tool_before.ru_stime)
    gb = d["bytes"] / 1e9
    print(json.dumps({
        "server": server, "size": size, "bytes": int(size_bytes), "connections": int(conns),
        "rep": int(rep), "seconds": secs, "requests": d["requests"], "errors": d["errors"],
        "rps": d["requests"] / secs, "gb_per_s": gb / secs,
        "p50_ms": d["p50_us"] / 1e3, "p99_ms": d["p99_us"] / 1e3,
        "server_cpu_s": server_cpu, "server_busy": server_cpu / secs,
        "server_cpu_ms_per_1k": server_cpu / requests * 1e6,
        "server_cpu_s_per_gb": server_cpu / gb if gb else None,
        "tool_cpu_s": tool_cpu, "tool_busy": tool_cpu / secs,
        "tool_cpu_ms_per_1k": tool_cpu / requests * 1e6,
    }))


main()
