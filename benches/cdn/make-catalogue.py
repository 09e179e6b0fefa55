#!/usr/bin/env python3
"""Writes the benchmark's media library: TITLES titles of SEGMENTS random 1 MiB segments with a
~1 KiB HLS media playlist each (vod/bench/tNNN/), and fresh objects for the live-burst runs
(vod/burst/<server>/seg_NNNNN.m4s). Random bytes: no server can compress or deduplicate them.
Usage: make-catalogue.py DIR TITLES SEGMENTS BURST_SERVERS BURST_SEGMENTS"""
import os
import sys

root, titles, segments = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
burst_servers, burst_segments = sys.argv[4].split(","), int(sys.argv[5])
MIB = 1 << 20


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


for t in range(titles):
    base = os.path.join(root, "vod", "bench", f"t{t:03}")
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0",
             "#EXT-X-PLAYLIST-TYPE:VOD"]
    for s in range(segments):
        write(os.path.join(base, f"seg_{s:05}.m4s"), os.urandom(MIB))
        lines += ["#EXTINF:2.000000,", f"seg_{s:05}.m4s"]
    lines.append("#EXT-X-ENDLIST")
    text = "\n".join(lines) + "\n"
    # Pad to 1 KiB with a comment so every playlist is the same size.
    if len(text) < 1024:
        text += "#" + "x" * (1024 - len(text) - 2) + "\n"
    write(os.path.join(base, "index.m3u8"), text.encode())
for server in burst_servers:
    for k in range(burst_segments):
        write(os.path.join(root, "vod", "burst", server, f"seg_{k:05}.m4s"), os.urandom(MIB))
