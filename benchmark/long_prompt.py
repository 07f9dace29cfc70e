#!/usr/bin/env python3
"""A long prompt beside decoding streams (issue 25, item 5): how long the streams' tokens are held
up while the engine reads a prompt of --prompt-tokens, and how long that prompt takes to its first
token.

mserve smollm2 (-w 1) is started once per --step-tokens value; for each, --streams streams
(max_tokens --max-tokens) start decoding, then, once every stream has its first token, one request
with a --prompt-tokens prompt (max_tokens 1) is sent beside them.  Printed per setting: the
streams' inter-token gaps while the prompt was being read (p50, p99, max), the same gaps before it
came (the baseline), and the long prompt's time to its first token.

    python3 benchmark/long_prompt.py [--prompt-tokens 4000] [--streams 2] [--step-tokens 64,256]
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import results as saved  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stream(url, max_tokens, gaps, first, done):
    """Streams until `done`, one request after another (a story may end early): every gap
    between two tokens of one stream is recorded with its end time."""
    body = json.dumps({"model": "smollm2", "messages": [{"role": "user", "content": "Tell me a long story about a ship."}],
                       "max_tokens": max_tokens, "temperature": 0.7, "stream": True}).encode()
    while not done.is_set():
        req = urllib.request.Request(url + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
        last = None
        with urllib.request.urlopen(req, timeout=600) as r:
            for line in r:
                if done.is_set():
                    return   # the connection closes: the server cancels the stream
                if not line.startswith(b"data: {") or b'"content"' not in line:
                    continue
                now = time.monotonic()
                if last is None:
                    first.set()
                else:
                    gaps.append((now, now - last))
                last = now


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def run(binary, step_tokens, args):
    port = bench.free_port()
    url = f"http://127.0.0.1:{port}"
    conf = f"/tmp/mserve-long-prompt-{os.getpid()}.toml"
    with open(conf, "w") as f:
        f.write(f"[model.smollm2]\nstep_tokens = {step_tokens}\n")
    server = subprocess.Popen([binary, "-w", "1", "-b", f"127.0.0.1:{port}", "-c", conf, "--model-dir", args.model_dir,
                               "--request-timeout", "600", "--log-level", "warning", "smollm2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        bench.wait_http(url + "/readyz", timeout=60)
        gaps = []
        firsts = [threading.Event() for _ in range(args.streams)]
        done = threading.Event()
        threads = [threading.Thread(target=stream, args=(url, args.max_tokens, gaps, firsts[i], done)) for i in range(args.streams)]
        for t in threads:
            t.start()
        for e in firsts:
            e.wait(120)
        time.sleep(1)
        sent = time.monotonic()
        body = json.dumps({"model": "smollm2", "prompt": "hello world " * (args.prompt_tokens // 2), "max_tokens": 1}).encode()
        req = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as r:
            r.read()
        answered = time.monotonic()
        done.set()
        for t in threads:
            t.join()
        during = [g for (at, g) in gaps if sent < at <= answered]
        before = [g for (at, g) in gaps if at < sent]
        return {"step_tokens": step_tokens, "prompt_s": answered - sent,
                "during": (percentile(during, 50), percentile(during, 99), max(during, default=float("nan")), len(during)),
                "before": (percentile(before, 50), percentile(before, 99))}
    finally:
        server.terminate()
        server.wait(timeout=30)
        os.unlink(conf)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompt-tokens", type=int, default=4000)
    ap.add_argument("--streams", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=1000)
    ap.add_argument("--step-tokens", default="64,256")
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "mserve"))
    ap.add_argument("--model-dir", default=os.path.join(ROOT, "models", "smollm2"))
    saved.add_save_argument(ap, "long-prompt")
    args = ap.parse_args()
    table = saved.Table(f"{args.streams} streams decoding, then one {args.prompt_tokens:,}-token prompt beside them "
                        "(gaps between a stream's tokens, s):",
                        ["step_tokens", "prompt s", "gap p50", "gap p99", "gap max", "gaps", "before: p50", "before: p99"])
    for st in [int(x) for x in args.step_tokens.split(",")]:
        r = run(args.binary, st, args)
        d, b = r["during"], r["before"]
        table.add(st, f"{r['prompt_s']:.2f}", f"{d[0]:.3f}", f"{d[1]:.3f}", f"{d[2]:.3f}", d[3], f"{b[0]:.3f}", f"{b[1]:.3f}")
    saved.save_tables(args.save, [table])


if __name__ == "__main__":
    main()
