"""The master survives what the machine refuses it: a fork that fails, thousands of connections."""
import os
import pathlib
import resource
import signal
import socket
import tempfile
import time

import requests

from conftest import wait_for

NOBODY = 65534


def as_nobody_with_processes(limit):
    def preexec():
        # RLIMIT_NPROC binds an unprivileged user only, so this server runs as nobody.
        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
        os.setgid(NOBODY)
        os.setgroups([])
        os.setuid(NOBODY)
    return preexec


def threads_of(uid):
    n = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                n += len(os.listdir(f"/proc/{pid}/task"))
        except FileNotFoundError:
            pass
    return n


def test_a_fork_that_fails_leaves_the_master_serving_and_is_retried(start):
    """Room for the master and two single-threaded workers, no more: TTIN's fork fails and is retried
    every second (the retries do not multiply), HUP keeps the old workers, and the server serves on."""
    logs = pathlib.Path(tempfile.mkdtemp())
    logs.chmod(0o777)
    s = start("demo", workers=2, preexec=as_nobody_with_processes(threads_of(NOBODY) + 3), log_dir=logs)
    workers = s.worker_pids()

    s.signal(signal.SIGTTIN)
    s.wait_log(r"fork failed: Resource temporarily unavailable; retrying in 1 s \(slot 2\)")
    time.sleep(2.5)
    retries = s.log().count("fork failed")
    assert 3 <= retries <= 4, retries   # one a second for the one missing worker: they do not multiply
    assert s.worker_pids() == workers
    for _ in range(20):
        assert s.post("/demo", {"cal_number": 1}).status_code == 200

    # HUP: no new worker can start, so the old ones stay and serve; the reload's `-w 2` ends the retries.
    s.signal(signal.SIGHUP)
    s.wait_log(r"Reload: 2 new workers could not be started")
    settled = s.log().count("fork failed")
    time.sleep(1.5)
    assert s.log().count("fork failed") == settled
    assert s.worker_pids() == workers
    for _ in range(20):
        assert s.post("/demo", {"cal_number": 1}).status_code == 200

    # A worker killed frees a process: its slot's replacement forks.
    os.kill(workers[0], signal.SIGKILL)
    wait_for(lambda: len(s.worker_pids()) == 2 and workers[0] not in s.worker_pids(), what="the replacement")
    for _ in range(20):
        assert s.post("/demo", {"cal_number": 1}).status_code == 200


def test_thousands_of_idle_and_half_open_connections_do_not_stop_the_others(start):
    """3,000 connections that send nothing and 1,000 that send half a request: other clients are
    still answered at once, and the server closes the silent ones at --client-timeout (the
    half-sent requests get a 408 first)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 10000)), hard))
    s = start("demo", "--client-timeout", "3", "--backlog", "4096", workers=2)
    idle = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(3000)]
    half = []
    for _ in range(1000):
        c = socket.create_connection(("127.0.0.1", s.port))
        c.sendall(b"POST /demo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"cal")
        half.append(c)
    began = time.monotonic()
    worst = 0.0
    while time.monotonic() - began < 2.0:
        t = time.monotonic()
        assert s.post("/demo", {"cal_number": 1}, timeout=2).status_code == 200
        worst = max(worst, time.monotonic() - t)
    assert worst < 0.5, f"a client waited {worst:.3f} s behind 4,000 idle connections"

    answers = {}

    def closed(c):
        c.settimeout(0.01)
        try:
            while True:
                data = c.recv(65536)
                if data == b"":
                    return True
                answers[c] = answers.get(c, b"") + data
        except (socket.timeout, BlockingIOError):
            return False
        except ConnectionResetError:
            return True
    wait_for(lambda: all(closed(c) for c in idle + half), timeout=10, interval=0.5,
             what="the server to close every silent connection")
    assert len(s.worker_pids()) == 2 and requests.get(s.url + "/healthz", timeout=2).status_code == 200
    assert not any(c in answers for c in idle)
    assert all(answers.get(c, b"").startswith(b"HTTP/1.1 408 ") for c in half)
    for c in idle + half:
        c.close()


def test_a_full_disk_drops_log_lines_counted_and_said_once(start, tmp_path):
    """The error log on a 1 MiB tmpfs that a file fills: requests are still answered, the lost
    bytes are counted in /metrics, standard error says so once when writing fails and once when
    it works again."""
    disk = tmp_path / "disk"
    disk.mkdir()
    import subprocess
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode != 0:
        import pytest
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        s = start("demo", "--log-level", "info", workers=1, log_dir=disk)
        filler = disk / "filler"
        with open(filler, "wb") as f:
            try:
                f.write(b"x" * (2 << 20))
            except OSError:
                pass
        for i in range(200):
            assert s.post("/demo", {"cal_number": 1}).status_code == 200
        text = wait_for(lambda: (lambda t: t if "mserve_log_bytes_dropped_total 0" not in t else None)(s.get("/metrics").text),
                        what="dropped bytes counted")
        dropped = int(next(line for line in text.splitlines() if line.startswith("mserve_log_bytes_dropped_total ")).split()[1])
        assert dropped > 0
        filler.unlink()
        for i in range(5):
            assert s.post("/demo", {"recordid": f"after{i}", "cal_number": 1}).status_code == 200
        s.wait_log(r"\[after4\] response: 200")
        s.signal(signal.SIGTERM)
        s.wait_exit()
        err = s.proc.stderr.read().decode()
        for log in ("error.log", "access.log"):   # once per file and process, not once per line
            assert err.count(f"cannot write to log {disk}/{log} (No space left on device)") == 1, err
            assert err.count(f"writing to log {disk}/{log} again;") == 1, err
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
