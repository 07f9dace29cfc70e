#!/usr/bin/env python3
"""The same Python models served by mserve and by the Python servers people deploy them with, in
one run: the tornado demo's accumulator (Examples/python/tornado_predict.py: microseconds of Python)
and a numpy matrix product of a few milliseconds (Examples/python/numpy_model.py, 128 rows).

Contenders, each with 2 worker processes on this machine's 2 cores:
  mserve         mserve -w 2 NAME=module:Attribute, access and error logs written to files
  gunicorn-sync  gunicorn -w 2 (sync workers) with a Flask app
  gunicorn-gthr  gunicorn -w 2 -k gthread --threads 4 with the Flask app
  uvicorn        uvicorn --workers 2 with a FastAPI app (uvloop, httptools; the accumulator an
                 async endpoint, the numpy product a def endpoint, run in its thread pool)
  tornado        tornado with fork_processes(2), handlers calling the model directly
The peers log no requests (their defaults, or --no-access-log); mserve logs every one.  All run
with OPENBLAS_NUM_THREADS=1, so that each worker multiplies on one core.  wrk drives each with
keep-alive connections (gunicorn's sync workers close each one), in interleaved rounds; the median
round is reported with requests/s, p50/p99 latency and server CPU per request (every process of
the server, from /proc).

    python3 benchmark/python.py [--duration 5] [--connections 16] [--rounds 3]

The peers and numpy are installed (once) in a venv made with Debian's python3, the Python mserve
embeds: ~/.cache/mserve/python-bench-venv (--venv).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import results as saved  # noqa: E402

EXAMPLES = os.path.join(bench.ROOT, "Examples", "python")
PACKAGES = ["numpy", "flask", "gunicorn", "fastapi", "uvicorn[standard]", "tornado"]
BODIES = {"acc": '{"cal_number": 1}', "matmul": '{"rows": 128, "seed": 1}'}

FLASK_APP = """
import tornado_predict, numpy_model
from flask import Flask, request, jsonify
tornado_predict.init()
model = numpy_model.MatrixModel()
app = Flask(__name__)

@app.post("/acc")
def acc():
    return jsonify(tornado_predict.predict(**request.get_json()))

@app.post("/matmul")
def matmul():
    inputs = request.get_json()
    model.validate(inputs)
    return jsonify(plain(model.inference(**inputs)))

def plain(d):
    return {k: v.tolist() if hasattr(v, "tolist") else v for k, v in d.items()}
"""

FASTAPI_APP = """
import tornado_predict, numpy_model
from fastapi import FastAPI, Request
tornado_predict.init()
model = numpy_model.MatrixModel()
app = FastAPI()

@app.post("/acc")
async def acc(request: Request):
    return tornado_predict.predict(**(await request.json()))

@app.post("/matmul")
def matmul(inputs: dict):
    model.validate(inputs)
    return {k: v.tolist() if hasattr(v, "tolist") else v for k, v in model.inference(**inputs).items()}
"""

TORNADO_APP = """
import json, sys
import tornado.httpserver, tornado.ioloop, tornado.netutil, tornado.process, tornado.web
import tornado_predict, numpy_model

class Acc(tornado.web.RequestHandler):
    def post(self):
        self.write(tornado_predict.predict(**json.loads(self.request.body)))

class MatMul(tornado.web.RequestHandler):
    def post(self):
        inputs = json.loads(self.request.body)
        model.validate(inputs)
        self.write({k: v.tolist() if hasattr(v, "tolist") else v for k, v in model.inference(**inputs).items()})

