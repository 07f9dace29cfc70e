"""The web page at / and its forms, in a real browser: Debian's chromium and chromium-driver driven
headless by selenium (Debian's python3-selenium; the driver is given, so selenium fetches nothing).
Screenshots at desktop and phone width go to the test's directory (and to $MSERVE_SCREENSHOTS)."""
import os
import re
import shutil
import sys
import time

import pytest

from conftest import wait_for
from test_access import add_key
from test_minilm import MODEL_DIR

# Debian's python3-selenium, for whichever python3 runs the tests.
if "/usr/lib/python3/dist-packages" not in sys.path:
    sys.path.append("/usr/lib/python3/dist-packages")
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    MISSING = None if os.path.exists("/usr/bin/chromedriver") and os.path.exists("/usr/bin/chromium") else \
        "chromium and chromium-driver are not installed (scripts/setup installs them with MSERVE_TEST_DEPS=1)"
except ImportError as e:
    MISSING = f"python3-selenium is not installed ({e})"

pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"browser tests skipped: {MISSING}")


@pytest.fixture
def browser():
    os.environ["SE_OFFLINE"] = "true"   # never fetch a driver
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900", "--disable-dev-shm-usage"):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    d.set_page_load_timeout(20)
    yield d
    d.quit()


def errors(d, network=True):
    """The console's errors (the log is emptied by reading it); `network` False leaves out the
    answers a test asked to fail."""
    return [e for e in d.get_log("browser") if e["level"] == "SEVERE" and (network or e.get("source") != "network")]


def stats(d, name):
    return d.find_element(By.ID, f"m-{name}-stats").text


def until(d, fn, timeout=15):
    return WebDriverWait(d, timeout, poll_frequency=0.05).until(lambda _: fn())


def field(d, id):
    el = d.find_element(By.ID, id)
    el.clear()
    return el


def screenshot(d, tmp_path, name):
    path = tmp_path / name
    d.save_screenshot(str(path))
    if os.environ.get("MSERVE_SCREENSHOTS"):
        shutil.copy(path, os.path.join(os.environ["MSERVE_SCREENSHOTS"], name))


def test_the_model_list_is_html_for_browsers_and_json_for_others_and_readable_without_javascript(start):
    s = start("demo", "echo", workers=1)
    page = s.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    # Self-contained: nothing loaded from elsewhere.
    assert not re.search(r'(src|href|url)\s*[=(]\s*"?https?:', page.text) and "@import" not in page.text
    assert '<a href="#m-demo"><code>demo</code></a>' in page.text and "<noscript>" in page.text
    # The size the user guide states (the page with these two models; each model adds a few lines).
    import pathlib
    stated = re.search(r"self-contained file inside the binary \((\d+) KB", (pathlib.Path(__file__).parents[2] / "docs" / "user-guide.md").read_text())
    assert stated and round(len(page.content) / 1000) == int(stated.group(1)), (len(page.content), stated)
    assert s.get("/", headers={"Accept": "*/*"}).json()["models"][0]["example"] == {"cal_number": 1}
    off = start("demo", "--ui", "off", workers=1)
    assert "models" in off.get("/", headers={"Accept": "text/html"}).json()


