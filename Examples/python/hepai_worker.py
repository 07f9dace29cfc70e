"""A HepAI-style worker model: any object with an `inference` method taking keyword arguments.
What it prints or logs lands in mserve's error log, with the request's recordid.

    mserve -w 2 --pythonpath Examples/python worker=hepai_worker:WorkerModel
    curl -s localhost:8000/worker -d '{"text": "hello"}'
    curl -sN localhost:8000/worker -d '{"text": "hello world", "stream": true}'
"""
import logging

log = logging.getLogger("worker")


class WorkerModel:
    example = {"text": "hello world"}   # what the web page at / prefills

    def __init__(self):
        self.calls = 0
        print("WorkerModel ready")

    def inference(self, text="", stream=False, **kwargs):
        if not isinstance(text, str):
            raise ValueError("text must be a string")
        self.calls += 1
        log.info("call %d: %d characters", self.calls, len(text))
        if text == "crash":
            raise RuntimeError("the model broke on purpose")
        if stream:
            return self.words(text)
        return {"text": text.upper(), "words": len(text.split()), "calls": self.calls}

    def words(self, text):
        # A generator: each yielded value is one piece of the stream (SSE or JSON lines).
        for i, w in enumerate(text.split()):
            yield {"index": i, "word": w.upper()}
