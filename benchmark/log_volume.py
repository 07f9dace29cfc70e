#!/usr/bin/env python3
"""How much the logs grow per million requests (issue 26, item 7), for each log setting.

mserve demo (-w 2) is started once per setting; `mserve bench -n N` sends N POST /demo requests
(the README's body, with a recordid); the error log and the access log are then measured and
scaled to a million requests.

    python3 benchmark/log_volume.py [--requests 100000]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import results as saved  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = [
    ("default (info)", []),
    ("--log-level debug", ["--log-level", "debug"]),
    ("--log-level warning", ["--log-level", "warning"]),
    ("--access-logfile off", ["--access-logfile", "off"]),
    ("warning, access log off", ["--log-level", "warning", "--access-logfile", "off"]),
]


def measure(binary, extra, requests):
    with tempfile.TemporaryDirectory() as tmp:
        error_log, access_log = f"{tmp}/error.log", f"{tmp}/access.log"
        port = bench.free_port()
        args = [binary, "-w", "2", "-b", f"127.0.0.1:{port}", "--no-control-socket", "--error-logfile", error_log,
                "--access-logfile", access_log, *extra, "demo"]
        # The later --access-logfile (off) wins over the first.
        server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            bench.wait_http(f"http://127.0.0.1:{port}/healthz")
            before = [os.path.getsize(p) if os.path.exists(p) else 0 for p in (error_log, access_log)]
            subprocess.run([binary, "bench", f"http://127.0.0.1:{port}/demo", "-n", str(requests), "-c", "16", "-w", "0",
                            "--data", '{"recordid": "r1", "cal_number": 5}'], check=True, stdout=subprocess.DEVNULL)
            time.sleep(1.5)   # the loggers flush
            after = [os.path.getsize(p) if os.path.exists(p) else 0 for p in (error_log, access_log)]
        finally:
            server.terminate()
            server.wait(timeout=30)
        return [(a - b) / requests * 1_000_000 / 1e6 for a, b in zip(after, before)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--mserve", default=os.path.join(ROOT, ".build/release/mserve"))
    saved.add_save_argument(p, "log-volume")
    a = p.parse_args()
    table = saved.Table(f"MB written per million `POST /demo` requests ({a.requests:,} sent per setting, scaled):",
                        ["setting", "error log", "access log", "total"])
    for name, extra in SETTINGS:
        err, acc = measure(a.mserve, extra, a.requests)
        table.add(name, f"{err:.0f}", f"{acc:.0f}", f"{err + acc:.0f}")
    saved.save_tables(a.save, [table])


if __name__ == "__main__":
    main()
