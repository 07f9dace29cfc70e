#!/usr/bin/env python3
"""mserve against nginx on this machine, in one run.

wrk drives `POST /demo` on `mserve -w 2` (access and error logs on, written to files) and a fixed 200
from nginx with `worker_processes 2` (the machine's ceiling), with keep-alive and with
`Connection: close`.  A third contender, `POST /sleep {"ms": 0}` on the same mserve, takes the path
of every model that does not run on the event loop: the hand-off to a model thread and back.  For each it prints requests/s, p50 and p99 latency, server CPU microseconds per
request (utime+stime of every server process, from /proc, and the user-space part alone) and resident memory per worker.

    python3 benchmark/bench.py [--duration 10] [--connections 50] [--rounds 3]

With `--baseline PATH` another mserve binary (say, the build before a change) runs beside it on its
own port, in the same interleaved rounds, and the ratios of the two are printed.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import results as saved

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")
# How the report names each server.
SHOWN = {"nginx": "nginx (fixed 200)", "mserve": "mserve (`POST /demo`)", "mserve-thread": "mserve-thread (`POST /sleep`)"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            out += [int(x) for x in f.read().split()]
    return out


def cpu_seconds(pids):
    """(user, system) CPU seconds of these processes."""
    user = system = 0
    for p in pids:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        user += int(fields[11])
        system += int(fields[12])
    return user / TICK, system / TICK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def wait_http(url, method="GET", body=None, timeout=20, headers=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json", **dict(headers)})
            with urllib.request.urlopen(req, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def parse_latency(text, label):
    m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url, args, lua, pids):
    cpu0 = cpu_seconds(pids)
    p = subprocess.run(["wrk", "--latency", "-s", lua, *args, url], capture_output=True, text=True)
    cpu1 = cpu_seconds(pids)
    out = p.stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock_err = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": parse_latency(out, "50%"),
        "p99": parse_latency(out, "99%"),
        "cpu_us": (cpu1[0] + cpu1[1] - cpu0[0] - cpu0[1]) / max(reqs, 1) * 1e6,
        "user_us": (cpu1[0] - cpu0[0]) / max(reqs, 1) * 1e6,
        "requests": reqs,
        "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": sock_err.group(1) if sock_err else "none",
    }


def run_mserve_bench(binary, url, args, body, pids, extra):
    """The same measurement with mserve bench as the client (it can sign every request)."""
    cpu0 = cpu_seconds(pids)
    out = subprocess.run([binary, "bench", url, "--json", "-w", "0", "-t", str(args.threads), "-c", str(args.connections),
                          "-d", str(args.duration), "--data", body, *extra], capture_output=True, text=True, check=True).stdout
    cpu1 = cpu_seconds(pids)
    r = json.loads(out)
    reqs = r["requests"]
    return {
        "rps": r["requests_per_second"], "p50": r["latency_ms"]["p50"], "p99": r["latency_ms"]["p99"],
        "cpu_us": (cpu1[0] + cpu1[1] - cpu0[0] - cpu0[1]) / max(reqs, 1) * 1e6,
        "user_us": (cpu1[0] - cpu0[0]) / max(reqs, 1) * 1e6, "requests": reqs,
        "non2xx": sum(v for k, v in r["status"].items() if not k.startswith("2")),
        "socket_errors": ", ".join(f"{k} {v}" for k, v in r["errors"].items() if not k.isdigit()) or "none",
    }


def write_lua(path, method, body, close, extra_headers=()):
    headers = 'wrk.headers["Content-Type"] = "application/json"\n'
    for name, value in extra_headers:
        headers += f'wrk.headers["{name}"] = "{value}"\n'
    if close:
        headers += 'wrk.headers["Connection"] = "close"\n'
    with open(path, "w") as f:
        f.write(f'wrk.method = "{method}"\n')
        if body:
            f.write(f"wrk.body = '{body}'\n")
        f.write(headers)


def require_tools():
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is not installed (MSERVE_TEST_DEPS=1 bash scripts/setup --build installs it)")


def start_nginx(tmp):
    """nginx with two workers answering a fixed 200, the ceiling of this machine: (process, port)."""
    nport = free_port()
    os.makedirs(f"{tmp}/nginx/logs")
    with open(f"{tmp}/nginx/nginx.conf", "w") as f:
        f.write(f"""
