"""Exercise: dropout, inverted: zero each unit with probability p while training and scale the
kept ones by 1 / (1 - p), so nothing changes at test time.

Read first: docs/layers/dropout.md, "Forward" and "Backward" (the answer is
minialex/nn/functional/dropout.py). Grade your file with:
    python -m minialex learn check dropout dropout.py

x, y, dout and dx all have one shape, any shape. Drawing the random mask is not the point here:
``key`` (a minialex.nn.masks.MaskKey) does it, ``key.draw(shape, p, dtype, np)`` gives the
ALREADY SCALED mask m / (1 - p) (zeros and 1 / (1 - p)), the same one for the same key.
"""

import numpy as np  # noqa: F401 - you will need it


def dropout_forward(x, p, key):
    """Training: y = x * m / (1 - p), m ~ Bernoulli(1 - p) elementwise ("Forward").

    Returns (y, cache).
    """
    # ---- to write: the forward ----------------------------------------------------------------
    # mask = key.draw(x.shape, p, x.dtype, np) is m / (1 - p).
    raise NotImplementedError("dropout_forward is not written yet")
    # ---- end of the forward -------------------------------------------------------------------


def dropout_backward(dout, cache):
    """y = x * (scaled mask), so dx = dout * (the same scaled mask) ("Backward")."""
    # ---- to write: the backward ---------------------------------------------------------------
    raise NotImplementedError("dropout_backward is not written yet")
    # ---- end of the backward ------------------------------------------------------------------
