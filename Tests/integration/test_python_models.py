"""Models written in Python, served by the real binary: the examples in Examples/python (a HepAI-style
class, the tornado service's predict), streams from generators, a ValueError (400), another exception
(500, the traceback only in the log), print and logging in the error log, the event loop answering
while Python holds the GIL, a stream stopped when its client leaves, an extension's segfault killing
only its worker; a modelserve-style class (query, form, JSON, uploads, bytes), validate and
inference_batch, --preload, HUP reloading the code, and a venv with numpy installed by the test."""
import hashlib
import json
import os
import signal
import subprocess
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
    s.wait_log(r"\[p3\] python: hepai_worker:WorkerModel raised RuntimeError")
    # The traceback's lines are log lines, each with the recordid (not one line of literal \n).
    s.wait_log(r"\[ERROR\] \[p3\] Traceback \(most recent call last\):\n")
    s.wait_log(r'\[ERROR\] \[p3\]   File ".*hepai_worker\.py", line \d+, in inference\n')
    assert not any("Traceback" in l and "\\n" in l for l in s.log().splitlines()), s.log()
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


def test_a_modelserve_class_reads_query_form_json_and_files_and_answers_bytes(start):
    s = start("--pythonpath", EXAMPLES, "custom=modelserve_model:Model", workers=1)
    r = s.get("/custom?text=hello")   # modelserve's text-to-text: GET with a query
    assert r.status_code == 200 and r.json()["text"] == "olleh" and r.json()["method"] == "GET"
    assert requests.post(s.url + "/custom", data={"text": "form"}, timeout=10).json()["text"] == "mrof"
    assert s.post("/custom", {"text": "json"}).json()["text"] == "nosj"
    assert s.get("/custom").json()["kind"] == "upload"   # without a query, GET describes the model
    # An upload arrives as a file object with Django's name, content_type and size.
    png = bytes(range(256)) * 4
    up = requests.post(s.url + "/custom", files={"image": ("cat.png", png, "image/png")}, timeout=10).json()
    assert up["name"] == "cat.png" and up["content_type"] == "image/png" and up["size"] == 1024
    assert up["sha256"] == hashlib.sha256(png).hexdigest()
    # Bytes go out raw, with the class's content_type, and the recordid in the header.
    raw = s.post("/custom", {"text": "abc", "format": "bytes"}, headers={"Content-Type": "application/json", "X-Request-Id": "raw1"})
    assert raw.status_code == 200 and raw.content == b"cba" and raw.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert raw.headers["X-Request-Id"] == "raw1"
    # validate's ValueError is a 400 the model never sees.
    bad = s.post("/custom", {"recordid": "v1"})
    assert bad.status_code == 400 and bad.json() == {"recordid": "v1", "error": {"code": 400, "message": "give text (query, form or JSON) or an image upload"}}
    assert s.get("/custom?text=x").json()["served"] == 6   # the 400 did not count


def test_a_framework_response_keeps_its_status_and_type(start):
    s = start("--pythonpath", TROUBLE, "csv=trouble:csv_answer", workers=1)
    r = s.post("/csv", {"rows": 3})
    assert r.status_code == 201 and r.headers["Content-Type"] == "text/csv" and r.text == "0,0\n1,1\n2,4\n"


def test_inference_batch_takes_queued_requests_together(start):
    s = start("--pythonpath", TROUBLE, "b=trouble:Batcher", "--max-batch-size", "8", "--queue-size", "32", workers=1)
    from concurrent.futures import ThreadPoolExecutor
    inputs = list(range(6)) + ["bad", "wrong"]
    with ThreadPoolExecutor(len(inputs)) as pool:
        answers = list(pool.map(lambda x: s.post("/b", {"x": x}), inputs))
    good = [a.json() for a in answers[:6]]
    assert [g["x"] for g in good] == list(range(6))
    assert max(g["batch"] for g in good) > 1, good   # queued requests ran together
    assert answers[6].status_code == 400 and answers[6].json()["error"]["message"] == "bad input"
    assert answers[7].status_code == 400 and "rejected by trouble:Batcher's validate" in answers[7].json()["error"]["message"]
    assert sum(good[-1]["sizes"]) + 1 <= 8   # "wrong" never reached the batch


