"""Every kind of bad input gets its status and a JSON error with the recordid, and the worker that
answered lives on (same pids before and after, and the server still serves)."""
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


@pytest.mark.parametrize("body,headers,status,message,recordid", [
    ('{"recordid": "b1", "cal_number": ', JSON, 400, "malformed JSON", None),
    ('[1, 2, 3]', JSON, 400, "must be an object", None),
    ('"just a string"', JSON, 400, "must be an object", None),
    ('{"recordid": "b1"}', JSON, 400, "missing argument cal_number", "b1"),
    ('{"recordid": "b1", "cal_number": "five"}', JSON, 400, "cal_number must be a number", "b1"),
    ('{"recordid": "b1", "cal_number": null}', JSON, 400, "cal_number must be a number", "b1"),
    ('{"recordid": "b1", "cal_number": [1]}', JSON, 400, "cal_number must be a number", "b1"),
    ('', JSON, 400, "empty body", None),
    # A body that is not declared JSON is not read for a recordid: the header's is used.
    ('{"recordid": "b1", "cal_number": 1}', {"Content-Type": "text/plain", "X-Request-Id": "h1"}, 415,
     "model demo takes application/json; got text/plain", "h1"),
    ('{"recordid": "has space", "cal_number": 1}', JSON, 400, "recordid must be", None),
    (b'{"recordid": "b1", "cal_number": "\xff"}', JSON, 400, "malformed JSON", None),
])
def test_bad_bodies(server, body, headers, status, message, recordid):
    r = requests.post(server.url + "/demo", data=body, headers=headers, timeout=5)
    b = check_error(r, status, message, recordid)
    server.wait_log(rf"\[{b['recordid']}\] response: {status}")
    wait_for(lambda: re.search(rf"rid={re.escape(str(b['recordid']))}$", server.access(), re.M), what="access line")


def test_body_recordid_wins_over_a_bad_header(server):
    r = requests.post(server.url + "/demo", json={"recordid": "b2", "cal_number": 1}, headers={"X-Request-Id": "x y"}, timeout=5)
    assert r.status_code == 200 and r.json()["recordid"] == "b2"


def test_bad_recordid_header_without_body_recordid(server):
    r = requests.post(server.url + "/demo", json={"cal_number": 1}, headers={"X-Request-Id": "a\tb"}, timeout=5)
    check_error(r, 400, "X-Request-Id must be")


def test_unknown_path_404(server):
    r = requests.get(server.url + "/nope", headers={"X-Request-Id": "nf"}, timeout=5)
    check_error(r, 404, "no route for /nope", "nf")


@pytest.mark.parametrize("method", ["DELETE", "PUT", "PATCH", "OPTIONS", "FOO"])
def test_method_not_handled_405(server, method):
    r = requests.request(method, server.url + "/demo", headers={"X-Request-Id": "m1"}, timeout=5)
    check_error(r, 405, "is not allowed on /demo", "m1")
    assert r.headers["Allow"] == "GET, POST"


def test_body_over_limit_413(server):
    big = json.dumps({"recordid": "big", "cal_number": 1, "pad": "x" * 70_000})
    r = requests.post(server.url + "/demo", data=big, headers={**JSON, "X-Request-Id": "big"}, timeout=5)
    check_error(r, 413, "larger than 65536 bytes", "big")
    # Chunked uploads are held to the same limit.
    r = requests.post(server.url + "/demo", data=iter([b"x" * 40_000, b"y" * 40_000]), headers=JSON, timeout=5)
    check_error(r, 413, "larger than 65536 bytes")


def test_headers_over_limit_431(server):
    r = requests.get(server.url + "/", headers={"X-Request-Id": "hh", "X-Pad": "p" * 5000}, timeout=5)
    check_error(r, 431, "larger than 4096 bytes", "hh")