def test_every_form_round_trips_in_a_real_browser(start, browser, tmp_path):
    s = start("demo", "sleep", "echo", "minilm", "--model-dir", MODEL_DIR, workers=1)
    d = browser
    d.get(s.url + "/")
    assert d.title == "mserve"
    until(d, lambda: d.find_elements(By.ID, "m-demo-send"))
    assert errors(d) == [], errors(d)

    # demo: the cal_number field, status, recordid and latency; sent from the keyboard alone.  Tab
    # goes through the header's links and key field, the model list, then the demo's input.
    d.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    order = []
    for _ in range(15):
        el = d.switch_to.active_element
        order.append(el.get_attribute("id") or el.get_attribute("href").split("/", 3)[-1])
        if order[-1] == "m-demo-f-cal_number":
            break
        el.send_keys(Keys.TAB)
    assert order == ["", "status", "apikey", "#m-demo", "#m-sleep", "#m-echo", "#m-minilm", "m-demo-f-cal_number"], order
    d.switch_to.active_element.send_keys(Keys.BACKSPACE, "5", Keys.ENTER)
    until(d, lambda: "200 OK" in stats(d, "demo"))
    assert '"result": 5' in d.find_element(By.ID, "m-demo-out").text
    rid = stats(d, "demo").split("recordid ")[1].split(" ")[0]
    s.wait_log(rf"\[{rid}\] response: 200")

    # embeddings: three texts, a 3x3 similarity table with 1.00 on the diagonal.
    d.find_element(By.ID, "m-minilm-send").click()
    until(d, lambda: "200 OK" in stats(d, "minilm"), 30)
    cells = d.find_elements(By.CSS_SELECTOR, "#m-minilm-out table.heat td")
    assert len(cells) == 9 and cells[0].text == "1.00" and cells[4].text == "1.00"
    assert "384 dimensions" in d.find_element(By.ID, "m-minilm-out").text

    # upload: a file sent as multipart.
    upload = tmp_path / "hello.txt"
    upload.write_text("hello, browser\n")
    d.find_element(By.ID, "m-echo-file").send_keys(str(upload))
    d.find_element(By.ID, "m-echo-send").click()
    until(d, lambda: "200 OK" in stats(d, "echo"))
    out = d.find_element(By.ID, "m-echo-out").text
    assert '"filename": "hello.txt"' in out and '"bytes": 15' in out

    # a bad input: the error in plain words, with the recordid.
    field(d, "m-sleep-f-ms").send_keys("-1")
    d.find_element(By.ID, "m-sleep-send").click()
    until(d, lambda: "Error 400" in stats(d, "sleep"))
    assert "the input was refused" in stats(d, "sleep") and "recordid" in stats(d, "sleep")

    # a stream grows as it arrives; Stop cancels it on the server (499 in its access line).
    field(d, "m-sleep-f-ms").send_keys("6000")
    field(d, "m-sleep-f-pieces").send_keys("30")
    d.find_element(By.ID, "m-sleep-stream").click()
    d.find_element(By.ID, "m-sleep-send").click()
    until(d, lambda: "streaming" in stats(d, "sleep"))
    first = len(d.find_element(By.ID, "m-sleep-out").text.splitlines())
    time.sleep(0.8)
    later = len(d.find_element(By.ID, "m-sleep-out").text.splitlines())
    assert 1 <= first < later, (first, later)
    assert "first piece" in stats(d, "sleep") and "pieces/s" in stats(d, "sleep")
    screenshot(d, tmp_path, "web-desktop.png")
    d.find_element(By.ID, "m-sleep-stop").click()
    until(d, lambda: "Stopped" in stats(d, "sleep"))
    wait_for(lambda: " 499 " in s.access(), 10, what="the stopped stream's 499 access line")
    assert errors(d, network=False) == [], errors(d)

    d.set_window_size(390, 844)
    d.get(s.url + "/")
    until(d, lambda: d.find_elements(By.ID, "m-demo-send"))
    # Nothing wider than the phone's screen.
    assert d.execute_script("return document.documentElement.scrollWidth") <= 390
    screenshot(d, tmp_path, "web-phone.png")


