import os
import re
import subprocess

import pytest
import requests

from conftest import MSERVE, children, demo_statuses, free_port, stop_master, wait_for

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def unit_text():
    with open(os.path.join(ROOT, "systemd", "mserve.service")) as f:
        return f.read()


def test_unit_files_verify(tmp_path):
    # verify checks that ExecStart exists, so point it at the binary under test.
    unit = tmp_path / "mserve.service"
    unit.write_text(unit_text().replace("/usr/local/bin/mserve", os.path.abspath(MSERVE)))
    (tmp_path / "mserve.socket").write_text(open(os.path.join(ROOT, "systemd", "mserve.socket")).read())
    p = subprocess.run(["systemd-analyze", "verify", str(unit), str(tmp_path / "mserve.socket")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "mserve.s" not in p.stderr, p.stderr


def test_socket_activation(tmp_path):
    """systemd-socket-activate holds the socket, starts mserve on the first connection with
    LISTEN_FDS, and that first connection is served."""
    port = free_port()
    log = tmp_path / "error.log"
    proc = subprocess.Popen(["systemd-socket-activate", "-l", f"127.0.0.1:{port}", MSERVE, "-w", "2", "demo",
                             "-b", "127.0.0.1:1", "--error-logfile", str(log), "--access-logfile", "off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: http_ok_post(port), timeout=10, what="first request through the activated socket")
        text = log.read_text()
        assert "Sockets from systemd (LISTEN_FDS): one socket shared by the workers; -b is ignored" in text
        assert f"Listening at: http://127.0.0.1:{port}" in text
        statuses = demo_statuses(f"http://127.0.0.1:{port}", 50)
        assert statuses == [200] * 50
        assert len(children(proc.pid)) == 2
    finally:
        stop_master(proc)


def http_ok_post(port):
    try:
        return requests.post(f"http://127.0.0.1:{port}/demo", json={"cal_number": 1}, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_unit_file_contract():
    text = unit_text()
    for line in ["Type=notify", "KillMode=mixed", "ExecReload=/bin/kill -HUP $MAINPID", "User=mserve",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "RestartPreventExitStatus=2 4"]:
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
