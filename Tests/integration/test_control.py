"""The master's control socket (gunicornc's framing and commands) and `mserve ctl`, against a real
master: what it reports is checked against /proc, what it changes against the processes and the
HTTP answers."""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import MSERVE, children, wait_for


@pytest.fixture
def ctl_dir():
    # Short (a Unix socket path has 107 bytes) and traversable by anyone, so that only the
    # socket's own mode decides who gets in.
    d = tempfile.mkdtemp(prefix="mctl")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def read_frame(s):
    header = b""
    while len(header) < 4:
        chunk = s.recv(4 - len(header))
        if not chunk:
            return None
        header += chunk
    (n,) = struct.unpack(">I", header)
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        assert chunk, "connection closed mid-frame"
        body += chunk
    return json.loads(body)


def send(s, command, id=1, args=()):
    payload = json.dumps({"id": id, "command": command, "args": list(args)}).encode()
    s.sendall(struct.pack(">I", len(payload)) + payload)
    return read_frame(s)


def command(path, text):
    with connect(path) as s:
        reply = send(s, text)
    assert reply["status"] == "ok", reply
    return reply["data"]


def ctl(*args, input=None):
    return subprocess.run([MSERVE, "ctl", *args], capture_output=True, text=True, timeout=30, input=input)


def test_every_command_against_a_master_with_two_workers(start, ctl_dir):
    path = f"{ctl_dir}/c.sock"
    s = start("--control-socket", path, "demo", "sleep", workers=2)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert f"Control socket: {path}" in s.log()

    workers = command(path, "show workers")
    assert workers["count"] == 2
    assert sorted(w["pid"] for w in workers["workers"]) == s.worker_pids()
    ps = subprocess.run(["ps", "-o", "pid=", "--ppid", str(s.pid)], capture_output=True, text=True).stdout.split()
    assert sorted(int(p) for p in ps) == sorted(w["pid"] for w in workers["workers"])
    assert [w["slot"] for w in workers["workers"]] == [0, 1]
    assert all(w["state"] == "serving" and w["last_heartbeat"] < 5 for w in workers["workers"])
    # Memory as /proc says (within a megabyte: the process lives on between the two readings).
    for w in workers["workers"]:
        with open(f"/proc/{w['pid']}/status") as f:
            rss_kb = int(next(l for l in f if l.startswith("VmRSS:")).split()[1])
        assert abs(w["rss_mb"] - rss_kb / 1024) < 1.0 and w["cpu_s"] >= 0

    for n in range(3):
        assert s.post("/demo", {"cal_number": 1}).status_code == 200
    stats = command(path, "show stats")
    assert stats["pid"] == s.pid and stats["workers_current"] == 2 and stats["workers_target"] == 2
    assert stats["ready"] is True and stats["draining"] is False and stats["models"] == ["demo", "sleep"]
    assert wait_for(lambda: command(path, "show stats")["requests"] >= 3, what="3 requests counted")
    models = command(path, "show models")["models"]
    assert [m["name"] for m in models] == ["demo", "sleep"]
    assert models[0]["requests"] == 3 and sum(w["requests"] for w in models[0]["workers"]) == 3
    assert models[1]["queue_size"] == 16 and models[1]["concurrency"] == 1

    config = command(path, "show config")
    assert config["workers"] == "2" and config["control_socket"] == path and config["bind"] == "127.0.0.1:0"  # as configured
    listeners = command(path, "show listeners")
    assert listeners["count"] == 1 and listeners["listeners"][0]["address"] == f"127.0.0.1:{s.port}"
    assert len(listeners["listeners"][0]["fds"]) == 2
    assert "worker add [N]" in command(path, "help")["commands"]

    # Scale up and down, never below one.
    assert command(path, "worker add 2") == {"added": 2, "previous": 2, "total": 4}
    wait_for(lambda: len(s.worker_pids()) == 4 and command(path, "show stats")["workers_serving"] == 4, what="4 workers")
    assert command(path, "worker remove 9") == {"removed": 3, "previous": 4, "total": 1}
    wait_for(lambda: len(s.worker_pids()) == 1, what="1 worker")

    # Kill: a replacement starts, the old one drains and goes.
    [old] = s.worker_pids()
    assert command(path, f"worker kill {old}") == {"success": True, "killed": old}
    wait_for(lambda: s.worker_pids() and old not in s.worker_pids(), what="the killed worker replaced")
    s.wait_log(f"Worker {old} \\(slot 0\\) is being replaced")
    with connect(path) as c:
        reply = send(c, "worker kill 1")
    assert reply == {"id": 1, "status": "error", "error": "Command failed: worker 1 not found"}

    # Drain: readiness says so while requests are still served.
    assert command(path, "drain") == {"draining": True}
    r = s.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "draining"
    assert s.post("/demo", {"cal_number": 1}).status_code == 200
    assert command(path, "undrain") == {"draining": False}
    assert s.get("/readyz").status_code == 200

    assert command(path, "reload") == {"status": "reloading"}
    s.wait_log("Reload complete")
    assert command(path, "reopen") == {"status": "reopened"}
    with connect(path) as c:
        assert send(c, "keys reload")["status"] == "error"
        assert send(c, "launch rockets", id=9) == {"id": 9, "status": "error", "error": "Unknown command: launch rockets; try help"}

    # The command-line client: one command, JSON for scripts, exit status 1 on an error.
    out = ctl("-s", path, "-c", "show workers")
    assert out.returncode == 0 and "slot" in out.stdout and str(s.worker_pids()[0]) in out.stdout
    out = ctl("-s", path, "--json", "-c", "show stats")
    assert out.returncode == 0 and json.loads(out.stdout)["data"]["pid"] == s.pid
    out = ctl("-s", path, "-c", "worker kill 1")
    assert out.returncode == 1 and "worker 1 not found" in out.stderr
    out = ctl("-s", path, input="show stats\nhelp\n")
    assert out.returncode == 0 and "uptime:" in out.stdout and "worker add [N]" in out.stdout
    out = ctl("-s", f"{ctl_dir}/missing.sock", "-c", "help")
    assert out.returncode == 1 and "cannot connect" in out.stderr

    assert command(path, "shutdown") == {"status": "shutting_down", "mode": "graceful"}
    assert s.wait_exit() == 0
    assert not os.path.exists(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
def test_another_user_is_refused(start, ctl_dir):
    path = f"{ctl_dir}/c.sock"
    s = start("--control-socket", path, "demo", workers=1)
    probe = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n  s.connect(sys.argv[1])\nexcept PermissionError:\n  print('refused')\n"
    out = subprocess.run(["runuser", "-u", "nobody", "--", "python3", "-c", probe, path], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "refused", out.stderr
    # The server's own user gets in.
    assert command(path, "show stats")["pid"] == s.pid


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_hundred_hups_with_the_socket_open_leak_nothing(start, ctl_dir):
    path = f"{ctl_dir}/c.sock"
    s = start("--control-socket", path, "demo", workers=1)
    with connect(path) as c:
        assert send(c, "show stats")["status"] == "ok"
        before = fd_count(s.pid)
        for i in range(1, 101):
            s.signal(signal.SIGHUP)
            s.wait_log("Reload complete", count=i, timeout=20)
        wait_for(lambda: len(s.worker_pids()) == 1, what="one worker after the reloads")
        stats = send(c, "show stats", id=2)
        assert stats["data"]["reloads"] == 100 and stats["data"]["workers_current"] == 1
        assert fd_count(s.pid) == before
    # Every worker closed the master's copies: none holds the control socket.
    for w in s.worker_pids():
        targets = [os.readlink(f"/proc/{w}/fd/{fd}") for fd in os.listdir(f"/proc/{w}/fd")]
        assert not any(t.startswith("socket:") and path in t for t in targets)
    assert s.get("/healthz").status_code == 200


def test_malformed_frames_get_clear_errors_and_cost_nothing(start, ctl_dir):
    path = f"{ctl_dir}/c.sock"
    s = start("--control-socket", path, "demo", workers=1)
    # Valid framing, not a request: an error, and the connection stays usable.
    with connect(path) as c:
        for payload in (b"not json", b'["help"]', b'{"cmd": "help"}'):
            c.sendall(struct.pack(">I", len(payload)) + payload)
            reply = read_frame(c)
            assert reply["status"] == "error" and reply["error"].startswith("Malformed request"), reply
        assert send(c, "help")["status"] == "ok"
    # Text instead of a length (and a huge length): said why, then closed.
    for junk in (b"GET / HTTP/1.1\r\n\r\n", struct.pack(">I", 2**31) + b"x"):
        with connect(path) as c:
            c.sendall(junk)
            reply = read_frame(c)
            assert reply["status"] == "error" and "over the limit" in reply["error"], reply
            assert c.recv(1) == b""
    # A half frame then nothing, and clients that send nothing: the master still answers everyone else.
    idle = [connect(path) for _ in range(16)]
    idle[0].sendall(struct.pack(">I", 100) + b"{")
    with connect(path) as extra:
        reply = read_frame(extra)
        assert reply["status"] == "error" and "too many control connections" in reply["error"]
    assert s.get("/healthz").status_code == 200
    for c in idle:
        c.close()
    wait_for(lambda: send_ok(path), what="a client served once the idle ones left")
    assert s.proc.poll() is None


def test_a_client_that_sends_without_reading_holds_no_memory(start, ctl_dir):
    """50,000 `show config` frames, none of the replies read: the master stops reading the client
    once 64 KiB of replies wait (before, it held every reply: 28 -> 94 MB)."""
    path = f"{ctl_dir}/c.sock"
    s = start("--control-socket", path, "demo", workers=1)

    def rss_kb():
        with open(f"/proc/{s.pid}/status") as f:
            return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])

    before = rss_kb()
    payload = json.dumps({"id": 1, "command": "show config", "args": []}).encode()
    frame = struct.pack(">I", len(payload)) + payload
    with connect(path) as c:
        c.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 5
        data = frame * 1000
        while sent < 50 and time.monotonic() < deadline:
            try:
                c.sendall(data)
                sent += 1
            except (BlockingIOError, socket.timeout):
                time.sleep(0.05)
        time.sleep(0.5)
        grown = rss_kb() - before
        assert grown < 8 * 1024, f"the master grew by {grown} kB"
        # The client is not dropped: once it reads, it gets its replies in order.
        c.settimeout(10)
        for _ in range(20):
            assert read_frame(c)["status"] == "ok"
    assert s.get("/healthz").status_code == 200
    assert command(path, "show workers")["count"] == 1


