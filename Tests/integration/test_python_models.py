"""Models written in Python, served by the real binary: the examples in Examples/python (a HepAI-style
class, the tornado service's predict), streams from generators, a ValueError (400), another exception
(500, the traceback only in the log), print and logging in the error log, the event loop answering while Python holds the GIL, a stream
stopped when its client leaves, and an extension's segfault killing only its worker."""
import json
import os
import time

import requests

from conftest import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "Examples", "python")
TROUBLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "python_models")


def test_the_examples_answer_stream_and_refuse_bad_input(start):
    s = start("--pythonpath", EXAMPLES, "worker=hepai_worker:WorkerModel", "acc=tornado_predict:predict", workers=1)
    r = s.post("/worker", {"recordid": "p1", "text": "hello there"})
    assert r.status_code == 200 and r.json() == {"recordid": "p1", "text": "HELLO THERE", "words": 2, "calls": 1}
    assert [s.post("/acc", {"cal_number": n}).json()["result"] for n in (5, 7)] == [5, 12]   # the worker's running sum
    # A generator streams, as SSE or JSON lines.
    r = requests.post(s.url + "/worker", json={"text": "one two three", "stream": True}, stream=True, timeout=10)
    events = [json.loads(l[6:]) for l in r.iter_lines() if l.startswith(b"data: ") and l != b"data: [DONE]"]
    assert [e["word"] for e in events] == ["ONE", "TWO", "THREE"]
    lines = requests.post(s.url + "/worker", json={"text": "a b", "stream": "ndjson"}, timeout=10).text
    assert [json.loads(l)["word"] for l in lines.splitlines()] == ["A", "B"]
    # ValueError: 400 with its message.
    bad = s.post("/acc", {"recordid": "p2", "cal_number": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["message"] == "cal_number must be a number"
    # Another exception: 500; the traceback in the log, not in the answer; the worker lives on.
    crash = s.post("/worker", {"recordid": "p3", "text": "crash"})
    assert crash.status_code == 500 and "RuntimeError: the model broke on purpose" in crash.json()["error"]["message"]
    assert "Traceback" not in crash.text
    s.wait_log(r"\[p3\] python: hepai_worker:WorkerModel raised RuntimeError.*Traceback \(most recent call last\)")
    assert s.post("/worker", {"text": "still here"}).json()["calls"] == 5   # every call counted, the crash included
    # print() and logging land in the error log, with the recordid inside a request.
    s.wait_log(r"python hepai_worker:WorkerModel: WorkerModel ready")
    s.wait_log(r"\[p1\] python hepai_worker:WorkerModel: INFO worker: call 1: 11 characters")


def test_the_event_loop_answers_while_python_holds_the_gil(start):
    s = start("--pythonpath", TROUBLE, "busy=trouble:busy", workers=1)
    import threading
    t = threading.Thread(target=lambda: s.post("/busy", {"seconds": 2}, timeout=10))
    t.start()
    time.sleep(0.3)
    slowest = 0.0
    for _ in range(10):
        t0 = time.monotonic()
        assert requests.get(s.url + "/healthz", timeout=5).status_code == 200
        slowest = max(slowest, time.monotonic() - t0)
        time.sleep(0.05)
    t.join()
    assert slowest < 0.05, slowest


def test_a_stream_stops_when_its_client_leaves(start, tmp_path):
    s = start("--pythonpath", TROUBLE, "forever=trouble:forever", workers=1)
    marker = tmp_path / "closed"
    r = requests.post(s.url + "/forever", json={"recordid": "gone", "marker": str(marker), "stream": True}, stream=True, timeout=10)
    assert next(l for l in r.iter_lines() if l.startswith(b"data: "))
    r.close()
    wait_for(marker.exists, 10, what="the generator closed after the client left")
    wait_for(lambda: " 499 " in s.access(), 10, what="the 499 access line")


def test_a_segfault_in_python_kills_only_its_worker(start):
    s = start("--pythonpath", TROUBLE, "segfault=trouble:segfault", "acc=trouble:busy", workers=2)
    before = set(s.worker_pids())
    try:
        requests.post(s.url + "/segfault", json={}, timeout=10)
    except requests.RequestException:
        pass   # the worker died mid-request
    s.wait_log(r"was sent SIGSEGV|signal 11|SIGSEGV", timeout=15)
    wait_for(lambda: len(set(s.worker_pids())) == 2 and set(s.worker_pids()) != before, 20, what="a replacement worker")
    assert s.post("/acc", {"seconds": 0}).status_code == 200


def test_unknown_python_code_stops_the_server_with_a_clear_message(start):
    s = start("--pythonpath", TROUBLE, "nope=no_such_module:Model", workers=1, wait=False)
    assert s.wait_exit(timeout=30) == 4
    assert "python: cannot import no_such_module" in s.log()
