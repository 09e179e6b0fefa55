"""Hostile clients against a running edge, and real viewers beside them: prints one JSON object
with what each scenario found. Used by benches/reliability/run.sh.

  drive.py EDGE_URL SEGMENT_PATH HEADER_TIMEOUT_S FIRST_REQUEST_TIMEOUT_S
  drive.py garbage NAME=URL...  only the garbage scenario, at each listener in turn
"""
import asyncio
import json
import os
import random
import statistics
import sys
import time
import urllib.parse

GARBAGE_ONLY = sys.argv[1] == "garbage"
if not GARBAGE_ONLY:
    URL = urllib.parse.urlsplit(sys.argv[1])
    HOST, PORT = URL.hostname, URL.port
    SEGMENT = sys.argv[2]
    HEADER_TIMEOUT = float(sys.argv[3])
    FIRST_TIMEOUT = float(sys.argv[4])
    REQUEST = f"GET {SEGMENT} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


async def read_response(reader):
    """Reads one response; returns its status (raises if the connection ends first)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


async def viewer(stop, latencies, errors):
    """A real viewer: one segment request every 50 ms on a fresh connection, timed."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, PORT), 5)
            writer.write(REQUEST)
            status = await asyncio.wait_for(read_response(reader), 5)
            writer.close()
            if status != 200:
                errors.append(status)
            latencies.append((time.monotonic() - started) * 1000)
        except Exception as e:  # noqa: BLE001 - every failure is a viewer error here
            errors.append(type(e).__name__)
        await asyncio.sleep(0.05)


async def closed_within(reader, limit):
    """Seconds until the server closed the connection, or None if it was still open at `limit`."""
    started = time.monotonic()
    try:
        while True:
            data = await asyncio.wait_for(reader.read(4096), limit - (time.monotonic() - started))
            if not data:
                return time.monotonic() - started
    except asyncio.TimeoutError:
        return None
    except ConnectionError:
        return time.monotonic() - started


def closing_summary(results):
    """How many connections the edge closed (seconds, per connection), refused, or kept open."""
    closed = [r for r in results if isinstance(r, float)]
    return {"connections": len(results), "closed": len(closed), "refused": results.count("refused"),
            "max_close_s": round(max(closed), 2) if closed else None}


async def with_viewers(scenario):
    stop, latencies, errors = asyncio.Event(), [], []
    task = asyncio.create_task(viewer(stop, latencies, errors))
    result = await scenario()
    stop.set()
    await task
    result["viewer_requests"] = len(latencies) + len(errors)
    result["viewer_errors"] = len(errors)
    if latencies:
        latencies.sort()
        result["viewer_p50_ms"] = round(statistics.median(latencies), 2)
        result["viewer_p99_ms"] = round(latencies[int(len(latencies) * 0.99) - 1], 2)
    return result


async def slowloris(n):
    """N connections each send half a header, then one more header byte a second."""
    async def one():
        try:
            reader, writer = await asyncio.open_connection(HOST, PORT)
        except OSError:
            return "refused"
        writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n")
        async def trickle():
            try:
                for i in range(1000):
                    await asyncio.sleep(1)
                    writer.write(f"X-{i}: y\r\n".encode())
                    await writer.drain()
            except (ConnectionError, RuntimeError):
                pass
        t = asyncio.create_task(trickle())
        took = await closed_within(reader, HEADER_TIMEOUT + 10)
        t.cancel()
        writer.close()
        return took

    return closing_summary(await asyncio.gather(*(one() for _ in range(n))))


async def silent(n):
    """N connections that send nothing at all."""
    async def one():
        try:
            reader, writer = await asyncio.open_connection(HOST, PORT)
        except OSError:
            return "refused"
        took = await closed_within(reader, FIRST_TIMEOUT + 10)
        writer.close()
        return took

    return closing_summary(await asyncio.gather(*(one() for _ in range(n))))


async def keepalive(n):
    """N connections open at once, each served one request and kept open (keep-alive)."""
    conns, served = [], 0
    sem = asyncio.Semaphore(500)
    async def one():
        nonlocal served
        async with sem:
            reader, writer = await asyncio.open_connection(HOST, PORT)
            writer.write(REQUEST)
            if await asyncio.wait_for(read_response(reader), 30) == 200:
                served += 1
            conns.append((reader, writer))
    results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    failed = [r for r in results if isinstance(r, Exception)]
    # All open at once now: a second request on 100 of them still works.
    again = 0
    for reader, writer in conns[:100]:
        try:
            writer.write(REQUEST)
            again += await asyncio.wait_for(read_response(reader), 30) == 200
        except Exception:  # noqa: BLE001 - counted as not served
            pass
    for _, w in conns:
        w.close()
    return {"connections": n, "served": served, "failed": len(failed),
            "second_request_ok": again,
            "first_error": type(failed[0]).__name__ if failed else None}


async def garbage(n, host, port, request, waves=10):
    """N connections that send random bytes, or `request` cut off mid-way, then close; in
    `waves` waves half a second apart, so that the viewer beside it measures something."""
    answers = {}
    async def one(i):
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            answers["refused"] = answers.get("refused", 0) + 1
            return
        if i % 2 == 0:
            writer.write(os.urandom(random.randint(1, 4096)))
        else:
            writer.write(request[: random.randint(1, len(request) - 1)])
            writer.write_eof()
        try:
            data = await asyncio.wait_for(reader.read(64), 20)
            key = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "closed"
        except (asyncio.TimeoutError, ConnectionError, IndexError):
            key = "closed"
        answers[key] = answers.get(key, 0) + 1
        writer.close()
    per_wave = n // waves
    for wave in range(waves):
        await asyncio.gather(*(one(wave * per_wave + i) for i in range(per_wave)))
        await asyncio.sleep(0.5)
    return {"connections": per_wave * waves, "answers": answers}


async def main():
    report = {}
    report["slowloris"] = await with_viewers(lambda: slowloris(2000))
    report["silent"] = await with_viewers(lambda: silent(2000))
    report["keepalive"] = await keepalive(10000)
    report["garbage"] = await with_viewers(lambda: garbage(2000, HOST, PORT, REQUEST))
    print(json.dumps(report))


async def garbage_at(urls):
    """1,000 garbage connections at each listener, one listener after another."""
    report = {}
    for named in urls:
        name, url = named.split("=", 1)
        u = urllib.parse.urlsplit(url)
        request = b"GET /status HTTP/1.1\r\nHost: bench\r\n\r\n"
        report[name] = await garbage(1000, u.hostname, u.port, request)
    print(json.dumps(report))


asyncio.run(garbage_at(sys.argv[2:]) if GARBAGE_ONLY else main())