def send_ok(path):
    try:
        return command(path, "show workers")["count"] == 1
    except (AssertionError, OSError):
        return False


def test_each_server_has_its_own_default_socket_and_ctl_never_guesses(start, tmp_path):
    runtime = tempfile.mkdtemp(prefix="mrun")
    env = dict(os.environ, XDG_RUNTIME_DIR=runtime)

    def ctl_here(*args):
        return subprocess.run([MSERVE, "ctl", *args], capture_output=True, text=True, timeout=30, env=env)
    try:
        s = start("demo", workers=1, env={"XDG_RUNTIME_DIR": runtime})
        path = f"{runtime}/mserve/mserve-127.0.0.1-{s.port}.ctl"
        assert command(path, "show stats")["pid"] == s.pid and f"Control socket: {path}" in s.log()
        # One server running: ctl finds it, and says which it reached.
        out = ctl_here("-c", "show stats", "--json")
        assert json.loads(out.stdout)["data"]["pid"] == s.pid
        assert f"mserve ctl: {path}: mserve pid {s.pid}, listening at 127.0.0.1:{s.port}, serving demo" in out.stderr, out.stderr
        # A second server gets a socket of its own; ctl without -s then refuses to pick, listing both.
        t = start("echo", workers=1, env={"XDG_RUNTIME_DIR": runtime})
        assert "no control socket" not in t.log() and command(f"{runtime}/mserve/mserve-127.0.0.1-{t.port}.ctl", "show stats")["pid"] == t.pid
        out = ctl_here("-c", "show listeners")
        assert out.returncode == 1 and out.stdout == "" and "2 servers are running" in out.stderr, out
        assert f"mserve pid {s.pid}" in out.stderr and f"mserve pid {t.pid}" in out.stderr and "serving echo" in out.stderr
        # -b names the server by its address.
        out = ctl_here("-b", f"127.0.0.1:{t.port}", "-c", "show listeners", "--json")
        assert json.loads(out.stdout)["data"]["listeners"][0]["address"] == f"127.0.0.1:{t.port}", out
        # A server killed without cleaning up leaves a file nobody answers on: not counted as running.
        t.proc.kill()
        t.proc.wait()
        out = ctl_here("-c", "show stats", "--json")
        assert out.returncode == 0 and json.loads(out.stdout)["data"]["pid"] == s.pid, out
        u = start("--no-control-socket", "demo", workers=1, env={"XDG_RUNTIME_DIR": runtime + "/x"})
        assert not os.path.exists(runtime + "/x")
        assert "Control socket" not in u.log()
        s.stop()
        out = ctl_here("-c", "help")
        assert out.returncode == 1 and "no running server has a control socket" in out.stderr, out
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def test_beside_the_pid_file(start, tmp_path):
    pidfile = tmp_path / "srv.pid"
    s = start("-p", str(pidfile), "demo", workers=1)
    out = subprocess.run([MSERVE, "ctl", "-p", str(pidfile), "-c", "show stats", "--json"], capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout)["data"]["pid"] == s.pid and f"{tmp_path}/srv.ctl" in out.stderr, out


def test_an_explicit_path_that_cannot_be_bound_stops_the_start(tmp_path, ctl_dir):
    p = subprocess.run([MSERVE, "-b", "127.0.0.1:0", "--control-socket", f"{ctl_dir}/no/such/dir/c.sock", "demo"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "--control-socket" in p.stderr
