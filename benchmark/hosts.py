#!/usr/bin/env python3
"""Several machines on one: 1, 2 and 3 hosts (network namespaces, each running mserve) through
nginx and through HAProxy, run from the shipped configs, for `demo` and `minilm`; and one host
without a balancer.  The hosts share this machine's two cores, so a linear scale-up is impossible:
what is reported is how efficiently the whole system turns CPU into answers -- requests per
CPU-second of every process (hosts, balancer, load generator) -- and what the balancer costs per
request, in µs of its own CPU.

Load: `mserve bench` in the balancer's namespace, closed loop, --connections keep-alive connections.
Needs root (ip netns), nginx and haproxy (scripts/setup with MSERVE_TEST_DEPS=1).

    sudo python3 benchmark/hosts.py [--seconds 8] [--connections 32] [--workers 1] [--models demo,minilm]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "Tests" / "integration"))
os.environ.setdefault("MSERVE_BIN", str(ROOT / ".build" / "release" / "mserve"))
import balancers  # noqa: E402
import hosts  # noqa: E402
from conftest import MSERVE  # noqa: E402
import results as saved  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    total = 0.0
    for p in pids:
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / TICKS
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return total


def tree(pid):
    """pid and its descendants."""
    out = [pid]
    kids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    for k in kids:
        out += tree(int(k))
    return out


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(net, d, kind, n, model, a):
    """One configuration: n hosts, `kind` in front (or "direct"); the bench's JSON and CPU figures."""
    started = []
    try:
        for i in range(n):
            h = hosts.Host(net, i, d, extra=["--drain-seconds", "0", "--access-logfile", "off"], workers=a.workers, model=model)
            started.append(h)
        for h in started:
            h.wait_serving(timeout=120)
        bal = None
        if kind == "direct":
            url_host, port, ns = net.addresses[0], 8000, net.balancer
        else:
            targets = [f"{addr}:8000" for addr in net.addresses[:n]]
            dd = d / f"{kind}-{model}-{n}"
            dd.mkdir()
            if kind == "nginx":
                cfg = balancers.nginx_config(dd, targets, "127.0.0.1:8080", "127.0.0.1:8443")
                # Measured without the access log, as the hosts are.
                text = (dd / "mserve.conf").read_text().replace(f"access_log {dd}/nginx-access.log mserve;", "access_log off;")
                (dd / "mserve.conf").write_text(text)
            else:
                cfg = balancers.haproxy_config(dd, targets, "127.0.0.1:8080", "127.0.0.1:8443", f"{net.gateway}:9999")
                text = cfg.read_text().replace("    option httplog\n", "    option dontlog-normal\n")
                cfg.write_text(text)
            bal = balancers.Balancer(kind, cfg, dd, netns=net.balancer)
            balancers.wait_port("127.0.0.1", 8080, netns=net.balancer)
            url_host, port, ns = "127.0.0.1", 8080, net.balancer
            time.sleep(2.5)   # HAProxy's checks mark the hosts up
        path = "/demo" if model == "demo" else "/v1/embeddings"
        cmd = ["ip", "netns", "exec", ns, MSERVE, "bench", f"http://{url_host}:{port}{path}", "-c", str(a.connections),
               "-d", str(a.seconds), "-w", "0", "-t", "2", "--json"]
        if model != "demo":
            cmd += ["--model", model, "--prompt", "The quick brown fox jumps over the lazy dog near the river bank."]
        host_pids = [p for h in started for p in tree(h.pid)]
        bal_pids = tree(bal.proc.pid) if bal else []
        h0, b0, c0 = cpu_seconds(host_pids), cpu_seconds(bal_pids), children_cpu()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=a.seconds + 60)
        h1, b1, c1 = cpu_seconds(host_pids), cpu_seconds(bal_pids), children_cpu()
        if out.returncode != 0:
            raise SystemExit(f"bench failed: {out.stderr}")
        res = json.loads(out.stdout)
        reqs = res["requests"]
        cpu = (h1 - h0) + (b1 - b0) + (c1 - c0)
        return {"balancer": kind, "hosts": n, "model": model, "requests": reqs, "rps": res["requests_per_second"],
                "errors": sum(res["errors"].values()) + sum(v for k, v in res["status"].items() if k != "200"),
                "p99_ms": res["latency_ms"].get("p99"), "cpu_s": round(cpu, 2),
                "req_per_cpu_s": round(reqs / cpu, 1) if cpu else None,
                "balancer_us_per_req": round((b1 - b0) / reqs * 1e6, 1) if bal and reqs else None,
                "hosts_us_per_req": round((h1 - h0) / reqs * 1e6, 1) if reqs else None}
    finally:
        if kind != "direct" and 'bal' in locals() and bal:
            bal.stop()
        for h in started:
            h.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--workers", type=int, default=1, help="workers per host")
    p.add_argument("--models", default="demo,minilm")
    p.add_argument("--json", action="store_true")
    saved.add_save_argument(p, "hosts")
    a = p.parse_args()
    why = hosts.namespaces_available()
    if why:
        raise SystemExit(f"hosts.py: {why}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="mserve-hosts-") as tmp:
        net = hosts.Network(3)
        try:
            for model in a.models.split(","):
                for kind, n in [("direct", 1)] + [(k, n) for k in ("nginx", "haproxy") for n in (1, 2, 3)]:
                    d = Path(tmp) / f"{model}-{kind}-{n}"
                    d.mkdir()
                    rows.append(measure(net, d, kind, n, model, a))
                    r = rows[-1]
                    print(f"{model:<7} {kind:<8} {n} host{'s' if n > 1 else ' '} {r['rps']:>9.1f} req/s  p99 {r['p99_ms']:>7} ms  "
                          f"{r['req_per_cpu_s']:>8} req/CPU-s  balancer {r['balancer_us_per_req'] or '-':>6} µs/req  "
                          f"hosts {r['hosts_us_per_req']:>7} µs/req  errors {r['errors']}", flush=True)
        finally:
            net.close()
    if a.json:
        print(json.dumps(rows, indent=1))
    table = saved.Table(f"`mserve bench`, {a.connections} keep-alive connections, {a.seconds:g} s, {a.workers} worker(s) per host:",
                        ["model", "in front", "hosts", "req/s", "p99 ms", "req per CPU-s", "balancer µs/req", "hosts µs/req",
                         "errors"])
    for r in rows:
        table.add(r["model"], r["balancer"], r["hosts"], f"{r['rps']:,.1f}", r["p99_ms"], r["req_per_cpu_s"],
                  r["balancer_us_per_req"] or "-", r["hosts_us_per_req"], r["errors"])
    saved.save_tables(a.save, [table])


if __name__ == "__main__":
    main()
