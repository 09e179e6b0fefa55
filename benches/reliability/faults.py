"""Failures the edge and the router did not choose, with real clients checking what they get.
Used by benches/reliability/run.sh; each mode prints one JSON object (or, for the origin, serves).

  faults.py objects DIR COUNT              writes COUNT files of random bytes, prints their digests
  faults.py load URL DIGESTS STOP WINDOWS  mixed hit/miss viewers until the file STOP exists;
                                           every complete body is checked against DIGESTS, and
                                           failures are split by the outage WINDOWS (kill..ready)
  faults.py flap-origin PORT DIR           an origin that is up one second and down the next
  faults.py flap-viewers URL COUNT SECONDS viewers of COUNT objects behind the flapping origin
  faults.py dns HOST PORT NAME SECONDS     random bytes and cut-off frames at a DNS server over
                                           UDP and TCP, and a real resolver's queries beside them
"""
import hashlib
import http.client
import http.server
import json
import os
import random
import signal
import socket
import socketserver
import statistics
import struct
import sys
import threading
import time
import urllib.parse


def objects(folder, count):
    """COUNT objects of 16 KiB to 1 MiB; the digests go to stdout as JSON."""
    os.makedirs(folder, exist_ok=True)
    digests = {}
    for i in range(count):
        body = os.urandom(random.randint(16 << 10, 1 << 20))
        with open(os.path.join(folder, f"obj_{i}.bin"), "wb") as f:
            f.write(body)
        digests[f"obj_{i}.bin"] = hashlib.sha256(body).hexdigest()
    print(json.dumps(digests))


def fetch(host, port, path, timeout=10):
    """(status, body or None if cut short, x-cache) of one GET on a fresh connection."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        try:
            body = response.read()
        except http.client.IncompleteRead:
            body = None
        return response.status, body, response.getheader("x-cache") or ""
    finally:
        conn.close()


def load(url, digests_file, stop_file, windows_file):
    """Four viewers: 70% of requests for 20 hot objects (hits once cached), 30% across the rest
    (misses at first). Runs until STOP exists; then reads the outage windows the runner wrote
    (one `killed_at ready_at` line per kill, monotonic-free Unix seconds) and classifies."""
    u = urllib.parse.urlsplit(url)
    digests = json.load(open(digests_file))
    names = sorted(digests)
    hot, cold = names[:20], names[20:]
    events = []  # (started, ended, outcome)
    lock = threading.Lock()

    def viewer():
        rng = random.Random()
        while not os.path.exists(stop_file):
            name = rng.choice(hot) if rng.random() < 0.7 else rng.choice(cold)
            started = time.time()
            try:
                status, body, cache = fetch(u.hostname, u.port, f"/mix/{name}")
                if status != 200:
                    outcome = f"status {status}"
                elif body is None:
                    outcome = "cut"
                elif hashlib.sha256(body).hexdigest() != digests[name]:
                    outcome = "corrupt"
                else:
                    outcome = "hit" if cache.startswith("HIT") else "ok"
            except (OSError, http.client.HTTPException) as e:
                outcome = type(e).__name__
                time.sleep(0.02)  # the edge is down: do not spin
            with lock:
                events.append((started, time.time(), outcome))

    threads = [threading.Thread(target=viewer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    windows = [tuple(map(float, line.split())) for line in open(windows_file) if line.strip()]
    # A request forced to fail: one that was in flight when the edge was killed or started
    # before it was ready again.
    forced = lambda s, e: any(s <= ready and e >= killed for killed, ready in windows)
    count = lambda pred: sum(1 for s, e, o in events if pred(s, e, o))
    good = ("ok", "hit")
    outages = [ready - killed for killed, ready in windows]
    return {
        "kills": len(windows),
        "requests": len(events),
        "bodies_checked": count(lambda s, e, o: o in good or o == "corrupt"),
        "hits": count(lambda s, e, o: o == "hit"),
        "misses": count(lambda s, e, o: o == "ok"),
        "corrupt": count(lambda s, e, o: o == "corrupt"),
        "failed_in_outage": count(lambda s, e, o: o not in good and o != "corrupt" and forced(s, e)),
        "failed_outside_outage": count(lambda s, e, o: o not in good and o != "corrupt" and not forced(s, e)),
        "failure_kinds": sorted({o for s, e, o in events if o not in good}),
        "outage_p50_s": round(statistics.median(outages), 3) if outages else None,
        "outage_max_s": round(max(outages), 3) if outages else None,
    }


def flap_origin(port, folder):
    """Serves FOLDER's files with `max-age=1, stale-if-error=600`; in every other second it is
    down: half of those seconds it answers 503, the other half it resets the connection."""
    counts = {"served": 0, "503": 0, "reset": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            second = int(time.time())
            if second % 2 == 1:
                if second % 4 == 1:
                    counts["503"] += 1
                    self.send_response(503)
                    self.send_header("content-length", "0")
                    self.end_headers()
                else:
                    counts["reset"] += 1
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                return
            path = os.path.join(folder, os.path.basename(self.path))
            if not os.path.isfile(path):
                self.send_error(404)
                return
            body = open(path, "rb").read()
            counts["served"] += 1
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.send_header("cache-control", "public, max-age=1, stale-if-error=600")
            self.send_header("content-type", "video/iso.segment")
            self.end_headers()
            self.wfile.write(body)

        def do_HEAD(self):
            self.send_response(200)
            self.end_headers()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"listening http http://127.0.0.1:{server.server_address[1]}", flush=True)

    def stop(*_):
        raise KeyboardInterrupt

    # The runner stops it with SIGTERM: the counts still go out.
    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        print(json.dumps(counts), file=sys.stderr, flush=True)


def flap_viewers(url, digests_file, seconds):
    """Two viewers fetching every object in turn for SECONDS: every answer must be a good body."""
    u = urllib.parse.urlsplit(url)
    digests = json.load(open(digests_file))
    names = sorted(digests)
    outcomes, lock = {}, threading.Lock()
    # First every object into the cache (in an up second): before that there is nothing stale
    # to serve, and an error is the origin's to give.
    for name in names:
        for _ in range(100):
            try:
                if fetch(u.hostname, u.port, f"/flap/{name}")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
    deadline = time.time() + seconds

    def viewer(offset):
        i = offset
        while time.time() < deadline:
            name = names[i % len(names)]
            i += 1
            try:
                status, body, cache = fetch(u.hostname, u.port, f"/flap/{name}")
                if status != 200 or body is None:
                    outcome = f"status {status}" if body is not None else "cut"
                elif hashlib.sha256(body).hexdigest() != digests[name]:
                    outcome = "corrupt"
                else:
                    outcome = cache.split(" ")[0] or "none"
            except (OSError, http.client.HTTPException) as e:
                outcome = type(e).__name__
            with lock:
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            time.sleep(0.01)

    threads = [threading.Thread(target=viewer, args=(k * 7,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    good = sum(v for k, v in outcomes.items() if k in ("HIT", "MISS", "STALE", "REVALIDATED", "EXPIRED", "none"))
    return {"requests": sum(outcomes.values()), "good": good, "answers": outcomes}


def dns_query(name, qid):
    """A plain A query for NAME with id QID (RD off, as a resolver asks an authority)."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + labels + struct.pack(">HH", 1, 1)


