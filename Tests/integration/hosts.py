"""Real network hosts on one machine: a balancer namespace holding a bridge, and N host namespaces,
each joined to the bridge by a veth pair, with addresses in a private /24 picked at random.  No
namespace has a route beyond that /24 and its loopback, so no traffic leaves them.  Everything made
(namespaces, and with them their links; processes, by PID) is removed by `close()`."""
import json
import os
import random
import re
import signal
import subprocess
import threading
import time

from conftest import MSERVE
import balancers

HERE = os.path.dirname(os.path.abspath(__file__))


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def namespaces_available():
    """None, or why namespaces cannot be made here."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    for tool in ("ip", "nginx", "haproxy"):
        if not balancers.have(tool):
            return f"{tool} is not installed (scripts/setup installs it with MSERVE_TEST_DEPS=1)"
    name = f"msvprobe{os.getpid() % 100000}"
    r = ip("netns", "add", name, check=False)
    if r.returncode != 0:
        return f"ip netns add failed: {r.stderr.strip()}"
    ip("netns", "del", name, check=False)
    return None


class Network:
    def __init__(self, hosts=3):
        tag = f"{os.getpid() % 0xFFFF:04x}"
        self.balancer = f"msv{tag}b"
        self.hosts = [f"msv{tag}h{i + 1}" for i in range(hosts)]
        self.links = [f"msv{tag}v{i + 1}" for i in range(hosts)]
        self.subnet = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
        self.gateway = f"{self.subnet}.1"
        self.addresses = [f"{self.subnet}.{11 + i}" for i in range(hosts)]
        self.made = []
        try:
            self._make()
        except Exception:
            self.close()
            raise

    def _make(self):
        for ns in [self.balancer] + self.hosts:
            ip("netns", "add", ns)
            self.made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", self.balancer, "link", "add", "br0", "type", "bridge")
        ip("-n", self.balancer, "addr", "add", f"{self.gateway}/24", "dev", "br0")
        ip("-n", self.balancer, "link", "set", "br0", "up")
        for ns, link, addr in zip(self.hosts, self.links, self.addresses):
            ip("link", "add", link, "netns", self.balancer, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("-n", self.balancer, "link", "set", link, "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")

    def partition(self, i, down=True):
        """Host i's link to the bridge goes down (or comes back up)."""
        ip("-n", self.balancer, "link", "set", self.links[i], "down" if down else "up")

    def close(self):
        for ns in reversed(self.made):
            ip("netns", "del", ns, check=False)
        self.made = []


class Host:
    """mserve in host namespace i: `-w 2 -b ADDR:8000 --agent-bind ADDR:8001 demo`."""

    def __init__(self, net, i, d, extra=(), workers=2, model="demo"):
        self.net, self.i = net, i
        self.address = net.addresses[i]
        self.d = d / f"host{i + 1}-{int(time.time() * 1000) % 100000}"
        self.d.mkdir(parents=True)
        env = dict(os.environ, XDG_RUNTIME_DIR=str(self.d))
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", net.hosts[i], MSERVE, "-w", str(workers), "-b", f"{self.address}:8000",
             "--agent-bind", f"{self.address}:8001", "--error-logfile", str(self.d / "error.log"),
             "--access-logfile", str(self.d / "access.log"), *extra, model],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
        self.pid = self.proc.pid

    def log(self):
        try:
            return (self.d / "error.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_serving(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(r"(workers are|worker is) serving", self.log()):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"host {self.i + 1} exited: {self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"host {self.i + 1} not serving: {self.log()}")

    def pids(self):
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.pid)], capture_output=True, text=True).stdout
        return [self.pid] + [int(p) for p in out.split()]

    def term(self):
        os.kill(self.pid, signal.SIGTERM)

    def kill9(self):
        for p in self.pids():
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc.poll() is None:
            pids = self.pids()
            self.term()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(timeout=5)
        if self.proc.stderr:
            self.proc.stderr.close()


