#!/usr/bin/env python3
"""Chat generation: mserve (`-w 1` and `-w 2`) against llama.cpp serving the same GGUF file through
llama-cpp-python's OpenAI server, on the same cores, one after the other in one run: smollm2's
file, or any GGUF file given with --model (a file without a chat template is sent completions).

Every contender gets the same OpenAI streaming requests (/v1/chat/completions, temperature 0):
- single stream: a 30-token prompt, max_tokens 128, --rounds times: decode tokens/s (tokens after
  the first over the time after the first) and time to first token, medians;
- 1, 4, 16 and 64 concurrent streams (max_tokens 128), --level-rounds times each (3), the
  contenders in turn: aggregate generated tokens/s over the wall time, p50/p99 time to first
  token and inter-token latency (every gap between two content chunks of a stream), of the
  median run;
- time to first token of a long prompt (--long-prompt tokens, about: a passage repeated), medians;
- PSS per worker (/proc/PID/smaps_rollup) after the run.
Tokens are counted as content chunks (each server sends one per token; mserve holds back only the
bytes of an unfinished UTF-8 character or a possible stop string).

All servers are started at once and each measurement takes them in turn, so that the machine's
speed changing during the run (these are shared machines) hits every contender alike.
llama.cpp runs with --n_threads set to the cores (its default is half) and --interrupt_requests
False (by default a new request cuts off the running one); it answers one request at a time.
llama-cpp-python is built from PyPI's source package into a cached venv by scripts/llama-cpp-python
(or --venv); the first build takes minutes.

    python3 benchmark/chat.py [--model FILE.gguf] [--levels 1,4,16,64] [--max-tokens 128] [--only mserve|llama.cpp]
                              [--workers 1,2] [--activations int8,int16,float32] [--rounds 5] [--level-rounds 3]
                              [--long-prompt 512]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import memory  # noqa: E402
import results as saved  # noqa: E402

GGUF = os.path.join(bench.ROOT, "models", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
# What mserve serves the file as (smollm2: the preset, its file hash-checked; else the file by path).
MODEL = "smollm2"
# The passage a long prompt repeats (about 12 tokens a time).
PASSAGE = "The lighthouse keeper climbed the stairs each evening to light the lamp. "
# 30 tokens once the chat template wraps it (with the default system turn, 37 for the capital).
PROMPT = "Tell me a story about a lighthouse keeper."
QUESTIONS = ["Tell me a story about a lighthouse keeper.", "Explain how a bicycle works.", "Write a poem about the sea.",
             "Describe a busy market in the morning.", "What makes a good teacher?", "Give me advice for a long hike.",
             "Explain why the sky is blue.", "Describe your ideal garden."]


def llama_cpp_venv(path=None):
    """The python of llama-cpp-python's venv (at `path`, else the cached one), built the first time
    (scripts/llama-cpp-python)."""
    env = dict(os.environ, MSERVE_LLAMA_CPP_VENV=path) if path else None
    out = subprocess.run(["bash", os.path.join(bench.ROOT, "scripts", "llama-cpp-python")], check=True, stdout=subprocess.PIPE,
                         text=True, env=env)
    return out.stdout.strip()


# "chat" (/v1/chat/completions) or "completions" (/v1/completions: a file without a chat template).
API = {"api": "chat"}


def stream(url, model, question, max_tokens, out):
    """One streamed completion: the times of its content chunks (from the request's start)."""
    chat = API["api"] == "chat"
    body = json.dumps({"model": model, "temperature": 0, "max_tokens": max_tokens, "stream": True,
                       **({"messages": [{"role": "user", "content": question}]} if chat else {"prompt": question})}).encode()
    req = urllib.request.Request(url + ("/v1/chat/completions" if chat else "/v1/completions"), data=body,
                                 headers={"Content-Type": "application/json"})
    start = time.monotonic()
    times = []
    with urllib.request.urlopen(req, timeout=900) as r:
        for line in r:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            chunk = json.loads(line[6:])
            choice = chunk["choices"][0] if chunk.get("choices") else {}
            if choice.get("delta", {}).get("content") if chat else choice.get("text"):
                times.append(time.monotonic() - start)
    out.append(times)


def has_chat_template(url, model):
    """Whether the server takes a conversation for the file (mserve answers 400 where it has no template)."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}).encode()
    try:
        urllib.request.urlopen(urllib.request.Request(url + "/v1/chat/completions", data=body,
                                                      headers={"Content-Type": "application/json"}), timeout=120).read()
        return True
    except urllib.error.HTTPError as e:
        if e.code == 400:
            return False
        raise


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def single(url, model, question, max_tokens):
    """(time to first token, decode tokens/s) of one stream."""
    out = []
    stream(url, model, question, max_tokens, out)
    t = out[0]
    return t[0], (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 else 0.0


def level(url, model, n, max_tokens):
    out = []
    threads = [threading.Thread(target=stream, args=(url, model, QUESTIONS[i % len(QUESTIONS)], max_tokens, out)) for i in range(n)]
    start = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.monotonic() - start
    gaps = [b - a for t in out for a, b in zip(t, t[1:])]
    firsts = [t[0] for t in out if t]
    return {"tps": sum(len(t) for t in out) / wall, "ttft_p50": percentile(firsts, 50) * 1000, "ttft_p99": percentile(firsts, 99) * 1000,
            "itl_p50": percentile(gaps, 50) * 1000, "itl_p99": percentile(gaps, 99) * 1000}


class Contender:
    def __init__(self, name, proc, url, model, workers_of):
        self.name, self.proc, self.url, self.model, self.workers_of = name, proc, url, model, workers_of
        self.singles = []
        self.long = []
        self.levels = {}

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_mserve(workers, levels, activations, gguf):
    port = bench.free_port()
    tmp = tempfile.mkdtemp(prefix="mserve-chat-")
    config = os.path.join(tmp, "mserve.toml")
    with open(config, "w") as f:
        f.write(f'models = ["{MODEL}"]\n[model.{MODEL}]\n' + (f'gguf = "{gguf}"\n' if gguf != GGUF else "")
                + (f'activations = "{activations}"\n' if activations else ""))
    # Every stream of the largest level is admitted: a sequence each, or a place in the queue.
    proc = subprocess.Popen([os.path.join(bench.ROOT, ".build", "release", "mserve"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
                             "--max-batch-size", "32", "--queue-size", str(max(levels) * 2), "--request-timeout", "600",
                             "--error-logfile", os.path.join(tmp, "error.log"), "-c", config],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, MSERVE_DRAIN_SECONDS="0"))
    url = f"http://127.0.0.1:{port}"
    bench.wait_http(url + "/readyz", timeout=60)
    name = f"mserve -w {workers}" + (f" {activations}" if activations else "")
    return Contender(name, proc, url, MODEL, lambda: bench.children(proc.pid))


def start_llama_cpp(python, gguf):
    port = bench.free_port()
    threads = os.cpu_count() or 2
    proc = subprocess.Popen([python, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1", "--port", str(port),
                             "--n_threads", str(threads), "--n_threads_batch", str(threads), "--n_ctx", "4096",
                             "--interrupt_requests", "False"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    bench.wait_http(url + "/v1/models", timeout=120)
    return Contender("llama.cpp", proc, url, MODEL, lambda: [proc.pid])


def main():
    global MODEL
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=GGUF, help="the GGUF file both serve (default: smollm2's)")
    ap.add_argument("--long-prompt", type=int, default=512, help="tokens (about) of the prompt whose time to first token is measured")
    ap.add_argument("--levels", default="1,4,16,64")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--only", choices=["mserve", "llama.cpp"])
    ap.add_argument("--activations", help="smollm2's activations option, or several to compare (default: the model's default)")
    ap.add_argument("--workers", default="1,2", help="mserve -w values to run")
    ap.add_argument("--rounds", type=int, default=5, help="single-stream runs per contender (the median is shown)")
    ap.add_argument("--level-rounds", type=int, default=3,
                    help="runs of each level per contender, interleaved (the median by tokens/s is shown)")
    ap.add_argument("--venv", help="llama-cpp-python's venv (default: scripts/llama-cpp-python's cached one)")
    ap.add_argument("--save", help="the name under benchmark/results/ (default: chat-FILE, FILE the model's file name "
                                   "without .gguf; 'none': not saved)")
    args = ap.parse_args()
    gguf = os.path.abspath(args.model)
    if not os.path.exists(gguf):
        raise SystemExit(f"{gguf} is missing" + (": bash scripts/fetch-smollm2" if gguf == GGUF else ""))
    if gguf != GGUF:
        MODEL = "model"
    long_prompt = PASSAGE * max(1, args.long_prompt // 12)
    levels = [int(x) for x in args.levels.split(",")]
    contenders = []
    try:
        # Every server is up at once (idle ones cost nothing) and each measurement takes them in
        # turn, so that a change in the machine's speed during the run hits them alike.
        if args.only != "mserve":
            contenders.append(start_llama_cpp(llama_cpp_venv(args.venv), gguf))
        if args.only != "llama.cpp":
            variants = args.activations.split(",") if args.activations else [None]
            contenders += [start_mserve(int(w), levels, a, gguf) for w in args.workers.split(",") for a in variants]
        if not has_chat_template(contenders[-1].url, MODEL):
            API["api"] = "completions"
        for c in contenders:
            stream(c.url, c.model, "Hi", 4, [])   # warm up
        for i in range(args.rounds):
            for c in contenders:
                # A question of its own each round: llama.cpp would reuse a repeated prompt's cache.
                c.singles.append(single(c.url, c.model, f"{PROMPT} Round {i + 1}.", args.max_tokens))
        for i in range(args.rounds):
            for c in contenders:
                c.long.append(single(c.url, c.model, f"Round {i + 1}. {long_prompt}", 8)[0])
        for n in levels:
            runs = {c.name: [] for c in contenders}
            for _ in range(args.level_rounds):
                for c in contenders:
                    runs[c.name].append(level(c.url, c.model, n, args.max_tokens))
                    print(f"  {c.name:20} {n:>3} streams: {runs[c.name][-1]['tps']:7.1f} tokens/s", flush=True)
            for c in contenders:
                c.levels[n] = sorted(runs[c.name], key=lambda r: r["tps"])[len(runs[c.name]) // 2]
        for c in contenders:
            c.pss = [memory.mem_kib(p)[1] / 1024 for p in c.workers_of()]
    finally:
        for c in contenders:
            c.stop()
    results = {}
    for c in contenders:
        r = {n: c.levels[n] for n in levels}
        r["ttft_ms"] = statistics.median(s[0] for s in c.singles) * 1000
        r["decode_tps"] = statistics.median(s[1] for s in c.singles)
        r["long_ttft_ms"] = statistics.median(c.long) * 1000
        r["pss"] = c.pss
        results[c.name] = r

    print(f"\n{os.path.basename(gguf)} ({API['api']}), {os.cpu_count()} cores, temperature 0, max_tokens {args.max_tokens}")
    print(f"{'':20} {'decode tok/s':>12} {'TTFT ms':>8} {'TTFT long':>9} " + " ".join(f"{f'{n} streams':>11}" for n in levels)
          + "   PSS/worker MiB")
    for name, r in results.items():
        print(f"{name:20} {r['decode_tps']:12.1f} {r['ttft_ms']:8.0f} {r['long_ttft_ms']:9.0f} " + " ".join(f"{r[n]['tps']:11.1f}" for n in levels)
              + "   " + ", ".join(f"{p:.0f}" for p in r["pss"]))
    print("\nlatency at each level (ms): TTFT p50/p99, inter-token p50/p99")
    for name, r in results.items():
        print(f"{name:20} " + "  ".join(f"{n}: {r[n]['ttft_p50']:.0f}/{r[n]['ttft_p99']:.0f}, {r[n]['itl_p50']:.1f}/{r[n]['itl_p99']:.1f}"
                                         for n in levels))
    if args.save != "none":
        name = args.save or "chat-" + os.path.basename(gguf).removesuffix(".gguf")
        record = {"file": os.path.basename(gguf), "api": API["api"], "max_tokens": args.max_tokens, "levels": levels,
                  "contenders": {name_: {**{k: v for k, v in r.items() if not isinstance(k, int)},
                                         "levels": {str(n): r[n] for n in levels}} for name_, r in results.items()}}
        print(f"\nsaved as {os.path.relpath(saved.save(name, record), bench.ROOT)}")
    if "llama.cpp" in results:
        base = results["llama.cpp"]
        print("\nratios against llama.cpp in this run:")
        for name, r in results.items():
            if name == "llama.cpp":
                continue
            print(f"{name:20} single-stream decode {r['decode_tps'] / base['decode_tps']:.2f}x, "
                  + ", ".join(f"{n} streams {r[n]['tps'] / base[n]['tps']:.2f}x" for n in levels)
                  + f", long prompt's TTFT {base['long_ttft_ms'] / r['long_ttft_ms']:.2f}x as fast")


if __name__ == "__main__":
    main()
