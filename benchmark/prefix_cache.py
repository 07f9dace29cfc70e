#!/usr/bin/env python3
"""Prefix caching (issue 28, item 1): the second turn of a conversation whose first turn was about
--prompt-tokens tokens, its time to first token with mserve's prefix cache on, with it off
(`[model.smollm2] prefix_cache = false`), and with llama.cpp on the same file (llama-cpp-python's
OpenAI server, which keeps the KV cache of the last prompt it read and reuses its longest common
prefix: llama.cpp's `cache_prompt` for one slot).

Each round is a new conversation (its system prompt begins with the round's number, so nothing of an
earlier round is reused): turn 1 (system prompt, a question; max_tokens 16, not streamed), then
turn 2 (turn 1, its answer, a second question; streamed): the time to its first content chunk, the
median over --rounds.  The contenders take each round in turn, on the same cores.

    python3 benchmark/prefix_cache.py [--prompt-tokens 2000] [--rounds 3] [--only mserve]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import chat  # noqa: E402
import results as saved  # noqa: E402


def post(url, body, stream=False):
    """(seconds to the first content chunk or the answer, the answer's JSON or text)."""
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps({**body, "stream": stream}).encode(),
                                 headers={"Content-Type": "application/json"})
    start = time.monotonic()
    with urllib.request.urlopen(req, timeout=900) as r:
        if not stream:
            return time.monotonic() - start, json.loads(r.read())
        first, text = None, ""
        for line in r:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            chunk = json.loads(line[6:])
            content = (chunk.get("choices") or [{}])[0].get("delta", {}).get("content")
            if content:
                first = first or time.monotonic() - start
                text += content
        return first, text


def system_prompt(round_number, tokens):
    facts = " ".join(f"Fact {i}: river {i} flows into lake {i * 7 % 13}." for i in range(tokens // 14))
    return f"Conversation {round_number}. You answer questions about these facts. {facts}"


def turns(url, model, round_number, tokens):
    messages = [{"role": "system", "content": system_prompt(round_number, tokens)},
                {"role": "user", "content": "Where does river 3 flow?"}]
    first_ttft, one = post(url, {"model": model, "messages": messages, "temperature": 0, "max_tokens": 16})
    messages += [{"role": "assistant", "content": one["choices"][0]["message"]["content"]},
                 {"role": "user", "content": "And river 5?"}]
    second_ttft, _ = post(url, {"model": model, "messages": messages, "temperature": 0, "max_tokens": 16}, stream=True)
    return first_ttft, second_ttft, one["usage"]["prompt_tokens"]


def start_mserve(prefix_cache):
    port = bench.free_port()
    tmp = tempfile.mkdtemp(prefix="mserve-prefix-")
    config = os.path.join(tmp, "mserve.toml")
    with open(config, "w") as f:
        f.write(f'models = ["smollm2"]\n[model.smollm2]\nprefix_cache = {"true" if prefix_cache else "false"}\n')
    proc = subprocess.Popen([os.path.join(bench.ROOT, ".build", "release", "mserve"), "-w", "1", "-b", f"127.0.0.1:{port}",
                             "--request-timeout", "600", "--model-dir", os.path.join(bench.ROOT, "models", "smollm2"),
                             "--error-logfile", os.path.join(tmp, "error.log"), "-c", config],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, MSERVE_DRAIN_SECONDS="0"))
    url = f"http://127.0.0.1:{port}"
    bench.wait_http(url + "/readyz", timeout=60)
    return chat.Contender(f"mserve, prefix cache {'on' if prefix_cache else 'off'}", proc, url, "smollm2", lambda: [])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompt-tokens", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=["mserve"])
    ap.add_argument("--venv", help="llama-cpp-python's venv (default: scripts/llama-cpp-python's cached one)")
    ap.add_argument("--save", default="prefix-cache", help="the name under benchmark/results/ ('none': not saved)")
    args = ap.parse_args()
    contenders = [start_mserve(True), start_mserve(False)]
    if args.only != "mserve":
        contenders.append(chat.start_llama_cpp(chat.llama_cpp_venv(args.venv), chat.GGUF))
        contenders[-1].name = "llama.cpp (last prompt's prefix)"
    results = {c.name: [] for c in contenders}
    try:
        for r in range(args.rounds):
            for c in contenders:
                results[c.name].append(turns(c.url, c.model, r, args.prompt_tokens))
                print(f"  round {r + 1} {c.name:34} turn 1 {results[c.name][-1][0]:7.2f} s, turn 2 {results[c.name][-1][1]:6.2f} s "
                      f"({results[c.name][-1][2]} prompt tokens in turn 1)", flush=True)
    finally:
        for c in contenders:
            c.stop()
    print(f"\nsecond turn after a first of about {args.prompt_tokens} tokens, SmolLM2 Q4_1, {os.cpu_count()} cores, "
          f"median of {args.rounds} rounds")
    print(f"{'':36} {'turn 1 s':>9} {'turn 2 TTFT s':>14} {'turn 1 / turn 2':>16}")
    medians = {}
    for name, rows in results.items():
        one, two = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
        medians[name] = two
        print(f"{name:36} {one:9.2f} {two:14.3f} {one / two:15.1f}x")
    if args.save != "none":
        record = {"prompt_tokens": args.prompt_tokens, "rounds": args.rounds, "contenders": {
            name: {"turn1_s": statistics.median(r[0] for r in rows), "turn2_ttft_s": statistics.median(r[1] for r in rows),
                   "turn1_tokens": rows[0][2]} for name, rows in results.items()}}
        print(f"saved as {os.path.relpath(saved.save(args.save, record), bench.ROOT)}")
    on = medians["mserve, prefix cache on"]
    for name, two in medians.items():
        if name != "mserve, prefix cache on":
            print(f"second turn's first token {two / on:.1f}x as soon with the cache on as with {name}")


if __name__ == "__main__":
    main()
