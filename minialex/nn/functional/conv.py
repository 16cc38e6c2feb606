"""conv2d: 2-D convolution (cross-correlation, as in every deep-learning library) by im2col,
with stride, zero padding and groups; the readable reference pair. Derived in
docs/layers/conv2d.md (sections 2-4); naive loops in minialex/nn/naive.py; tested in
tests/ops/test_conv2d.py. Fast versions of the same pair: minialex/kernels/cpu/conv.py,
minialex/kernels/cuda/conv.py."""

from collections import namedtuple

from ... import backend
from .im2col import col2im, im2col

Conv2dCache = namedtuple("Conv2dCache", "cols x_shape w stride padding groups")
Conv2dCache.__doc__ = """What conv2d_forward keeps for the backward: the columns of x (N, C, KH, KW, OH, OW),
the shape of x, the weight (F, C/G, KH, KW), and the hyperparameters."""


def conv2d_forward(x, w, b, stride, padding, groups):
    """y[n, f] = b[f] + sum over the channels c of f's group of w[f, c] (*) x[n, c].

    x: (N, C, H, W)   w: (F, C/G, KH, KW)   b: (F,)   stride, padding: (sh, sw), (ph, pw)
    y: (N, F, OH, OW) with OH = (H + 2 ph - KH) // sh + 1 (and OW likewise).
    Returns (y, cache). Section 2: im2col makes the convolution one matrix product per group.
    """
    xp = backend.get_array_module(x)
    n = x.shape[0]
    f, cg, kh, kw = w.shape
    g = groups
    cols = im2col(x, (kh, kw), stride, padding)  # (N, C, KH, KW, OH, OW)
    oh, ow = cols.shape[4], cols.shape[5]
    # Channels are the slowest axis inside a sample, so cutting C into G blocks keeps each
    # group's K = C/G*KH*KW rows together.
    cols_g = cols.reshape(n, g, cg * kh * kw, oh * ow)  # (N, G, K, L), L = OH*OW
    w_g = w.reshape(g, f // g, cg * kh * kw)  # (G, F/G, K)
    y = xp.matmul(w_g, cols_g)  # (G, F/G, K) @ (N, G, K, L) -> (N, G, F/G, L)
    y = y.reshape(n, f, oh, ow) + b.reshape(1, f, 1, 1)  # groups are consecutive blocks of filters
    return y, Conv2dCache(cols, x.shape, w, stride, padding, groups)


def conv2d_backward(dout, cache, dw=None, db=None, need_dx=True):
    """The three gradients of section 4.

    dout: (N, F, OH, OW). Returns (dx, dw, db): dx (N, C, H, W), or None when ``need_dx`` is
    False (nothing needs the gradient of a network's images); dw (F, C/G, KH, KW); db (F,).
    ``dw`` and ``db``, when given, are arrays the gradients are ADDED into (a layer passes its
    parameters' .grad) and are returned; when None they start from zero.
    """
    xp = backend.get_array_module(dout)
    cols, w, g = cache.cols, cache.w, cache.groups
    n, f, oh, ow = dout.shape
    k = cols.shape[1] // g * cols.shape[2] * cols.shape[3]  # K = C/G*KH*KW
    dout_g = dout.reshape(n, g, f // g, oh * ow)  # (N, G, F/G, L)
    cols_g = cols.reshape(n, g, k, oh * ow)  # (N, G, K, L)
    dw = xp.zeros_like(w) if dw is None else dw
    db = xp.zeros(f, dtype=dout.dtype) if db is None else db

    # y = b + W cols, so db sums dout over everything but the filter axis ...
    db += dout.sum(axis=(0, 2, 3))
    # ... dW[g] = sum over n of dout[n, g] @ cols[n, g]^T (contract samples and pixels) ...
    dw_g = dw.reshape(g, f // g, k)  # (G, F/G, K), a view of dw
    for gi in range(g):
        dw_g[gi] += xp.tensordot(dout_g[:, gi], cols_g[:, gi], axes=([0, 2], [0, 2]))
    if not need_dx:
        return None, dw, db
    # ... and dcols = W^T @ dout, which col2im adds back onto the input pixels (section 3).
    w_g = w.reshape(g, f // g, k)  # (G, F/G, K)
    dcols = xp.matmul(w_g.transpose(0, 2, 1), dout_g)  # (G, K, F/G) @ (N, G, F/G, L) -> (N, G, K, L)
    dx = col2im(dcols.reshape(cols.shape), cache.x_shape, w.shape[2:], cache.stride, cache.padding)
    return dx, dw, db
