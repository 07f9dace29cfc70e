"""The shipped balancer configs and mserve's side of them, on loopback: `nginx -t` and `haproxy -c`,
the agent-check port, and --announce against a real HAProxy's runtime API (add, drain, delete)."""
import re
import signal
import socket
import threading
import time

import pytest
import requests
import urllib3

import balancers
from conftest import free_port, wait_for

# The balancers' certificate is the test's own, self-signed.
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

pytestmark = pytest.mark.skipif(not (balancers.have("nginx") and balancers.have("haproxy")),
                                reason="nginx and haproxy are installed by scripts/setup (MSERVE_TEST_DEPS=1)")


def test_the_shipped_configs_pass_nginx_t_and_haproxy_c(tmp_path):
    hosts = ["127.0.0.1:18001", "127.0.0.1:18002", "127.0.0.1:18003"]
    nginx = balancers.nginx_config(tmp_path, hosts, "127.0.0.1:18080", "127.0.0.1:18443")
    ok, out = balancers.check("nginx", nginx, tmp_path)
    assert ok and "test is successful" in out, out
    haproxy = balancers.haproxy_config(tmp_path, hosts, "127.0.0.1:18080", "127.0.0.1:18443", "127.0.0.1:19999")
    ok, out = balancers.check("haproxy", haproxy, tmp_path)
    assert ok and "Configuration file is valid" in out, out
    # Without retries (models with side effects) they still pass.
    for kind, render in (("nginx", balancers.nginx_config), ("haproxy", balancers.haproxy_config)):
        d = tmp_path / f"{kind}-noretry"
        d.mkdir()
        extra = ["127.0.0.1:19998"] if kind == "haproxy" else []
        path = render(d, hosts, "127.0.0.1:18080", "127.0.0.1:18443", *extra, retries=False)
        assert balancers.check(kind, path, d)[0]


