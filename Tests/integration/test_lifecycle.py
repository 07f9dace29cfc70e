import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import requests


def in_background(fn):
    """Runs fn in a thread; a request cut off by a test that kills or stops the server is expected."""
    def quiet():
        try:
            fn()
        except requests.RequestException:
            pass
    t = threading.Thread(target=quiet, daemon=True)
    t.start()
    return t

from conftest import MSERVE, children, free_port, read_until_closed, wait_for


def test_kill_9_worker_is_replaced_and_nothing_fails_after(start):
    s = start("demo", workers=2)
    victim = s.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    s.wait_log(rf"Worker \(pid:{victim}\) was sent SIGKILL; starting a replacement")
    wait_for(lambda: len(s.worker_pids()) == 2 and victim not in s.worker_pids(), what="replacement")
    s.wait_log(r"is serving", count=3)
    # Every request on a new connection after the replacement serves, whichever slot it hashes to.
    statuses = [requests.post(s.url + "/demo", json={"cal_number": 1}, headers={"Connection": "close"}, timeout=5).status_code
                for _ in range(300)]
    assert statuses == [200] * 300


def test_connections_queued_on_a_dead_workers_socket_are_served_by_its_replacement(start):
    s = start("demo", workers=1)
    worker = s.worker_pids()[0]
    # A stopped worker accepts nothing: these connections wait in the kernel's queue on its socket.
    os.kill(worker, signal.SIGSTOP)
    socks = []
    for i in range(5):
        c = socket.create_connection(("127.0.0.1", s.port))
        c.sendall(b'POST /demo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{"cal_number": 1}')
        socks.append(c)
    os.kill(worker, signal.SIGKILL)
    # They are answered by the replacement, not reset.
    for c in socks:
        c.settimeout(10)
        data = c.recv(4096)
        assert data.startswith(b"HTTP/1.1 200"), data
        c.close()
    assert worker not in s.worker_pids()


def test_term_lets_a_slow_request_finish(start):
    s = start("sleep", "--graceful-timeout", "10", workers=2)
    result = {}

    def slow():
        r = requests.post(s.url + "/sleep", json={"recordid": "slow", "ms": 1500}, timeout=10)
        result["status"], result["body"] = r.status_code, r.json()

    t = threading.Thread(target=slow)
    t.start()
    s.wait_log(r"\[slow\] request")
    pids = s.worker_pids()
    s.signal(signal.SIGTERM)
    t.join()
    assert result == {"status": 200, "body": {"recordid": "slow", "slept_ms": 1500}}
    assert s.wait_exit() == 0
    s.wait_log(r"Shutting down: master \(exit code 0\)")
    for p in pids:
        assert not os.path.exists(f"/proc/{p}") or open(f"/proc/{p}/stat").read().split()[2] == "Z"
    # Not accepting any more.
    with pytest.raises(requests.ConnectionError):
        requests.get(s.url + "/", timeout=2)


