"""/metrics and /readyz speak for the whole server, whichever worker answers."""
import json
import os
import re
import socket
import subprocess
import signal
import time

import requests

from conftest import parse_response, read_until_closed, wait_for


def metrics(s):
    r = requests.get(s.url + "/metrics", headers={"Connection": "close"}, timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_are_aggregated_across_workers_and_survive_restarts(start):
    s = start("demo", "sleep", workers=2)
    for _ in range(40):
        requests.post(s.url + "/demo", json={"cal_number": 1}, headers={"Connection": "close"}, timeout=5)
    for _ in range(3):
        requests.post(s.url + "/demo", json={"cal_number": "x"}, headers={"Connection": "close"}, timeout=5)
    for _ in range(5):
        requests.post(s.url + "/sleep", json={"ms": 30}, headers={"Connection": "close"}, timeout=5)
    requests.get(s.url + "/nope", headers={"Connection": "close"}, timeout=5)
    # Whichever worker answers the scrape, it counts what both served.
    for _ in range(4):
        m = metrics(s)
        assert m['mserve_requests_total{model="demo",code="200"}'] == 40
        assert m['mserve_requests_total{model="demo",code="400"}'] == 3
        assert m['mserve_requests_total{model="sleep",code="200"}'] == 5
        assert m['mserve_requests_total{model="-",code="404"}'] == 1
        assert m['mserve_request_duration_seconds_count{model="demo"}'] == 43
        assert m['mserve_inference_duration_seconds_count{model="sleep"}'] == 5
        assert m['mserve_inference_duration_seconds_sum{model="sleep"}'] >= 0.15
        assert m['mserve_inference_duration_seconds_bucket{model="sleep",le="0.025"}'] == 0
        assert m['mserve_inference_duration_seconds_bucket{model="sleep",le="0.05"}'] == 5
        assert m['mserve_queue_wait_seconds_count{model="sleep"}'] == 5
        assert m['mserve_workers{state="ready"}'] == 2
    # A worker dies: its counts stay, and the restart is counted.
    victim = s.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: metrics(s)['mserve_workers{state="ready"}'] == 2 and victim not in s.worker_pids(), what="replacement")
    m = metrics(s)
    assert m['mserve_requests_total{model="demo",code="200"}'] == 40
    assert m['mserve_worker_restarts_total{reason="died"}'] == 1


def test_readyz_and_configurable_paths(start):
    s = start("sleep", "--ready-path", "/ready", "--metrics-path", "off", "--graceful-timeout", "10", workers=1)
    assert requests.get(s.url + "/metrics", timeout=5).status_code == 404
    assert requests.get(s.url + "/readyz", timeout=5).status_code == 404
    r = requests.get(s.url + "/ready", timeout=5)
    assert r.status_code == 200 and r.json()["status"] == "ready"
    # A slow request with a readiness check pipelined behind it; TERM meanwhile: the check is answered
    # by a draining worker, which says it is not ready, so a balancer stops sending to it.
    body = b'{"ms": 1000}'
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    c.sendall(b"POST /sleep HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
              + body + b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    s.signal(signal.SIGTERM)
    data = read_until_closed(c)
    c.close()
    first, rest = parse_response(data), data.split(b"\r\n\r\n", 1)[1]
    assert first[0] == 200
    second = parse_response(rest[len(first[2]):])
    assert second[0] == 503 and json.loads(second[2])["status"] == "stopping"
    assert s.wait_exit() == 0


def test_process_metrics_cover_the_master_and_its_workers(start):
    """Prometheus's standard process_* metrics, summed over the master and its workers: each must
    at least match what /proc says of the processes the test can see, and start with the master."""
    s = start("demo", workers=2)
    pids = [s.pid] + s.worker_pids()
    tick, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGESIZE")
    # Enough requests for the workers to have used some CPU ticks.
    subprocess.run(["wrk", "-t1", "-c8", "-d1s", s.url + "/healthz"], capture_output=True, timeout=30, check=True)

    def stat(pid):
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    rss = sum(int(stat(p)[21]) for p in pids) * page
    fds = sum(len(os.listdir(f"/proc/{p}/fd")) for p in pids)
    with open("/proc/stat") as f:
        btime = next(int(l.split()[1]) for l in f if l.startswith("btime "))
    cpu = sum(int(stat(p)[11]) + int(stat(p)[12]) for p in pids) / tick
    m = metrics(s)
    assert m["process_cpu_seconds_total"] >= cpu - 0.005 and cpu > 0, (m["process_cpu_seconds_total"], cpu)
    assert 0.7 * rss < m["process_resident_memory_bytes"] < 1.5 * rss, (m["process_resident_memory_bytes"], rss)
    assert abs(m["process_open_fds"] - fds) <= 6, (m["process_open_fds"], fds)
    assert abs(m["process_start_time_seconds"] - (btime + int(stat(s.pid)[19]) / tick)) < 1
    assert m["process_virtual_memory_bytes"] > m["process_resident_memory_bytes"]
