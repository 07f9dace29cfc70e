"""Where a benchmark keeps what it measured: benchmark/results/NAME.json, with the date, the
command, the commit and the machine, so that the docs' tables are made from it
(scripts/benchmark-tables) rather than pasted by hand.  A later run of the same benchmark
overwrites its file; git keeps the earlier ones."""
import datetime
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIR = os.path.join(ROOT, "benchmark", "results")


def machine():
    """The CPU's model name, its cores and the memory, as /proc gives them."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    memory = 0
    try:
        with open("/proc/meminfo") as f:
            memory = int(next(line.split()[1] for line in f if line.startswith("MemTotal"))) // (1024 * 1024)
    except (OSError, StopIteration, ValueError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory}


def commit():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def save(name, results):
    """Writes benchmark/results/NAME.json; returns its path."""
    os.makedirs(DIR, exist_ok=True)
    path = os.path.join(DIR, name + ".json")
    record = {
        "benchmark": name,
        "date": datetime.date.today().isoformat(),
        "command": "python3 " + " ".join([os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)] + sys.argv[1:]),
        "commit": commit(),
        "machine": machine(),
        "results": results,
    }
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    return path
