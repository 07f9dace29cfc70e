"""Bad input through the real binary: the worker that answered lives on (same pids before and after,
and the server still serves).  The request-path cases that need no process (every bad body, 404,
405, 413, 431, framing errors, HTTP/1.0, HEAD, a model that throws, pipelining) are Swift tests
through MServeTesting: Tests/MServeTests/RequestPathTests.swift."""
import json
import re
import socket
import time

import pytest
import requests

from conftest import http_ok, parse_response, raw_request, wait_for

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def server(start):
    s = start("demo", "echo", "--max-body-size", "64k", "--max-header-size", "4k", "--client-timeout", "2", workers=2)
    pids = s.worker_pids()
    yield s
    # The workers that answered all of it are the ones that started.
    assert s.worker_pids() == pids
    assert s.post("/demo", {"cal_number": 0}).status_code == 200
    assert "Worker (pid:" not in s.log(), s.log()


def check_error(r, status, message_part, recordid=None):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"recordid", "error"}
    assert body["error"]["code"] == status
    assert message_part in body["error"]["message"], body
    assert r.headers["X-Request-Id"] == str(body["recordid"])
    if recordid is not None:
        assert body["recordid"] == recordid
    return body


# The whole table of bad bodies is in Tests/MServeTests/RequestPathTests.swift (in-process); here two
# of them go through the real binary, for the log and access lines.
@pytest.mark.parametrize("body,headers,status,message,recordid", [
    ('{"recordid": "b1", "cal_number": ', JSON, 400, "malformed JSON", None),
    ('{"recordid": "b1"}', JSON, 400, "missing argument cal_number", "b1"),
])
def test_bad_bodies(server, body, headers, status, message, recordid):
    r = requests.post(server.url + "/demo", data=body, headers=headers, timeout=5)
    b = check_error(r, status, message, recordid)
    server.wait_log(rf"\[{b['recordid']}\] response: {status}")
    wait_for(lambda: re.search(rf"rid={re.escape(str(b['recordid']))}$", server.access(), re.M), what="access line")


def test_expect_100_continue(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"POST /demo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Expect: 100-continue\r\nContent-Length: 17\r\n\r\n")
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b'{"cal_number": 1}')
        status, _, body = parse_response(s.recv(4096))
        assert status == 200 and "result" in json.loads(body)
    # Too large: 413 at once, before the body is sent.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"POST /demo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n")
        status, headers, _ = parse_response(s.recv(4096))
        assert status == 413 and headers["connection"] == "close"


def test_clients_that_misbehave(server):
    """Half-sent requests, vanishing clients and idle connections cost nothing but a timeout."""
    socks = []
    for i in range(50):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"POST /demo HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"cal")   # body never finished
        socks.append(s)
    for i in range(50):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")                          # headers never finished
        socks.append(s)
    for i in range(20):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"POST /echo HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 20000\r\n\r\n" + b"[" * 5000)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()                                                          # reset mid-body
    # Other clients are served meanwhile.
    t0 = time.monotonic()
    for i in range(20):
        assert server.post("/demo", {"cal_number": 0}).status_code == 200
    assert time.monotonic() - t0 < 2
    # The idle ones are closed by the client timeout (2 s here).
    s = socks[0]
    s.settimeout(5)
    t0 = time.monotonic()
    assert s.recv(100) == b"" or True
    assert time.monotonic() - t0 < 4.5
    for s in socks:
        s.close()


def test_client_closing_before_the_response(server):
    """A client that sends a request to a slow path and leaves: the worker must not die of SIGPIPE."""
    for i in range(10):
        s = socket.create_connection(("127.0.0.1", server.port))
        body = json.dumps({"pad": "y" * 60_000}).encode()
        s.sendall(b"POST /echo HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    time.sleep(0.3)


def test_slowloris_is_cut_at_the_client_timeout(server):
    """A request dribbled a byte at a time gets a 408 a client timeout (2 s here) after it began,
    and the connection is closed after it."""
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(0.2)
    request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    t0 = time.monotonic()
    answered_after, answer, closed = None, b"", False
    for i in range(len(request)):
        try:
            s.sendall(request[i:i + 1])
            data = s.recv(4096)
            if data == b"":
                closed = True
                break
            answer += data
            answered_after = answered_after or time.monotonic() - t0
        except socket.timeout:
            pass
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.05)
    s.close()
    assert answered_after is not None and 1.9 < answered_after < 4, answered_after
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and b'"code":408' in answer, answer
    assert closed
    server.wait_log(r"response: 408")


def test_out_of_file_descriptors_neither_spins_nor_kills(start):
    """With a descriptor limit of 64, 80 idle clients exhaust a worker's descriptors: it logs the
    accept failure, pauses accepting instead of spinning, and serves again once clients leave."""
    import resource

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    s = start("demo", "--client-timeout", "30", workers=1, preexec=low_limit)
    worker = s.worker_pids()[0]
    socks = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(80)]
    s.wait_log(r"accept failed: Too many open files; pausing accepts for 100 ms")
    with open(f"/proc/{worker}/stat") as f:
        cpu0 = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
    time.sleep(1.0)
    with open(f"/proc/{worker}/stat") as f:
        cpu1 = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
    assert cpu1 - cpu0 < 30, "the worker spun"   # clock ticks in 1 s; 100 would be a full core
    for c in socks:
        c.close()
    wait_for(lambda: http_ok(s.url + "/"), what="serving again")
    assert s.worker_pids() == [worker]
