"""`mserve bench` against real servers whose latency is known (the sleep model): what it reports
must match what the server was made to do."""
import json
import subprocess

from conftest import MSERVE, free_port


def bench(url, *args, timeout=120, returncode=0):
    p = subprocess.run([MSERVE, "bench", url, "--json", *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == returncode, (p.stdout, p.stderr)
    return json.loads(p.stdout)


def test_a_known_latency_and_the_throughput_it_allows(start):
    s = start("--limit-concurrency", "4", "sleep", workers=1)
    r = bench(f"{s.url}/sleep", "--data", '{"ms": 50}', "-c", "4", "-t", "1", "-d", "2", "-w", "0.5")
    assert r["errors"] == {} and r["status"]["200"] == r["requests"]
    assert 50 <= r["latency_ms"]["p50"] <= 75, r
    assert r["latency_ms"]["max"] >= r["latency_ms"]["p99"] >= r["latency_ms"]["p90"] >= r["latency_ms"]["p50"]
    # Four at a time, 50 ms each: 80 a second at best.
    assert 4 / 0.075 <= r["requests_per_second"] <= 80.5, r


def test_a_stream_reports_time_to_first_token_and_between_tokens(start):
    s = start("--limit-concurrency", "2", "sleep", workers=1)
    r = bench(f"{s.url}/sleep", "--data", '{"ms": 200, "pieces": 4}', "--stream", "-c", "2", "-t", "1", "-d", "2", "-w", "0.3")
    st = r["stream"]
    assert r["errors"] == {}, r
    # Each piece after 50 ms: the first token 50 ms after the request, the next ones 50 ms apart.
    assert 50 <= st["time_to_first_token_ms"]["p50"] <= 75, st
    assert 45 <= st["inter_token_latency_ms"]["p50"] <= 75, st
    assert 200 <= r["latency_ms"]["p50"] <= 260, r
    assert 3.5 * r["requests"] <= st["tokens"] <= 4 * r["requests"] + 8, r
    assert 25 <= st["tokens_per_second"] <= 41, st


def test_open_loop_sends_at_the_rate_asked(start):
    s = start("--limit-concurrency", "4", "sleep", workers=1)
    r = bench(f"{s.url}/sleep", "--data", '{"ms": 5}', "--rate", "50", "-d", "4", "-w", "0.5", "-t", "1")
    assert r["mode"] == "open" and r["rate"] == 50
    assert 35 <= r["requests_per_second"] <= 65, r
    assert r["latency_ms"]["p50"] >= 5


def test_errors_are_counted_by_status_and_a_count_of_requests_is_exact(start):
    s = start("--limit-concurrency", "1", "--queue-size", "0", "sleep", "demo", workers=1)
    r = bench(f"{s.url}/sleep", "--data", '{"ms": 30}', "-c", "6", "-t", "2", "-d", "1.5", "-w", "0.2", "--max-error-rate", "1")
    assert r["errors"].get("503", 0) > 0 and r["status"]["200"] > 0, r
    assert r["status"]["200"] + r["status"]["503"] == r["requests"]
    r = bench(f"{s.url}/demo", "-n", "500", "-c", "20", "-w", "0")
    assert r["requests"] == 500 and r["status"] == {"200": 500}


def test_a_bad_target_is_said_at_once():
    p = subprocess.run([MSERVE, "bench", f"http://127.0.0.1:{free_port()}/demo", "-d", "1"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "cannot connect" in p.stderr
    p = subprocess.run([MSERVE, "bench", "https://127.0.0.1/"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "only http://" in p.stderr


def test_a_terminal_gets_a_live_progress_line(start):
    import os
    import pty
    s = start("demo", workers=1)
    leader, follower = pty.openpty()
    p = subprocess.Popen([MSERVE, "bench", f"{s.url}/demo", "-d", "2.5", "-w", "0", "-c", "4"],
                         stdout=subprocess.PIPE, stderr=follower, text=True)
    os.close(follower)
    out, _ = p.communicate(timeout=60)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert p.returncode == 0 and "requests/s" in out
    # At least two updates, each rewriting the line in place; the report itself stays on stdout.
    assert seen.count(b"\r") >= 2 and b"answered," in seen and b"requests/s now" in seen, seen


def test_failures_lead_the_report_and_fail_the_run(start):
    """Every request a 404 (a wrong path, a wrong model): the report says so first and bench exits 1;
    a share of errors above --max-error-rate fails too; below it the run passes."""
    s = start("--limit-concurrency", "1", "--queue-size", "0", "sleep", "demo", workers=1)
    p = subprocess.run([MSERVE, "bench", f"{s.url}/echo", "-d", "1", "-w", "0", "-c", "2"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p
    lines = p.stdout.splitlines()
    assert lines[1].startswith("FAILED       all ") and 'requests failed: 404 × ' in lines[1] and '"no route for /echo' in lines[1], lines
    assert lines[2].startswith("errors") and "requests     0 succeeded" in p.stdout
    assert "mserve bench: all " in p.stderr and "404" in p.stderr
    # 503s from a full queue: a failure at the default 1%, a pass when the share is allowed.
    args = ["--data", '{"ms": 30}', "-c", "6", "-t", "2", "-d", "1", "-w", "0"]
    r = bench(f"{s.url}/sleep", *args, returncode=1)
    assert r["error_rate"] > 0.01 and "more than --max-error-rate 0.01" in r["failure"] and r["error_messages"]["503"], r
    r = bench(f"{s.url}/sleep", *args, "--max-error-rate", "1")
    assert "failure" not in r and r["failed"] > 0


def test_the_default_model_is_the_one_the_server_serves(start):
    s = start("demo", "minilm", workers=1)
    p = subprocess.run([MSERVE, "bench", f"{s.url}/v1/embeddings", "--json", "-n", "20", "-c", "2", "-w", "0"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p
    r = json.loads(p.stdout)
    assert r["status"] == {"200": 20} and r["model"] == "minilm", r
    p = subprocess.run([MSERVE, "bench", f"{s.url}/v1/embeddings", "-n", "5", "-c", "1", "-w", "0"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "model minilm (the server's, from /v1/models" in p.stderr, p
    # A name the server does not serve: every request fails, and the report says with what.
    p = subprocess.run([MSERVE, "bench", f"{s.url}/v1/embeddings", "--model", "smol", "-d", "1", "-w", "0", "-c", "2"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "all " in p.stderr and "smol" in p.stdout, p
    # No chat model here: said before any load.
    p = subprocess.run([MSERVE, "bench", f"{s.url}/v1/chat/completions", "-d", "1"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "is a chat model: name one with --model" in p.stderr, p


def test_streams_longer_than_the_run_are_unfinished_not_nothing(start):
    s = start("--limit-concurrency", "2", "sleep", workers=1)
    p = subprocess.run([MSERVE, "bench", f"{s.url}/sleep", "--json", "--data", '{"ms": 4000, "pieces": 40}', "--stream",
                        "-c", "2", "-t", "1", "-d", "1.5", "-w", "0.2"], capture_output=True, text=True, timeout=60)
    r = json.loads(p.stdout)
    assert p.returncode == 1 and r["unfinished"] == 2 and r["requests"] == 0, r
    # Their tokens were measured all the same (one each 100 ms, two streams).
    assert r["stream"]["tokens"] >= 20 and 80 <= r["stream"]["inter_token_latency_ms"]["p50"] <= 130, r
    assert "no request finished within" in r["failure"]
