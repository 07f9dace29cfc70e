import json
import os
import re
import socket
import stat
import subprocess
import time

import requests

from conftest import MSERVE, free_port, wait_for


def test_four_workers_serve_the_demo(start):
    s = start("demo", workers=4)
    pids = s.worker_pids()
    assert len(pids) == 4
    for pid in pids:
        assert re.search(rf"Worker {pid} \(slot \d\) is serving", s.log())
    r = s.post("/demo", {"recordid": "r1", "cal_number": 5})
    assert r.status_code == 200
    assert r.json() == {"recordid": "r1", "result": 5}
    assert r.headers["X-Request-Id"] == "r1"
    # New connections are spread over the workers by the kernel (SO_REUSEPORT).
    served_by = set()
    for i in range(200):
        requests.post(s.url + "/demo", json={"cal_number": 1}, headers={"Connection": "close"}, timeout=5)
    wait_for(lambda: s.access().count("\n") >= 201, what="access lines")
    served_by = set(re.findall(r"pid=(\d+)", s.access()))
    assert len(served_by) >= 3, served_by


def test_demo_sums_per_worker(start):
    s = start("demo", workers=1)
    results = [s.post("/demo", {"cal_number": n}).json()["result"] for n in (5, 2, 0.5)]
    assert results == [5, 7, 7.5]


def test_recordid_in_response_and_every_log_line(start):
    s = start("demo", workers=2)
    r = s.post("/demo", {"recordid": "abc-123", "cal_number": 2})
    assert r.json()["recordid"] == "abc-123"
    s.wait_log(r"\[abc-123\] response: 200")
    log = s.log()
    # At info, sizes (a million requests' bodies would be most of the log); an error's body is its reason.
    assert re.search(r'\[\d+\] \[INFO\] \[abc-123\] request: POST /demo \(40 bytes\)\n', log), log
    assert re.search(r'\[\d+\] \[INFO\] \[abc-123\] response: 200 \(33 bytes\)\n', log), log
    s.post("/demo", {"recordid": "bad-1"})
    s.wait_log(r'\[WARNING\] \[bad-1\] response: 400 \{"recordid":"bad-1","error":\{"code":400,"message":"missing argument cal_number"\}\}')
    wait_for(lambda: "rid=abc-123" in s.access(), what="access line")
    line = [l for l in s.access().splitlines() if "rid=abc-123" in l][0]
    m = re.match(r'127\.0\.0\.1 - - \[[^\]]+\] "POST /demo HTTP/1\.1" 200 (\d+) "-" "[^"]*" (\d+\.\d{6}) pid=(\d+) rid=abc-123$', line)
    assert m, line
    assert int(m.group(1)) == len(r.content)
    assert int(m.group(3)) in s.worker_pids()
    # At debug, the bodies.
    d = start("--log-level", "debug", "demo", workers=1)
    d.post("/demo", {"recordid": "abc-124", "cal_number": 2})
    d.wait_log(r'\[\d+\] \[INFO\] \[abc-124\] response: 200 \{"recordid":"abc-124","result":2\}')
    assert re.search(r'\[\d+\] \[INFO\] \[abc-124\] request: POST /demo \{"recordid": "abc-124", "cal_number": 2\}', d.log())


def test_recordid_from_header_then_generated(start):
    s = start("demo", workers=1)
    r = s.post("/demo", {"cal_number": 1}, headers={"Content-Type": "application/json", "X-Request-Id": "hdr-7"})
    assert r.json()["recordid"] == "hdr-7" and r.headers["X-Request-Id"] == "hdr-7"
    ids = set()
    for _ in range(20):
        r = s.post("/demo", {"cal_number": 1})
        rid = r.json()["recordid"]
        assert re.fullmatch(r"[0-9a-f]{20}", rid) and r.headers["X-Request-Id"] == rid
        ids.add(rid)
    assert len(ids) == 20
    r = s.post("/demo", {"recordid": 17, "cal_number": 1})
    assert r.json()["recordid"] == 17


