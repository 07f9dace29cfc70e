"""Python models that misbehave, for test_python_models.py."""
import ctypes
import os
import time


def busy(seconds=1.0, **kwargs):
    # Pure Python: holds the GIL but for the interpreter's periodic switches.
    end = time.time() + seconds
    n = 0
    while time.time() < end:
        n += 1
    return {"loops": n}


def segfault(**kwargs):
    ctypes.string_at(0)


def forever(marker="", **kwargs):
    # A stream without end; `finally` runs when mserve closes the generator (the client left).
    try:
        i = 0
        while True:
            yield {"i": i}
            i += 1
            time.sleep(0.05)
    finally:
        if marker:
            with open(marker, "w") as f:
                f.write(str(os.getpid()))
