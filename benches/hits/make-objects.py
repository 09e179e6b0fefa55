#!/usr/bin/env python3
"""Writes the hit benchmark's objects: COUNT random objects of each size under
DIR/vod/hits/<size>/obj_NN.m4s, and one path list per size (DIR/paths-<size>.txt).
Random bytes: no server can compress them.  Usage: make-objects.py DIR COUNT SIZE_NAME=BYTES..."""
import os
import sys

root, count = sys.argv[1], int(sys.argv[2])
for spec in sys.argv[3:]:
    name, size = spec.split("=")
    base = os.path.join(root, "media", "vod", "hits", name)
    os.makedirs(base, exist_ok=True)
    paths = []
    for n in range(count):
        with open(os.path.join(base, f"obj_{n:02}.m4s"), "wb") as f:
            f.write(os.urandom(int(size)))
        paths.append(f"/vod/hits/{name}/obj_{n:02}.m4s")
    with open(os.path.join(root, f"paths-{name}.txt"), "w") as f:
        f.write("\n".join(paths) + "\n")
