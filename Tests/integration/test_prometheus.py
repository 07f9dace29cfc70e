"""Debian's Prometheus against a running mserve, with the shipped rules (conf/prometheus): it
scrapes, the recording rules make their series, alerts fire (a model made to fail: the 5xx ratio;
workers killed in a loop: the restart loop), and every query of the Grafana dashboard
(conf/grafana/mserve.json) answers with data, so no panel names a series that does not exist.
The rules are the shipped ones with their `for:` durations cut to 0, so that an alert fires within
the test; the durations themselves are checked by the promtool unit tests."""
import json
import re
import os
import shutil
import signal
import subprocess
import time

import pytest
import requests

from conftest import Server, free_port, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
MODEL_DIR = os.environ.get("MSERVE_SMOLLM2_DIR") or os.path.join(ROOT, "models", "smollm2")
TROUBLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "python_models")
pytestmark = pytest.mark.skipif(PROMETHEUS is None or PROMTOOL is None,
                                reason="Debian's prometheus is not installed (MSERVE_TEST_DEPS=1 bash scripts/setup installs it)")


def test_the_rules_pass_promtool():
    rules = os.path.join(ROOT, "conf", "prometheus")
    check = subprocess.run([PROMTOOL, "check", "rules", "mserve-rules.yml"], cwd=rules, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run([PROMTOOL, "test", "rules", "mserve-rules.test.yml"], cwd=rules, capture_output=True, text=True, timeout=60)
    assert tests.returncode == 0 and "SUCCESS" in tests.stdout, tests.stdout + tests.stderr


def query(base, expr):
    r = requests.get(base + "/api/v1/query", params={"query": expr}, timeout=10).json()
    assert r["status"] == "success", r
    return r["data"]["result"]


def test_prometheus_scrapes_records_alerts_and_answers_every_dashboard_query(tmp_path):
    s = Server(tmp_path, ["--model-dir", MODEL_DIR, "--pythonpath", TROUBLE, "demo", "smollm2", "broken=trouble:fails"], workers=2)
    prom_port = free_port()
    rules = tmp_path / "mserve-rules.yml"
    rules.write_text(re.sub(r"(?m)^(\s+)for: \S+$", r"\1for: 0s", open(os.path.join(ROOT, "conf", "prometheus", "mserve-rules.yml")).read()))
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: mserve
    static_configs:
      - targets: ["127.0.0.1:{s.port}"]
""")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w"), start_new_session=True)
    base = f"http://127.0.0.1:{prom_port}"
    try:
        def ready():
            try:
                return requests.get(base + "/-/ready", timeout=2).status_code == 200
            except requests.ConnectionError:
                assert prom.poll() is None, (tmp_path / "prometheus.log").read_text()
                return False
        wait_for(ready, 30, what="prometheus ready")
        # Its first scrape, before any traffic: every counter then moves between two scrapes.
        wait_for(lambda: query(base, 'up{job="mserve"} == 1'), 30, what="the first scrape")
        # Traffic of every kind: answers, 400s, a model that fails (500s), chat for the token series.
        for i in range(3):
            s.post("/demo", {"cal_number": i})
            s.post("/demo", {})
            s.post("/broken", {})
            s.post("/v1/chat/completions", {"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
        # A worker killed again and again: the restart-loop alert.
        for _ in range(5):
            victim = s.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: victim not in s.worker_pids() and len(s.worker_pids()) == 2, 20, what="the replacement")
            time.sleep(0.5)
        for i in range(3):
            s.post("/demo", {"cal_number": i})
            s.post("/broken", {})
            s.post("/v1/chat/completions", {"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
        wait_for(lambda: query(base, 'mserve:requests:rate1m{model="demo"}'), 30, what="the recorded request rate")
        # Every request to the broken model is a 500: its ratio is 1 (once two scrapes make a rate).
        wait_for(lambda: [r for r in query(base, 'mserve:errors:ratio_rate5m{model="broken"}') if r["value"][1] == "1"], 30,
                 what="the recorded 5xx ratio of the broken model at 1")

        def firing(name, **labels):
            alerts = requests.get(base + "/api/v1/alerts", timeout=5).json()["data"]["alerts"]
            return [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"
                    and all(a["labels"].get(k) == v for k, v in labels.items())]
        wait_for(lambda: firing("MServeWorkerRestartLoop"), 30, what="MServeWorkerRestartLoop firing")
        wait_for(lambda: firing("MServeHighErrorRatio", model="broken"), 30, what="MServeHighErrorRatio firing for the broken model")
        assert not firing("MServeHighErrorRatio", model="demo")
        # Every panel of the dashboard: its query answers, with data.
        dashboard = json.loads(open(os.path.join(ROOT, "conf", "grafana", "mserve.json")).read())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        assert len(exprs) >= 10
        wait_for(lambda: all(query(base, e) for e in exprs), 30,
                 what="every dashboard query to answer: " + ", ".join(e for e in exprs if not query(base, e)))
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=15)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        s.stop()