sockets = tornado.netutil.bind_sockets(int(sys.argv[1]), "127.0.0.1")
tornado.process.fork_processes(2)
tornado_predict.init()
model = numpy_model.MatrixModel()
server = tornado.httpserver.HTTPServer(tornado.web.Application([("/acc", Acc), ("/matmul", MatMul)]))
server.add_sockets(sockets)
tornado.ioloop.IOLoop.current().start()
"""


def venv_python(path):
    python = os.path.join(path, "bin", "python")
    probe = "import numpy, flask, gunicorn, fastapi, uvicorn, uvloop, httptools, tornado"
    if os.path.exists(python) and subprocess.run([python, "-c", probe], capture_output=True).returncode == 0:
        return python
    print(f"installing {', '.join(PACKAGES)} into {path}...", flush=True)
    # Debian's python3: the version mserve embeds, so that mserve can use the venv's numpy too.
    subprocess.run(["/usr/bin/python3", "-m", "venv", path], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *PACKAGES], check=True)
    return python


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    ap.add_argument("--mserve", default=os.path.join(bench.ROOT, ".build", "release", "mserve"))
    ap.add_argument("--venv", default=os.path.expanduser("~/.cache/mserve/python-bench-venv"))
    ap.add_argument("--only", help="comma-separated contenders to run")
    saved.add_save_argument(ap, "python")
    args = ap.parse_args()
    if not os.path.exists("/usr/bin/wrk") and subprocess.run(["which", "wrk"], capture_output=True).returncode != 0:
        raise SystemExit("wrk is not installed (MSERVE_TEST_DEPS=1 bash scripts/setup installs it)")
    python = venv_python(args.venv)
    venv_bin = os.path.dirname(python)
    tmp = tempfile.mkdtemp(prefix="mserve-python-bench-")
    for name, text in (("flask_app", FLASK_APP), ("fastapi_app", FASTAPI_APP), ("tornado_app", TORNADO_APP)):
        with open(f"{tmp}/{name}.py", "w") as f:
            f.write(text)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=f"{tmp}:{EXAMPLES}", VIRTUAL_ENV=args.venv)
    mserve = [args.mserve, "-w", "2", "--python-venv", args.venv, "--pythonpath", EXAMPLES, "--queue-size", "64",
              "acc=tornado_predict:predict", "matmul=numpy_model:MatrixModel"]
    contenders = {
        "mserve": lambda port: mserve + ["-b", f"127.0.0.1:{port}", "--access-logfile", f"{tmp}/m-access.log",
                                         "--error-logfile", f"{tmp}/m-error.log"],
        "gunicorn-sync": lambda port: [f"{venv_bin}/gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "--chdir", tmp, "flask_app:app"],
        "gunicorn-gthr": lambda port: [f"{venv_bin}/gunicorn", "-w", "2", "-k", "gthread", "--threads", "4",
                                       "-b", f"127.0.0.1:{port}", "--chdir", tmp, "flask_app:app"],
        "uvicorn": lambda port: [f"{venv_bin}/uvicorn", "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
                                 "--no-access-log", "--log-level", "warning", "--app-dir", tmp, "fastapi_app:app"],
        "tornado": lambda port: [python, f"{tmp}/tornado_app.py", str(port)],
    }
    if args.only:
        contenders = {k: v for k, v in contenders.items() if k in args.only.split(",")}
    procs = {}
    try:
        servers = {}
        for name, command in contenders.items():
            port = bench.free_port()
            p = subprocess.Popen(command(port), env=env, stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/{name}.err", "w"),
                                 start_new_session=True)
            procs[name] = p
            for model, body in BODIES.items():
                bench.wait_http(f"http://127.0.0.1:{port}/{model}", "POST", body.encode(), timeout=60)
            servers[name] = port
        time.sleep(1)
        results = {}
        for model, body in BODIES.items():
            lua = f"{tmp}/{model}.lua"
            bench.write_lua(lua, "POST", body, close=False)
            rounds = {name: [] for name in servers}
            for _ in range(args.rounds):
                for name, port in servers.items():
                    pids = tree(procs[name].pid)
                    wrk = ["-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s"]
                    rounds[name].append(bench.run_wrk(f"http://127.0.0.1:{port}/{model}", wrk, lua, pids))
            for name, rs in rounds.items():
                results[(name, model)] = sorted(rs, key=lambda r: r["rps"])[len(rs) // 2]
        table = saved.Table(
            f"wrk `-t{args.threads} -c{args.connections} -d{args.duration}s` keep-alive, median of {args.rounds} interleaved "
            f"rounds, 2 workers each, `OPENBLAS_NUM_THREADS=1`, {os.cpu_count()} cores:",
            ["server", "model", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "user µs/req", "non-2xx", "socket errors"])
        for (name, model), r in results.items():
            table.add(name, model, f"{r['rps']:,.0f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}", f"{r['cpu_us']:.1f}",
                      f"{r['user_us']:.1f}", r["non2xx"], r["socket_errors"])
        ratios = saved.Table("Requests/s against each peer, same rounds:", ["model", "server", "ratios"])
        for model in BODIES:
            peers = {n: results[(n, model)]["rps"] for n in servers if not n.startswith("mserve")}
            for name in (n for n in servers if n.startswith("mserve")):
                m = results[(name, model)]["rps"]
                ratios.add(model, name, ", ".join(f"{m / v:.2f}× {n}" for n, v in peers.items()))
        if not args.only:
            saved.save_tables(args.save, [table, ratios])
    finally:
        for p in procs.values():
            for pid in tree(p.pid)[::-1]:
                try:
                    os.kill(pid, 15)
                except ProcessLookupError:
                    pass
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def tree(pid):
    """The process and all its descendants: every process of a server, whichever of them forks."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            todo += bench.children(p)
        except FileNotFoundError:
            pass
    return out


if __name__ == "__main__":
    main()
