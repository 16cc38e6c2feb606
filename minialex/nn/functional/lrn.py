"""lrn: the paper's local response normalization across neighbouring channels (section 3.3),
the readable reference pair. Derived in docs/layers/lrn.md (sections 1-5); naive loops in
minialex/nn/naive.py; tested in tests/ops/test_lrn.py. Fast versions of the same pair:
minialex/kernels/cpu/lrn.py, minialex/kernels/cuda/lrn.py."""

from collections import namedtuple

from ... import backend

LRNCache = namedtuple("LRNCache", "x scale scale_pow size alpha beta groups")
LRNCache.__doc__ = """What lrn_forward keeps: x, scale = k + alpha * (window sum of x^2) and
scale_pow = scale^-beta, all (N, C, H, W), and the hyperparameters."""


def channel_window_sum(a, size, groups):
    """s[:, c] = sum of a[:, c'] over |c' - c| <= size // 2, c' inside c's group (section 5).

    a: (N, C, H, W) -> s: (N, C, H, W). Computed as ``size`` shifted additions of a copy of a
    with size // 2 zero channels on each side of every group: the zeros clip the windows.
    """
    xp = backend.get_array_module(a)
    n, c, h, w = a.shape
    half, cg = size // 2, c // groups
    a_g = a.reshape(n, groups, cg, h, w)  # (N, G, C/G, H, W): a window never leaves its group
    padded = xp.zeros((n, groups, cg + 2 * half, h, w), dtype=a.dtype)
    padded[:, :, half:half + cg] = a_g
    s = sum(padded[:, :, d:d + cg] for d in range(size))  # window of channel c: padded c .. c + size - 1
    return s.reshape(n, c, h, w)


def lrn_forward(x, size, alpha, beta, k, groups):
    """y_c = x_c / (k + alpha * sum over c' in window(c) of x_c'^2) ** beta   (section 1)

    the paper's formula: alpha multiplies the plain sum of squares (PyTorch, Caffe and ONNX
    divide it by ``size``; docs/layers/lrn.md, section 6). Windows of ``size`` channels,
    clipped at the edges of each of the ``groups`` blocks of channels.
    x: (N, C, H, W) -> y: (N, C, H, W). Returns (y, cache).
    """
    scale = k + alpha * channel_window_sum(x * x, size, groups)  # (N, C, H, W), always >= k > 0
    scale_pow = scale ** (-beta)  # the denominator, computed once and kept for backward (section 4)
    y = x * scale_pow
    return y, LRNCache(x, scale, scale_pow, size, alpha, beta, groups)


def lrn_backward(dout, cache):
    """Section 3: dx_c = dout_c inv_c - 2 alpha beta x_c * sum over c' in window(c) of
    dout_c' x_c' inv_c' / scale_c'   (the window is symmetric, so this is another window sum).

    dout: (N, C, H, W) -> dx: (N, C, H, W).
    """
    x, scale, scale_pow = cache.x, cache.scale, cache.scale_pow
    t = dout * x * scale_pow / scale  # dout_c' x_c' scale_c'^(-beta-1)
    window = channel_window_sum(t, cache.size, cache.groups)
    return dout * scale_pow - 2.0 * cache.alpha * cache.beta * x * window