def test_index_lists_models_and_model_info(start):
    s = start("demo", "echo", "sleep", workers=1)
    r = s.get("/")
    assert r.status_code == 200
    assert [m["name"] for m in r.json()["models"]] == ["demo", "echo", "sleep"]
    assert r.json()["models"][0]["path"] == "/demo"
    info = s.get("/demo").json()
    assert info["name"] == "demo" and info["worker"] == 0
    assert s.post("/echo", {"recordid": "e", "a": [1, {"b": None}]}).json() == {"recordid": "e", "a": [1, {"b": None}]}
    assert s.post("/sleep", {"ms": 30}).json()["slept_ms"] == 30
    v1 = s.get("/v1/models").json()
    assert v1["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"]) for m in v1["data"]] == [
        ("demo", "model", "mserve"), ("echo", "model", "mserve"), ("sleep", "model", "mserve")]
    assert abs(v1["data"][0]["created"] - time.time()) < 60


def test_keep_alive_and_ipv6(start):
    s = start("demo", "-b", "[::1]:0", workers=1)
    port6 = int(re.search(r"Listening at: http://\[::1\]:(\d+)", s.log()).group(1))
    with requests.Session() as session:
        for i in range(50):
            assert session.post(s.url + "/demo", json={"cal_number": 1}, timeout=5).status_code == 200
        r = session.post(f"http://[::1]:{port6}/demo", json={"cal_number": 1}, timeout=5)
        assert r.json()["result"] == 51


def test_log_level_warning_hides_request_lines(start):
    s = start("demo", "--log-level", "warning", workers=1, port=free_port())
    s.post("/demo", {"recordid": "quiet", "cal_number": 1})
    s.post("/nope", {"recordid": "loud"})
    wait_for(lambda: "rid=loud" in s.access(), what="access line")
    s.wait_log(r"\[loud\] response: 404")
    assert "[quiet]" not in s.log()
    assert "rid=quiet" in s.access()
    # The bound address is logged at every level: a user of port 0 can find the port.
    assert re.search(r"Listening at: http://127\.0\.0\.1:\d+", s.log()), s.log()


def test_log_level_debug_adds_headers_and_queueing(start):
    s = start("demo", "sleep", "--log-level", "debug", workers=1)
    s.post("/sleep", {"recordid": "dbg", "ms": 1}, headers={"Content-Type": "application/json", "X-Trace": "t1"})
    s.wait_log(r"\[DEBUG\] \[dbg\] headers: .*X-Trace: t1;")
    s.wait_log(r"\[dbg\] queued for model sleep \(cost 1; ")
    r = requests.request("BREW", s.url + "/demo", timeout=5)
    assert r.status_code == 405 and "method BREW is not allowed" in r.json()["error"]["message"]


def test_logs_are_whole_lines_under_concurrency(start):
    """Many requests through 4 workers into one error log and one access log: every line is whole."""
    import concurrent.futures
    s = start("demo", workers=4)

    def hit(i):
        return requests.post(s.url + "/demo", json={"recordid": f"c{i}", "cal_number": 1, "pad": "x" * 300},
                             timeout=10).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        assert set(ex.map(hit, range(2000))) == {200}
    wait_for(lambda: s.access().count("\n") >= 2000, what="2000 access lines")
    s.wait_log(r"\[c\d+\] response", count=2000)
    access = s.access().splitlines()
    assert len(access) == 2000
    assert all(re.fullmatch(r'127\.0\.0\.1 - - \[.*\] "POST /demo HTTP/1\.1" 200 \d+ .* pid=\d+ rid=c\d+', l) for l in access)
    lines = [l for l in s.log().splitlines() if "] [c" in l]
    assert len(lines) == 4000
    assert all(re.fullmatch(r"\[[^\]]+\] \[\d+\] \[INFO\] \[c\d+\] (request|response): .*", l) for l in lines)
    for i in (0, 999, 1999):
        assert sum(f"[c{i}] " in l for l in lines) == 2


