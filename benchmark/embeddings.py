#!/usr/bin/env python3
"""Sentence embeddings per second: mserve's minilm through HTTP against onnxruntime and
sentence-transformers running the same model offline, on the same 2 cores, in one run.

256 sentences of 10-20 words.  mserve: `-w 2 minilm`, wrk sending one sentence per request from
1, 8 and 64 connections (keep-alive) for --seconds each.  onnxruntime (the model exported from the
same weights, intra-op threads = cores) and sentence-transformers (torch threads = cores): the 256
sentences in batches of 32, tokenization included, their best case; the best of 3 passes.

The contenders need a Python venv with sentence-transformers, onnxruntime and onnx; the script
makes one in benchmark/.venv unless --venv names another.  --native-blas unsets OPENBLAS_CORETYPE
and OPENBLAS_L2_SIZE (set on these machines for old numpy builds) for every contender alike.

    python3 benchmark/embeddings.py [--seconds 10] [--native-blas] [--venv DIR]
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import results as saved  # noqa: E402

WORDS = ("time person year way day thing man world life hand part child eye woman place work week case point "
         "government company number group problem fact model server request answer network memory latency vector "
         "search river mountain city music language history science water light garden market school question "
         "simple quick bright quiet heavy small large early late young old green strong careful happy ready "
         "runs builds reads writes finds keeps makes takes gives tells moves lives brings holds turns starts shows").split()


def sentences(n=256, seed=7):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 20))).capitalize() + "." for _ in range(n)]


OFFLINE = r'''
import json, sys, time
kind, model_dir, onnx_path, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
texts = json.load(sys.stdin)
import numpy as np
if kind == "onnxruntime":
    import onnxruntime as ort
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    def run():
        for i in range(0, len(texts), 32):
            enc = tok(texts[i:i + 32], padding=True, truncation=True, max_length=256, return_tensors="np")
            sess.run(None, {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)})
else:
    import torch
    torch.set_num_threads(threads)
    from sentence_transformers import SentenceTransformer
    m = SentenceTransformer(model_dir, device="cpu")
    def run():
        m.encode(texts, batch_size=32)
run()   # warm-up
best = 0.0
for _ in range(3):
    t0 = time.perf_counter(); run(); best = max(best, len(texts) / (time.perf_counter() - t0))
print(json.dumps({"sentences_per_s": best}))
'''

EXPORT = r'''
import sys, torch
from transformers import AutoModel
m = AutoModel.from_pretrained(sys.argv[1]).eval()
class Pooled(torch.nn.Module):
    def __init__(s, m): super().__init__(); s.m = m
    def forward(s, input_ids, attention_mask):
        h = s.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).float()
        return torch.nn.functional.normalize((h * mask).sum(1) / mask.sum(1).clamp(min=1e-9), p=2, dim=1)
x = torch.ones(2, 16, dtype=torch.long)
torch.onnx.export(Pooled(m), (x, x), sys.argv[2], input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                  dynamic_axes={"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}, "embedding": {0: "b"}},
                  opset_version=17, dynamo=False)
'''


def venv_python(args):
    venv = args.venv or os.path.join(bench.ROOT, "benchmark", ".venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "sentence-transformers", "onnxruntime", "onnx"], check=True)
    return py


def mserve_http(args, texts, env):
    tmp = tempfile.mkdtemp(prefix="mserve-emb-")
    port = bench.free_port()
    p = subprocess.Popen([args.mserve, "-w", "2", "-b", f"127.0.0.1:{port}", "minilm", "--model-dir", args.model_dir,
                          "--access-logfile", "off", "--error-logfile", f"{tmp}/error.log"], env=env)
    try:
        bench.wait_http(f"http://127.0.0.1:{port}/minilm", "POST", b'{"input": "warm up"}', timeout=60)
        lua = f"{tmp}/s.lua"
        with open(lua, "w") as f:
            f.write("local bodies = {\n")
            for t in texts:
                f.write("  " + json.dumps(json.dumps({"input": t})) + ",\n")
            f.write("}\nlocal i = 0\nrequest = function()\n  i = i % #bodies + 1\n"
                    '  return wrk.format("POST", "/minilm", {["Content-Type"] = "application/json"}, bodies[i])\nend\n')
        out = {}
        for c in (1, 8, 64):
            r = bench.run_wrk(f"http://127.0.0.1:{port}/minilm", ["-t", str(min(c, 2)), "-c", str(c), "-d", f"{args.seconds}s"],
                              lua, [p.pid] + bench.children(p.pid))
            r["ok_per_s"] = (r["requests"] - r["non2xx"]) / args.seconds   # answered sentences only, not 503s
            out[c] = r
        return out
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--native-blas", action="store_true")
    ap.add_argument("--venv")
    ap.add_argument("--mserve", default=os.path.join(bench.ROOT, ".build", "release", "mserve"))
    ap.add_argument("--model-dir", default=os.path.join(bench.ROOT, "models", "all-MiniLM-L6-v2"))
    saved.add_save_argument(ap, None, "embeddings, embeddings-native-blas with --native-blas")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.native_blas:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    texts = sentences()
    py = venv_python(args)
    onnx_path = os.path.join(os.path.dirname(py), "..", "minilm.onnx")
    if not os.path.exists(onnx_path):
        subprocess.run([py, "-c", EXPORT, args.model_dir, onnx_path], check=True, capture_output=True)
    cores = os.cpu_count()
    offline = {}
    for kind in ("onnxruntime", "sentence-transformers"):
        r = subprocess.run([py, "-c", OFFLINE, kind, args.model_dir, onnx_path, str(cores)], input=json.dumps(texts),
                           capture_output=True, text=True, env=env)
        offline[kind] = json.loads(r.stdout.strip().splitlines()[-1])["sentences_per_s"] if r.returncode == 0 else float("nan")
        if r.returncode != 0:
            print(f"{kind} failed: {r.stderr[-500:]}", file=sys.stderr)
    http = mserve_http(args, texts, env)
    tokens = sum(len(t.split()) for t in texts) / len(texts)
    table = saved.Table(f"256 sentences of 10-20 words (mean {tokens:.1f} words), {cores} cores, "
                        f"`OPENBLAS_CORETYPE={env.get('OPENBLAS_CORETYPE', 'unset')}`:",
                        ["contender", "sentences/s", "p50 ms", "p99 ms", "non-2xx"])
    for kind, v in offline.items():
        table.add(f"{kind}, offline, batch 32", f"{v:,.0f}", "", "", "")
    for c, r in http.items():
        table.add(f"`mserve -w 2 minilm` through HTTP, {c} client{'s' if c > 1 else ''}", f"{r['ok_per_s']:,.0f}",
                  f"{r['p50']:.2f}", f"{r['p99']:.2f}", r["non2xx"])
    best = offline.get("onnxruntime", float("nan"))
    table.add("mserve at 64 clients / onnxruntime offline", f"**{http[64]['ok_per_s'] / best:.2f}**", "", "", "")
    saved.save_tables(args.save or ("embeddings-native-blas" if args.native_blas else "embeddings"), [table])


if __name__ == "__main__":
    main()
