"""Exercise: conv2d, the forward and backward of a 2-D convolution with stride, padding and groups.

Read first: docs/layers/conv2d.md, sections 1-4 (the answer is minialex/nn/functional/conv.py;
try not to look). Grade your file with:   python -m minialex learn check conv2d conv2d.py

Shapes use the letters of docs/layers/README.md ("Notation"): N samples, C input channels,
H, W input height and width, F filters, KH, KW kernel height and width, OH, OW output height and
width, G groups. Filter f belongs to group g = f // (F/G) and sees only input channels
g*C/G .. (g+1)*C/G - 1.

im2col is not the point here: it is imported from minialex.nn.functional. col2im is half the
point (section 3): write it below, or, to skip it, delete the function and import it instead:
    from minialex.nn.functional import col2im
"""

import numpy as np  # noqa: F401 - you will need it

# im2col: x (N, C, H, W) -> columns (N, C, KH, KW, OH, OW)
from minialex.nn.functional import im2col  # noqa: F401 - you will need it


def col2im(cols, x_shape, kernel_size, stride, padding):
    """The adjoint of im2col (section 3): add every column entry back onto the input pixel it was
    copied from.

    cols: (N, C, KH, KW, OH, OW), x_shape: (N, C, H, W), kernel_size (KH, KW), stride (sh, sw),
    padding (ph, pw). Returns an array of shape x_shape. A pixel covered by several windows (they
    overlap when the stride is smaller than the kernel) gets the SUM of their entries; a pixel
    in no window gets zero (section 5).
    """
    # ---- to write: col2im ---------------------------------------------------------------------
    # Make a zero array of the padded input's shape; for every kernel offset (i, j) take the
    # strided slice of it that offset touched and add the (N, C, OH, OW) block cols[:, :, i, j];
    # finally cut the padding off.
    raise NotImplementedError("col2im is not written yet")
    # ---- end of col2im ------------------------------------------------------------------------


def conv2d_forward(x, w, b, stride, padding, groups):
    """y[n, f] = b[f] + sum over the channels c of f's group of w[f, c - g*C/G] (*) x[n, c].

    x: (N, C, H, W), w: (F, C/G, KH, KW), b: (F,), stride (sh, sw), padding (ph, pw), groups G.
    Returns (y, cache): y (N, F, OH, OW) with OH = (H + 2 ph - KH) // sh + 1 (OW likewise), and
    anything your backward needs (a tuple is fine).
    """
    # ---- to write: the forward (section 2) ----------------------------------------------------
    # cols = im2col(x, (KH, KW), stride, padding) is (N, C, KH, KW, OH, OW). Channels are its
    # slowest axis after N, so reshaping it to (N, G, K, OH*OW), K = C/G*KH*KW, puts each group's
    # rows together; w reshaped to (G, F/G, K) times that is one matrix product per group.
    raise NotImplementedError("conv2d_forward is not written yet")
    # ---- end of the forward -------------------------------------------------------------------


def conv2d_backward(dout, cache):
    """The three gradients of section 4.

    dout: (N, F, OH, OW). Returns (dx, dw, db): dx (N, C, H, W), dw (F, C/G, KH, KW), db (F,).
    """
    # ---- to write: the backward (section 4) ---------------------------------------------------
    # db: sum dout over everything but the filter axis.
    # dw: per group, dout (F/G rows) times the group's columns transposed, summed over samples;
    #     it must come out in w's layout (F, C/G, KH, KW), filters first.
    # dx: per group, w^T times dout gives the gradient of the columns; col2im adds it back onto
    #     the pixels (every group only onto its own channels).
    raise NotImplementedError("conv2d_backward is not written yet")
    # ---- end of the backward ------------------------------------------------------------------
