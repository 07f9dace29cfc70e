#!/usr/bin/env python3
"""Requests lost while the server changes under load.  wrk (keep-alive, 50 connections) drives
`POST /demo` on `mserve -w 2` for 10 s per scenario while the scenario's event repeats every 2 s:
HUP, TTIN, TTOU (from 6 workers), --max-requests recycling, and kill -9 of a worker.  Prints the
requests served, wrk's socket errors and non-2xx answers, and p99 latency against a steady run.
With --close every request comes on a new connection (Connection: close).

    python3 benchmark/churn.py [--seconds 10] [--close]
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


def scenario(args, name, workers, extra, event):
    tmp = tempfile.mkdtemp(prefix="mserve-churn-")
    port = bench.free_port()
    p = subprocess.Popen([args.mserve, "-w", str(workers), "-b", f"127.0.0.1:{port}", "demo",
                          "--access-logfile", "off", "--error-logfile", f"{tmp}/error.log"] + extra)
    try:
        bench.wait_http(f"http://127.0.0.1:{port}/demo", "POST", b'{"cal_number": 1}')
        lua = f"{tmp}/p.lua"
        bench.write_lua(lua, "POST", '{"cal_number": 1}', args.close)
        wrk = subprocess.Popen(["wrk", "--latency", "-t2", "-c50", f"-d{args.seconds}s", "-s", lua,
                                f"http://127.0.0.1:{port}/demo"], stdout=subprocess.PIPE, text=True)
        events = 0
        deadline = time.monotonic() + args.seconds - 1
        while event and time.monotonic() + 2 < deadline:
            time.sleep(2)
            event(p)
            events += 1
        out = wrk.communicate()[0]
        reqs = int(re.search(r"(\d+) requests in", out).group(1))
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        socket_errors = sum(int(x) for x in errors.groups()) if errors else 0
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        with open(f"{tmp}/error.log") as f:
            log = f.read()
        return {"name": name, "events": events, "requests": reqs, "socket_errors": socket_errors,
                "non2xx": int(non2xx.group(1)) if non2xx else 0, "p99": bench.parse_latency(out, "99%"),
                "recycled": log.count("reached max-requests;")}
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


def kill_a_worker(p):
    kids = bench.children(p.pid)
    if kids:
        os.kill(kids[0], signal.SIGKILL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--close", action="store_true", help="a new connection per request")
    ap.add_argument("--mserve", default=os.path.join(bench.ROOT, ".build", "release", "mserve"))
    saved.add_save_argument(ap, None, "churn, churn-close with --close")
    args = ap.parse_args()
    runs = [
        scenario(args, "steady", 2, [], None),
        scenario(args, "HUP", 2, [], lambda p: p.send_signal(signal.SIGHUP)),
        scenario(args, "TTIN", 2, [], lambda p: p.send_signal(signal.SIGTTIN)),
        scenario(args, "TTOU", 6, [], lambda p: p.send_signal(signal.SIGTTOU)),
        scenario(args, "max-requests", 2, ["--max-requests", "20000", "--max-requests-jitter", "5000"], None),
        scenario(args, "kill -9", 2, [], kill_a_worker),
    ]
    table = saved.Table(
        f"wrk -t2 -c50 {'`Connection: close`' if args.close else 'keep-alive'}, {args.seconds} s per scenario, `POST /demo` on "
        f"`mserve -w 2` (TTOU: `-w 6`), an event every 2 s:",
        ["scenario", "events", "requests", "socket errors", "non-2xx", "p99 ms"])
    for r in runs:
        events = r["recycled"] if r["name"] == "max-requests" else r["events"]
        table.add(r["name"], events, f"{r['requests']:,}", r["socket_errors"], r["non2xx"], f"{r['p99']:.2f}")
    saved.save_tables(args.save or ("churn-close" if args.close else "churn"), [table])


if __name__ == "__main__":
    main()
