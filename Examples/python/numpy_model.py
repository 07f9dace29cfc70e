"""A numpy model: a product of the request's matrix with the model's weights, a few milliseconds of
BLAS for 128 rows.  numpy releases the GIL while it multiplies, so with --limit-concurrency 2 two
requests compute at once in one worker; `inference_batch` makes dynamic batching (--max-batch-size,
--batch-timeout) multiply the queued requests' rows in one product.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy
    mserve -w 2 --python-venv /tmp/venv --pythonpath Examples/python matmul=numpy_model:MatrixModel
    curl -s localhost:8000/matmul -d '{"rows": 128, "seed": 7}'
"""
import numpy as np

WIDTH = 512


class MatrixModel:
    example = {"rows": 128, "seed": 7}

    def __init__(self):
        self.weights = np.random.default_rng(0).standard_normal((WIDTH, WIDTH), dtype=np.float32) / np.sqrt(WIDTH)

    def validate(self, inputs):
        rows = inputs.get("rows", 128)
        if not isinstance(rows, int) or isinstance(rows, bool) or not 1 <= rows <= 4096:
            raise ValueError("rows must be an integer from 1 to 4096")

    def matrix(self, rows=128, seed=0, **kwargs):
        return np.random.default_rng(seed).standard_normal((rows, WIDTH), dtype=np.float32)

    def inference(self, **inputs):
        product = self.matrix(**inputs) @ self.weights
        return self.summary(product)

    def inference_batch(self, inputs):
        # One product for every queued request's rows, then each its own share.
        matrices = [self.matrix(**i) for i in inputs]
        product = np.concatenate(matrices) @ self.weights
        answers, start = [], 0
        for m in matrices:
            answers.append(self.summary(product[start:start + len(m)], batch=len(inputs)))
            start += len(m)
        return answers

    @staticmethod
    def summary(product, batch=1):
        # numpy scalars and arrays are answered as JSON numbers and lists.
        return {"rows": product.shape[0], "sum": product.sum(), "first": product[0, :4], "batch": batch}
