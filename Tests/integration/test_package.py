"""The Debian package: scripts/package builds it, lintian finds no error in it, dpkg installs it on
this machine, the installed binary runs, the installed unit's command line serves the demo as the
`mserve` user, and dpkg removes and purges it, leaving nothing of it behind."""
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import tempfile

import pytest
import requests

from conftest import free_port, wait_ready_or_exit

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("dpkg-deb") is None or shutil.which("lintian") is None,
                                reason="needs root, dpkg and lintian (MSERVE_TEST_DEPS=1 bash scripts/setup installs lintian)")


def dpkg_installed(name):
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True)
    return out.returncode == 0 and "installed" in out.stdout and "not-installed" not in out.stdout


def test_the_package_builds_passes_lintian_installs_serves_and_purges(tmp_path):
    if dpkg_installed("mserve"):
        pytest.skip("a mserve package is installed on this machine already: the test would replace it")
    p = subprocess.run(["bash", "scripts/package", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    debs = list(tmp_path.glob("mserve_*_amd64.deb"))
    assert len(debs) == 1, p.stdout
    deb = str(debs[0])
    # What dpkg will read: the control fields, Depends from the linked libraries, the conffiles.
    control = subprocess.run(["dpkg-deb", "-f", deb], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Depends: .*libevent", control, re.M) and re.search(r"^Depends: .*libssl3", control, re.M), control
    contents = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
    for path in ["./usr/bin/mserve", "./etc/mserve/mserve.toml", "./lib/systemd/system/mserve.service", "./lib/systemd/system/mserve.socket",
                 "./etc/logrotate.d/mserve", "./usr/share/man/man1/mserve.1.gz", "./usr/share/doc/mserve/copyright", "./var/lib/mserve/models/"]:
        assert path in contents, contents
    lint = subprocess.run(["lintian", "--fail-on", "error", "--no-tag-display-limit", deb], capture_output=True, text=True, timeout=600)
    assert lint.returncode == 0 and not re.search(r"^E: ", lint.stdout, re.M), lint.stdout + lint.stderr

    install = subprocess.run(["dpkg", "-i", deb], capture_output=True, text=True, timeout=300)
    try:
        assert install.returncode == 0, install.stdout + install.stderr
        assert subprocess.run(["/usr/bin/mserve", "--version"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}).stdout.startswith("mserve ")
        assert subprocess.run(["getent", "passwd", "mserve"], capture_output=True).returncode == 0
        assert pathlib.Path("/var/log/mserve").is_dir() and pathlib.Path("/var/lib/mserve").stat().st_uid == int(
            subprocess.run(["id", "-u", "mserve"], capture_output=True, text=True).stdout)
        man = subprocess.run(["man", "-l", "/usr/share/man/man1/mserve.1.gz"], capture_output=True, text=True, env={"MANWIDTH": "100", "PATH": "/usr/bin:/bin"})
        assert "--max-requests" in man.stdout.replace("\u2010", "-"), man.stdout[:2000]
        # The unit's own command line, as the unit's user, on a free port (the control socket where
        # systemd's RuntimeDirectory would put it).
        unit = pathlib.Path("/lib/systemd/system/mserve.service").read_text()
        command = shlex.split(re.search(r"^ExecStart=(.*)$", unit, re.M).group(1))
        assert command[0] == "/usr/bin/mserve" and "/etc/mserve/mserve.toml" in command
        run = pathlib.Path(tempfile.mkdtemp(prefix="mserve-run-"))
        shutil.chown(run, "mserve", "mserve")
        command = [c.replace("/run/mserve", str(run)) for c in command]
        port = free_port()
        proc = subprocess.Popen(["runuser", "-u", "mserve", "--", *command, "-b", f"127.0.0.1:{port}"], cwd="/",
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            wait_ready_or_exit(proc, port, "the installed unit's command", timeout=30)
            r = requests.post(f"http://127.0.0.1:{port}/demo", json={"recordid": "deb1", "cal_number": 2}, timeout=5)
            assert r.json() == {"recordid": "deb1", "result": 2}
            # The master and its worker run as the package's user.
            assert len(subprocess.run(["pgrep", "-u", "mserve", "-f", "/usr/bin/mserve"], capture_output=True, text=True).stdout.split()) >= 2
        finally:
            masters = subprocess.run(["pgrep", "-u", "mserve", "-x", "mserve", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            for pid in masters:
                subprocess.run(["kill", "-TERM", pid])
            proc.wait(timeout=30)
            shutil.rmtree(run, ignore_errors=True)
        removed = subprocess.run(["dpkg", "-r", "mserve"], capture_output=True, text=True, timeout=300)
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert not pathlib.Path("/usr/bin/mserve").exists() and pathlib.Path("/etc/mserve/mserve.toml").exists()   # conffiles stay
    finally:
        purged = subprocess.run(["dpkg", "-P", "mserve"], capture_output=True, text=True, timeout=300)
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert subprocess.run(["dpkg", "-L", "mserve"], capture_output=True).returncode != 0
    for path in ["/usr/bin/mserve", "/etc/mserve", "/lib/systemd/system/mserve.service", "/etc/logrotate.d/mserve", "/var/lib/mserve",
                 "/var/log/mserve", "/usr/share/doc/mserve", "/usr/share/man/man1/mserve.1.gz"]:
        assert not os.path.exists(path), path
