#!/usr/bin/env python3
"""Streams, which wrk cannot time: `mserve bench --stream` against a model that streams pieces at a
known pace (the sleep model: 20 pieces over 400 ms, so a token every 20 ms), at concurrencies
below, at and above the worker's model threads.

    python3 benchmark/streams.py [--duration 5]

Prints time to first token, inter-token latency and tokens/s per concurrency: with more streams
than model threads, the excess waits in the queue, which shows in the time to first token while
the pace between tokens stays the model's.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile

from bench import ROOT, free_port, wait_http
import results as saved


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--mserve", default=os.path.join(ROOT, ".build", "release", "mserve"))
    saved.add_save_argument(ap, "streams")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="mserve-streams-")
    port = free_port()
    server = subprocess.Popen([args.mserve, "-w", "1", "-b", f"127.0.0.1:{port}", "--no-control-socket", "--limit-concurrency", "8",
                               "--queue-size", "64", "sleep", "--access-logfile", f"{tmp}/access.log", "--error-logfile", f"{tmp}/error.log"])
    try:
        wait_http(f"http://127.0.0.1:{port}/sleep", "POST", b'{"ms": 0}')
        table = saved.Table(
            "`mserve -w 1 --limit-concurrency 8 sleep`; each stream: 20 pieces over 400 ms (one every 20 ms); "
            f"`mserve bench --stream -d {args.duration}` (ms):",
            ["streams", "req/s", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "tokens/s", "errors"])
        for c in (1, 4, 8, 16):
            out = subprocess.run([args.mserve, "bench", f"http://127.0.0.1:{port}/sleep", "--stream", "--json", "-t", "1",
                                  "-c", str(c), "-d", str(args.duration), "--data", '{"ms": 400, "pieces": 20}'],
                                 capture_output=True, text=True, check=True).stdout
            r = json.loads(out)
            s = r["stream"]
            table.add(c, f"{r['requests_per_second']:.1f}", f"{s['time_to_first_token_ms']['p50']:.1f}",
                      f"{s['time_to_first_token_ms']['p99']:.1f}", f"{s['inter_token_latency_ms']['p50']:.1f}",
                      f"{s['inter_token_latency_ms']['p99']:.1f}", f"{s['tokens_per_second']:.1f}", sum(r['errors'].values()))
        saved.save_tables(args.save, [table])
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