def test_access_logformat_with_gunicorn_atoms(start):
    s = start("demo", "--access-logformat", '%(h)s "%(r)s" %(s)s %(b)s %(rid)s %({x-forwarded-for}i)s %({content-type}o)s %(p)s',
              workers=1)
    s.post("/demo?x=1", {"recordid": "fmt1", "cal_number": 1}, headers={"Content-Type": "application/json", "X-Forwarded-For": "9.9.9.9"})
    wait_for(lambda: "fmt1" in s.access(), what="access line")
    line = [l for l in s.access().splitlines() if "fmt1" in l][0]
    pid = s.worker_pids()[0]
    # %(h)s is the client: loopback is a trusted proxy by default, so its X-Forwarded-For counts.
    assert re.fullmatch(rf'9\.9\.9\.9 "POST /demo\?x=1 HTTP/1\.1" 200 \d+ fmt1 9\.9\.9\.9 application/json <{pid}>', line), line
    bad = subprocess.run([MSERVE, "--access-logformat", "%(zz)s", "demo"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "unknown atom %(zz)s" in bad.stderr


def test_unix_socket_bind_with_its_mode(start, tmp_path):
    """-b unix:PATH beside TCP: every worker accepts on it, the file has --unix-socket-mode, a stale
    file is replaced, a live one is refused, and the file is gone after a stop."""
    path = tmp_path / "mserve.sock"
    path.write_text("")   # not a socket: refused
    p = subprocess.run([MSERVE, "-b", f"unix:{path}", "demo"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 1 and "exists and is not a socket" in p.stderr
    path.unlink()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()          # a socket file nobody accepts on: replaced
    s = start("demo", "-b", f"unix:{path}", "--unix-socket-mode", "0600", workers=2)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_ISSOCK(os.stat(path).st_mode)
    s.wait_log(rf"Listening at: unix:{re.escape(str(path))} ")
    for i in range(40):
        out = subprocess.run(["curl", "-s", "--unix-socket", str(path), "-H", "Content-Type: application/json",
                              "-d", json.dumps({"recordid": f"u{i}", "cal_number": 1}), "http://x/demo"],
                             capture_output=True, text=True, timeout=10).stdout
        assert json.loads(out)["recordid"] == f"u{i}"
    wait_for(lambda: "rid=u39" in s.access(), what="access line")
    assert re.search(r"^unix - - \[", s.access(), re.M), s.access()
    live = subprocess.run([MSERVE, "-b", f"unix:{path}", "demo"], capture_output=True, text=True, timeout=10)
    assert live.returncode == 1 and "another server accepts on it" in live.stderr
    assert s.post("/demo", {"cal_number": 1}).status_code == 200   # TCP too
    s.stop()
    assert not path.exists()


def test_the_access_log_names_the_client_behind_a_trusted_proxy(start):
    import requests as rq
    s = start("demo", workers=1)
    rq.post(s.url + "/demo", json={"cal_number": 1}, headers={"X-Forwarded-For": "203.0.113.7, 127.0.0.1"}, timeout=10)
    wait_for(lambda: "203.0.113.7 - - [" in s.access(), what="the forwarded client in the access log")
    # A peer that is not trusted says nothing about the client.
    t = start("--forwarded-allow-ips", "10.9.9.9", "demo", workers=1)
    rq.post(t.url + "/demo", json={"cal_number": 1}, headers={"X-Forwarded-For": "203.0.113.7"}, timeout=10)
    wait_for(lambda: "POST /demo" in t.access(), what="the access line")
    assert t.access().startswith("127.0.0.1 - - [") and "203.0.113.7" not in t.access()


def test_a_known_model_not_served_gets_a_404_that_says_how_to_serve_it(start):
    s = start("demo", workers=1)
    r = s.post("/echo", {"text": "hi"})
    assert r.status_code == 404, r.text
    assert r.json()["error"]["message"] == ("no route for /echo: the model echo is not served here (this server serves demo); "
                                            "start mserve with it: mserve [options] demo echo")
    r = s.post("/v1/embeddings", {"input": "hi"})
    assert r.status_code == 404 and "no embedding model is served (this server serves demo); minilm is one" in r.json()["error"]["message"]
    assert s.post("/nothing", {}).json()["error"]["message"] == "no route for /nothing"