worker_processes 2;
daemon off;
pid {tmp}/nginx/nginx.pid;
error_log {tmp}/nginx/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{nport} reuseport;
        location / {{ default_type application/json; return 200 '{{"recordid":"b","result":1}}'; }}
    }}
}}
""")
    nginx = subprocess.Popen(["nginx", "-p", f"{tmp}/nginx", "-c", f"{tmp}/nginx/nginx.conf"])
    wait_http(f"http://127.0.0.1:{nport}/demo")
    return nginx, nport


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds per server and mode, interleaved; the median round is reported")
    ap.add_argument("--mserve", default=os.path.join(ROOT, ".build", "release", "mserve"))
    ap.add_argument("--baseline", help="another mserve binary to measure in the same rounds")
    ap.add_argument("--quick", action="store_true",
                    help="keep-alive only, without the thread path: for comparing builds while changing the request path")
    ap.add_argument("--keys", action="store_true",
                    help="also mserve with a keys file of 100 keys, each request with Authorization: Bearer KEY")
    saved.add_save_argument(ap, "bench")
    args = ap.parse_args()
    require_tools()

    tmp = tempfile.mkdtemp(prefix="mserve-bench-")
    procs = []
    try:
        nginx, nport = start_nginx(tmp)
        procs.append(nginx)

        def start_mserve(binary, name, extra=()):
            port = free_port()
            # A queue deep enough for every connection: the thread path is measured without 503s.
            p = subprocess.Popen([binary, "-w", "2", "-b", f"127.0.0.1:{port}", *extra, "demo", "sleep",
                                  "--queue-size", str(args.connections),
                                  "--access-logfile", f"{tmp}/{name}-access.log", "--error-logfile", f"{tmp}/{name}-error.log"])
            procs.append(p)
            wait_http(f"http://127.0.0.1:{port}/demo", "POST", b'{"cal_number": 1}', headers=headers.get(name, ()))
            return p, port

        demo = '{"recordid": "bench", "cal_number": 1}'
        servers = {"nginx": (f"http://127.0.0.1:{nport}/demo", [nginx.pid] + children(nginx.pid), demo)}
        contenders = [("mserve", args.mserve, ())] + ([("baseline", args.baseline, ())] if args.baseline else [])
        headers = {}
        if args.keys:
            # 100 keys, as a server with many clients has; requests use the last one added.
            keys_file = f"{tmp}/keys"
            for i in range(100):
                key = subprocess.run([args.mserve, "keys", "add", f"client{i}", "--file", keys_file],
                                     capture_output=True, text=True, check=True).stdout.strip()
            # The nonce log holds a million nonces: 5 s of tens of thousands of signed requests a second.
            contenders.append(("keys", args.mserve, ("--keys-file", keys_file, "--signature-window", "5")))
            signing_key = key
            headers = {"keys": [("Authorization", f"Bearer {key}")], "keys-thread": [("Authorization", f"Bearer {key}")]}
        started = {}
        for name, binary, extra in contenders:
            proc, port = start_mserve(binary, name, extra)
            started[name] = proc
            time.sleep(0.5)
            pids = [proc.pid] + children(proc.pid)
            servers[name] = (f"http://127.0.0.1:{port}/demo", pids, demo)
            if not args.quick:
                servers[f"{name}-thread"] = (f"http://127.0.0.1:{port}/sleep", pids, '{"recordid": "bench", "ms": 0}')
        mserve = started["mserve"]
        if args.keys:
            # The same bytes to the server without keys: what checking the key costs, apart from
            # the cost of the longer request that carries it.
            servers["mserve+auth"] = servers["mserve"]
            headers["mserve+auth"] = headers["keys"]
        results = {}
        modes = (("keep-alive", False),) if args.quick else (("keep-alive", False), ("close", True))
        for mode, close in modes:
            rounds = {name: [] for name in servers}
            # Interleaved rounds: whatever else the shared machine does falls on every server alike.
            for _ in range(args.rounds):
                for name, (url, pids, body) in servers.items():
                    lua = f"{tmp}/{name}-{mode}.lua"
                    write_lua(lua, "POST", body, close, headers.get(name, ()))
                    wrk_args = ["-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s"]
                    rounds[name].append(run_wrk(url, wrk_args, lua, pids))
            for name, rs in rounds.items():
                results[(name, mode)] = sorted(rs, key=lambda r: r["rps"])[len(rs) // 2]
        if args.keys:
            # Signed requests need a fresh nonce and HMAC each: mserve bench signs them, and sends
            # the Bearer ones too, so that the client is the same for both.
            url, pids, body = servers["keys"]
            clients = {"bearer-bench": ("-H", f"Authorization: Bearer {signing_key}"),
                       "signed-bench": ("--sign", f"client99={signing_key}")}
            rounds = {name: [] for name in clients}
            for _ in range(args.rounds):
                for name, extra in clients.items():
                    rounds[name].append(run_mserve_bench(args.mserve, url, args, body, pids, extra))
            for name, rs in rounds.items():
                results[(name, "keep-alive")] = sorted(rs, key=lambda r: r["rps"])[len(rs) // 2]

        title = (f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, median of {args.rounds} interleaved rounds, "
                 f"POST /demo, mserve -w 2 with access and error logs to files, nginx worker_processes 2 returning a "
                 f"fixed 200, {os.cpu_count()} cores:")
        table = saved.Table(title, ["server", "connections", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "user µs/req",
                                    "non-2xx", "socket errors"])
        for (name, mode), r in results.items():
            table.add(SHOWN.get(name, name), mode if mode != "close" else "`Connection: close`", f"{r['rps']:,.0f}",
                      f"{r['p50']:.2f}", f"{r['p99']:.2f}", f"{r['cpu_us']:.1f}", f"{r['user_us']:.1f}", r["non2xx"],
                      r["socket_errors"])
        ratios = saved.Table("Ratios, same rounds:", ["pair", "connections", "requests/s", "CPU per request"])
        for name in ("mserve",) if args.quick else ("mserve", "mserve-thread"):
            for mode, _ in modes:
                m, n = results[(name, mode)], results[("nginx", mode)]
                ratios.add(f"{name} / nginx", mode, f"{m['rps'] / n['rps']:.2f}", f"{m['cpu_us'] / n['cpu_us']:.2f}")
                if args.keys:
                    k = results[(name.replace("mserve", "keys"), mode)]
                    ratios.add(f"{name.replace('mserve', 'keys')} / {name}", mode, f"{k['rps'] / m['rps']:.2f}",
                               f"{k['cpu_us'] / m['cpu_us']:.2f}")
                    if name == "mserve":
                        # The same Authorization header sent to both: what checking the key costs.
                        a = results[("mserve+auth", mode)]
                        ratios.add("keys / mserve+auth", mode, f"{k['rps'] / a['rps']:.2f}", f"{k['cpu_us'] / a['cpu_us']:.2f}")
                if args.baseline:
                    b = results[(name.replace("mserve", "baseline"), mode)]
                    ratios.add(f"{name} / baseline", mode, f"{m['rps'] / b['rps']:.2f}", f"{m['cpu_us'] / b['cpu_us']:.2f}")
        if args.keys:
            b, sgn = results[("bearer-bench", "keep-alive")], results[("signed-bench", "keep-alive")]
            ratios.add("signed / bearer (both sent by mserve bench)", "keep-alive", f"{sgn['rps'] / b['rps']:.2f}",
                       f"{sgn['cpu_us'] / b['cpu_us']:.2f}")
        workers = children(mserve.pid)
        print("resident memory: mserve master %d KiB, workers %s KiB; nginx workers %s KiB" % (
            rss_kib(mserve.pid), ", ".join(str(rss_kib(p)) for p in workers),
            ", ".join(str(rss_kib(p)) for p in children(nginx.pid))))
        with open(f"{tmp}/mserve-access.log") as f:
            lines = sum(1 for _ in f)
        print(f"access log lines written by mserve: {lines}")
        if not args.quick:
            name = "bench-keys" if args.keys and args.save == "bench" else args.save
            saved.save_tables(name, [table, ratios])
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM if p is not procs[0] else signal.SIGQUIT)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
