"""Running as an unprivileged user on a privileged port: --user/--group after binding (checked in
/proc), TTIN on a port the dropped user cannot bind, socket activation as nobody, --chdir."""
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest

from conftest import MSERVE, children, demo_statuses, stop_master, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to bind a privileged port and drop privileges")
NOBODY = pwd.getpwnam("nobody")


def free_privileged_port():
    for port in range(1023, 900, -1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port below 1024")


def ids(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return [int(x) for x in fields["Uid"].split()], [int(x) for x in fields["Gid"].split()], fields["Groups"].split()


def test_user_and_group_after_binding_a_privileged_port_and_ttin_shares_the_socket(start):
    port = free_privileged_port()
    s = start("demo", "--user", "nobody", "--group", "nogroup", workers=2, port=port)
    for pid in [s.pid] + s.worker_pids():
        uids, gids, groups = ids(pid)
        assert uids == [NOBODY.pw_uid] * 4 and gids == [NOBODY.pw_gid] * 4, (pid, uids, gids)
        assert groups in ([], [str(NOBODY.pw_gid)]), groups
    assert s.post("/demo", {"cal_number": 1}).status_code == 200
    s.wait_log(r"Running as user nobody \(uid 65534\), group nogroup \(gid 65534\)")

    s.signal(signal.SIGTTIN)
    s.wait_log(r"is serving", count=3)
    s.wait_log(r"further workers share the first worker's socket on 127\.0\.0\.1:%d" % port)
    assert len(s.worker_pids()) == 3
    statuses = demo_statuses(s.url, 60)
    assert statuses == [200] * 60
    s.signal(signal.SIGTTOU)
    s.wait_log(r"Worker exiting \(pid")
    assert s.post("/demo", {"cal_number": 1}).status_code == 200


def test_socket_activation_on_a_privileged_port_as_nobody(tmp_path):
    """systemd's socket (ReusePort=yes) on a privileged port, mserve as nobody with 2 workers: the
    second worker cannot bind a socket of its own and shares systemd's instead of failing."""
    logs = pathlib.Path(tempfile.mkdtemp())   # pytest's own folders are root's alone
    logs.chmod(0o777)
    port = free_privileged_port()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    log = logs / "error.log"

    def as_nobody_with_socket_at_3():
        os.dup2(listener.fileno(), 3)
        os.setgid(NOBODY.pw_gid)
        os.setgroups([])
        os.setuid(NOBODY.pw_uid)

    # LISTEN_PID must be mserve's own pid: the shell sets it and execs mserve in its place.
    proc = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"', "sh", MSERVE, "-w", "2", "demo",
                             "--error-logfile", str(log), "--access-logfile", "off"],
                            preexec_fn=as_nobody_with_socket_at_3, pass_fds=(listener.fileno(), 3),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    listener.close()
    try:
        wait_for(lambda: proc.poll() is not None or (log.exists() and "All 2 workers are serving" in log.read_text()),
                 timeout=15, what="two workers serving")
        assert proc.poll() is None, (proc.returncode, log.read_text() if log.exists() else "", proc.stderr.read())
        text = log.read_text()
        assert "Sockets from systemd (LISTEN_FDS): a SO_REUSEPORT socket per worker" in text
        assert "further workers share the first worker's socket" in text
        statuses = demo_statuses(f"http://127.0.0.1:{port}", 40)
        assert statuses == [200] * 40
        assert len(children(proc.pid)) == 2
    finally:
        stop_master(proc)
        shutil.rmtree(logs, ignore_errors=True)


def test_chdir_before_loading_the_models(tmp_path, start):
    (tmp_path / "models").mkdir()
    conf = tmp_path / "c.toml"
    conf.write_text("[model.sleep]\nload_ms = 1\n")
    s = start("sleep", "--chdir", str(tmp_path), "-c", str(conf), workers=1)
    pid = s.worker_pids()[0]
    assert os.readlink(f"/proc/{pid}/cwd") == str(tmp_path)
    bad = subprocess.run([MSERVE, "--chdir", str(tmp_path / "nope"), "demo"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "cannot change directory" in bad.stderr
    nouser = subprocess.run([MSERVE, "--user", "no-such-user-here", "demo"], capture_output=True, text=True, timeout=10)
    assert nouser.returncode == 2 and "no such user: no-such-user-here" in nouser.stderr
