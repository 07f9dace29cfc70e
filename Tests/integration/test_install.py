"""The tested install path: scripts/install into a scratch prefix, then the installed binary run
from an empty working directory with the installed config, with no Swift toolchain in its
environment: it must link no Swift runtime from the toolchain and find the installed model files."""
import json
import os
import pathlib
import subprocess

import requests

from conftest import free_port, stop_master, wait_ready_or_exit

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent


def test_installed_binary_runs_from_an_empty_directory(tmp_path):
    prefix, etc, empty = tmp_path / "usr", tmp_path / "etc", tmp_path / "empty"
    empty.mkdir()
    p = subprocess.run(["bash", "scripts/install", "--prefix", str(prefix), "--sysconfdir", str(etc), "--no-systemd"],
                       cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    binary, conf = prefix / "bin" / "mserve", etc / "mserve" / "mserve.toml"
    libs = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    assert "libswift" not in libs and "/opt/swift" not in libs, libs
    assert f'[model.minilm]\nmodel_dir = "{prefix}/share/mserve/models/all-MiniLM-L6-v2"' in conf.read_text()
    assert f'[model.smollm2]\nmodel_dir = "{prefix}/share/mserve/models/smollm2"' in conf.read_text()
    assert_the_readme_lists_the_runtime_packages(libs)

    port = free_port()
    env = {"PATH": "/usr/bin:/bin"}   # no toolchain, no LD_LIBRARY_PATH
    proc = subprocess.Popen([str(binary), "-c", str(conf), "-b", f"127.0.0.1:{port}", "-w", "1", "demo", "minilm", "smollm2"],
                            cwd=empty, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_ready_or_exit(proc, port, "the installed server")
        r = requests.post(f"http://127.0.0.1:{port}/demo", json={"recordid": "i1", "cal_number": 2}, timeout=5)
        assert r.json() == {"recordid": "i1", "result": 2}
        e = requests.post(f"http://127.0.0.1:{port}/v1/embeddings", json={"model": "minilm", "input": "installed"}, timeout=30)
        assert e.status_code == 200 and len(e.json()["data"][0]["embedding"]) == 384
        c = requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=60, json={
            "model": "smollm2", "temperature": 0, "messages": [{"role": "user", "content": "What is the capital of France?"}]})
        assert c.json()["choices"][0]["message"]["content"] == "The capital of France is Paris.", c.text
        assert os.listdir(empty) == []
    finally:
        stop_master(proc)


def assert_the_readme_lists_the_runtime_packages(ldd):
    """docs/operations.md's "it needs only Debian's ..." names the packages of what `ldd` lists: each listed
    package provides a library the binary links, and each library comes from a listed package, one
    they depend on, or a package every Debian has (priority required or important)."""
    import re
    readme = (ROOT / "docs" / "operations.md").read_text()
    sentence = re.search(r"it needs only Debian's (.*?) \(what `ldd", readme, re.S).group(1)
    listed = set(re.findall(r"`([^`]+)`", sentence))

    def package(path):
        for candidate in (path, os.path.realpath(path), "/usr" + path, "/usr" + os.path.realpath(path)):
            p = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
            if p.returncode == 0:
                return p.stdout.split(":")[0]
        raise AssertionError(f"no package provides {path}")

    def field(pkg, name):
        return subprocess.run(["dpkg-query", "-W", f"-f=${{{name}}}", pkg], capture_output=True, text=True).stdout

    linked = {package(path) for path in re.findall(r"=> (/\S+)", ldd)}
    brought, todo = set(listed), list(listed)
    while todo:
        for dep in re.findall(r"(?:^|, |\| )([a-z0-9][a-z0-9.+-]+)", field(todo.pop(), "Depends")):
            if dep not in brought:
                brought.add(dep)
                todo.append(dep)
    assert listed <= linked, f"docs/operations.md lists {sorted(listed - linked)}, which the binary does not link ({sorted(linked)})"
    missing = {p for p in linked - brought if field(p, "Priority") not in ("required", "important")}
    assert not missing, f"the binary links libraries of {sorted(missing)}, which docs/operations.md does not list"
