"""linear: the fully connected layer y = x W^T + b, the readable reference pair. Derived in
docs/layers/linear.md; tested in tests/ops/test_linear.py. Fast version of the same pair:
minialex/kernels/cpu/linear.py."""

from collections import namedtuple

from ... import backend

LinearCache = namedtuple("LinearCache", "x w")
LinearCache.__doc__ = "What linear_forward keeps: its input x (N, in) and the weight w (out, in)."


def linear_forward(x, w, b):
    """y = x @ w.T + b.   x: (N, in), w: (out, in) (PyTorch's layout), b: (out,) -> y: (N, out).
    Returns (y, cache)."""
    y = x @ w.T + b  # (N, in) @ (in, out) -> (N, out)
    return y, LinearCache(x, w)


def linear_backward(dout, cache, dw=None, db=None):
    """y_nk = sum_i x_ni w_ki + b_k, so (linear.md, "Backward"):
        dw_ki = sum_n dout_nk x_ni,   db_k = sum_n dout_nk,   dx_ni = sum_k dout_nk w_ki.

    dout: (N, out). Returns (dx (N, in), dw (out, in), db (out,)). ``dw`` and ``db``, when
    given, are arrays the gradients are ADDED into (a layer passes its parameters' .grad) and
    are returned; when None they start from zero.
    """
    xp = backend.get_array_module(dout)
    x, w = cache.x, cache.w
    dw = xp.zeros_like(w) if dw is None else dw
    db = xp.zeros(w.shape[0], dtype=dout.dtype) if db is None else db
    dw += dout.T @ x  # (out, N) @ (N, in)
    db += dout.sum(axis=0)
    dx = dout @ w  # (N, out) @ (out, in)
    return dx, dw, db
