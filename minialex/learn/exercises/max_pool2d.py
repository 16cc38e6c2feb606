"""Exercise: max_pool2d, the forward and backward of (possibly overlapping) max pooling.

Read first: docs/layers/maxpool2d.md, sections 1-3 (the answer is minialex/nn/functional/pool.py).
Grade your file with:   python -m minialex learn check max_pool2d max_pool2d.py

Shapes (docs/layers/README.md, "Notation"): x (N, C, H, W), windows KH x KW at stride (sh, sw),
no padding, y (N, C, OH, OW) with OH = (H - KH) // sh + 1 (OW likewise). The paper pools 3x3
windows at stride 2, so neighbouring windows overlap.
"""

import numpy as np  # noqa: F401 - you will need it


def max_pool2d_forward(x, kernel_size, stride):
    """y[n, c, oh, ow] = max over i < KH, j < KW of x[n, c, oh*sh + i, ow*sw + j].

    kernel_size (KH, KW), stride (sh, sw). Returns (y, cache). Tie rule: when several elements
    of a window share its maximum, the FIRST in row-major order (smallest i, then smallest j) is
    the maximum that later receives the gradient; remember where it was.
    """
    # ---- to write: the forward (section 1) ----------------------------------------------------
    # Loop over the kernel offsets (i, j), or over the windows; keep the running maximum and the
    # position of the winner. Replace the winner only on a strictly greater value.
    raise NotImplementedError("max_pool2d_forward is not written yet")
    # ---- end of the forward -------------------------------------------------------------------


def max_pool2d_backward(dout, cache):
    """Section 3: each window's gradient goes to its maximum (one element per window), and an
    input that won several overlapping windows receives the SUM of their gradients.

    dout: (N, C, OH, OW) -> dx: (N, C, H, W).
    """
    # ---- to write: the backward (sections 2-3) ------------------------------------------------
    # The derivative of a max is 1 for the winner and 0 for the rest (section 2): route, then add.
    raise NotImplementedError("max_pool2d_backward is not written yet")
    # ---- end of the backward ------------------------------------------------------------------
