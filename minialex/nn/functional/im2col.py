"""im2col and col2im: turn a convolution into one matrix product, and back.

im2col copies every receptive field of the (padded) input into a column, so
that convolution becomes ``W @ columns``. col2im is its adjoint: it adds every
column back onto the pixels it was copied from, which is exactly what the
backward pass needs. Derivation and pictures: docs/layers/conv2d.md.

Both loop over the KH*KW kernel offsets only (121 for conv1, 9 for conv3),
never over output pixels: each offset is one strided slice copy of the whole
batch, which NumPy and CuPy do at memory speed.
"""

from ... import backend


def conv_output_size(size, kernel, stride, padding):
    """Number of window positions along one axis: floor((size + 2p - k) / s) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def pad_input(x, padding):
    """Zero-pad the two spatial axes of an (N, C, H, W) array; no copy when padding is 0."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    padded = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    padded[:, :, ph:ph + h, pw:pw + w] = x
    return padded


def im2col(x, kernel_size, stride, padding, out=None):
    """Receptive fields of ``x`` as columns.

    x:   (N, C, H, W)
    out: (N, C, KH, KW, OH, OW) where out[n, c, i, j, oh, ow] = x_padded[n, c, oh*s + i, ow*s + j].
    Reshaped to (N, C*KH*KW, OH*OW) it is the right-hand side of the convolution GEMM.
    ``out`` may be a preallocated buffer of that shape (reused across steps).
    """
    xp = backend.get_array_module(x)
    kh, kw = kernel_size
    sh, sw = stride
    n, c, h, w = x.shape
    oh = conv_output_size(h, kh, sh, padding[0])
    ow = conv_output_size(w, kw, sw, padding[1])
    x_pad = pad_input(x, padding)  # (N, C, H + 2ph, W + 2pw)
    if out is None:
        out = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        i_end = i + sh * (oh - 1) + 1  # last row this offset reads, plus one
        for j in range(kw):
            j_end = j + sw * (ow - 1) + 1
            out[:, :, i, j, :, :] = x_pad[:, :, i:i_end:sh, j:j_end:sw]
    return out


def col2im(cols, input_shape, kernel_size, stride, padding):
    """Adjoint of im2col: sum every column entry back onto its input pixel.

    cols:   (N, C, KH, KW, OH, OW)
    return: (N, C, H, W)
    A pixel that lies in several windows (overlap when stride < kernel) gets
    the sum of their contributions; a pixel in no window (a border left
    uncovered by the stride) gets zero. Strided ``+=`` per kernel offset is
    deterministic and about an order of magnitude faster than ``np.add.at``.
    """
    xp = backend.get_array_module(cols)
    n, c, h, w = input_shape
    kh, kw = kernel_size
    sh, sw = stride
    ph, pw = padding
    oh, ow = cols.shape[4], cols.shape[5]
    dx_pad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        i_end = i + sh * (oh - 1) + 1
        for j in range(kw):
            j_end = j + sw * (ow - 1) + 1
            dx_pad[:, :, i:i_end:sh, j:j_end:sw] += cols[:, :, i, j, :, :]
    if ph == 0 and pw == 0:
        return dx_pad
    return dx_pad[:, :, ph:ph + h, pw:pw + w]  # drop the gradient of the zero padding
