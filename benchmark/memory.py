#!/usr/bin/env python3
"""Memory per worker with and without --preload, for a model that holds real weights: `sleep` with
option weights_mb (allocated and filled at load, like a model's weights), or `minilm` (90 MB of
safetensors, mapped, plus its fused attention weights), 4 workers.  Prints the resident (RSS) and
proportional (PSS, from /proc/PID/smaps_rollup) memory of each process, after a few requests, and
the time from `kill -9` of a worker to its replacement serving.

    python3 benchmark/memory.py [--model sleep|minilm] [--mb 128] [--workers 4]
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import results as saved  # noqa: E402


def mem_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        text = f.read()
    return (int(re.search(r"^Rss:\s+(\d+)", text, re.M).group(1)), int(re.search(r"^Pss:\s+(\d+)", text, re.M).group(1)))


def run(args, preload):
    tmp = tempfile.mkdtemp(prefix="mserve-memory-")
    conf = f"{tmp}/m.toml"
    with open(conf, "w") as f:
        f.write(f"[model.sleep]\nweights_mb = {args.mb}\n" if args.model == "sleep" else "")
    port = bench.free_port()
    cmd = [args.mserve, "-w", str(args.workers), "-b", f"127.0.0.1:{port}", "-c", conf, args.model,
           "--access-logfile", "off", "--error-logfile", f"{tmp}/error.log"] + (["--preload"] if preload else [])
    t0 = time.monotonic()
    p = subprocess.Popen(cmd)
    try:
        bench.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=120)
        while len(bench.children(p.pid)) < args.workers or open(f"{tmp}/error.log").read().count("is serving") < args.workers:
            time.sleep(0.05)
        boot = time.monotonic() - t0
        body = b'{"ms": 1}' if args.model == "sleep" else b'{"input": ["a few words to embed", "and a few more"]}'
        for _ in range(8 * args.workers):
            bench.wait_http(f"http://127.0.0.1:{port}/{args.model}", "POST", body)
        time.sleep(0.5)
        workers = bench.children(p.pid)
        master = mem_kib(p.pid)
        per = [mem_kib(w) for w in workers]
        # kill -9 one worker and time until its replacement reports serving.
        served_before = open(f"{tmp}/error.log").read().count("is serving")
        t1 = time.monotonic()
        os.kill(workers[0], signal.SIGKILL)
        while open(f"{tmp}/error.log").read().count("is serving") <= served_before:
            time.sleep(0.005)
        respawn = time.monotonic() - t1
        return boot, master, per, respawn
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["sleep", "minilm"], default="sleep")
    ap.add_argument("--mb", type=int, default=128)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--mserve", default=os.path.join(bench.ROOT, ".build", "release", "mserve"))
    saved.add_save_argument(ap, None, "memory-MODEL")
    args = ap.parse_args()
    what = f"sleep with weights_mb = {args.mb}" if args.model == "sleep" else "minilm"
    table = saved.Table(f"`mserve -w {args.workers} {what}` (KiB; PSS shares each page among its users):",
                        ["mode", "boot s", "master RSS", "master PSS", "worker RSS", "worker PSS", "PSS of all",
                         "`kill -9` to serving s"])
    for preload in (False, True):
        boot, master, per, respawn = run(args, preload)
        rss = sum(r for r, _ in per) // len(per)
        pss = sum(p for _, p in per) // len(per)
        total = master[1] + sum(p for _, p in per)
        table.add("`--preload`" if preload else "default", f"{boot:.2f}", f"{master[0]:,}", f"{master[1]:,}", f"{rss:,}",
                  f"{pss:,}", f"{total:,}", f"{respawn:.3f}")
    saved.save_tables(args.save or f"memory-{args.model}", [table])


if __name__ == "__main__":
    main()
