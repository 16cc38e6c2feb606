"""Exercise: relu, y = max(0, x).

Read first: docs/layers/relu.md (the answer is minialex/nn/functional/relu.py).
Grade your file with:   python -m minialex learn check relu relu.py

x, y, dout and dx all have one shape, any shape.
"""

import numpy as np  # noqa: F401 - you will need it


def relu_forward(x):
    """y = max(0, x), elementwise. Returns (y, cache)."""
    # ---- to write: the forward ("Forward") ----------------------------------------------------
    raise NotImplementedError("relu_forward is not written yet")
    # ---- end of the forward -------------------------------------------------------------------


def relu_backward(dout, cache):
    """dx = dout where x > 0, else 0: the derivative at x = 0 is taken to be 0 ("Derivative";
    "Backward needs only the output" says why keeping y is enough)."""
    # ---- to write: the backward ---------------------------------------------------------------
    raise NotImplementedError("relu_backward is not written yet")
    # ---- end of the backward ------------------------------------------------------------------
