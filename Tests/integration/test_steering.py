"""Where the kernel sends new connections: the master's SO_REUSEPORT steering program spreads them
over the workers that serve, and keeps them off a slot whose worker is dead or being retired."""
import os
import re
import signal
import socket
import time

import requests

from conftest import raw_request, wait_for


def serving_pids(server, rid_prefix):
    return {int(m.group(1)) for m in re.finditer(r"\] \[(\d+)\] \[INFO\] \[" + rid_prefix + r"\d+\] request:", server.log())}


def test_new_connections_spread_over_every_worker(start):
    s = start("demo", workers=4)
    for i in range(200):
        requests.get(s.url + "/healthz", headers={"X-Request-Id": f"spread{i}", "Connection": "close"}, timeout=5)
    s.wait_log(r"\[spread199\] request:")
    assert serving_pids(s, "spread") == set(s.worker_pids())


def test_new_connections_do_not_wait_behind_a_dead_worker(start, tmp_path):
    """The replacement takes 2 s to load its model; meanwhile no new connection is sent to its slot."""
    conf = tmp_path / "slow.toml"
    conf.write_text("[model.sleep]\nload_ms = 2000\n")
    s = start("-c", str(conf), "sleep", workers=2)
    victim = s.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    s.wait_log(rf"Worker \(pid:{victim}\) was sent SIGKILL; starting a replacement")
    worst = 0.0
    for i in range(40):
        t = time.monotonic()
        r = requests.get(s.url + "/healthz", headers={"Connection": "close"}, timeout=5)
        worst = max(worst, time.monotonic() - t)
        assert r.status_code == 200
    assert worst < 0.5, f"a new connection waited {worst:.2f} s for the replacement"
    s.wait_log(r"is serving", count=3, timeout=10)


def test_new_connections_do_not_wait_for_a_stopped_worker(start):
    """A worker frozen with SIGSTOP misses its heartbeats: from the third, new connections go to the
    other worker (before, 29 of 80 waited up to 30 s, until --timeout killed it); when it is
    continued it beats again and takes its share."""
    s = start("demo", workers=2)
    frozen = s.worker_pids()[0]
    os.kill(frozen, signal.SIGSTOP)
    try:
        s.wait_log(rf"Worker \(pid:{frozen}\) has not beaten for [\d.]+ s; new connections go to the others", timeout=10)
        worst = 0.0
        for i in range(80):
            t = time.monotonic()
            r = requests.get(s.url + "/healthz", headers={"Connection": "close"}, timeout=10)
            worst = max(worst, time.monotonic() - t)
            assert r.status_code == 200
        assert worst < 1, f"a new connection waited {worst:.2f} s for the stopped worker"
    finally:
        os.kill(frozen, signal.SIGCONT)
    s.wait_log(rf"Worker \(pid:{frozen}\) beats again; it takes new connections")
    for i in range(100):
        requests.get(s.url + "/healthz", headers={"X-Request-Id": f"back{i}", "Connection": "close"}, timeout=5)
    s.wait_log(r"\[back99\] request:")
    assert frozen in serving_pids(s, "back")


def test_ttou_sends_nothing_more_to_the_retiring_slot(start):
    """After TTOU, connections made while the retiring worker still drains all go to the others."""
    s = start("demo", "--keep-alive", "3", workers=3)
    # An idle keep-alive connection on every worker keeps the retiring one alive for a while.
    held = []
    for _ in range(30):
        c = socket.create_connection(("127.0.0.1", s.port))
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        c.recv(4096)
        held.append(c)
    before = set(s.worker_pids())
    s.signal(signal.SIGTTOU)
    s.wait_log(r"worker exiting gracefully")
    retiring = int(re.search(r"\[(\d+)\] \[INFO\] worker exiting gracefully", s.log()).group(1))
    assert retiring in before
    for i in range(100):
        assert raw_request(s.port, f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: after{i}\r\nConnection: close\r\n\r\n".encode())
    s.wait_log(r"\[after99\] request:")
    assert retiring in s.worker_pids(), "the retiring worker left early; the test proves nothing"
    assert retiring not in serving_pids(s, "after")
    for c in held:
        c.close()