def test_duplicate_content_length_400(server):
    body = b'{"cal_number": 1}'
    raw = raw_request(server.port, b"POST /demo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"X-Request-Id: dup\r\nContent-Length: 17\r\nContent-Length: 5\r\n\r\n" + body)
    status, headers, payload = parse_response(raw)
    assert status == 400
    assert json.loads(payload) == {"recordid": "dup", "error": {"code": 400, "message": "duplicate Content-Length headers"}}
    assert headers["connection"] == "close"


def test_content_length_with_chunked_400(server):
    raw = raw_request(server.port, b"POST /demo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{}}\r\n0\r\n\r\n")
    status, headers, payload = parse_response(raw)
    # Refused while reading the request, so the connection is closed after the answer.
    assert status == 400 and json.loads(payload)["error"]["code"] == 400
    assert headers["connection"] == "close"


@pytest.mark.parametrize("data,status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505),
    (b"GET /\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nName : v\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nA: b\rc\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"POST /demo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    (b"POST /demo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST /demo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST /demo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"POST /demo HTTP/1.1\r\nHost: x\r\nExpect: the-unexpected\r\nContent-Length: 2\r\n\r\n{}", 417),
])
def test_malformed_requests(server, data, status):
    raw = raw_request(server.port, data)
    got, headers, payload = parse_response(raw)
    assert got == status, raw
    body = json.loads(payload)
    assert body["error"]["code"] == status and body["recordid"] == headers["x-request-id"]
    assert headers["connection"] == "close"


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


def test_http_1_0_keep_alive_and_chunked_bodies(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b'POST /demo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Type: application/json\r\n'
                  b'Content-Length: 17\r\n\r\n{"cal_number": 1}')
        status, headers, _ = parse_response(s.recv(4096))
        assert status == 200 and headers["connection"] == "keep-alive"
        s.sendall(b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n'
                  b'5;ext=1\r\n{"a":\r\n4\r\n [1]\r\n1\r\n}\r\n0\r\nTrailer: x\r\n\r\n')
        status, _, body = parse_response(s.recv(4096))
        assert status == 200 and json.loads(body)["a"] == [1]
    # HTTP/1.0 without keep-alive: closed after the answer.
    raw = raw_request(server.port, b"GET / HTTP/1.0\r\n\r\n")
    status, headers, _ = parse_response(raw)
    assert status == 200 and headers["connection"] == "close"


def test_head_has_no_body(server):
    raw = raw_request(server.port, b"HEAD /demo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405") and rest == b""


def test_model_that_throws_500(server):
    with requests.Session() as same_worker:
        assert same_worker.post(server.url + "/demo", json={"cal_number": 1e308}, timeout=5).status_code == 200
        r = same_worker.post(server.url + "/demo", json={"recordid": "boom", "cal_number": 1e308}, timeout=5)
        check_error(r, 500, "running sum overflowed", "boom")
        # The sum is unchanged and the worker serves on.
        assert same_worker.post(server.url + "/demo", json={"cal_number": 0}, timeout=5).json()["result"] == 1e308
    server.wait_log(r"\[boom\] model demo failed")


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


def test_pipelined_requests(server):
    one = b'POST /demo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{"cal_number": 1}'
    data = raw_request(server.port, one * 3 + b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.count(b"HTTP/1.1 404 Not Found") == 1


def test_slowloris_is_cut_at_the_client_timeout(server):
    """A request dribbled a byte at a time is closed a client timeout (2 s here) after it began."""
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(0.2)
    request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    t0 = time.monotonic()
    closed_after = None
    for i in range(len(request)):
        try:
            s.sendall(request[i:i + 1])
            if s.recv(100) == b"":
                closed_after = time.monotonic() - t0
                break
        except socket.timeout:
            pass
        except (BrokenPipeError, ConnectionResetError):
            closed_after = time.monotonic() - t0
            break
        time.sleep(0.05)
    s.close()
    assert closed_after is not None and 1.9 < closed_after < 4, closed_after


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