def test_term_drains_first_readiness_503_while_every_request_is_served(start, notify):
    path, sock = notify
    control = tempfile.mkdtemp(prefix="mctl") + "/c.sock"
    s = start("demo", "--drain-seconds", "2", "--control-socket", control, workers=2, env={"NOTIFY_SOCKET": path})
    assert "READY=1" in sock.recv(4096).decode()
    session = requests.Session()  # a balancer's pooled connection keeps working while draining
    assert session.get(s.url + "/readyz", timeout=5).status_code == 200
    t0 = time.monotonic()
    s.signal(signal.SIGTERM)
    assert "STATUS=draining" in sock.recv(4096).decode()
    served = 0
    while time.monotonic() - t0 < 1.5:
        r = session.get(s.url + "/readyz", timeout=5)
        assert (r.status_code, r.json()["status"]) == (503, "draining")
        fresh = requests.post(s.url + "/demo", json={"recordid": f"d{served}", "cal_number": served}, timeout=5)
        assert fresh.status_code == 200 and fresh.json()["recordid"] == f"d{served}"
        served += 1
    # The control socket cannot undrain a server that is leaving.
    out = subprocess.run([MSERVE, "ctl", "-s", control, "-c", "undrain"],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode != 0 and "draining" in out.stdout + out.stderr
    assert s.wait_exit() == 0
    assert 2 <= time.monotonic() - t0 < 8
    assert served > 10
    log = s.log()
    assert "Draining for 2 s" in log and "Drained; stopping" in log
    # Each process flushes its own buffer, so the file's order is not the order of events: the
    # lines' timestamps are.
    stamp = lambda text: re.search(r"^\[([^\]]+)\].*" + re.escape(text), log, re.M).group(1)
    assert stamp("Drained; stopping") <= stamp("worker exiting gracefully")


def test_a_second_term_ends_the_drain(start):
    s = start("demo", "--drain-seconds", "30", workers=1)
    s.signal(signal.SIGTERM)
    s.wait_log("Draining for 30 s")
    t0 = time.monotonic()
    s.signal(signal.SIGTERM)
    assert s.wait_exit() == 0
    assert time.monotonic() - t0 < 5


def test_term_past_the_graceful_timeout_kills_the_worker(start):
    s = start("sleep", "--graceful-timeout", "0.5", workers=1)
    in_background(lambda: requests.post(s.url + "/sleep", json={"ms": 5000}, timeout=10))
    time.sleep(0.3)
    t0 = time.monotonic()
    s.signal(signal.SIGTERM)
    assert s.wait_exit() == 0
    assert time.monotonic() - t0 < 3
    assert "did not exit in time; sending SIGKILL" in s.log()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT])
def test_int_and_quit_stop_quickly(start, sig):
    s = start("sleep", workers=2)
    in_background(lambda: requests.post(s.url + "/sleep", json={"ms": 3000}, timeout=10))
    time.sleep(0.2)
    t0 = time.monotonic()
    s.signal(sig)
    assert s.wait_exit() == 0
    assert time.monotonic() - t0 < 6


def test_model_that_fails_to_load_stops_the_master(start, tmp_path):
    conf = tmp_path / "bad.toml"
    conf.write_text('[model.demo]\nstart = "ten"\n')
    s = start("demo", "-c", str(conf), workers=2, wait=False)
    code = s.wait_exit(timeout=15)
    assert code == 4
    log = s.log()
    # The message names the table and file the bad option came from.
    assert f"model demo failed to load (options: [model.demo] in {conf}): demo: option start must be a number" in log
    assert "failed to load its models" in log
    # It stops instead of respawning in a loop.
    assert log.count("Booting worker") <= 2
    assert children(s.pid) == [] if os.path.exists(f"/proc/{s.pid}/task") else True


