#!/usr/bin/env python3
"""Structured output (issue 28, item 2): what a constraint costs in decode speed.  The same chat
requests to mserve's smollm2 unconstrained, with `response_format` `json_object`, with a
`json_schema` (nested object, enum, bounded integer, pattern, array with bounds) and with a GBNF
`grammar`; each answer's decode rate (llama.cpp's `timings.predicted_per_second`: tokens after the
first over the time after it), the median per mode, and the ratio unconstrained / constrained
(issue 28 asks for at most 1.5x).  Every answer that ends (finish_reason "stop") is parsed, and
the schema's and grammar's checked against them: all must match; an answer cut by max_tokens
("length") is counted apart.

    python3 benchmark/structured_output.py [--rounds 3] [--max-tokens 96]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import results as saved  # noqa: E402

SCHEMA = {"type": "object",
          "properties": {"name": {"type": "string", "maxLength": 40}, "age": {"type": "integer", "minimum": 0, "maximum": 120},
                         "city": {"type": "object", "properties": {"name": {"type": "string"}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                                  "required": ["name", "zip"]},
                         "mood": {"enum": ["happy", "sad", "calm"]}, "hobbies": {"type": "array", "items": {"type": "string"}, "maxItems": 4}},
          "required": ["name", "age", "city", "mood", "hobbies"]}
GBNF = r'''root ::= "Answer: " ("yes" | "no") ", because " [a-z ,]{10,200} "."'''
MODES = {"unconstrained": {}, "json_object": {"response_format": {"type": "json_object"}},
         "json_schema": {"response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}},
         "grammar": {"grammar": GBNF}}
QUESTIONS = ["Describe a person who lives in a small town, as JSON.", "Tell me about a musician you admire.",
             "Is the sea salty? Explain.", "Write a short profile of a retired teacher.", "What do you know about Paris?"]


def ask(url, body):
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def matches(mode, text):
    if mode == "unconstrained":
        return True
    if mode == "grammar":
        return re.fullmatch(r"Answer: (yes|no), because [a-z ,]{10,200}\.", text) is not None
    value = json.loads(text)
    if mode == "json_object":
        return isinstance(value, dict)
    return (list(value) == ["name", "age", "city", "mood", "hobbies"] and 0 <= value["age"] <= 120 and value["mood"] in SCHEMA["properties"]["mood"]["enum"]
            and re.fullmatch(r"[0-9]{5}", value["city"]["zip"]) is not None and len(value["hobbies"]) <= 4)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=96)
    saved.add_save_argument(ap, "structured-output")
    args = ap.parse_args()
    port = bench.free_port()
    tmp = tempfile.mkdtemp(prefix="mserve-structured-")
    proc = subprocess.Popen([os.path.join(bench.ROOT, ".build", "release", "mserve"), "-w", "1", "-b", f"127.0.0.1:{port}",
                             "--model-dir", os.path.join(bench.ROOT, "models", "smollm2"), "--error-logfile", os.path.join(tmp, "error.log"),
                             "smollm2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, MSERVE_DRAIN_SECONDS="0"))
    url = f"http://127.0.0.1:{port}"
    rates = {m: [] for m in MODES}
    valid = {m: 0 for m in MODES}
    stopped = {m: 0 for m in MODES}
    tokens = {m: 0 for m in MODES}
    try:
        bench.wait_http(url + "/readyz", timeout=60)
        ask(url, {"model": "smollm2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **MODES["json_object"]})  # the trie, once
        for r in range(args.rounds):
            for i, q in enumerate(QUESTIONS):
                for mode, extra in MODES.items():   # each question in every mode in turn, on the same core
                    a = ask(url, {"model": "smollm2", "messages": [{"role": "user", "content": q}], "max_tokens": args.max_tokens,
                                  "temperature": 0.7, "seed": r * 100 + i, **extra})
                    text = a["choices"][0]["message"]["content"]
                    rate = a["timings"]["predicted_per_second"]
                    if a["usage"]["completion_tokens"] > 8:
                        rates[mode].append(rate)
                    tokens[mode] += a["usage"]["completion_tokens"]
                    if a["choices"][0]["finish_reason"] != "stop":
                        continue
                    stopped[mode] += 1
                    try:
                        valid[mode] += matches(mode, text)
                    except (ValueError, KeyError, TypeError):
                        print(f"  {mode}: does not match: {text!r}")
            print(f"  round {r + 1}: " + ", ".join(f"{m} {statistics.median(v):.1f} tok/s" for m, v in rates.items() if v), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    n = args.rounds * len(QUESTIONS)
    table = saved.Table(f"SmolLM2 Q4_1, one worker, {os.cpu_count()} cores, {n} answers per mode (max_tokens "
                        f"{args.max_tokens}, temperature 0.7):",
                        ["mode", "decode tok/s", "tokens", "ended", "matching", "unconstrained / this"])
    base = statistics.median(rates["unconstrained"])
    for mode, v in rates.items():
        med = statistics.median(v)
        table.add(mode, f"{med:.1f}", tokens[mode], stopped[mode], valid[mode] if mode != "unconstrained" else "-",
                  f"{base / med:.2f}×")
    saved.save_tables(args.save, [table])


if __name__ == "__main__":
    main()
