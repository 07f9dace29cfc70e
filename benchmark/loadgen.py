#!/usr/bin/env python3
"""`mserve bench` against wrk: the same URL, the same connections and threads, interleaved rounds.

    python3 benchmark/loadgen.py [--duration 5] [--rounds 3] [--connections 50]

Targets: `POST /demo` on `mserve -w 2 demo` and a fixed 200 from nginx (`worker_processes 2`).  Both
load generators share the machine's cores with the server, as they would in use, so the
requests/s each reports depends on its own CPU cost as well as the server's.  Prints the median
round of each, and mserve bench's requests/s over wrk's (the issue's target: within 10%).
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile

from bench import ROOT, free_port, require_tools, start_nginx, wait_http, write_lua
import results as saved


def run_wrk(url, lua, args):
    out = subprocess.run(["wrk", "--latency", "-s", lua, "-t", str(args.threads), "-c", str(args.connections),
                          "-d", f"{args.duration}s", url], capture_output=True, text=True).stdout
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)", out, re.M)
    scale = {"us": 0.001, "ms": 1, "s": 1000}
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), float(p50.group(1)) * scale[p50.group(2)]


def run_bench(binary, url, body, args):
    cmd = [binary, "bench", url, "--json", "-t", str(args.threads), "-c", str(args.connections), "-d", str(args.duration), "-w", "0"]
    if body:
        cmd += ["--data", body]
    r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return r["requests_per_second"], r["latency_ms"]["p50"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mserve", default=os.path.join(ROOT, ".build", "release", "mserve"))
    saved.add_save_argument(ap, "loadgen")
    args = ap.parse_args()
    require_tools()
    tmp = tempfile.mkdtemp(prefix="mserve-loadgen-")
    procs = []
    try:
        nginx, nport = start_nginx(tmp)
        procs.append(nginx)
        mport = free_port()
        procs.append(subprocess.Popen([args.mserve, "-w", "2", "-b", f"127.0.0.1:{mport}", "--no-control-socket", "demo",
                                       "--access-logfile", f"{tmp}/access.log", "--error-logfile", f"{tmp}/error.log"]))
        wait_http(f"http://127.0.0.1:{mport}/demo", "POST", b'{"cal_number": 1}')
        body = '{"cal_number": 1}'
        targets = {"mserve POST /demo": f"http://127.0.0.1:{mport}/demo", "nginx fixed 200": f"http://127.0.0.1:{nport}/demo"}
        lua = f"{tmp}/post.lua"
        write_lua(lua, "POST", body, False)
        rounds = {(t, tool): [] for t in targets for tool in ("wrk", "mserve bench")}
        for _ in range(args.rounds):
            for name, url in targets.items():
                rounds[(name, "wrk")].append(run_wrk(url, lua, args))
                rounds[(name, "mserve bench")].append(run_bench(args.mserve, url, body, args))
        table = saved.Table(
            f"`-t{args.threads} -c{args.connections} -d{args.duration}s`, median of {args.rounds} interleaved rounds, "
            f"{os.cpu_count()} cores shared by the server and the load generator:",
            ["target", "tool", "req/s", "p50 ms", "mserve bench / wrk"])
        medians = {(name, tool): sorted(rs)[len(rs) // 2] for (name, tool), rs in rounds.items()}
        for (name, tool), (rps, p50) in medians.items():
            ratio = f"{rps / medians[(name, 'wrk')][0]:.2f}" if tool == "mserve bench" else ""
            table.add(name, tool, f"{rps:,.0f}", f"{p50:.2f}", ratio)
        saved.save_tables(args.save, [table])
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM if p is not procs[0] else signal.SIGQUIT)
        for p in procs:
            p.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
