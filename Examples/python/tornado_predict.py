"""The tornado service's shape: a module-level `predict` with an `init` beside it, called once per
worker.  The accumulator of the original demo: each worker keeps its own running sum.

    mserve -w 2 --pythonpath Examples/python acc=tornado_predict:predict
    curl -s localhost:8000/acc -d '{"cal_number": 5}'
"""
total = None
example = {"cal_number": 5}   # what the web page at / prefills


def init():
    global total
    total = 0


def predict(cal_number=None, **kwargs):
    global total
    if not isinstance(cal_number, (int, float)) or isinstance(cal_number, bool):
        raise ValueError("cal_number must be a number")
    total += cal_number
    return {"result": total}