class Load:
    """load_clients.py in the balancer's namespace, against the balancer's front address."""

    def __init__(self, net, d, url, clients=8):
        self.stop_file = d / "load.stop"
        self.out = d / "load.json"
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", net.balancer, "python3", os.path.join(HERE, "load_clients.py"), url,
             "--clients", str(clients), "--until-file", str(self.stop_file), "--out", str(self.out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    def finish(self):
        self.stop_file.touch()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        assert self.out.exists(), f"the load produced no results: {err}"
        return json.loads(self.out.read_text())


class StatePoller:
    """HAProxy's `show servers state`, every 100 ms, over its unix admin socket (file systems are not
    namespaced): the times servers change state."""

    def __init__(self, admin_socket, backend="mserve"):
        self.path, self.backend = str(admin_socket), backend
        self.changes = []  # (wall time, server, op_state, admin_state)
        self.last = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def query(self):
        return {r["addr"]: (r["op"], r["admin"]) for r in balancers.server_rows(self.path, self.backend)}

    def run(self):
        while not self.done.is_set():
            try:
                now = time.time()
                states = self.query()
                for addr in set(states) | set(self.last):
                    if states.get(addr) != self.last.get(addr):
                        self.changes.append((now, addr) + (states.get(addr) or (None, None)))
                self.last = states
            except OSError:
                pass
            time.sleep(0.1)

    def stop(self):
        self.done.set()
        self.thread.join(5)


def percentile(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def served_by(hosts):
    """{recordid: host number} from every host's access log (restarted hosts included)."""
    import re
    rx = re.compile(r" rid=(\S+)")
    out = {}
    for h in hosts:
        try:
            for line in (h.d / "access.log").read_text(errors="replace").splitlines():
                m = rx.search(line)
                if m:
                    out[m.group(1)] = h.i + 1
        except FileNotFoundError:
            pass
    return out


def nginx_failures(d, address, after):
    """Log times of requests that nginx tried on `address` without getting an answer (each one marks
    the host failed for fail_timeout): the attempt's upstream status is "-" or 502."""
    import re
    times = []
    try:
        text = (d / "nginx-access.log").read_text(errors="replace")
    except FileNotFoundError:
        return times
    for line in text.splitlines():
        m = re.search(r"msec=([\d.]+) .* upstream=(.*) upstream_status=(.*) request_time", line)
        if not m or float(m.group(1)) < after:
            continue
        for addr, status in zip(m.group(2).split(", "), m.group(3).split(", ")):
            if addr == f"{address}:8000" and status in ("-", "502", "504"):
                times.append(float(m.group(1)))
    return times


class Scenario:
    """One balancer in front of three hosts under 8 clients, through: a host added (HAProxy: by
    --announce; nginx: a config reload), TERM of that host (drain), kill -9 of another, its return,
    a partition of the third, and its return.  Every request counted; per event: lost, p99
    latency, and when the balancer noticed."""

    STEADY = 3.0

    def __init__(self, kind, d, retries, drain_seconds=5):
        self.kind, self.d, self.retries, self.drain = kind, d, retries, drain_seconds
        self.events = []   # (name, wall time)
        self.notice = {}   # event name -> seconds
        self.hosts = []

    def mark(self, name):
        self.events.append((name, time.time()))

    def start_host(self, net, i, extra=()):
        h = Host(net, i, self.d, extra=["--drain-seconds", str(self.drain), *extra])
        self.hosts.append(h)
        h.wait_serving()
        return h

    def log_sizes(self, i):
        sizes = {}
        for h in self.hosts:
            if h.i == i:
                try:
                    sizes[h.d] = (h.d / "access.log").stat().st_size
                except FileNotFoundError:
                    sizes[h.d] = 0
        return sizes

    def wait_for_requests(self, i, before, timeout=20):
        """Until host i (0-based) logs a request beyond `before` (its access logs' sizes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(size > before.get(d, 0) for d, size in self.log_sizes(i).items()):
                return
            time.sleep(0.1)
        raise AssertionError(f"host {i + 1} got no requests within {timeout} s")

    def run(self, net):
        gw = net.gateway
        d = self.d
        api = f"{gw}:9999"
        for i in (0, 1):
            self.start_host(net, i)
        two = [f"{a}:8000" for a in net.addresses[:2]]
        if self.kind == "nginx":
            # Every host listed from the start (open-source nginx adds servers only by a reload,
            # which closes its clients' idle keep-alive connections): host 3 is found once it runs.
            cfg = balancers.nginx_config(d, [f"{a}:8000" for a in net.addresses], "127.0.0.1:8080", "127.0.0.1:8443",
                                         retries=self.retries)
        else:
            cfg = balancers.haproxy_config(d, two, "127.0.0.1:8080", "127.0.0.1:8443", api, retries=self.retries)
        ok, out = balancers.check(self.kind, cfg, d, netns=net.balancer)
        assert ok, out
        bal = balancers.Balancer(self.kind, cfg, d, netns=net.balancer)
        poller = None
        load = None
        try:
            balancers.wait_port("127.0.0.1", 8080, netns=net.balancer)
            if self.kind == "haproxy":
                poller = StatePoller(d / "admin.sock")
                deadline = time.monotonic() + 10
                while sum(1 for s in poller.last.values() if s[0] == 2) < 2 and time.monotonic() < deadline:
                    time.sleep(0.1)
            load = Load(net, d, "http://127.0.0.1:8080/demo")
            self.load_started = time.time()
            time.sleep(self.STEADY)

            # A host is added.
            self.mark("add")
            if self.kind == "haproxy":
                self.start_host(net, 2, ["--announce", f"haproxy://{api}/mserve", "--announce-name", "h3"])
            else:
                self.start_host(net, 2)
            self.wait_for_requests(2, {})
            time.sleep(2)

            # It leaves: TERM, drain, stop.
            self.mark("drain")
            h3 = self.hosts[-1]
            h3.term()
            h3.proc.wait(timeout=self.drain + 40)
            time.sleep(1)

            # Another is killed, then comes back.
            self.mark("kill -9")
            self.hosts[1].kill9()
            time.sleep(4)
            self.mark("back")
            self.start_host(net, 1)
            self.wait_for_requests(1, {})
            time.sleep(2)

            # The third is cut off, then its link returns.
            self.mark("partition")
            net.partition(0)
            time.sleep(6)
            before = self.log_sizes(0)
            self.mark("heal")
            net.partition(0, down=False)
            self.wait_for_requests(0, before, timeout=30)
            time.sleep(2)
            self.mark("end")
            self.records = load.finish()
            load = None
        finally:
            if load:
                load.finish()
            if poller:
                poller.stop()
            bal.stop()
            self.balancer_output = bal.output()
            for h in self.hosts:
                h.stop()
        self.poller = poller
        return self.report(net)

    def report(self, net):
        where = served_by(self.hosts)
        rows = [("steady", self.load_started + 1, self.events[0][1])] + [
            (name, t, self.events[k + 1][1]) for k, (name, t) in enumerate(self.events[:-1])]
        out = {"balancer": self.kind, "retries": self.retries, "requests": len(self.records),
               "lost": sum(1 for r in self.records if r[2] != "ok"), "events": []}
        starts = dict(self.events)
        # When the balancer noticed: HAProxy's own state changes; nginx's first retry elsewhere;
        # for an added or returning host, its first request.
        for name, host in (("add", 3), ("back", 2), ("heal", 1)):
            first = min((r[0] for r in self.records if r[0] >= starts[name] and where.get(r[4]) == host), default=None)
            self.notice[name] = first - starts[name] if first else None
        addr = {"drain": net.addresses[2], "kill -9": net.addresses[1], "partition": net.addresses[0]}
        for name, a in addr.items():
            t = starts[name]
            if self.kind == "haproxy" and self.poller:
                changes = [c for c in self.poller.changes if c[1] == a and c[0] >= t and (c[2] != 2 or (c[3] or 0) & 8)]
                self.notice[name] = changes[0][0] - t if changes else None
            elif name == "drain":
                last = max((r[0] for r in self.records if where.get(r[4]) == 3 and r[0] >= t), default=None)
                self.notice[name] = last - t if last else None
            else:
                fails = nginx_failures(self.d, a, t)
                self.notice[name] = fails[0] - t if fails else None
        for name, t0, t1 in rows:
            window = [r for r in self.records if t0 <= r[0] < t1]
            lost = [r for r in window if r[2] != "ok"]
            reasons = {}
            for r in lost:
                reasons[r[2]] = reasons.get(r[2], 0) + 1
            out["events"].append({"event": name, "seconds": round(t1 - t0, 1), "requests": len(window),
                                  "lost": len(lost), "why": reasons,
                                  "p50_ms": _ms(percentile([r[1] for r in window], 0.5)),
                                  "p99_ms": _ms(percentile([r[1] for r in window], 0.99)),
                                  "max_ms": _ms(max((r[1] for r in window), default=None)),
                                  "noticed_s": _round(self.notice.get(name))})
        return out


def _ms(s):
    return None if s is None else round(s * 1000, 1)


def _round(s):
    return None if s is None else round(s, 2)


def print_report(rep):
    print(f"\n{rep['balancer']} retries {'on' if rep['retries'] else 'off'}: {rep['requests']} requests, {rep['lost']} lost")
    print(f"  {'event':<10} {'s':>5} {'requests':>8} {'lost':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'noticed s':>9}  why")
    for e in rep["events"]:
        print(f"  {e['event']:<10} {e['seconds']:>5} {e['requests']:>8} {e['lost']:>5} {e['p50_ms'] or '-':>8} "
              f"{e['p99_ms'] or '-':>8} {e['max_ms'] or '-':>8} {e['noticed_s'] if e['noticed_s'] is not None else '-':>9}  {e['why'] or ''}")
