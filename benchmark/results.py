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


def add_save_argument(parser, default, shown=None):
    """`--save NAME`: where the run is kept under benchmark/results/ ('none': not kept); `shown`
    describes a default the benchmark picks itself (default None)."""
    parser.add_argument("--save", default=default,
                        help=f"the name under benchmark/results/ (default: {shown or default}; 'none': not saved)")


class Table:
    """A benchmark's report, printed row by row as a Markdown table while it runs and saved with the
    run, so that the docs' copy (scripts/benchmark-tables, kind `table`) is the one printed."""

    def __init__(self, title, columns):
        self.title, self.columns, self.rows = title, list(columns), []
        print(title)
        print("| " + " | ".join(self.columns) + " |")
        print("|" + "---|" * len(self.columns), flush=True)

    def add(self, *cells):
        """One row; the cells as the reader should see them (formatted by the caller)."""
        row = [str(c) for c in cells]
        assert len(row) == len(self.columns), (row, self.columns)
        self.rows.append(row)
        print("| " + " | ".join(row) + " |", flush=True)

    def record(self):
        return {"title": self.title, "columns": self.columns, "rows": self.rows}


def save_tables(name, tables, **figures):
    """Saves the run's tables (and any raw figures) as NAME unless NAME is 'none'; prints where."""
    if name == "none":
        return None
    path = save(name, {"tables": [t.record() for t in tables], **figures})
    print(f"saved as {os.path.relpath(path, ROOT)}")
    return path