def test_unknown_model_lists_the_known_ones():
    p = subprocess.run([MSERVE, "nosuch"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2
    assert "unknown model 'nosuch'; known models: demo, echo, sleep" in p.stderr


def test_check_config(tmp_path):
    ok = subprocess.run([MSERVE, "-c", "conf/mserve.toml", "--check-config"], capture_output=True, text=True, timeout=10,
                        cwd=os.path.join(os.path.dirname(__file__), "..", ".."))
    assert ok.returncode == 0, ok.stderr
    assert "configuration OK" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("workers = 2\ngracefull_timeout = 3\n")
    p = subprocess.run([MSERVE, "-c", str(bad), "--check-config", "demo"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2
    assert "unknown key 'gracefull_timeout'" in p.stderr
    p = subprocess.run([MSERVE, "-w", "many", "demo"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "-w: expected an integer, got 'many'" in p.stderr


@pytest.mark.parametrize("table,message", [
    ("[model.demo]\nstart = \"ten\"\n", "demo: option start must be a number, got \"ten\""),
    ("[model.sleep]\nload_ms = -1\n", "sleep: option load_ms must be a non-negative number"),
])
def test_check_config_checks_model_options_and_names_the_file(tmp_path, table, message):
    """A typo or a bad value under [model.NAME] fails --check-config (even for a model not served
    now) with the file and the table named, as the start would fail."""
    bad = tmp_path / "models.toml"
    bad.write_text('models = ["echo"]\n' + table)
    p = subprocess.run([MSERVE, "-c", str(bad), "--check-config"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2, p.stdout
    model = table[7:table.index("]")]
    assert f"failed to load (options: [model.{model}] in {bad})" in p.stderr and message in p.stderr, p.stderr


@pytest.mark.parametrize("table,message", [
    ("[model.demo]\nstrat = 1\n", "[model.demo]: unknown option 'strat' (did you mean start?); its options: start"),
    ("[model.smollm2]\nstep_token = 8\n",
     "[model.smollm2]: unknown option 'step_token' (did you mean step_tokens?); its options: gguf, sha256, chat_template, step_tokens, threads, activations"),
    ("[model.minilm]\nmax_input = 8\n", "[model.minilm]: unknown option 'max_input' (did you mean max_inputs?)"),
    ("[model.echo]\nqueue_sise = 8\n", "[model.echo]: unknown option 'queue_sise' (did you mean queue_size?); it takes no options of its own"),
])
def test_unknown_model_options_stop_the_start_and_check_config(tmp_path, table, message):
    """Every built-in model declares its options: any other key is refused with the nearest name,
    by --check-config and at start (before any worker), whether or not the model is served now."""
    bad = tmp_path / "models.toml"
    bad.write_text('models = ["demo"]\n' + table)
    for args in (["--check-config"], ["-b", "127.0.0.1:0"]):
        p = subprocess.run([MSERVE, "-c", str(bad), *args], capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and f"{bad}: {message}" in p.stderr, p


def test_bind_conflict_is_a_clear_error(start):
    s = start("demo", workers=1)
    p = subprocess.run([MSERVE, "-b", f"127.0.0.1:{s.port}", "demo"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 1
    assert f"cannot bind 127.0.0.1:{s.port}: Address already in use" in p.stderr


def test_pidfile_is_written_and_removed(start, tmp_path):
    pidfile = tmp_path / "m.pid"
    s = start("demo", "-p", str(pidfile), workers=1)
    assert int(pidfile.read_text()) == s.pid
    s.signal(signal.SIGTERM)
    assert s.wait_exit() == 0
    assert not pidfile.exists()


def test_usr1_reopens_logs(start):
    s = start("demo", workers=2)
    rotated = s.error_log.with_suffix(".1")
    os.rename(s.error_log, rotated)
    os.rename(s.access_log, s.access_log.with_suffix(".1"))
    s.signal(signal.SIGUSR1)
    wait_for(lambda: s.error_log.exists() and s.access_log.exists(), what="new log files")
    time.sleep(0.2)
    for i in range(20):
        requests.post(s.url + "/demo", json={"recordid": f"after{i}", "cal_number": 1}, headers={"Connection": "close"}, timeout=5)
    s.wait_log(r"\[after19\] response")
    assert "Handling signal: usr1" in rotated.read_text()
    wait_for(lambda: s.access().count("rid=after") == 20, what="access lines in the new file")


def test_hup_rereads_the_config_and_replaces_every_worker(start, tmp_path, notify):
    conf = tmp_path / "m.toml"
    conf.write_text("[model.demo]\nstart = 0\n")
    path, sock = notify
    s = start("demo", "-c", str(conf), workers=1, env={"NOTIFY_SOCKET": path})
    assert "READY=1" in sock.recv(4096).decode()
    old = s.worker_pids()
    # (The test's own -w 1 would override a workers key: flags win over the file.)
    conf.write_text("[model.demo]\nstart = 100\n")
    s.signal(signal.SIGHUP)
    assert "RELOADING=1" in sock.recv(4096).decode()
    assert "READY=1" in sock.recv(4096).decode()
    s.wait_log(r"Reload complete: 1 worker serving")
    wait_for(lambda: len(s.worker_pids()) == 1 and not set(old) & set(s.worker_pids()), what="a new worker")
    # The new model option is in effect.
    assert requests.post(s.url + "/demo", json={"cal_number": 1}, timeout=5).json()["result"] == 101
    # A bad config on HUP changes nothing.
    conf.write_text("graceful_timeout = -3\n")
    current = s.worker_pids()
    s.signal(signal.SIGHUP)
    s.wait_log(r"Reload refused, the running configuration stays: .*graceful_timeout: must be a positive number")
    time.sleep(0.3)
    assert s.worker_pids() == current


def test_ttin_and_ttou_scale_the_workers(start):
    s = start("demo", workers=2)
    s.signal(signal.SIGTTIN)
    wait_for(lambda: len(s.worker_pids()) == 3, what="3 workers")
    # Signals of one kind that arrive together merge into one (POSIX), so one at a time.
    s.signal(signal.SIGTTOU)
    wait_for(lambda: len(s.worker_pids()) == 2, what="2 workers")
    s.signal(signal.SIGTTOU)
    wait_for(lambda: len(s.worker_pids()) == 1, what="1 worker")
    s.signal(signal.SIGTTOU)
    time.sleep(0.3)
    assert len(s.worker_pids()) == 1
    statuses = [requests.get(s.url + "/", headers={"Connection": "close"}, timeout=5).status_code for _ in range(100)]
    assert statuses == [200] * 100


def test_sd_notify_ready_and_stopping(start, notify):
    path, sock = notify
    s = start("demo", workers=2, env={"NOTIFY_SOCKET": path})
    msg = sock.recv(4096).decode()
    assert "READY=1" in msg and f"MAINPID={s.pid}" in msg
    # READY comes only once both workers serve.
    assert s.log().count("is serving") == 2
    s.signal(signal.SIGTERM)
    assert "STOPPING=1" in sock.recv(4096).decode()
    assert s.wait_exit() == 0


def test_max_requests_recycles_workers_without_failures(start):
    s = start("demo", "--max-requests", "20", "--max-requests-jitter", "5", workers=2)
    first = set(s.worker_pids())
    statuses = [requests.post(s.url + "/demo", json={"cal_number": 1}, headers={"Connection": "close"}, timeout=5).status_code
                for _ in range(150)]
    assert statuses == [200] * 150
    assert s.log().count("reached max-requests (") >= 4
    s.wait_log(r"reached max-requests; starting its replacement", count=4)
    wait_for(lambda: len(s.worker_pids()) == 2, what="two workers again")
    assert not first & set(s.worker_pids())
    # Every exit was a recycle, none a failure.
    assert "starting a replacement in slot" not in s.log()


def test_stuck_worker_is_killed_and_replaced(start):
    s = start("demo", "--timeout", "1", workers=2)
    stuck = s.worker_pids()[0]
    os.kill(stuck, signal.SIGSTOP)   # its loop stops reporting
    s.wait_log(rf"WORKER TIMEOUT \(pid:{stuck}\)", timeout=10)
    s.wait_log(rf"Worker \(pid:{stuck}\) was sent SIG(ABRT|KILL); starting a replacement", timeout=10)
    wait_for(lambda: len(s.worker_pids()) == 2 and stuck not in s.worker_pids(), what="replacement")
    statuses = [requests.post(s.url + "/demo", json={"cal_number": 1}, headers={"Connection": "close"}, timeout=5).status_code
                for _ in range(50)]
    assert statuses == [200] * 50


def test_long_inference_and_slow_model_load_are_not_stuck(start, tmp_path):
    conf = tmp_path / "slow.toml"
    conf.write_text("[model.sleep]\nload_ms = 2500\n")
    s = start("sleep", "-c", str(conf), "--timeout", "1", "--request-timeout", "5", workers=1)
    r = requests.post(s.url + "/sleep", json={"ms": 2500}, timeout=10)
    assert r.status_code == 200
    assert "TIMEOUT" not in s.log()
    assert len(s.log().split("Booting worker")) == 2   # the one worker, never replaced


def test_a_worker_loading_its_models_answers_health_and_readiness_at_once(start, tmp_path):
    """While the models load at boot, the worker's loop answers: /healthz 200 and /readyz 503 in
    well under a second; a request to the model waits for it and is answered once it is loaded."""
    conf = tmp_path / "slow.toml"
    conf.write_text("[model.sleep]\nload_ms = 3000\n")
    port = free_port()
    s = start("sleep", "-c", str(conf), workers=1, wait=False, port=port)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: len(s.worker_pids()) == 1, what="worker forked")

    def answers():
        try:
            return requests.get(url + "/healthz", timeout=0.5).status_code == 200
        except requests.RequestException:
            return False
    wait_for(answers, timeout=2, what="/healthz while loading")
    t0 = time.monotonic()
    r = requests.get(url + "/readyz", timeout=1, headers={"X-Request-Id": "probe"})
    assert r.status_code == 503 and r.json()["status"] == "starting"
    assert time.monotonic() - t0 < 0.5
    # An answer, not an error: the probe's line is at info level.
    line = s.wait_log(r".*\[probe\] response: 503.*")[0]
    assert "[INFO]" in line and "[ERROR]" not in line, line
    assert "is serving" not in s.log()
    early = requests.post(url + "/sleep", json={"recordid": "early", "ms": 1}, timeout=10)
    assert early.status_code == 200 and early.json()["recordid"] == "early"
    assert time.monotonic() - t0 > 1.5   # it waited for the load, and was not refused
    s.wait_log(r"is serving")
    wait_for(lambda: requests.get(url + "/readyz", timeout=1).status_code == 200, what="ready")


def test_boot_timeout_kills_a_worker_that_never_serves(start, tmp_path):
    """One line per boot timeout (SIGKILL, no backtrace), never counted as serving, and after three
    in a row the master stops with exit code 3 instead of respawning forever."""
    conf = tmp_path / "stuck.toml"
    conf.write_text("[model.sleep]\nload_ms = 60000\n")
    s = start("sleep", "-c", str(conf), "--boot-timeout", "1", workers=1, wait=False)
    s.wait_log(r"WORKER BOOT TIMEOUT \(pid:\d+\): not serving after 1\.0 s", timeout=10)
    s.wait_log(r"a worker died before serving; next start in 1 s", timeout=10)
    assert s.wait_exit(timeout=20) == 3
    log = s.log()
    assert log.count("WORKER BOOT TIMEOUT") == 3, log
    assert "3 workers in a row did not serve within --boot-timeout (1.0 s); shutting down" in log
    assert "crashed" not in log and "Backtrace" not in log and "is serving" not in log, log


def test_preload_loads_once_and_workers_share_the_weights(start, tmp_path):
    conf = tmp_path / "w.toml"
    conf.write_text("[model.sleep]\nweights_mb = 64\n")
    s = start("sleep", "-c", str(conf), "--preload", workers=2)
    loads = re.findall(r"\[(\d+)\] \[INFO\] model sleep loaded", s.log())
    assert loads == [str(s.pid)], loads           # once, in the master
    assert requests.post(s.url + "/sleep", json={"ms": 1}, timeout=5).status_code == 200

    def pss_kib(pid):
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return int(re.search(r"^Pss:\s+(\d+)", f.read(), re.M).group(1))

    # 64 MB shared by three processes: each worker's proportional share is about a third.
    for w in s.worker_pids():
        assert pss_kib(w) < 40_000, pss_kib(w)
    victim = s.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    s.wait_log(r"is serving", count=3)
    assert len(re.findall(r"model sleep loaded", s.log())) == 1   # the replacement loaded nothing


def test_watchdog_keepalives(start, notify):
    path, sock = notify
    # WatchdogSec=0.4 s: the master must say WATCHDOG=1 at least every 0.2 s or so.
    start("demo", workers=1, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    t0 = time.monotonic()
    beats = 0
    while time.monotonic() - t0 < 1.0:
        if "WATCHDOG=1" in sock.recv(4096).decode():
            beats += 1
    assert beats >= 3, beats


def test_workers_exit_when_the_master_is_killed(start):
    s = start("demo", workers=2)
    workers = s.worker_pids()
    assert len(workers) == 2
    os.kill(s.pid, signal.SIGKILL)
    s.proc.wait(timeout=5)
    # PR_SET_PDEATHSIG: every worker is gone at once, and the port is free for the next master.  A
    # worker that has exited but that init has not reaped yet (a zombie: this container's init
    # reaps when it gets to it) has exited all the same.
    def exited(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except FileNotFoundError:
            return True
    wait_for(lambda: all(exited(w) for w in workers), timeout=2, what="workers gone")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", s.port))


def test_a_python_model_that_logs_under_load_loses_no_worker(start):
    """Model threads and the loop contend for the log file's lock: with Synchronization's Mutex the
    workers died of SIGILL (76 deaths in 60 s of this load)."""
    root = os.path.join(os.path.dirname(__file__), "..", "..", "Examples", "python")
    s = start("--pythonpath", root, "worker=hepai_worker:WorkerModel", workers=2)
    workers = s.worker_pids()
    out = subprocess.run(["wrk", "-t2", "-c16", "-d8s", "-s", "/dev/stdin", s.url + "/worker"], input=
                         'wrk.method = "POST"\nwrk.body = \'{"text": "hello world"}\'\nwrk.headers["Content-Type"] = "application/json"\n',
                         capture_output=True, text=True, timeout=60)
    assert "requests in" in out.stdout, out.stdout + out.stderr
    assert s.worker_pids() == workers, s.log()[-3000:]
    assert "was sent" not in s.log()


def test_a_retired_worker_busy_past_the_retire_timeout_is_stopped(start):
    """HUP retires the old worker; one still answering a long request after --retire-timeout is
    stopped (before, an old worker had no deadline at all)."""
    s = start("sleep", "--retire-timeout", "2", "--request-timeout", "120", workers=1)
    old = s.worker_pids()
    in_background(lambda: s.post("/sleep", {"ms": 60000}, timeout=90))
    time.sleep(0.5)
    s.signal(signal.SIGHUP)
    s.wait_log(r"Reload complete")
    s.wait_log(rf"Worker \(pid:{old[0]}\) retired [\d.]+ s ago and is still busy \(--retire-timeout 2\.0 s\); stopping it", timeout=10)
    wait_for(lambda: not os.path.exists(f"/proc/{old[0]}") or open(f"/proc/{old[0]}/stat").read().split()[2] == "Z",
             timeout=5, what="the old worker gone")
    assert s.post("/sleep", {"ms": 1}).status_code == 200


def test_a_retiring_worker_answers_what_was_pipelined_before_and_nothing_after(start):
    s = start("sleep", workers=1)

    def req(ms, rid):
        body = json.dumps({"recordid": rid, "ms": ms}).encode()
        return (b"POST /sleep HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        c.sendall(req(1500, "a") + req(1, "b"))       # both before the worker retires
        time.sleep(0.4)
        s.signal(signal.SIGHUP)
        s.wait_log(r"Reload complete")
        try:
            c.sendall(req(1, "c"))                    # after: never answered by the retired worker
        except OSError:
            pass
        data = read_until_closed(c)
    assert data.count(b"HTTP/1.1 200") == 2, data
    assert b'"recordid":"a"' in data and b'"recordid":"b"' in data and b'"recordid":"c"' not in data
    assert data.rstrip().endswith(b"}") and b"Connection: close" in data.split(b'"recordid":"a"')[1]
