"""The shell examples of the README and docs/, run as printed against a server started as they say.

Every `curl` and `mserve bench` line in their indented code blocks is found; the server it
runs against is the `mserve ... MODELS` line before it in the same section (the quick start's is
`scripts/setup`'s).  Port 8081 becomes a free port, 0.0.0.0 becomes 127.0.0.1, `mserve` the binary
under test; bench runs get `-d 1 -w 0`.  When the README prints what comes back (the lines after
the command), the answer must match it, `…` and `...` standing for anything.  The few examples
that cannot run here are listed in SKIPPED with why, and the test fails if the README's examples
and these lists drift apart."""
import os
import re
import shlex
import signal
import subprocess
import time

from conftest import MSERVE, free_port, wait_for

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Examples that need what a test machine has not set up the way the README says; each is run
# elsewhere (the test named).
SKIPPED = {
    "Bearer msk-...": "a key from `mserve keys add` (test_access.py runs keyed requests)",
    "localhost:8081/matmul": "a venv with numpy in ~/venv (test_python_models.py builds one)",
    "http://10.0.0.5/": "another host (test_hosts.py runs several hosts)",
}


def pages():
    """The README, then every page of docs/."""
    docs = os.path.join(ROOT, "docs")
    return [os.path.join(ROOT, "README.md")] + sorted(os.path.join(docs, f) for f in os.listdir(docs) if f.endswith(".md"))


def sections():
    """(heading, [code block lines]) in the pages' order; a block is indented 4+ spaces.  A
    server named in the prose (`mserve ... MODELS` in backticks) is a block of its own.  A page's
    title counts as a section's heading: no server carries over from one page to the next."""
    out, heading, block = [], "", []
    lines = []
    for page in pages():
        text = open(page).read().splitlines()
        lines += [("## " + t[2:]) if t.startswith("# ") else t for t in text] + [""]
    for line in lines:
        if line.startswith("#"):
            heading = line
        m = re.match(r"^( {4,})(\S.*)$", line)
        if m and not m.group(2).startswith("- "):
            block.append((len(m.group(1)), m.group(2)))
            continue
        if block:
            out.append((heading, block))
            block = []
        out += [(heading, [(0, span)]) for span in re.findall(r"`(mserve [^`]+)`", line) if is_server(span)]
    return out


def is_server(cmd):
    words = cmd.split()
    return words and words[0] in ("mserve", ".build/release/mserve") and words[1] not in ("bench", "ctl", "keys") \
        and not any(w in ("--check-config", "-h", "--help") for w in words)


def examples():
    """[(server command, example command, expected output lines)]."""
    setup = re.search(r"exec \.build/release/mserve (.*)", open(os.path.join(ROOT, "scripts/setup")).read()).group(1)
    found, server, heading_seen = [], "mserve " + setup, None
    for heading, block in sections():
        if heading.startswith("## ") and heading != heading_seen:
            heading_seen = heading
            if "Quick start" not in heading:
                server = None
        i = 0
        while i < len(block):
            indent, text = block[i]
            cmd = text[2:] if text.startswith("$ ") else text
            cmd = cmd.split("  #")[0].rstrip()
            if is_server(cmd):
                server = cmd
                i += 1
                continue
            if not (cmd.startswith("curl ") or cmd.startswith("mserve bench ")):
                i += 1
                continue
            # A command continues on lines ending with a backslash, or while a quote is open.
            while cmd.endswith("\\") or cmd.count("'") % 2:
                i += 1
                cmd = cmd.rstrip("\\").rstrip() + " " + block[i][1]
            i += 1
            expected = []
            while i < len(block) and not block[i][1].startswith(("$ ", "curl ", "mserve ", ".build/")):
                expected.append(block[i][1])
                i += 1
            found.append((server, cmd, expected))
    return found


def matches(expected, got):
    """The printed answer, its wrapped lines joined, `…`/`...` matching anything."""
    pattern = ".*".join(re.escape(part) for part in re.split(r"…|\.\.\.", "".join(expected)))
    return re.fullmatch(pattern, got.replace("\n", ""), re.S) is not None


def local(text, port):
    return text.replace("8081", str(port)).replace("0.0.0.0", "127.0.0.1")


def start_server(cmd, port, tmp):
    args = shlex.split(local(cmd, port))
    args[0] = MSERVE
    tmp.mkdir()
    log = tmp / "error.log"
    env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp), MSERVE_DRAIN_SECONDS="0")
    proc = subprocess.Popen(args + ["--error-logfile", str(log), "--access-logfile", "off"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    def ready():
        assert proc.poll() is None, f"{cmd} exited: {proc.stderr.read().decode()} {log.read_text() if log.exists() else ''}"
        return log.exists() and re.search(r"(workers are|worker is) serving", log.read_text())
    wait_for(ready, 120, what=f"{cmd} serving")
    return proc


def stop_server(proc):
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    proc.stderr.close()


def test_every_shell_example_of_the_readme_runs_as_printed(tmp_path):
    found = examples()
    runnable = [e for e in found if not any(k in e[1] for k in SKIPPED)]
    # The skip list names examples that exist, and the README has not lost its examples.
    for key in SKIPPED:
        assert any(key in e[1] for e in found), f"SKIPPED names {key}, which no README example uses any more"
    assert len(runnable) >= 12, found
    for server, cmd, _ in runnable:
        assert server, f"the README runs `{cmd}` without saying which server (an `mserve ... MODELS` line before it)"
    # The file the echo example uploads (its size is printed).
    (tmp_path / "cat.png").write_bytes(b"\x89PNG" + bytes(5116))
    failures = []
    for server in dict.fromkeys(e[0] for e in runnable):
        port = free_port()
        proc = start_server(server, port, tmp_path / f"s{port}")
        try:
            for _, cmd, expected in (e for e in runnable if e[0] == server):
                line = local(cmd, port).replace("mserve bench", f"{MSERVE} bench", 1)
                if line.startswith(MSERVE):
                    line += " -d 1 -w 0"
                started = time.monotonic()
                p = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=180)
                said = f"`{cmd}` against `{server}` ({time.monotonic() - started:.1f} s): exit {p.returncode}\n{p.stdout[:600]}\n{p.stderr[:600]}"
                if p.returncode != 0 or '"error"' in p.stdout:
                    failures.append(said)
                elif expected and not matches(expected, p.stdout):
                    failures.append(said + "\nexpected:\n" + "\n".join(expected))
        finally:
            stop_server(proc)
    assert not failures, "\n\n".join(failures)
