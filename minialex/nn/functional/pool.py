"""max_pool2d: the maximum over (possibly overlapping) spatial windows; the paper uses 3x3
windows at stride 2. The readable reference pair. Derived in docs/layers/maxpool2d.md
(sections 1-3); naive loops in minialex/nn/naive.py; tested in tests/ops/test_max_pool2d.py.
Fast versions of the same pair: minialex/kernels/cpu/pool.py, minialex/kernels/cuda/pool.py."""

from collections import namedtuple

from ... import backend
from .im2col import conv_output_size

MaxPool2dCache = namedtuple("MaxPool2dCache", "argmax x_shape kernel_size stride")
MaxPool2dCache.__doc__ = """What max_pool2d_forward keeps: for every window the offset i*KW + j of its
maximum (N, C, OH, OW), the shape of x, and the hyperparameters."""


def windows(a, i, j, out_hw, stride):
    """Element (i, j) of every window of a (N, C, H, W): a strided view (N, C, OH, OW)."""
    (oh, ow), (sh, sw) = out_hw, stride
    return a[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]


def max_pool2d_forward(x, kernel_size, stride):
    """y[n, c, oh, ow] = max over i < KH, j < KW of x[n, c, oh*sh + i, ow*sw + j].

    x: (N, C, H, W) -> y: (N, C, OH, OW), OH = (H - KH) // sh + 1. Returns (y, cache).
    Tie rule: when several elements of a window share the maximum, the first in row-major
    order is the one that wins (and later receives the gradient).
    """
    xp = backend.get_array_module(x)
    (kh, kw), (sh, sw) = kernel_size, stride
    out_hw = (conv_output_size(x.shape[2], kh, sh, 0), conv_output_size(x.shape[3], kw, sw, 0))
    y = windows(x, 0, 0, out_hw, stride).copy()  # (N, C, OH, OW): the running maximum
    argmax = xp.zeros(y.shape, dtype=xp.uint8)  # offset i*KW + j of each window's maximum so far
    # one pass per kernel offset: compare element (i, j) of every window with the running maximum
    for i in range(kh):
        for j in range(kw):
            candidate = windows(x, i, j, out_hw, stride)
            better = candidate > y  # strictly greater: on a tie the earlier offset keeps the win
            y = xp.where(better, candidate, y)
            argmax = xp.where(better, i * kw + j, argmax).astype(xp.uint8)
    return y, MaxPool2dCache(argmax, x.shape, kernel_size, stride)


def max_pool2d_backward(dout, cache):
    """Section 3: each window's gradient goes to its maximum; where windows overlap, an input
    that won several windows receives the sum of their gradients.

    dout: (N, C, OH, OW) -> dx: (N, C, H, W).
    """
    xp = backend.get_array_module(dout)
    (kh, kw) = cache.kernel_size
    out_hw = dout.shape[2:]
    dx = xp.zeros(cache.x_shape, dtype=dout.dtype)  # (N, C, H, W)
    for i in range(kh):
        for j in range(kw):
            won = cache.argmax == i * kw + j  # (N, C, OH, OW): windows whose maximum sat at (i, j)
            windows(dx, i, j, out_hw, cache.stride)[...] += dout * won
    return dx
