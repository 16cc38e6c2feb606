"""linear on the CPU, fast: the pair of the reference (minialex/nn/functional/linear.py, derived
in docs/layers/linear.md) with the same signatures, the weight gradient accumulated by BLAS
itself, and the products on our own threads.

The reference writes ``dw += dout.T @ x``: NumPy computes the product into a fresh
array and then adds it, a temporary of the weight's size (151 MB for fc6) and one more pass
over it. BLAS's GEMM computes C <- alpha A B + beta C; with beta = 1 it adds the product into
the gradient in place, whatever the gradient held before. NumPy does not expose beta, so this
calls the cblas_?gemm of the OpenBLAS that NumPy loaded (runtime.gemm), and falls back to the
reference's two steps where there is none.

The three products run on a one-thread BLAS, split over our worker threads by output features
(forward, dW) or input features (dX) when they are large enough (runtime.gemm_split: the paper's
fc6 and fc7 are; every fully connected layer of the small presets is not, and runs on the calling
thread). Left to its own threads OpenBLAS keeps them spinning after each product, which took CPU
from the convolutions' workers that run next (docs/performance.md, round 7). Tested with every
implementation in tests/ops/test_linear.py.
"""

from collections import namedtuple

import numpy as np

from . import runtime


def add_matmul_at_b(c, a, b):
    """c += a.T @ b in place: a (K, M), b (K, N), c (M, N), one dtype, float32 or float64."""
    return runtime.gemm(a, b, c, beta=1.0, trans_a=True)


def _split(work, n_items, flops):
    """work(start, stop, tid) over the features, on the workers a product of ``flops`` is worth."""
    runtime.run_gemm_workers(work, n_items, flops)


LinearCache = namedtuple("LinearCache", "x w")
LinearCache.__doc__ = "As the reference's: the input x (N, in) and the weight w (out, in)."


def linear_forward(x, w, b):
    """y = x w^T + b (N, out), as the reference."""
    n, fin = x.shape
    fout = w.shape[0]
    y = np.empty((n, fout), dtype=np.result_type(x, w))

    def work(f0, f1, _t):  # y[:, f0:f1] = x @ W[f0:f1]^T  (NumPy hands the column window to BLAS)
        np.matmul(x, w[f0:f1].T, out=y[:, f0:f1])

    _split(work, fout, 2.0 * n * fin * fout)
    y += b
    return y, LinearCache(x, w)


def linear_backward(dout, cache, dw=None, db=None):
    """dx = dout W; dW += dout^T x in place (one GEMM per share, no temporary); db += column sums.
    (dx, dw, db) as the reference; dw and db start from zero when not given."""
    x, w = cache.x, cache.w
    n, fin = x.shape
    fout = w.shape[0]
    dw = np.zeros_like(w) if dw is None else dw
    db = np.zeros(fout, dtype=dout.dtype) if db is None else db
    dx = np.empty((n, fin), dtype=np.result_type(dout, w))

    def weight_work(f0, f1, _t):  # dW[f0:f1] += dout[:, f0:f1]^T @ x   (out, N) @ (N, in)
        add_matmul_at_b(dw[f0:f1], dout[:, f0:f1], x)

    def input_work(i0, i1, _t):  # dx[:, i0:i1] = dout @ W[:, i0:i1]   (N, out) @ (out, in)
        np.matmul(dout, w[:, i0:i1], out=dx[:, i0:i1])

    flops = 2.0 * n * fin * fout
    _split(weight_work, fout, flops)
    db += dout.sum(axis=0)
    _split(input_work, fin, flops)
    return dx, dw, db
