"""Exercise: lrn, the paper's local response normalization across channels (section 3.3).

Read first: docs/layers/lrn.md, sections 1-5 (the answer is minialex/nn/functional/lrn.py).
Grade your file with:   python -m minialex learn check lrn lrn.py

Shapes and letters (docs/layers/README.md, "Notation"): x, y and dout all (N, C, H, W). Channels
are cut into G groups of C/G; the window of channel c is the channels c' with |c' - c| <= m // 2
inside c's group (clipped at the group's edges), m = ``size`` (the paper's n). The denominator's
base is s = k + alpha * (window sum of x^2) (``scale``), and ``scale_pow`` = s^-beta.

The window sum is not the point here: channel_window_sum is imported from minialex.nn.functional.
channel_window_sum(a, size, groups)[:, c] = sum of a[:, c'] over the window of c.
"""

import numpy as np  # noqa: F401 - you will need it

# channel_window_sum: (N, C, H, W) -> (N, C, H, W)
from minialex.nn.functional import channel_window_sum  # noqa: F401 - you will need it


def lrn_forward(x, size, alpha, beta, k, groups):
    """y_c = x_c / (k + alpha * sum over c' in window(c) of x_c'^2) ** beta   (section 1)

    alpha multiplies the plain sum of squares, as in the paper. Returns (y, cache).
    """
    # ---- to write: the forward (section 1) ----------------------------------------------------
    # scale = k + alpha * window sum of x^2; keep what the backward needs (section 4: the
    # denominator scale_pow = scale ** -beta is worth keeping).
    raise NotImplementedError("lrn_forward is not written yet")
    # ---- end of the forward -------------------------------------------------------------------


def lrn_backward(dout, cache):
    """dx_c = sum over the outputs c' of dout_c' dy_c'/dx_c   (sections 2-3).

    dout: (N, C, H, W) -> dx: (N, C, H, W).
    """
    # ---- to write: the backward (sections 2-3) ------------------------------------------------
    # x_c appears in its own output AND in the denominator of every output whose window holds c:
    # two terms. The window is symmetric, so the second is another window sum (section 3).
    raise NotImplementedError("lrn_backward is not written yet")
    # ---- end of the backward ------------------------------------------------------------------
