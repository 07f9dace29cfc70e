#!/usr/bin/env python3
"""Whether a client that reads a large answer slowly holds up a worker's loop: one worker echoes a
9 MB JSON body to a client that reads 64 KB every 50 ms (receive buffer 4 KB), while another client
asks /healthz every 20 ms; prints the worst /healthz latency.  With --stream the answer is a stream
instead: the echo model sends each word of a 9 MB text as an event of its own.

    python3 benchmark/slow_reader.py [--mserve PATH] [--mb 9] [--seconds 4] [--stream]
"""
import argparse
import json
import os
import socket
import subprocess
import tempfile
import threading
import time

import requests

import results as saved

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mserve", default=os.path.join(ROOT, ".build", "release", "mserve"))
    ap.add_argument("--mb", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--stream", action="store_true", help="a stream of one event per word instead of one answer")
    saved.add_save_argument(ap, None, "slow-reader, slow-reader-stream with --stream")
    args = ap.parse_args()
    port = free_port()
    log = tempfile.NamedTemporaryFile(suffix=".log", delete=False).name
    server = subprocess.Popen([args.mserve, "-w", "1", "-b", f"127.0.0.1:{port}", "echo", "--max-body-size", f"{args.mb * 2}m",
                               "--access-logfile", "off", "--error-logfile", log])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.05)
        if args.stream:
            body = json.dumps({"text": "word " * (args.mb * 200_000), "stream": True}).encode()
        else:
            body = json.dumps({"x": "a" * (args.mb * 1_000_000)}).encode()
        slow = socket.create_connection(("127.0.0.1", port))
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stop = threading.Event()
        received = [0]

        def read_slowly():
            slow.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                         % len(body) + body)
            while not stop.is_set():
                data = slow.recv(65536)
                if not data:
                    break
                received[0] += len(data)
                time.sleep(0.05)
        reader = threading.Thread(target=read_slowly)
        reader.start()
        worst, n = 0.0, 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.seconds:
            a = time.monotonic()
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
            worst = max(worst, time.monotonic() - a)
            n += 1
            time.sleep(0.02)
        stop.set()
        slow.close()
        reader.join(timeout=5)
        table = saved.Table(f"{args.mb} MB echoed{' as a stream of words' if args.stream else ''} to a slow reader:",
                            ["read in", "MB read", "worst /healthz latency ms", "/healthz requests"])
        table.add(f"{args.seconds:.0f} s", f"{received[0] / 1e6:.1f}", f"{worst * 1000:.1f}", n)
        saved.save_tables(args.save or ("slow-reader-stream" if args.stream else "slow-reader"), [table])
    finally:
        server.terminate()
        server.wait(timeout=15)
        os.unlink(log)


if __name__ == "__main__":
    main()
