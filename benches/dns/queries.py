#!/usr/bin/env python3
"""Writes dnsperf query files for benches/dns/compare.sh.

  queries.py text OUT          the four-line name mix (dnsperf adds the ECS option with -E)
  queries.py many OUT [COUNT]  COUNT queries in dnsperf's binary (-B) format, each with an ECS
                               option of its own /24: the 3,072 /24s of the test GeoIP
                               database's located /14s (100.64/14, 100.68/14, 100.72/14) spread
                               through the file, the rest anywhere in unicast IPv4 (mostly
                               unlocated: the default region), in the same name mix.

Fixed seed: every run sends the same queries.
"""
import random
import struct
import sys

MIX = [("video.meridian.test", 1), ("video.meridian.test", 1), ("meridian.test", 6),
       ("nope.meridian.test", 1)]


def wire_name(name):
    out = b""
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def message(name, qtype, subnet):
    header = struct.pack(">HHHHHH", 0, 0, 1, 0, 0, 1)
    question = wire_name(name) + struct.pack(">HH", qtype, 1)
    ecs = struct.pack(">HBB", 1, 24, 0) + bytes(subnet[:3])
    option = struct.pack(">HH", 8, len(ecs)) + ecs
    opt = b"\x00" + struct.pack(">HHIH", 41, 1232, 0, len(option)) + option
    return header + question + opt


def main():
    kind, out = sys.argv[1], sys.argv[2]
    if kind == "text":
        with open(out, "w") as f:
            for name, qtype in MIX:
                f.write(f"{name} {'A' if qtype == 1 else 'SOA'}\n")
        return
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 131072
    rng = random.Random(17)
    located = [(100, b + c, d) for b in (64, 68, 72) for c in range(4) for d in range(256)]
    seen = set(located)
    firsts = [n for n in range(1, 224) if n not in (10, 100, 127)]
    subnets = list(located)
    while len(subnets) < count:
        subnet = (rng.choice(firsts), rng.randrange(256), rng.randrange(256))
        if subnet not in seen:
            seen.add(subnet)
            subnets.append(subnet)
    subnets = subnets[:count]
    rng.shuffle(subnets)
    with open(out, "wb") as f:
        for i, subnet in enumerate(subnets):
            name, qtype = MIX[i % len(MIX)]
            m = message(name, qtype, subnet)
            f.write(struct.pack(">H", len(m)) + m)


main()
