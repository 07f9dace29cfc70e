"""nginx and HAProxy run from the shipped configs (conf/nginx/mserve.conf, conf/haproxy/mserve.cfg),
rewritten only where a test must: its addresses, ports, certificate and file paths."""
import os
import re
import shutil
import signal
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NGINX_CONF = os.path.join(ROOT, "conf", "nginx", "mserve.conf")
HAPROXY_CFG = os.path.join(ROOT, "conf", "haproxy", "mserve.cfg")


def have(tool):
    return shutil.which(tool) or os.path.exists(f"/usr/sbin/{tool}")


def certificate(d):
    """A self-signed certificate for the balancer's TLS: (crt, key, pem with both)."""
    crt, key, pem = d / "balancer.crt", d / "balancer.key", d / "balancer.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "2", "-subj", "/CN=localhost"], check=True, capture_output=True)
    pem.write_bytes(crt.read_bytes() + key.read_bytes())
    return crt, key, pem


def replace_once(text, pattern, repl, count=1):
    new, n = re.subn(pattern, repl, text, flags=re.M)
    assert n == count, f"config no longer has {pattern!r} {count} time(s) (found {n})"
    return new


def nginx_config(d, hosts, listen, tls_listen, retries=True):
    """conf/nginx/mserve.conf for `hosts` ("ip:port"), inside a minimal nginx.conf of the test's own."""
    crt, key, _ = certificate(d)
    text = open(NGINX_CONF).read()
    text = replace_once(text, r"^    server 10\.0\.0\.1\d:8000 .*\n", "", count=3)
    servers = "".join(f"    server {h} max_fails=1 fail_timeout=5s;\n" for h in hosts)
    text = replace_once(text, r"^    least_conn;\n", "    least_conn;\n" + servers)
    text = replace_once(text, r"listen 80;", f"listen {listen};")
    text = replace_once(text, r"listen 443 ssl;", f"listen {tls_listen} ssl;")
    text = replace_once(text, r"/etc/nginx/mserve-tls/balancer\.crt", str(crt))
    text = replace_once(text, r"/etc/nginx/mserve-tls/balancer\.key", str(key))
    text = replace_once(text, r"/var/log/nginx/mserve-access\.log", str(d / "nginx-access.log"))
    if not retries:
        text = replace_once(text, r"proxy_next_upstream error timeout http_502 http_503 non_idempotent;",
                            "proxy_next_upstream error timeout;")
    (d / "mserve.conf").write_text(text)
    main = d / "nginx.conf"
    main.write_text(f"""pid {d}/nginx.pid;
error_log {d}/nginx-error.log info;
worker_processes 1;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/mserve.conf;
}}
""")
    return main


def haproxy_config(d, hosts, listen, tls_listen, api, agent_port=8001, retries=True):
    """conf/haproxy/mserve.cfg for `hosts` ("ip:port"; none: hosts announce themselves)."""
    _, _, pem = certificate(d)
    text = open(HAPROXY_CFG).read()
    text = replace_once(text, r"^    server h\d 10\.0\.0\.1\d:8000\n", "", count=6)
    servers = "".join(f"    server h{i + 1} {h}\n" for i, h in enumerate(hosts))
    text = replace_once(text, r"^(    # Hosts started with --announce.*\n)", servers + r"\1")
    text = replace_once(text, r"stats socket ipv4@10\.0\.0\.1:9999", f"stats socket ipv4@{api}")
    text = replace_once(text, r"stats socket /run/haproxy/admin\.sock", f"stats socket {d}/admin.sock")
    text = replace_once(text, r"bind :80$", f"bind {listen}")
    text = replace_once(text, r"bind :443 ssl crt /etc/haproxy/mserve-tls/balancer\.pem", f"bind {tls_listen} ssl crt {pem}")
    text = replace_once(text, r"agent-port 8001", f"agent-port {agent_port}", count=2)
    if not retries:
        text = replace_once(text, r"retry-on conn-failure empty-response response-timeout 503", "retry-on conn-failure")
    path = d / "haproxy.cfg"
    path.write_text(text)
    return path


def check(kind, path, d, netns=None):
    """`nginx -t` or `haproxy -c` on the rendered config: (ok, output)."""
    cmd = (["nginx", "-t", "-c", str(path), "-p", str(d)] if kind == "nginx" else ["haproxy", "-c", "-f", str(path)])
    out = subprocess.run((["ip", "netns", "exec", netns] if netns else []) + cmd, capture_output=True, text=True)
    return out.returncode == 0, out.stdout + out.stderr


class Balancer:
    """nginx or HAProxy in the foreground, stopped by PID."""

    def __init__(self, kind, path, d, netns=None):
        self.kind = kind
        self.log_path = d / f"{kind}.out"
        cmd = (["nginx", "-c", str(path), "-p", str(d), "-g", "daemon off;"] if kind == "nginx"
               else ["haproxy", "-f", str(path), "-db"])
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen((["ip", "netns", "exec", netns] if netns else []) + cmd,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.d = d

    def output(self):
        text = self.log_path.read_text(errors="replace")
        if self.kind == "nginx":
            try:
                text += (self.d / "nginx-error.log").read_text(errors="replace")
            except FileNotFoundError:
                pass
        return text

    def stop(self):
        if self.proc.poll() is None:
            # nginx: QUIT is its graceful stop; HAProxy: USR1 (soft stop).  Then KILL if need be.
            os.killpg(self.proc.pid, signal.SIGQUIT if self.kind == "nginx" else signal.SIGUSR1)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.log.close()


def runtime_api(address, command, timeout=5.0):
    """One HAProxy runtime-API command, over TCP ("HOST:PORT") or its Unix socket (a path); its answer."""
    if address.startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(address)
    else:
        host, port = address.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=timeout)
    with s:
        s.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def server_rows(address, backend="mserve"):
    """`show servers state BACKEND`, a dict per server: name, addr, op (2 running, 0 down),
    admin (bit 8: drain), weight."""
    rows = []
    for line in runtime_api(address, f"show servers state {backend}").splitlines():
        f = line.split()
        # be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight ...
        if len(f) > 8 and f[0].isdigit():
            rows.append({"name": f[3], "addr": f[4], "op": int(f[5]), "admin": int(f[6]), "weight": int(f[7])})
    return rows


def servers_state(address, backend="mserve"):
    """{server name: (operational state, admin state, weight)}."""
    return {r["name"]: (r["op"], r["admin"], r["weight"]) for r in server_rows(address, backend)}


def wait_port(host, port, timeout=10.0, netns=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if netns:
            ok = subprocess.run(["ip", "netns", "exec", netns, "python3", "-c",
                                 f"import socket; socket.create_connection(('{host}', {port}), 1)"],
                                capture_output=True).returncode == 0
        else:
            try:
                socket.create_connection((host, port), 1).close()
                ok = True
            except OSError:
                ok = False
        if ok:
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {host}:{port}")