def dns(host, port, name, seconds):
    """For SECONDS: UDP datagrams of random bytes, cut-off queries and queries with a flipped
    byte; TCP connections sending random bytes, a length prefix with fewer bytes behind it, or a
    cut-off frame, then waiting for the server to close. A resolver beside them asks NAME every
    20 ms over UDP and counts answers (NOERROR with an answer) and misses (no answer in 1 s)."""
    stop = threading.Event()
    answered, missed, latencies = [0], [0], []
    sent = {"udp_garbage": 0, "tcp_connections": 0, "tcp_closed_by_server": 0, "tcp_open_at_30s": 0}

    def resolver():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1)
        qid = 0
        while not stop.is_set():
            qid = (qid + 1) & 0xFFFF
            started = time.monotonic()
            s.sendto(dns_query(name, qid), (host, port))
            try:
                while True:
                    data = s.recv(4096)
                    if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid:
                        break
                flags, _, ancount = struct.unpack(">HHH", data[2:8])
                if flags & 0xF == 0 and ancount > 0:
                    answered[0] += 1
                    latencies.append((time.monotonic() - started) * 1000)
                else:
                    missed[0] += 1
            except socket.timeout:
                missed[0] += 1
            time.sleep(0.02)

    def udp_garbage():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rng = random.Random()
        while not stop.is_set():
            kind = rng.randrange(3)
            if kind == 0:
                data = os.urandom(rng.randint(0, 1500))
            elif kind == 1:
                q = dns_query(name, rng.randrange(65536))
                data = q[: rng.randrange(len(q))]
            else:
                q = bytearray(dns_query(name, rng.randrange(65536)))
                q[rng.randrange(len(q))] = rng.randrange(256)
                data = bytes(q)
            s.sendto(data, (host, port))
            sent["udp_garbage"] += 1
            if sent["udp_garbage"] % 50 == 0:
                time.sleep(0.01)

    def tcp_one(rng):
        c = socket.create_connection((host, port), timeout=5)
        kind = rng.randrange(3)
        q = dns_query(name, rng.randrange(65536))
        if kind == 0:
            c.sendall(os.urandom(rng.randint(1, 2048)))
        elif kind == 1:
            c.sendall(struct.pack(">H", len(q) + 100) + q)  # says more than it sends
        else:
            frame = struct.pack(">H", len(q)) + q
            c.sendall(frame[: rng.randrange(1, len(frame))])
        c.settimeout(30)
        try:
            while c.recv(4096):
                pass
            sent["tcp_closed_by_server"] += 1
        except socket.timeout:
            sent["tcp_open_at_30s"] += 1
        except OSError:
            sent["tcp_closed_by_server"] += 1
        c.close()

    def tcp_garbage():
        rng = random.Random()
        workers = []
        while not stop.is_set():
            workers = [w for w in workers if w.is_alive()]
            if len(workers) < 50:
                sent["tcp_connections"] += 1
                w = threading.Thread(target=tcp_one, args=(rng,))
                w.start()
                workers.append(w)
            time.sleep(0.01)
        for w in workers:
            w.join()

    threads = [threading.Thread(target=f) for f in (resolver, udp_garbage, tcp_garbage)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    latencies.sort()
    return dict(sent, resolver_queries=answered[0] + missed[0], resolver_answered=answered[0],
                resolver_missed=missed[0],
                resolver_p50_ms=round(statistics.median(latencies), 2) if latencies else None,
                resolver_p99_ms=round(latencies[int(len(latencies) * 0.99) - 1], 2) if latencies else None)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "objects":
        objects(args[0], int(args[1]))
    elif mode == "load":
        print(json.dumps(load(*args)))
    elif mode == "flap-origin":
        flap_origin(int(args[0]), args[1])
    elif mode == "flap-viewers":
        print(json.dumps(flap_viewers(args[0], args[1], float(args[2]))))
    elif mode == "dns":
        print(json.dumps(dns(args[0], int(args[1]), args[2], float(args[3]))))
    else:
        sys.exit(f"unknown mode {mode}: see the module's doc")
