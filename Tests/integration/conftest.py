"""Integration tests: they start the real mserve binary on loopback, send real HTTP, signal and kill
real processes, and read the real logs.  Every process a test starts is stopped by PID."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

MSERVE = os.environ.get("MSERVE_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", ".build", "release", "mserve")


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def children(pid):
    """The live child pids of a process, from /proc."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            pass
    return sorted(out)


class Server:
    """One mserve master started by a test, with its logs in files."""

    def __init__(self, tmp_path, args, workers=2, env=None, wait=True, port=0, preexec=None, binary=None, log_dir=None):
        self.tmp = tmp_path
        self.error_log = (log_dir or tmp_path) / "error.log"
        self.access_log = (log_dir or tmp_path) / "access.log"
        self.port = port
        self.args = [binary or MSERVE, "-w", str(workers), "-b", f"127.0.0.1:{port}",
                     "--error-logfile", str(self.error_log),
                     "--access-logfile", str(self.access_log)] + list(args)
        self.workers = workers
        full_env = dict(os.environ)
        # The control socket's default place is the test's own, never the user's ~/.mserve.
        full_env["XDG_RUNTIME_DIR"] = str(tmp_path)
        # Tests stop servers with TERM constantly; the drain is tested where a test asks for it.
        full_env["MSERVE_DRAIN_SECONDS"] = "0"
        full_env.update(env or {})
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=full_env, start_new_session=True, preexec_fn=preexec)
        self.pid = self.proc.pid
        if wait:
            self.wait_ready()

    def log(self):
        try:
            return self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def access(self):
        try:
            return self.access_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=10.0, count=1):
        rx = re.compile(pattern)
        return wait_for(lambda: len(rx.findall(self.log())) >= count and rx.findall(self.log()),
                        timeout, what=f"log line /{pattern}/ x{count}\n--- log ---\n{self.log()[-3000:]}")

    def wait_ready(self, timeout=20.0):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"mserve exited with {self.proc.returncode}:\n{self.log()}\n"
                                     f"{self.proc.stderr.read().decode(errors='replace')}")
            if re.search(r"(workers are|worker is) serving", self.log()):
                return True
            # With --log-level above info there is no such line: the test chose the port.
            if self.port and len(self.worker_pids()) == self.workers:
                try:
                    return requests.get(f"http://127.0.0.1:{self.port}/", timeout=1).status_code == 200
                except requests.RequestException:
                    return False
            return False
        wait_for(ready, timeout, what="workers serving")
        if not self.port:
            m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", self.log())
            self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def worker_pids(self):
        return children(self.pid)

    def post(self, path, body=None, **kw):
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        headers = kw.pop("headers", {"Content-Type": "application/json"})
        return requests.post(self.url + path, data=data, headers=headers, timeout=kw.pop("timeout", 10), **kw)

    def get(self, path, **kw):
        return requests.get(self.url + path, timeout=kw.pop("timeout", 10), **kw)

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait_exit(self, timeout=15.0):
        return self.proc.wait(timeout=timeout)

    def stop(self):
        """Stops the master and every worker it had, by PID."""
        if self.proc.poll() is None:
            pids = self.worker_pids()
            try:
                self.signal(signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def start(tmp_path):
    servers = []

    def _start(*args, wait=True, **kw):
        d = tmp_path / f"s{len(servers)}"
        d.mkdir()
        s = Server(d, args, wait=False, **kw)
        servers.append(s)  # before waiting, so that a server that fails to start is still stopped
        if wait:
            s.wait_ready()
        return s

    yield _start
    for s in servers:
        s.stop()


@pytest.fixture
def notify(tmp_path):
    """A datagram socket standing in for systemd's NOTIFY_SOCKET: (path, socket)."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield path, sock
    sock.close()


def http_ok(url):
    """Whether GET url answers 200 now (False on any connection error)."""
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_until_closed(sock):
    """Everything the server sends on a socket until it closes it."""
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def raw_request(port, data, timeout=5.0):
    """Sends bytes on a fresh connection and returns what the server answered until it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)


def parse_response(raw):
    """(status, headers, body) of the first complete HTTP response in raw, or None."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    if len(rest) < n:
        return None
    return status, headers, rest[:n]


@pytest.fixture(scope="session")
def openai_python(tmp_path_factory):
    """A venv with the official openai client: pip install from PyPI, as a user would."""
    venv = tmp_path_factory.mktemp("openai-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "openai"], check=True, timeout=600)
    return py


def wait_ready_or_exit(proc, port, what, timeout=60):
    """Until a master started outside Server answers /readyz on `port` with 200, or exits (then
    its standard error is the failure)."""
    def up():
        try:
            return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return proc.poll() is not None
    wait_for(up, timeout=timeout, what=what)
    assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-3000:]


def stop_master(proc):
    """TERM to a master started outside Server (by a wrapper), then check that it exited cleanly
    and that its workers are gone."""
    workers = children(proc.pid) if proc.poll() is None else []
    proc.terminate()
    assert proc.wait(timeout=15) == 0
    for w in workers:
        assert not os.path.exists(f"/proc/{w}") or open(f"/proc/{w}/stat").read().split()[2] == "Z"


def demo_statuses(base_url, n):
    """The statuses of n demo requests, each on a new connection (so that they spread over workers)."""
    return [requests.post(base_url + "/demo", json={"cal_number": 1}, headers={"Connection": "close"}, timeout=5).status_code
            for _ in range(n)]
