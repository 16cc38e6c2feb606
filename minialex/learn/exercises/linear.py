"""Exercise: linear, the fully connected layer y = x W^T + b.

Read first: docs/layers/linear.md, "Forward" and "Backward" (the answer is
minialex/nn/functional/linear.py). Grade your file with:
    python -m minialex learn check linear linear.py

Shapes: x (N, in), w (out, in) (PyTorch's layout: one row per output), b (out,), y (N, out).
"""

import numpy as np  # noqa: F401 - you will need it


def linear_forward(x, w, b):
    """y = x @ w.T + b. Returns (y, cache)."""
    # ---- to write: the forward ----------------------------------------------------------------
    raise NotImplementedError("linear_forward is not written yet")
    # ---- end of the forward -------------------------------------------------------------------


def linear_backward(dout, cache):
    """y_nk = sum_i x_ni w_ki + b_k, so dw_ki = sum_n dout_nk x_ni, db_k = sum_n dout_nk and
    dx_ni = sum_k dout_nk w_ki ("Backward").

    dout: (N, out). Returns (dx (N, in), dw (out, in), db (out,)).
    """
    # ---- to write: the backward ---------------------------------------------------------------
    # Check each shape against the docstring: a gradient has the shape of what it is the
    # gradient of.
    raise NotImplementedError("linear_backward is not written yet")
    # ---- end of the backward ------------------------------------------------------------------