def test_the_api_key_is_kept_in_the_tab_and_sent(start, browser, tmp_path):
    keys = tmp_path / "keys"
    alice = add_key(keys, "alice")
    s = start("--keys-file", str(keys), "demo", workers=1)
    d = browser
    d.get(s.url + "/")
    assert "needs an API key" in d.find_element(By.ID, "model-list").text
    assert not d.find_elements(By.ID, "m-demo-send")
    key = d.find_element(By.ID, "apikey")
    key.send_keys(alice)
    d.execute_script("document.getElementById('apikey').dispatchEvent(new Event('change'))")
    until(d, lambda: d.find_elements(By.ID, "m-demo-send"))
    assert d.execute_script("return sessionStorage.getItem('mserve-key')") == alice
    assert d.execute_script("return localStorage.length") == 0
    d.find_element(By.ID, "m-demo-send").click()
    until(d, lambda: "Sending" not in stats(d, "demo") and stats(d, "demo"))
    assert "200 OK" in stats(d, "demo"), stats(d, "demo")
    wait_for(lambda: "alice" in s.access(), 5, what="the key's name in the access log")
    # Reloaded in the same tab, the key is still there and the forms come back.
    d.get(s.url + "/")
    until(d, lambda: d.find_elements(By.ID, "m-demo-send"))
    assert errors(d) == [], errors(d)


def test_status_json_reports_workers_models_and_the_last_seconds(start):
    s = start("demo", "sleep", workers=2)
    for i in range(20):
        assert s.post("/demo", {"cal_number": i}).status_code == 200
    time.sleep(1.1)   # the second they fell in is complete
    st = s.get("/status.json").json()
    assert st["ready"] and not st["draining"]
    assert sorted(w["pid"] for w in st["workers"]) == s.worker_pids()
    assert sorted(w["slot"] for w in st["workers"]) == [0, 1] and all(w["state"] == "ready" for w in st["workers"])
    demo = next(m for m in st["models"] if m["name"] == "demo")
    assert demo["requests"] == 20 and demo["queued"] == 0
    assert sum(p["requests"] for p in st["recent"]["points"]) >= 20
    busy = [p for p in st["recent"]["points"] if p["requests"]]
    assert busy and all(0 < p["p50_ms"] <= p["p99_ms"] < 1000 for p in busy)
    # --ui off: no pages, the data stays.
    off = start("demo", "--ui", "off", workers=1)
    assert off.get("/status").status_code == 404 and off.get("/status.json").status_code == 200


def test_the_status_page_changes_after_requests(start, browser, tmp_path):
    s = start("demo", "sleep", workers=2)
    d = browser
    d.get(s.url + "/status")
    until(d, lambda: d.find_element(By.ID, "state").text == "ready")
    # Read in one script: the page replaces the rows every 2 seconds, so an element found here
    # may be gone before its text is read.
    total = lambda: d.execute_script(
        "return [...document.querySelectorAll('#workers tr td:nth-child(5)')].reduce((s, td) => s + Number(td.textContent), 0)")
    before = total()
    for i in range(50):
        s.post("/demo", {"cal_number": i})
    until(d, lambda: total() >= before + 50, 10)
    until(d, lambda: d.find_elements(By.CSS_SELECTOR, "#chart-rps polyline"), 10)
    assert "/s" in d.find_element(By.ID, "rps-now").text or d.find_element(By.ID, "rps-now").text == ""
    assert len(d.find_elements(By.CSS_SELECTOR, "#workers tr")) == 2
    assert errors(d) == [], errors(d)
    screenshot(d, tmp_path, "status-desktop.png")


