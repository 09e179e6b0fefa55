"""CPU a process tree used, from /proc: what the benchmarks' measure scripts count for a server.
(Import it after putting benches/lib on sys.path.)"""
import os

TICK = os.sysconf("SC_CLK_TCK")


def tree(pid):
    """PID and every descendant of it."""
    pids = [str(pid)]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                fields = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == str(pid):
                pids += tree(d)
    return pids


def cpu(pid):
    """(user, system) CPU seconds of PID and its descendants, those alive now."""
    user = system = 0
    for p in tree(pid):
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11])
        system += int(fields[12])
    return user / TICK, system / TICK