def agent_line(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        data = b""
        while chunk := s.recv(256):
            data += chunk
    return data.decode()


def test_the_agent_port_reports_state_and_spare_capacity(start):
    port = free_port()
    s = start("sleep", "--agent-bind", f"127.0.0.1:{port}", "--drain-seconds", "3", workers=2)
    assert agent_line(port) == "up ready 100% #running 0 queued 0 of 2\n"
    # More slow requests than slots: both run, the rest queue, and the weight falls below a half.
    threads = [threading.Thread(target=lambda: s.post("/sleep", {"ms": 1500}, timeout=10)) for _ in range(6)]
    for t in threads:
        t.start()
    # The requests reach the workers one by one (as the kernel spreads the connections): a line read
    # early may count some of them only.
    wait_for(lambda: (l := agent_line(port)).startswith("up ready") and "queued 0 " not in l and int(l.split()[2].rstrip("%")) < 50,
             5, what="a busy agent line, its weight below a half")
    for t in threads:
        t.join()
    s.signal(signal.SIGTERM)
    wait_for(lambda: agent_line(port) == "up drain #draining\n", 5, what="the drain line")
    assert s.wait_exit() == 0


def test_announce_adds_the_server_to_haproxy_drains_it_on_term_and_deletes_it(start, tmp_path):
    api, front, tls, agent = free_port(), free_port(), free_port(), free_port()
    cfg = balancers.haproxy_config(tmp_path, [], f"127.0.0.1:{front}", f"127.0.0.1:{tls}", f"127.0.0.1:{api}",
                                   agent_port=agent)
    hap = balancers.Balancer("haproxy", cfg, tmp_path)
    try:
        balancers.wait_port("127.0.0.1", api)
        port = free_port()
        s = start("demo", "--drain-seconds", "4", "--agent-bind", f"127.0.0.1:{agent}",
                  "--announce", f"haproxy://127.0.0.1:{api}/mserve", "--announce-name", "box1",
                  port=port, workers=2)
        s.wait_log(r"Announced to HAProxy 127\.0\.0\.1:\d+ as mserve/box1 at 127\.0\.0\.1:\d+")
        # Health and agent checks pass: operational state 2 (running), admin state 0 (ready).
        wait_for(lambda: balancers.servers_state(f"127.0.0.1:{api}").get("box1", (0,))[0] == 2, 10, what="box1 up")
        # Weight 100, so that the agent's percentages scale it (of HAProxy's default 1 they round to 0).
        assert balancers.servers_state(f"127.0.0.1:{api}")["box1"][2] == 100
        r = requests.post(f"http://127.0.0.1:{front}/demo", json={"cal_number": 3},
                          headers={"X-Request-Id": "through-haproxy"}, timeout=5)
        assert r.status_code == 200 and r.headers["x-request-id"] == "through-haproxy"
        assert r.json()["recordid"] == "through-haproxy"
        # HAProxy's own id when the client sends none; its lower-case x-forwarded-for names the client.
        r = requests.post(f"https://127.0.0.1:{tls}/demo", json={"cal_number": 4}, verify=False, timeout=5)
        assert r.status_code == 200 and len(r.headers["x-request-id"]) > 8
        wait_for(lambda: r.headers["x-request-id"] in s.access(), 5, what="HAProxy's id in the access log")
        # Health checks close with a reset: not an error.
        time.sleep(2.5)
        assert "[ERROR]" not in s.log() and "reset" not in s.log().lower()

        s.signal(signal.SIGTERM)
        s.wait_log(r"HAProxy: mserve/box1 set to drain")
        # Admin state drain (8): no new requests go there, though mserve still serves.
        wait_for(lambda: balancers.servers_state(f"127.0.0.1:{api}")["box1"][1] & 8, 5, what="box1 in drain")
        assert requests.post(f"http://127.0.0.1:{port}/demo", json={"cal_number": 5}, timeout=5).status_code == 200
        assert s.wait_exit(timeout=20) == 0
        s.wait_log(r"HAProxy: mserve/box1 deleted")
        assert "box1" not in balancers.servers_state(f"127.0.0.1:{api}")
    finally:
        hap.stop()


def test_announce_retries_until_haproxy_answers(start, tmp_path):
    api = free_port()
    s = start("demo", "--announce", f"haproxy://127.0.0.1:{api}/mserve", "--announce-name", "late",
              port=free_port(), workers=1)
    s.wait_log(r"--announce: HAProxy 127\.0\.0\.1:\d+: add server mserve/late .*retrying in 5 s")
    front, tls = free_port(), free_port()
    cfg = balancers.haproxy_config(tmp_path, [], f"127.0.0.1:{front}", f"127.0.0.1:{tls}", f"127.0.0.1:{api}")
    hap = balancers.Balancer("haproxy", cfg, tmp_path)
    try:
        s.wait_log(r"Announced to HAProxy .* as mserve/late", timeout=15)
        assert "late" in balancers.servers_state(f"127.0.0.1:{api}")
    finally:
        s.stop()
        hap.stop()


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_streams_pass_through_unbuffered_over_tls_with_the_recordid_and_the_trace(start, tmp_path, kind):
    """A stream through the shipped config, unbuffered, with the client's X-Request-Id; the client's
    W3C traceparent reaches mserve (its access line names the trace) and the answer's traceparent
    continues the trace with mserve's span."""
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    port = free_port()
    s = start("sleep", port=port, workers=1)
    front, tls = free_port(), free_port()
    host = [f"127.0.0.1:{port}"]
    if kind == "nginx":
        cfg = balancers.nginx_config(tmp_path, host, f"127.0.0.1:{front}", f"127.0.0.1:{tls}")
    else:
        cfg = balancers.haproxy_config(tmp_path, host, f"127.0.0.1:{front}", f"127.0.0.1:{tls}", f"127.0.0.1:{free_port()}",
                                       agent_port=free_port())
    bal = balancers.Balancer(kind, cfg, tmp_path)
    try:
        balancers.wait_port("127.0.0.1", tls)
        # HAProxy's first checks pass (rise 2 once started: the server starts up, the agent port is closed).
        deadline = time.monotonic() + 10
        while True:
            r = requests.post(f"https://127.0.0.1:{tls}/sleep", json={"ms": 1}, verify=False, timeout=5)
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        t0 = time.monotonic()
        r = requests.post(f"https://127.0.0.1:{tls}/sleep", json={"ms": 900, "pieces": 3, "stream": True},
                          headers={"X-Request-Id": f"via-{kind}", "traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
                          stream=True, verify=False, timeout=10)
        assert r.status_code == 200 and r.headers["x-request-id"] == f"via-{kind}"
        back = r.headers["traceparent"].split("-")
        assert back[1] == trace and back[2] != "00f067aa0ba902b7" and back[3] == "01"
        times = [time.monotonic() - t0 for line in r.iter_lines() if line.startswith(b"data: {")]
        assert len(times) == 3
        # Each piece about 300 ms after the one before, not all at the end.
        assert 0.15 < times[1] - times[0] < 0.6 and 0.15 < times[2] - times[1] < 0.6, times
        s.wait_log(rf"\[via-{kind}\] response: 200 \(streamed 4 pieces")
        s.wait_log(rf"\[via-{kind}\] request: POST /sleep \(\d+ bytes\) trace={trace}")
        wait_for(lambda: re.search(rf"rid=via-{kind} trace={trace}$", s.access(), re.M), what="the access line with the trace")
    finally:
        bal.stop()
