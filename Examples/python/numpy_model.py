"""A numpy model: a product of the request's matrix with the model's weights, a few milliseconds of
BLAS for 128 rows.  numpy releases the GIL while it multiplies, so with --limit-concurrency 2 two
requests compute at once in one worker.  (It has no `inference_batch`: measured on this CPU, one
product of the queued requests' rows together was slower per row than separate ones, whose
operands stay in cache; batching pays on a GPU.)

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
        # numpy scalars and arrays are answered as JSON numbers and lists.
        return {"rows": product.shape[0], "sum": product.sum(), "first": product[0, :4]}
