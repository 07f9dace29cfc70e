#!/usr/bin/env python3
"""The model runtime under load: `mserve -w 2 sleep` where each request sleeps 20 ms on a model
thread, so capacity is workers x concurrency / 20 ms = 100 requests/s.  An open-loop client sends at
50%, 90% and 200% of that rate (a new connection per request, so the kernel spreads them over the
workers) and prints, per load: answered requests/s against the ideal, p50 and p99 latency of the
200s, how many got 503, and how fast the 503s came.

    python3 benchmark/capacity.py [--seconds 10] [--ms 20]
"""
import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (free_port, wait_http, children)
import results as saved  # noqa: E402


async def one(port, body, results):
    t0 = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /sleep HTTP/1.1\r\nHost: b\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        data = await reader.read()
        writer.close()
        status = int(data.split(b" ", 2)[1]) if data else 0
    except OSError:
        status = 0
    results.append((status, time.monotonic() - t0))


async def load(port, rate, seconds, ms):
    body = json.dumps({"ms": ms}).encode()
    results = []
    tasks = []
    start = time.monotonic()
    n = int(rate * seconds)
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(port, body, results)))
    await asyncio.gather(*tasks)
    return results, time.monotonic() - start


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100 * len(v)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--ms", type=float, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--mserve", default=os.path.join(bench.ROOT, ".build", "release", "mserve"))
    saved.add_save_argument(ap, "capacity")
    args = ap.parse_args()
    capacity = args.workers * 1 / (args.ms / 1000)
    tmp = tempfile.mkdtemp(prefix="mserve-capacity-")
    port = bench.free_port()
    p = subprocess.Popen([args.mserve, "-w", str(args.workers), "-b", f"127.0.0.1:{port}", "sleep",
                          "--access-logfile", f"{tmp}/access.log", "--error-logfile", f"{tmp}/error.log"])
    try:
        bench.wait_http(f"http://127.0.0.1:{port}/sleep", "POST", b'{"ms": 1}')
        table = saved.Table(
            f"`mserve -w {args.workers} sleep`: {args.ms:g} ms per request on 1 model thread per worker, queue 16 per "
            f"worker; capacity {capacity:.0f} requests/s; {args.seconds:g} s per load, a new connection per request:",
            ["load", "sent/s", "answered 200/s", "of ideal", "p50 ms", "p99 ms", "503s", "503 p99 ms", "other"])
        for share in (0.5, 0.9, 2.0):
            rate = capacity * share
            results, took = asyncio.run(load(port, rate, args.seconds, args.ms))
            ok = [t * 1000 for s, t in results if s == 200]
            busy = [t * 1000 for s, t in results if s == 503]
            other = sum(1 for s, _ in results if s not in (200, 503))
            table.add(f"{share:.0%}", f"{len(results) / took:.1f}", f"{len(ok) / took:.1f}", f"{len(ok) / took / capacity:.2f}",
                      f"{pct(ok, 50):.1f}", f"{pct(ok, 99):.1f}", len(busy), f"{pct(busy, 99):.2f}" if busy else "", other)
        saved.save_tables(args.save, [table])
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


if __name__ == "__main__":
    main()