def test_the_chat_form_holds_a_conversation_and_streams_tokens(start, browser, tmp_path):
    from test_smollm2 import MODEL_DIR as SMOL_DIR
    # At debug the request lines carry their bodies: the conversation sent is checked there.
    s = start("smollm2", "--model-dir", SMOL_DIR, "--log-level", "debug", workers=1)
    d = browser
    d.get(s.url + "/")
    until(d, lambda: d.find_elements(By.ID, "m-smollm2-send"))
    assert d.find_element(By.CSS_SELECTOR, "#m-smollm2 .kind").text == "chat"
    field(d, "m-smollm2-temperature").send_keys("0")
    field(d, "m-smollm2-max_tokens").send_keys("40")
    # A first turn, streamed (the default): the answer grows, then the stats give tokens/s.
    d.find_element(By.ID, "m-smollm2-message").send_keys("What is the capital of France?", Keys.ENTER)
    until(d, lambda: "200 OK" in stats(d, "smollm2"), 60)
    turns = d.execute_script("return [...document.querySelectorAll('#m-smollm2-turns .turn')].map(t => [t.className, t.textContent])")
    assert turns == [["turn user", "What is the capital of France?"], ["turn assistant", "The capital of France is Paris."]], turns
    line = stats(d, "smollm2")
    assert "first token" in line and "8 tokens" in line and "tokens/s" in line and "stop" in line, line
    # A second turn carries the first: three messages in the request the server logged.
    d.find_element(By.ID, "m-smollm2-message").send_keys("And of Italy?", Keys.ENTER)
    until(d, lambda: "200 OK" in stats(d, "smollm2") and len(d.find_elements(By.CSS_SELECTOR, "#m-smollm2-turns .turn")) == 4, 60)
    rid = stats(d, "smollm2").split("recordid ")[1].split(" ")[0]
    s.wait_log(rf'\[{rid}\] request: POST /v1/chat/completions .*"What is the capital of France\?".*"The capital of France is Paris\.".*"And of Italy\?"')
    screenshot(d, tmp_path, "web-chat.png")
    # A bad value is refused in plain words and the message stays in the box.
    field(d, "m-smollm2-temperature").send_keys("5")
    d.find_element(By.ID, "m-smollm2-message").send_keys("Hello", Keys.ENTER)
    until(d, lambda: "Error 400" in stats(d, "smollm2"), 30)
    assert "temperature must be from 0 to 2" in stats(d, "smollm2")
    assert d.find_element(By.ID, "m-smollm2-message").get_attribute("value") == "Hello"
    assert len(d.find_elements(By.CSS_SELECTOR, "#m-smollm2-turns .turn")) == 4
    # Stop cancels a long answer on the server; a new conversation starts empty.
    field(d, "m-smollm2-temperature").send_keys("1")
    field(d, "m-smollm2-max_tokens").send_keys("2000")
    field(d, "m-smollm2-message").send_keys("Write a very long story about the sea.", Keys.ENTER)
    until(d, lambda: "streaming" in stats(d, "smollm2") and " 3 tokens" not in stats(d, "smollm2"), 30)
    d.find_element(By.ID, "m-smollm2-stop").click()
    until(d, lambda: "Stopped" in stats(d, "smollm2"))
    wait_for(lambda: " 499 " in s.access(), 10, what="the stopped chat's 499 access line")
    d.find_element(By.ID, "m-smollm2-clear").click()
    assert d.find_elements(By.CSS_SELECTOR, "#m-smollm2-turns .turn") == []
    assert errors(d, network=False) == [], errors(d)


def test_python_models_get_forms_from_their_shape(start, browser, tmp_path):
    examples = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "Examples", "python")
    s = start("--pythonpath", examples, "worker=hepai_worker:WorkerModel", "custom=modelserve_model:Model", workers=1)
    d = browser
    d.get(s.url + "/")
    until(d, lambda: d.find_elements(By.ID, "m-worker-send"))
    # Keyword arguments: fields from the class's `example` (its text prefilled).
    assert d.find_element(By.ID, "m-worker-f-text").get_attribute("value") == "hello world"
    field(d, "m-worker-f-text").send_keys("hello from the page")
    d.find_element(By.ID, "m-worker-send").click()
    until(d, lambda: "200 OK" in stats(d, "worker"))
    assert '"text": "HELLO FROM THE PAGE"' in d.find_element(By.ID, "m-worker-out").text
    # inference(self, request): an upload, which arrives in request.FILES.
    picture = tmp_path / "picture.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    d.find_element(By.ID, "m-custom-file").send_keys(str(picture))
    d.find_element(By.ID, "m-custom-send").click()
    until(d, lambda: "200 OK" in stats(d, "custom"))
    out = d.find_element(By.ID, "m-custom-out").text
    assert '"name": "picture.png"' in out and '"size": 72' in out
    assert errors(d) == [], errors(d)