def test_preload_makes_the_instance_once_in_the_master(start):
    s = start("--pythonpath", TROUBLE, "--preload", "p=trouble:Preloaded", workers=2)
    pids = set(s.worker_pids())
    seen = {}
    for _ in range(40):
        a = requests.post(s.url + "/p", json={}, headers={"Connection": "close"}, timeout=10).json()
        seen[a["pid"]] = a
        if len(seen) == 2:
            break
    assert set(seen) == pids, seen   # both workers answer...
    assert {a["made_in"] for a in seen.values()} == {s.pid}   # ...with the instance made in the master
    assert s.log().count("Preloaded made in") == 1
    # A worker killed is replaced by a fork of the master, which still has the instance.
    os.kill(min(pids), signal.SIGKILL)
    wait_for(lambda: len(set(s.worker_pids())) == 2 and min(pids) not in s.worker_pids(), 20, what="a replacement worker")
    for _ in range(20):
        assert requests.post(s.url + "/p", json={}, headers={"Connection": "close"}, timeout=10).json()["made_in"] == s.pid


def test_hup_reloads_the_python_code(start, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "versioned.py").write_text("def predict(**kwargs):\n    return {'version': 1}\n")
    s = start("--pythonpath", str(code), "v=versioned:predict", workers=2)
    assert s.post("/v", {}).json()["version"] == 1
    (code / "versioned.py").write_text("def predict(**kwargs):\n    return {'version': 2}\n")
    old = set(s.worker_pids())
    s.signal(signal.SIGHUP)
    wait_for(lambda: len(s.worker_pids()) == 2 and not (set(s.worker_pids()) & old), 30, what="new workers")
    assert {requests.post(s.url + "/v", json={}, headers={"Connection": "close"}, timeout=10).json()["version"] for _ in range(10)} == {2}


def test_a_venv_with_numpy(start, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "numpy"], check=True, timeout=600)
    s = start("--python-venv", str(venv), "--pythonpath", EXAMPLES, "--limit-concurrency", "2",
              "matmul=numpy_model:MatrixModel", workers=1)
    a = s.post("/matmul", {"rows": 4, "seed": 1}).json()
    # The same product, computed by the venv's own Python.
    expected = json.loads(subprocess.run([str(venv / "bin" / "python"), "-c", (
        "import json, numpy as np\n"
        "w = np.random.default_rng(0).standard_normal((512, 512), dtype=np.float32) / np.sqrt(512)\n"
        "p = np.random.default_rng(1).standard_normal((4, 512), dtype=np.float32) @ w\n"
        "print(json.dumps({'sum': float(p.sum()), 'first': p[0, :4].tolist()}))")],
        check=True, capture_output=True, text=True).stdout)
    assert a["rows"] == 4 and abs(a["sum"] - expected["sum"]) < 1e-3
    assert all(abs(x - y) < 1e-5 for x, y in zip(a["first"], expected["first"]))
    assert s.post("/matmul", {"rows": 0}).status_code == 400
    by_curl = subprocess.run(["curl", "-s", s.url + "/matmul", "-d", '{"rows": 4, "seed": 1}'], capture_output=True, check=True).stdout
    assert json.loads(by_curl)["sum"] == a["sum"]
    # The same venv through VIRTUAL_ENV.
    s2 = start("--pythonpath", EXAMPLES, "matmul=numpy_model:MatrixModel", workers=1, env={"VIRTUAL_ENV": str(venv)})
    assert s2.post("/matmul", {"rows": 4, "seed": 1}).json()["sum"] == a["sum"]


def test_a_venv_of_another_python_stops_the_server_with_a_clear_message(start, tmp_path):
    venv = tmp_path / "venv39"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.9.18\n")
    s = start("--python-venv", str(venv), "--pythonpath", EXAMPLES, "acc=tornado_predict:predict", workers=1, wait=False)
    assert s.wait_exit(timeout=30) == 4
    embedded = subprocess.run(["pkg-config", "--modversion", "python3-embed"], capture_output=True, text=True).stdout.strip()
    assert f"python venv {venv} is Python 3.9.18, and mserve embeds Python {embedded}" in s.log()
    s2 = start("--python-venv", str(tmp_path), "acc=tornado_predict:predict", workers=1, wait=False)
    assert s2.wait_exit(timeout=30) == 4
    assert "is not a virtual environment (no pyvenv.cfg" in s2.log()


