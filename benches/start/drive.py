"""Starts the release edge on an existing store and measures its start: seconds from exec to
/readyz 200 and to the first HIT of an object it stored, then replays a sample of objects and
counts hits and corrupt bodies. Used by benches/start/run.sh; prints one JSON object.

  drive.py EDGE_ARGS_JSON SAMPLE_FILE EXPECTED_BODY [--kill-during-writes N]
"""
import http.client
import json
import subprocess
import sys
import threading
import time
import urllib.parse


def connect(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)


def get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.getheader("x-cache", ""), r.read()


def start(args):
    started = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    urls = {}

    def read():
        for line in proc.stdout:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "listening":
                urls[parts[1]] = parts[2]

    threading.Thread(target=read, daemon=True).start()
    while "admin" not in urls:
        if proc.poll() is not None:
            sys.exit("the edge exited before it listened")
        time.sleep(0.001)
    admin = connect(urls["admin"])
    while True:
        try:
            status, _, _ = get(admin, "/readyz")
        except (ConnectionError, http.client.HTTPException):
            admin = connect(urls["admin"])
            status = 0
        if status == 200:
            break
        time.sleep(0.005)
    ready = time.monotonic() - started
    while "http" not in urls:
        time.sleep(0.001)
    return proc, urls, started, ready


def main():
    args = json.loads(sys.argv[1])
    sample = [line.strip() for line in open(sys.argv[2]) if line.strip()]
    expected = open(sys.argv[3], "rb").read()
    proc, urls, started, ready = start(args)
    conn = connect(urls["http"])
    status, cache, body = get(conn, sample[0])
    first_hit = time.monotonic() - started if cache == "HIT" else None
    admin = connect(urls["admin"])
    admin.request("GET", "/status")
    store_start = json.loads(admin.getresponse().read()).get("store_start") or {}
    hits = corrupt = 0
    for path in sample:
        status, cache, body = get(conn, path)
        hits += cache == "HIT"
        corrupt += status == 200 and body != expected
    proc.terminate()
    proc.wait(timeout=60)
    print(json.dumps({"ready_s": round(ready, 3), "first_hit_s": first_hit and round(first_hit, 3),
                      "sampled": len(sample), "hits": hits, "corrupt": corrupt,
                      "from_checkpoint": store_start.get("from_checkpoint"),
                      "caught_up_entries": store_start.get("caught_up_entries")}))


if __name__ == "__main__":
    main()
