"""The smollm2 chat model served by the real binary (mserve's own style; OpenAI's endpoints are the
next step): greedy answers, streams, requests batched together, bad input, a client that leaves."""
import json
import os
import threading

import pytest
import requests

from conftest import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL_DIR = os.environ.get("MSERVE_SMOLLM2_DIR") or os.path.join(ROOT, "models", "smollm2")
QUESTION = {"messages": [{"role": "user", "content": "What is the capital of France?"}], "temperature": 0, "max_tokens": 20}


@pytest.fixture(scope="module")
def chat(tmp_path_factory):
    from conftest import Server
    s = Server(tmp_path_factory.mktemp("smollm2"), ["smollm2", "--model-dir", MODEL_DIR, "--limit-concurrency", "4"], workers=1)
    yield s
    s.stop()


def test_a_greedy_answer_with_its_usage(chat):
    r = chat.post("/smollm2", {"recordid": "q1", **QUESTION}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["recordid"] == "q1" and body["text"] == "The capital of France is Paris." and body["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 37 and body["usage"]["completion_tokens"] == 8
    assert body["usage"]["time_to_first_token_ms"] > 0


def test_requests_running_together_are_each_answered_as_alone(chat):
    results = {}

    def ask(i):
        results[i] = chat.post("/smollm2", {"recordid": f"t{i}", **QUESTION}, timeout=120).json()
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i]["text"] for i in range(3)] == ["The capital of France is Paris."] * 3


def test_a_stream_sends_text_pieces_then_the_finish(chat):
    r = requests.post(chat.url + "/smollm2", json={**QUESTION, "max_tokens": 4}, headers={"Accept": "text/event-stream"},
                      stream=True, timeout=60)
    events = [line[6:] for line in r.iter_lines() if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    pieces = [json.loads(e) for e in events[:-1]]
    assert "".join(p.get("text", "") for p in pieces) == "The capital of France"
    assert pieces[-1]["finish_reason"] == "length" and pieces[-1]["usage"]["completion_tokens"] == 4


@pytest.mark.parametrize("body, message", [
    ({"messages": []}, "messages must be a non-empty list"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "role must be system, user or assistant"),
    ({"messages": [{"role": "user", "content": 5}]}, "content must be a string"),
    ({"prompt": "hi", "max_tokens": 0}, "max_tokens must be a positive integer"),
    ({"prompt": "hi", "temperature": -1}, "temperature must be from 0 to 2"),
    ({"prompt": "hi", "top_p": 0}, "top_p must be greater than 0"),
    ({"prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}, "up to 4 strings"),
    ({"prompt": "hi", "max_tokens": 9000}, "at most 8192 fit"),
    ({"text": "hi"}, "send {\"messages\""),
])
def test_bad_input_is_a_400_that_says_why(chat, body, message):
    r = chat.post("/smollm2", body, timeout=30)
    assert r.status_code == 400 and message in r.json()["error"]["message"], r.text


def test_a_client_that_leaves_mid_stream_frees_its_sequence(chat):
    r = requests.post(chat.url + "/smollm2", json={"recordid": "gone", "prompt": "Count to one thousand:", "max_tokens": 2000,
                                                   "temperature": 1, "seed": 1},
                      headers={"Accept": "text/event-stream"}, stream=True, timeout=60)
    lines = r.iter_lines()
    assert next(l for l in lines if l.startswith(b"data: "))
    r.close()
    wait_for(lambda: " 499 " in chat.access() and "rid=gone" in chat.access(), 30, what="the 499 of the stream that was left")
    # The others go on as before.
    assert chat.post("/smollm2", QUESTION, timeout=60).json()["text"] == "The capital of France is Paris."