def test_declared_input_errors_are_400_and_others_500(start):
    s = start("--pythonpath", TROUBLE, "d=trouble:Declared", workers=1)
    r = s.post("/d", {"kind": "declared"})
    assert r.status_code == 400 and r.json()["error"]["message"] == "the input is bad in this model's own way"
    assert s.post("/d", {"kind": "key"}).status_code == 400
    r = s.post("/d", {"recordid": "t1", "kind": "other"})
    assert r.status_code == 500 and "TypeError: not declared" in r.json()["error"]["message"]
    s.wait_log(r"\[t1\] python: trouble:Declared raised TypeError")


def test_code_that_releases_the_gil_runs_in_parallel_with_limit_concurrency(start):
    s = start("--pythonpath", TROUBLE, "--limit-concurrency", "2", "sleep=trouble:sleeper", workers=1)
    from concurrent.futures import ThreadPoolExecutor
    t0 = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: s.post("/sleep", {"seconds": 0.6}), range(2)))
    elapsed = time.monotonic() - t0
    assert [a.status_code for a in answers] == [200, 200]
    assert elapsed < 1.1, elapsed   # one after the other would take 1.2 s


def test_the_examples_answer_curl(start, tmp_path):
    s = start("--pythonpath", EXAMPLES, "worker=hepai_worker:WorkerModel", "acc=tornado_predict:predict",
              "custom=modelserve_model:Model", workers=1)

    def curl(*args):
        return subprocess.run(["curl", "-s", "--max-time", "10", *args], capture_output=True, check=True).stdout

    # curl -d sends a form's media type; a JSON object body is taken as JSON.
    assert json.loads(curl(s.url + "/worker", "-d", '{"text": "from curl"}'))["text"] == "FROM CURL"
    assert json.loads(curl(s.url + "/acc", "-d", '{"cal_number": 4}'))["result"] == 4
    assert json.loads(curl(s.url + "/custom?text=abc"))["text"] == "cba"
    assert json.loads(curl(s.url + "/custom", "-d", "text=form"))["text"] == "mrof"
    picture = tmp_path / "picture.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    up = json.loads(curl(s.url + "/custom", "-F", f"image=@{picture};type=image/png"))
    assert up["name"] == "picture.png" and up["size"] == 108 and up["content_type"] == "image/png"
    events = curl("-N", s.url + "/worker", "-d", '{"text": "a b", "stream": true}').decode()
    assert events.count("data: {") == 2 and events.endswith("data: [DONE]\n\n")


def test_arguments_that_do_not_fit_the_function_are_400(start):
    s = start("--pythonpath", TROUBLE, "strict=trouble:strict", workers=1)
    assert s.post("/strict", {"a": 2, "b": 3}).json()["sum"] == 5
    r = s.post("/strict", {"a": 1, "c": 3})
    assert r.status_code == 400 and "unexpected keyword argument 'c'" in r.json()["error"]["message"]
    r = s.post("/strict", {"b": 3})
    assert r.status_code == 400 and "missing 1 required positional argument: 'a'" in r.json()["error"]["message"]
    r = s.post("/strict", {"recordid": "te", "a": 1, "b": "x"})   # the TypeError is inside the function
    assert r.status_code == 500 and "TypeError" in r.json()["error"]["message"]
    s.wait_log(r"\[te\] python: trouble:strict raised TypeError")


def test_a_key_named_self_is_a_400_not_a_500(start):
    """inference(self, **kwargs) given {"self": ...}: a second value for self, the client's mistake."""
    s = start("--pythonpath", EXAMPLES, "worker=hepai_worker:WorkerModel", workers=1)
    r = s.post("/worker", {"recordid": "s1", "text": "hi", "self": 1})
    assert r.status_code == 400, r.text
    assert "multiple values for argument 'self'" in r.json()["error"]["message"]
    assert r.json()["recordid"] == "s1"
    assert "Traceback" not in s.log()


def test_a_python_model_reads_the_requests_trace(start):
    """request.trace_id and request.traceparent: the caller's trace, with this server's span, the
    traceparent the answer carries."""
    s = start("--pythonpath", TROUBLE, "traced=trouble:traced", workers=1)
    r = s.post("/traced", {}, headers={"Content-Type": "application/json", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    assert r.status_code == 200, r.text
    assert r.json()["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and r.json()["traceparent"] == r.headers["traceparent"]
    fresh = s.post("/traced", {}).json()
    assert len(fresh["trace_id"]) == 32 and fresh["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736"
