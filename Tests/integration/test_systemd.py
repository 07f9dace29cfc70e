import os
import re
import shutil
import subprocess

import pytest

from conftest import MSERVE

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def unit_text():
    with open(os.path.join(ROOT, "systemd", "mserve.service")) as f:
        return f.read()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_file_verifies(tmp_path):
    # verify checks that ExecStart exists, so point it at the binary under test.
    unit = tmp_path / "mserve.service"
    unit.write_text(unit_text().replace("/usr/local/bin/mserve", os.path.abspath(MSERVE)))
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "mserve.service" not in p.stderr, p.stderr


def test_unit_file_contract():
    text = unit_text()
    for line in ["Type=notify", "KillMode=mixed", "ExecReload=/bin/kill -HUP $MAINPID", "User=mserve",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "RestartPreventExitStatus=2 4"]:
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
