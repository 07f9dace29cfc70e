"""API keys against the real server: the keys file written by `mserve keys add`, 401/403 over
HTTP, the official openai client with api_key, rotation by HUP while a client keeps sending, and
no key in any log."""
import json
import os
import signal
import subprocess
import threading

import requests

from conftest import MSERVE, wait_for


def add_key(path, name, *fields):
    p = subprocess.run([MSERVE, "keys", "add", name, "--file", str(path), *fields], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    key = p.stdout.strip()
    assert key.startswith("msk-") and key not in path.read_text()
    return key


def keyed_server(start, tmp_path, *extra, workers=2):
    keys = tmp_path / "keys"
    alice = add_key(keys, "alice", "--groups", "research")
    bob = add_key(keys, "bob", "--models", "demo")
    assert oct(os.stat(keys).st_mode & 0o777) == "0o600"
    conf = tmp_path / "c.toml"
    conf.write_text(f'keys_file = "{keys}"\n[model.echo]\npermission = "groups: research; owner: carol"\n')
    s = start("-c", str(conf), "--log-level", "debug", *extra, "demo", "echo", workers=workers)
    return s, keys, alice, bob


def test_keys_over_http(start, tmp_path):
    s, keys, alice, bob = keyed_server(start, tmp_path)
    listed = subprocess.run([MSERVE, "keys", "list", "--file", str(keys)], capture_output=True, text=True, timeout=30).stdout
    assert "alice" in listed and "research" in listed and alice not in listed and "sha256" not in listed

    assert s.get("/healthz").status_code == 200 and s.get("/readyz").status_code == 200
    r = s.post("/demo", {"cal_number": 1})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Bearer realm="mserve"' and r.json()["recordid"]
    r = s.post("/demo", {"cal_number": 1}, headers={"Authorization": "Bearer msk-0123456789wxyz", "Content-Type": "application/json"})
    assert r.status_code == 401 and r.json()["error"]["message"] == "Incorrect API key provided: ...wxyz"
    assert s.post("/demo", {"cal_number": 1}, headers={"Authorization": f"Bearer {alice}", "Content-Type": "application/json"}).status_code == 200
    assert s.post("/echo", {"a": 1}, headers={"X-API-Key": alice, "Content-Type": "application/json"}).status_code == 200
    r = s.post("/echo", {"a": 1}, headers={"X-API-Key": bob, "Content-Type": "application/json"})
    assert r.status_code == 403 and r.json()["error"]["message"] == "key bob may not use model echo"
    r = s.get("/v1/models", headers={"Authorization": "Bearer wrong-key-1234"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert [m["id"] for m in s.get("/v1/models", headers={"X-API-Key": bob}).json()["data"]] == ["demo"]
    assert [m["name"] for m in s.get("/", headers={"X-API-Key": alice}).json()["models"]] == ["demo", "echo"]
    assert s.get("/nothing/here").status_code == 401

    # The access log names the key; no log line holds a key.  (Both logs are flushed every 50 ms.)
    wait_for(lambda: " - alice [" in s.access() and " - bob [" in s.access(), what="key names in the access log")
    wait_for(lambda: s.log().count("Authorization: [redacted]") >= 3, what="the debug headers lines")
    for text in (s.log(), s.access()):
        for secret in (alice, bob, "msk-0123456789wxyz"):
            assert secret not in text
    assert "Authorization: [redacted]" in s.log()


def test_the_official_openai_client_with_api_key(start, tmp_path, openai_python):
    s, _, alice, bob = keyed_server(start, tmp_path)
    script = f"""
import openai
ok = openai.OpenAI(base_url={s.url + '/v1'!r}, api_key={alice!r})
print(sorted(m.id for m in ok.models.list().data))
try:
    openai.OpenAI(base_url={s.url + '/v1'!r}, api_key="msk-wrong-wrong-wrong").models.list()
except openai.AuthenticationError as e:
    print("401", e.body["code"] if isinstance(e.body, dict) else e.body)
"""
    out = subprocess.run([openai_python, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["['demo', 'echo']", "401 invalid_api_key"]


def test_rotation_by_hup_refuses_no_request_made_with_a_valid_key(start, tmp_path):
    s, keys, alice, _ = keyed_server(start, tmp_path)
    results = []
    stop = threading.Event()
    current = [alice]

    def client():
        session = requests.Session()
        while not stop.is_set():
            key = current[0]
            r = session.post(s.url + "/demo", data='{"cal_number": 1}',
                             headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, timeout=10)
            results.append((key, r.status_code))

    t = threading.Thread(target=client)
    t.start()
    try:
        wait_for(lambda: len(results) > 50, what="requests before the rotation")
        # A new key for alice's successor, in force after HUP; alice stays valid meanwhile.
        carol = add_key(keys, "carol", "--groups", "research")
        s.signal(signal.SIGHUP)
        s.wait_log("Reload complete")
        current[0] = carol
        wait_for(lambda: sum(1 for k, _ in results if k == carol) > 50, what="requests with the new key")
        # Revoke alice: remove her line, reload; her key is refused from then on.
        keys.write_text("".join(l for l in keys.read_text().splitlines(True) if not l.startswith("alice ")))
        s.signal(signal.SIGHUP)
        s.wait_log("Reload complete", count=2)
    finally:
        stop.set()
        t.join(timeout=20)
    assert all(status == 200 for _, status in results), [r for r in results if r[1] != 200][:5]
    r = s.post("/demo", {"cal_number": 1}, headers={"Authorization": f"Bearer {alice}", "Content-Type": "application/json"})
    assert r.status_code == 401


def test_a_bad_keys_file_stops_a_start_and_leaves_the_running_keys_on_hup(start, tmp_path):
    bad = tmp_path / "bad"
    bad.write_text("# ok\nalice sha256:1234\n")
    p = subprocess.run([MSERVE, "--keys-file", str(bad), "demo"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and f"{bad}:2: field hash" in p.stderr
    s, keys, alice, _ = keyed_server(start, tmp_path, workers=1)
    keys.write_text(keys.read_text() + "carol sha256:zz groups=x\n")
    s.signal(signal.SIGHUP)
    s.wait_log("Reload refused")
    assert f"{keys}:3: field hash" in s.log()
    assert s.post("/demo", {"cal_number": 1}, headers={"X-API-Key": alice, "Content-Type": "application/json"}).status_code == 200


def test_limits_hold_across_two_workers(start, tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    keys = tmp_path / "keys"
    slow = add_key(keys, "slow", "--in-flight", "2")
    paced = add_key(keys, "paced", "--rps", "5")
    s = start("--keys-file", str(keys), "--limit-concurrency", "4", "sleep", "demo", workers=2)

    def sleep_call(_):
        return requests.post(s.url + "/sleep", data='{"ms": 400}', timeout=10,
                             headers={"X-API-Key": slow, "Content-Type": "application/json"})
    # Twelve at once on fresh connections, which the kernel spreads over both workers: two run,
    # ten are refused, whichever worker they reached.
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(sleep_call, range(12)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * 2 + [429] * 10, codes
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.headers["Retry-After"] == "1" and "requests in flight" in refused.json()["error"]["message"]
    wait_for(lambda: s.access().count(" - slow [") >= 12, what="the access lines")
    assert len({line.split("pid=")[1].split()[0] for line in s.access().splitlines() if " - slow [" in line}) == 2
    # Once answered, the key may send again.
    assert sleep_call(0).status_code == 200

    # Five a second: a burst of 5 passes, the rest within the same second is refused.
    with ThreadPoolExecutor(4) as pool:
        paced_codes = list(pool.map(lambda _: requests.post(s.url + "/demo", data='{"cal_number": 1}', timeout=10,
                                                            headers={"X-API-Key": paced, "Content-Type": "application/json"}).status_code,
                                    range(12)))
    assert paced_codes.count(200) in (5, 6) and paced_codes.count(429) == 12 - paced_codes.count(200), paced_codes
    # Key names are identities: an open scrape does not list them, a keyed one does.
    assert "key=" not in s.get("/metrics").text
    metrics = s.get("/metrics", headers={"X-API-Key": paced}).text
    assert 'mserve_key_refused_total{key="slow",limit="in_flight"} 10' in metrics
    assert f'mserve_key_refused_total{{key="paced",limit="rps"}} {paced_codes.count(429)}' in metrics
    assert 'mserve_key_in_flight{key="slow"} 0' in metrics


def signed_headers(key, name, method, target, body, timestamp=None, nonce=None):
    import hashlib
    import hmac
    import secrets
    import time
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = nonce or secrets.token_hex(16)
    secret = hashlib.sha256(key.encode()).digest()
    text = f"{method}\n{target}\n{timestamp}\n{nonce}\n{hashlib.sha256(body).hexdigest()}"
    return {"X-MServe-Key": name, "X-MServe-Timestamp": str(timestamp), "X-MServe-Nonce": nonce,
            "X-Signature": hmac.new(secret, text.encode(), hashlib.sha256).hexdigest(), "Content-Type": "application/json"}


def go_infer_body(key, name, data, timestamp=None):
    """A request as go-infer's clients sign it: the secret is the key's SHA-256 in hex."""
    import base64
    import hashlib
    import time
    body = {"appId": name, "version": "1", "signType": "SHA256", "encType": "plain",
            "timestamp": int(time.time()) if timestamp is None else timestamp, "data": data}
    secret = hashlib.sha256(key.encode()).hexdigest()
    def go_json(v):
        # Go's json.Marshal: sorted keys, compact, <, > and & escaped.
        out = json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

    def text(v):
        return v if isinstance(v, str) else go_json(v) if isinstance(v, dict) else str(v)
    string = "&".join(f"{k}={text(body[k])}" for k in sorted(body)) + "&key=" + secret
    body["signData"] = base64.b64encode(hashlib.sha256(string.encode()).hexdigest().encode()).decode()
    return body


def test_signed_requests_and_replays_refused_on_every_worker(start, tmp_path):
    import time
    keys = tmp_path / "keys"
    key = add_key(keys, "signer")
    s = start("--keys-file", str(keys), "demo", "echo", workers=2)
    body = b'{"cal_number": 2}'
    headers = signed_headers(key, "signer", "POST", "/demo", body)
    assert requests.post(s.url + "/demo", data=body, headers=headers, timeout=10).status_code == 200
    # The same request again, each on a fresh connection from its own source port (the kernel
    # spreads connections over the workers by their flow), until both workers have refused it.
    import socket
    raw = ("POST /demo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %d\r\n" % len(body)
           + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode() + body
    base = 20000 + (os.getpid() % 5000) * 4
    for i in range(40):
        c = socket.socket()
        try:
            c.bind(("127.0.0.1", base + 2 * i))
        except OSError:
            c.close()
            continue
        c.settimeout(10)
        c.connect(("127.0.0.1", s.port))
        c.sendall(raw)
        answer = b""
        while chunk := c.recv(65536):
            answer += chunk
        c.close()
        assert answer.startswith(b"HTTP/1.1 401") and b"nonce was already used" in answer, answer[:200]
    wait_for(lambda: len({l.split("pid=")[1].split()[0] for l in s.access().splitlines() if " 401 " in l}) == 2,
             what="replays refused by both workers")
    # Tampered, stale, or from a key that does not exist.
    tampered = requests.post(s.url + "/demo", data=b'{"cal_number": 3}', headers=signed_headers(key, "signer", "POST", "/demo", body))
    assert tampered.status_code == 401 and "does not match" in tampered.json()["error"]["message"]
    stale = requests.post(s.url + "/demo", data=body, headers=signed_headers(key, "signer", "POST", "/demo", body, timestamp=int(time.time()) - 400))
    assert stale.status_code == 401 and "outside the 300-second window" in stale.json()["error"]["message"]
    assert requests.post(s.url + "/demo", data=body, headers=signed_headers(key, "nobody", "POST", "/demo", body)).status_code == 401

    # go-infer's form: its clients move over unchanged; the model never sees the signature.
    gi = go_infer_body(key, "signer", {"text": "hello <world> & more"})
    r = requests.post(s.url + "/echo", json=gi, timeout=10)
    assert r.status_code == 200 and r.json()["data"] == {"text": "hello <world> & more"} and "signData" not in r.json()
    assert requests.post(s.url + "/echo", json=gi, timeout=10).status_code == 401   # replayed
    old = go_infer_body(key, "signer", {"text": "x"}, timestamp=int(time.time()) - 301)
    assert requests.post(s.url + "/echo", json=old, timeout=10).status_code == 401
    for text in (s.log(), s.access()):
        assert key not in text and headers["X-Signature"] not in text and gi["signData"] not in text


def test_embeddings_with_a_limited_key_release_what_they_hold(start, tmp_path):
    # /v1/embeddings hands the request to the model's own handler: its slot must be given back.
    model_dir = os.environ.get("MSERVE_MINILM_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "models", "all-MiniLM-L6-v2")
    if not os.path.exists(os.path.join(model_dir, "model.safetensors")):
        import pytest
        pytest.skip("minilm weights not fetched (bash scripts/setup)")
    keys = tmp_path / "keys"
    key = add_key(keys, "embedder", "--in-flight", "1")
    s = start("--keys-file", str(keys), "minilm", "--model-dir", model_dir, workers=1)
    h = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    for _ in range(3):
        r = requests.post(s.url + "/v1/embeddings", json={"model": "minilm", "input": "a sentence"}, headers=h, timeout=60)
        assert r.status_code == 200, r.text
    r = requests.post(s.url + "/v1/embeddings", json={"model": "nope", "input": "x"}, headers=h, timeout=60)
    assert r.status_code == 404
    assert requests.post(s.url + "/v1/embeddings", json={"model": "minilm", "input": "again"}, headers=h, timeout=60).status_code == 200
    assert 'mserve_key_in_flight{key="embedder"} 0' in s.get("/metrics", headers=h).text
