"""minilm served by the real binary: compared with the sentence-transformers reference committed in
Tests/fixtures/minilm, through curl, requests, and the official openai client (in a venv of its own);
batched answers equal unbatched ones; bad input gets 400 in the right shape."""
import base64
import json
import os
import re
import struct
import subprocess
import sys
import threading

import pytest
import requests

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
MODEL_DIR = os.environ.get("MSERVE_MINILM_DIR") or os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
with open(os.path.join(ROOT, "Tests", "fixtures", "minilm", "reference.json"), encoding="utf-8") as f:
    REFERENCE = json.load(f)["sentences"]
JSON_HEADERS = {"Content-Type": "application/json"}


def max_diff(a, b):
    assert len(a) == len(b) == 384
    return max(abs(x - y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    from conftest import Server
    s = Server(tmp_path_factory.mktemp("minilm"), ["minilm", "--model-dir", MODEL_DIR, "--batch-timeout-ms", "5",
                                                   "--queue-size", "64"], workers=2, wait=False)
    try:
        s.wait_ready(timeout=60)
        yield s
    finally:
        s.stop()


def embed(server, inputs, **extra):
    r = requests.post(server.url + "/minilm", json={"input": inputs, **extra}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_every_fixture_sentence_matches_the_reference(minilm):
    texts = [row["text"] for row in REFERENCE]
    out = embed(minilm, texts, recordid="fixture")
    assert out["recordid"] == "fixture" and out["dimensions"] == 384
    worst = max(max_diff(e, row["embedding"]) for e, row in zip(out["embeddings"], REFERENCE))
    assert worst <= 1e-5, worst
    assert out["tokens"] == [len(row["ids"]) for row in REFERENCE]
    # The text over 256 tokens was cut there, and says so.
    long = next(i for i, row in enumerate(REFERENCE) if len(row["ids"]) == 256)
    assert out["truncated"][long] and out["tokens"][long] == 256
    assert sum(out["truncated"]) == sum(1 for row in REFERENCE if len(row["ids"]) == 256)
    assert out["usage"]["prompt_tokens"] == sum(out["tokens"])


def test_curl(minilm):
    row = REFERENCE[2]
    out = subprocess.run(["curl", "-sS", "-H", "Content-Type: application/json", "-d",
                          json.dumps({"recordid": "c1", "input": row["text"]}), minilm.url + "/minilm"],
                         capture_output=True, check=True, timeout=30).stdout
    body = json.loads(out)
    assert body["recordid"] == "c1"
    assert max_diff(body["embeddings"][0], row["embedding"]) <= 1e-5
    minilm.wait_log(r"\[c1\] response: 200")


def test_openai_embeddings_api_by_hand(minilm):
    rows = REFERENCE[:3]
    r = requests.post(minilm.url + "/v1/embeddings", json={"model": "minilm", "input": [x["text"] for x in rows]}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == "minilm"
    assert [d["index"] for d in body["data"]] == [0, 1, 2] and all(d["object"] == "embedding" for d in body["data"])
    for d, row in zip(body["data"], rows):
        assert max_diff(d["embedding"], row["embedding"]) <= 1e-5
    assert body["usage"] == {"prompt_tokens": sum(len(x["ids"]) for x in rows), "total_tokens": sum(len(x["ids"]) for x in rows)}
    # base64: little-endian float32 (this one from a pass of its own, so within float rounding of the batch of three)
    b = requests.post(minilm.url + "/v1/embeddings", json={"model": "minilm", "input": rows[0]["text"],
                                                           "encoding_format": "base64"}, timeout=30).json()
    raw = base64.b64decode(b["data"][0]["embedding"])
    floats = struct.unpack("<384f", raw)
    assert max(abs(x - y) for x, y in zip(floats, body["data"][0]["embedding"])) <= 1e-6


@pytest.mark.parametrize("body,status,fragment", [
    ({"model": "text-embedding-3-small", "input": "x"}, 404, "does not exist"),
    ({"input": "x"}, 400, "missing model"),
    ({"model": "minilm", "input": ""}, 400, "empty string"),
    ({"model": "minilm", "input": []}, 400, "empty list"),
    ({"model": "minilm", "input": [[1, 2, 3]]}, 400, "expected a string"),
    ({"model": "minilm", "input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
    ({"model": "minilm", "input": "x", "dimensions": 128}, 400, "dimensions"),
])
def test_openai_errors_have_openais_shape(minilm, body, status, fragment):
    r = requests.post(minilm.url + "/v1/embeddings", json=body, timeout=30)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert fragment in err["message"] and err["type"] == "invalid_request_error" and "recordid" in r.json()


@pytest.mark.parametrize("body,fragment", [
    ({}, "missing input"),
    ({"input": ""}, "empty string"),
    ({"input": []}, "empty list"),
    ({"input": ["ok", 7]}, "input[1] is a number"),
    ({"input": ["ok", ""]}, "input[1] is an empty string"),
    ({"input": {"text": "x"}}, "must be a string or a list"),
    ({"input": ["x"] * 257}, "at most 256"),
])
def test_bad_input_is_a_400_and_the_workers_live(minilm, body, fragment):
    workers = minilm.worker_pids()
    r = requests.post(minilm.url + "/minilm", json={"recordid": "bad", **body}, timeout=30)
    assert r.status_code == 400 and fragment in r.json()["error"]["message"] and r.json()["recordid"] == "bad"
    assert minilm.worker_pids() == workers


def test_concurrent_requests_are_batched_and_batched_equals_unbatched(minilm):
    """32 clients at once, each its own sentence: the answers come from shared forward passes
    (batch_inputs > 1) and equal both the answers to the same sentences sent alone and the reference."""
    rows = REFERENCE[:32]
    alone = [embed(minilm, row["text"])["embeddings"][0] for row in rows[:8]]
    results = [None] * len(rows)
    barrier = threading.Barrier(len(rows))

    def client(i):
        barrier.wait()
        results[i] = embed(minilm, rows[i]["text"], recordid=f"b{i}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(rows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(r is not None for r in results)
    assert max(r["batch_inputs"] for r in results) > 1, [r["batch_inputs"] for r in results]
    for i, (r, row) in enumerate(zip(results, rows)):
        assert r["recordid"] == f"b{i}"
        assert max_diff(r["embeddings"][0], row["embedding"]) <= 1e-5
        if i < len(alone):
            assert max_diff(r["embeddings"][0], alone[i]) <= 1e-6


def test_the_official_openai_client_works_unchanged(minilm, openai_python):
    rows = REFERENCE[:4]
    script = f"""
import json, openai
client = openai.OpenAI(base_url={minilm.url + '/v1'!r}, api_key="unused")
print(json.dumps([m.id for m in client.models.list().data] + [client.models.retrieve("minilm").id]))
r = client.embeddings.create(model="minilm", input={[row['text'] for row in rows]!r})
print(json.dumps([d.embedding for d in r.data]))
print(json.dumps(r.usage.prompt_tokens))
try:
    client.embeddings.create(model="minilm", input=[])
except openai.BadRequestError as e:
    print(json.dumps(e.body["message"] if isinstance(e.body, dict) and "message" in e.body else str(e)))
"""
    out = subprocess.run([openai_python, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    models, vectors, tokens, error = [json.loads(line) for line in out.stdout.splitlines()]
    assert "minilm" in models
    for v, row in zip(vectors, rows):   # the client asked for base64 and decoded it
        assert max_diff(v, row["embedding"]) <= 1e-5
    assert tokens == sum(len(row["ids"]) for row in rows)
    assert "empty list" in error


def test_missing_or_wrong_weights_stop_the_server_with_the_path_and_the_fix(start, tmp_path):
    """No model files: the worker says which file and how to fetch it, and the master exits with 4
    instead of respawning workers in a loop.  A damaged safetensors file is caught by its hash."""
    s = start("minilm", "--model-dir", str(tmp_path / "nowhere"), workers=1, wait=False)
    assert s.wait_exit(timeout=30) == 4
    assert f"{tmp_path}/nowhere/config.json: cannot open" in s.log() and "scripts/fetch-minilm" in s.log()

    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "sentence_bert_config.json", "vocab.txt"):
        (broken / name).write_bytes(open(os.path.join(MODEL_DIR, name), "rb").read())
    (broken / "1_Pooling").mkdir()
    (broken / "1_Pooling" / "config.json").write_bytes(open(os.path.join(MODEL_DIR, "1_Pooling", "config.json"), "rb").read())
    data = bytearray(open(os.path.join(MODEL_DIR, "model.safetensors"), "rb").read())
    data[-1] ^= 1   # one bit of the last weight
    (broken / "model.safetensors").write_bytes(bytes(data))
    s2 = start("minilm", "--model-dir", str(broken), workers=1, wait=False)
    assert s2.wait_exit(timeout=30) == 4
    assert "model.safetensors: sha256 is" in s2.log() and "expected 53aa5117" in s2.log()


def test_metrics_count_passes_and_their_inputs(minilm):
    embed(minilm, [row["text"] for row in REFERENCE[:10]])
    text = requests.get(minilm.url + "/metrics", timeout=10).text
    passes = float(re.search(r'^mserve_batches_total\{model="minilm"\} (\d+)', text, re.M).group(1))
    inputs = float(re.search(r'^mserve_batch_inputs_total\{model="minilm"\} (\d+)', text, re.M).group(1))
    assert passes >= 1 and inputs >= passes + 9   # the ten-input request was one pass


def test_two_model_threads_calling_blas_at_once_agree_with_the_reference(start):
    """--limit-concurrency 2 and batches of one: two forward passes run at the same time in one
    worker, each on its own OpenBLAS thread (the pthread build; the serial one would corrupt them)."""
    s = start("minilm", "--model-dir", MODEL_DIR, "--limit-concurrency", "2", "--max-batch-size", "1",
              "--queue-size", "32", workers=1)
    rows = REFERENCE[:24]
    results = [None] * len(rows)

    def client(i):
        for _ in range(3):
            results[i] = embed(s, rows[i]["text"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(rows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for r, row in zip(results, rows):
        assert r["batch_inputs"] == 1
        assert max_diff(r["embeddings"][0], row["embedding"]) <= 1e-5
