"""Linear on the CPU, fast: the reference of minialex/nn/linear.py (derived in
docs/layers/linear.md) with the weight gradient accumulated by BLAS itself.

The reference writes ``weight.grad += dout.T @ x``: NumPy computes the product into a fresh
array and then adds it, a temporary of the weight's size (151 MB for fc6) and one more pass
over it. BLAS's GEMM computes C <- alpha A B + beta C; with beta = 1 it adds the product into
the gradient in place, whatever the gradient held before. NumPy does not expose beta, so this
calls the cblas_?gemm of the OpenBLAS that NumPy loaded (found by runtime.blas()), and falls
back to the reference's two steps where there is none. Tested in tests/kernels/test_cpu.py.
"""

import ctypes

from . import runtime

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # the CBLAS enum values


def _rows(a):
    """Row stride of a 2-D array in elements, if BLAS can read it as row-major (unit column stride)."""
    s0, s1 = a.strides
    if s1 != a.itemsize or s0 % a.itemsize or s0 < a.shape[1] * a.itemsize:
        return None
    return s0 // a.itemsize


def add_matmul_at_b(c, a, b):
    """c += a.T @ b in place: a (K, M), b (K, N), c (M, N), one dtype, float32 or float64."""
    lib = runtime.blas()
    gemm = None if lib is None else lib.gemm.get(c.dtype)
    lda, ldb, ldc = _rows(a), _rows(b), _rows(c)
    if gemm is None or None in (lda, ldb, ldc) or not (a.dtype == b.dtype == c.dtype) or 0 in a.shape + b.shape:
        c += a.T @ b
        return c
    k, m = a.shape
    n = b.shape[1]
    ptr = lambda arr: ctypes.c_void_p(arr.ctypes.data)  # noqa: E731
    gemm(ROW_MAJOR, TRANS, NO_TRANS, m, n, k, 1.0, ptr(a), lda, ptr(b), ldb, 1.0, ptr(c), ldc)
    return c


def forward(layer, x):
    """y = x W^T + b, as the reference; saves x."""
    y = x @ layer.weight.data.T  # (N, in) @ (in, out) -> (N, out)
    y += layer.bias.data
    return y, {"x": x}


def backward(layer, saved, dout):
    """dx = dout W; dW += dout^T x in place (one GEMM, no temporary); db += column sums."""
    add_matmul_at_b(layer.weight.grad, dout, saved.x)  # (out, N) @ (N, in), accumulated
    layer.bias.grad += dout.sum(axis=0)
    return dout @ layer.weight.data  # (N, out) @ (out, in)
