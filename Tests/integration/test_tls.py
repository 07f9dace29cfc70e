"""HTTPS with OpenSSL: a test CA signs the server's certificate and a client's; curl, requests and the
openai client verify the server against the CA; --cert-reqs required refuses a client without a
certificate; plain HTTP on the TLS port leaves the worker alive; HUP loads a new certificate."""
import json
import re
import signal
import ssl
import socket
import subprocess

import pytest
import requests

from conftest import children, wait_for


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=mserve test CA", cwd=d)
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, serial in (("server", "1001"), ("server2", "2002"), ("client", "3003")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", serial, "-days", "2",
                "-out", f"{name}.pem", "-extfile", "san.ext", cwd=d)
    return d


def served_serial(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port)) as raw, ctx.wrap_socket(raw) as s:
        der = s.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der, capture_output=True, check=True)
    return out.stdout.decode().strip()


def test_https_with_curl_and_requests_and_a_reload_of_the_certificate(start, pki):
    cert, key = pki / "live.pem", pki / "live.key"
    cert.write_bytes((pki / "server.pem").read_bytes())
    key.write_bytes((pki / "server.key").read_bytes())
    s = start("demo", "--certfile", str(cert), "--keyfile", str(key), workers=2, wait=False)
    s.wait_log(r"Listening at: https://127\.0\.0\.1:(\d+)")
    s.wait_log(r"All 2 workers are serving")
    port = int(re.search(r"Listening at: https://127\.0\.0\.1:(\d+)", s.log()).group(1))
    url = f"https://127.0.0.1:{port}"
    out = subprocess.run(["curl", "-s", "--cacert", str(pki / "ca.pem"), "-H", "Content-Type: application/json",
                          "-d", '{"recordid": "t1", "cal_number": 2}', url + "/demo"], capture_output=True, text=True, timeout=10)
    assert json.loads(out.stdout) == {"recordid": "t1", "result": 2}, out.stderr
    with requests.Session() as keep_alive:
        for i in range(50):
            r = keep_alive.post(url + "/demo", json={"recordid": f"k{i}", "cal_number": 1}, verify=str(pki / "ca.pem"), timeout=5)
            assert r.status_code == 200 and r.json()["recordid"] == f"k{i}"
    big = requests.post(url + "/demo", data=json.dumps({"cal_number": 1, "pad": "x" * 300_000}),
                        headers={"Content-Type": "application/json"}, verify=str(pki / "ca.pem"), timeout=10)
    assert big.status_code == 200
    # Without the CA the client refuses the server; plain HTTP to the TLS port gets no answer.
    assert subprocess.run(["curl", "-s", url + "/healthz"], capture_output=True, timeout=10).returncode != 0
    with pytest.raises(requests.RequestException):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=3)
    workers = s.worker_pids()
    assert served_serial(port) == "serial=03E9"

    cert.write_bytes((pki / "server2.pem").read_bytes())
    key.write_bytes((pki / "server2.key").read_bytes())
    s.signal(signal.SIGHUP)
    s.wait_log(r"Reload complete")
    wait_for(lambda: served_serial(port) == "serial=07D2", what="the new certificate served")
    # The old workers leave once their idle keep-alive connections have had their --keep-alive.
    wait_for(lambda: set(s.worker_pids()).isdisjoint(workers), timeout=15, what="old workers gone")


def test_client_certificates_required(start, pki):
    s = start("demo", "--certfile", str(pki / "server.pem"), "--keyfile", str(pki / "server.key"),
              "--ca-certs", str(pki / "ca.pem"), "--cert-reqs", "required", workers=1, wait=False)
    s.wait_log(r"The 1 worker is serving")
    port = int(re.search(r"Listening at: https://127\.0\.0\.1:(\d+)", s.log()).group(1))
    url = f"https://127.0.0.1:{port}/demo"
    base = ["curl", "-s", "--cacert", str(pki / "ca.pem"), "-H", "Content-Type: application/json", "-d", '{"cal_number": 1}']
    refused = subprocess.run(base + [url], capture_output=True, text=True, timeout=10)
    assert refused.returncode != 0 or refused.stdout == "", refused.stdout
    ok = subprocess.run(base + ["--cert", str(pki / "client.pem"), "--key", str(pki / "client.key"), url],
                        capture_output=True, text=True, timeout=10)
    assert json.loads(ok.stdout)["result"] == 1, ok.stderr
    assert len(s.worker_pids()) == 1


def test_bad_tls_files_are_usage_errors(pki, tmp_path):
    from conftest import MSERVE
    p = subprocess.run([MSERVE, "--certfile", str(pki / "server.pem"), "--keyfile", str(pki / "client.key"), "demo"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "key values mismatch" in p.stderr, p.stderr
    p = subprocess.run([MSERVE, "--certfile", str(tmp_path / "none.pem"), "--keyfile", "x", "demo"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "cannot load certfile" in p.stderr, p.stderr
    p = subprocess.run([MSERVE, "--certfile", str(pki / "server.pem"), "demo"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "--certfile needs --keyfile" in p.stderr


def test_the_openai_client_over_https(start, pki, openai_python):
    """The official openai client (httpx underneath) verifies mserve against the test CA."""
    import pathlib
    model_dir = pathlib.Path(__file__).resolve().parent.parent.parent / "models" / "all-MiniLM-L6-v2"
    s = start("minilm", "--model-dir", str(model_dir), "--certfile", str(pki / "server.pem"), "--keyfile", str(pki / "server.key"),
              workers=1, wait=False)
    s.wait_log(r"The 1 worker is serving", timeout=60)
    port = int(re.search(r"Listening at: https://127\.0\.0\.1:(\d+)", s.log()).group(1))
    script = f"""
import json, openai
client = openai.OpenAI(base_url="https://127.0.0.1:{port}/v1", api_key="unused",
                       http_client=openai.DefaultHttpxClient(verify={str(pki / 'ca.pem')!r}))
r = client.embeddings.create(model="minilm", input=["over TLS", "twice"])
print(json.dumps([len(d.embedding) for d in r.data]))
"""
    out = subprocess.run([openai_python, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == [384, 384]
