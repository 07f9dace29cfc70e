"""Examples/WordCount: a user's own model in its own Swift package, served by mserve's library with
the same command line.  scripts/test builds it first."""
import json
import os
import subprocess

import pytest
import requests

EXAMPLE = os.environ.get("EXAMPLE_BIN")


@pytest.fixture
def example():
    if not EXAMPLE:
        pytest.skip("EXAMPLE_BIN is not set (scripts/test builds Examples/WordCount and sets it)")
    assert os.path.exists(EXAMPLE), f"{EXAMPLE} was not built"
    return EXAMPLE


def test_example_package_serves_its_model(start, example):
    s = start("wordcount", "demo", workers=2, binary=example)
    r = s.post("/wordcount", {"recordid": "w1", "text": "To be, or not to be"})
    assert r.status_code == 200
    assert r.json() == {"recordid": "w1", "words": 6, "counts": {"to": 2, "be": 2, "or": 1, "not": 1}}
    # Its swift-log Logger line, in mserve's error log with the request's recordid and the model's name.
    s.wait_log(r"\[\d+\] \[INFO\] \[w1\] wordcount: counted 6 words distinct=4\n")
    assert s.post("/wordcount", {"text": 42}).status_code == 400
    assert s.post("/demo", {"cal_number": 2}).json()["result"] == 2
    r = requests.post(s.url + "/wordcount", json={"text": "a b", "stream": True}, stream=True, timeout=10)
    data = [l[6:] for l in r.iter_lines() if l.startswith(b"data: ")]
    assert [json.loads(d)["word"] for d in data[:-1]] == ["a", "b"] and data[-1] == b"[DONE]"


def test_example_lists_its_model_and_rejects_unknown_ones(example):
    p = subprocess.run([example, "nosuch"], capture_output=True, text=True, timeout=10)
    # minilm is the mserve executable's (its target links OpenBLAS); a model package has the built-in ones.
    assert p.returncode == 2 and "known models: demo, echo, sleep, wordcount" in p.stderr


def test_example_links_no_openblas(example):
    libs = subprocess.run(["ldd", example], capture_output=True, text=True, timeout=10).stdout
    assert "libevent" in libs and "openblas" not in libs, libs
