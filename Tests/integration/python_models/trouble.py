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


class FrameworkResponse:
    """What Django's HttpResponse offers mserve: status_code, content, headers."""
    def __init__(self, content, status, content_type):
        self.content, self.status_code, self.headers = content, status, {"Content-Type": content_type}


def csv_answer(rows=2, **kwargs):
    return FrameworkResponse("".join(f"{i},{i * i}\n" for i in range(rows)).encode(), 201, "text/csv")


class Batcher:
    """Records the sizes of the batches it is given; an input "bad" fails alone (an exception
    returned in its place), an input "wrong" is refused by validate before the batch."""
    def __init__(self):
        self.sizes = []

    def validate(self, inputs):
        return inputs.get("x") != "wrong"

    def inference(self, x=0, **kwargs):
        return self.inference_batch([{"x": x}])[0]

    def inference_batch(self, inputs):
        time.sleep(0.2)   # while it sleeps, more requests queue: the next batch is larger
        self.sizes.append(len(inputs))
        return [ValueError("bad input") if i["x"] == "bad" else {"x": i["x"], "batch": len(inputs), "sizes": self.sizes}
                for i in inputs]


class Preloaded:
    """Made once: with --preload in the master, before the fork; each worker then has a copy."""
    def __init__(self):
        self.made_in = os.getpid()
        self.calls = 0
        print(f"Preloaded made in {self.made_in}")

    def inference(self, **kwargs):
        self.calls += 1
        return {"made_in": self.made_in, "pid": os.getpid(), "calls": self.calls}


class BadInput(Exception):
    """A model's own input error, declared in input_errors: a 400, as ValueError."""


class Declared:
    input_errors = (BadInput, KeyError)

    def inference(self, kind="", **kwargs):
        if kind == "declared":
            raise BadInput("the input is bad in this model's own way")
        if kind == "key":
            return {}["missing"]
        raise TypeError("not declared")


def sleeper(seconds=0.5, **kwargs):
    # time.sleep releases the GIL, as numpy and torch do while they compute.
    time.sleep(seconds)
    return {"slept": seconds}


def strict(a, b=1):
    # No **kwargs: an unknown or missing argument is the client's mistake (400); a TypeError
    # inside the function is the model's (500).
    return {"sum": a + b}


def traced(request):
    # The request's W3C trace as a model sees it: what it sends on to a service it calls.
    return {"trace_id": request.trace_id, "traceparent": request.traceparent}


def fails(**kwargs):
    # A model that fails every call: a 500 each time, for the 5xx metrics and alerts.
    raise RuntimeError("this model always fails")
