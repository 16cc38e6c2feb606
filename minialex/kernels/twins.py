"""NumPy twins of the CuPy kernels in minialex/kernels/cuda.py.

Each twin runs the kernel's index arithmetic for every output element at
once: ``i = np.arange(size)`` stands for the thread index, and every ``%``,
``//``, bound check and loop of the CUDA body appears here in the same order,
vectorised over the threads (a loop that a thread runs a data-dependent
number of times runs here for the largest count, with a mask). The twins do
not call minialex.nn; tests/kernels/test_twins.py checks them against it, and
tests/kernels/test_cuda.py checks the kernels against them on a GPU.

They are for testing, not speed: they allocate several index arrays of the
output's size.
"""

import numpy as np


def _out_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def _unravel_plane(i, h, w):
    """(n*C + c, row, col) of flat NCHW indices i, as each CUDA thread derives them from its id."""
    return i // (h * w), (i // w) % h, i % w


def im2col(x, kernel_size, stride, padding):
    """Twin of cuda.im2col: one thread per element of (N, C, KH, KW, OH, OW)."""
    x = np.ascontiguousarray(x)
    n, c, H, W = x.shape
    (KH, KW), (SH, SW), (PH, PW) = kernel_size, stride, padding
    OH, OW = _out_size(H, KH, SH, PH), _out_size(W, KW, SW, PW)
    shape = (n, c, KH, KW, OH, OW)
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    ow = i % OW
    r = i // OW
    oh = r % OH
    r //= OH
    kj = r % KW
    r //= KW
    ki = r % KH
    nc = r // KH
    h = oh * SH + ki - PH
    w = ow * SW + kj - PW
    inside = (h >= 0) & (h < H) & (w >= 0) & (w < W)
    src = np.where(inside, (nc * H + h) * W + w, 0)  # clamp the index of padding threads
    out = np.where(inside, x.ravel()[src], x.dtype.type(0))
    return out.reshape(shape)


def _covering(p, stride, kernel, count):
    """For coordinates p (padded), the kernel-offset loop of the gathers: yield (valid, k, o)
    for ``for (k = p % stride; k < kernel && k <= p; k += stride) { o = (p - k) / stride;
    if (o >= count) continue; ... }``, one step of the loop per yield, all threads at once."""
    k = p % stride
    for _ in range(-(-kernel // stride)):  # the most iterations any thread runs
        live = (k < kernel) & (k <= p)
        o = np.where(live, (p - k) // stride, 0)
        yield live & (o < count), k, o
        k = k + stride


def col2im(cols, input_shape, kernel_size, stride, padding):
    """Twin of cuda.col2im: one thread per input pixel gathers the columns that cover it."""
    cols = np.ascontiguousarray(cols)
    n, c, H, W = input_shape
    (KH, KW), (SH, SW), (PH, PW) = kernel_size, stride, padding
    OH, OW = cols.shape[4], cols.shape[5]
    flat = cols.ravel()
    i = np.arange(n * c * H * W, dtype=np.int64)
    nc, h, w = _unravel_plane(i, H, W)
    hp, wp = h + PH, w + PW
    acc = np.zeros(i.shape, dtype=cols.dtype)
    for ok_h, ki, oh in _covering(hp, SH, KH, OH):
        for ok_w, kj, ow in _covering(wp, SW, KW, OW):
            ok = ok_h & ok_w
            src = np.where(ok, (((nc * KH + ki) * KW + kj) * OH + oh) * OW + ow, 0)
            acc[ok] += flat[src[ok]]
    return acc.reshape(input_shape)


def maxpool_forward(x, kernel_size, stride):
    """Twin of cuda.maxpool_forward: (y, argmax uint8), first maximum in row-major order wins."""
    x = np.ascontiguousarray(x)
    n, c, H, W = x.shape
    (KH, KW), (SH, SW) = kernel_size, stride
    OH, OW = _out_size(H, KH, SH, 0), _out_size(W, KW, SW, 0)
    flat = x.ravel()
    i = np.arange(n * c * OH * OW, dtype=np.int64)
    nc, oh, ow = _unravel_plane(i, OH, OW)
    base = (nc * H + oh * SH) * W + ow * SW
    best = flat[base].copy()
    arg = np.zeros(i.shape, dtype=np.int64)
    for ki in range(KH):
        for kj in range(KW):
            v = flat[base + ki * W + kj]
            better = v > best  # strict: ties keep the earlier offset
            best = np.where(better, v, best)
            arg = np.where(better, ki * KW + kj, arg)
    shape = (n, c, OH, OW)
    return best.reshape(shape), arg.astype(np.uint8).reshape(shape)


def maxpool_backward(dout, argmax, x_shape, kernel_size, stride):
    """Twin of cuda.maxpool_backward: one thread per input pixel sums the windows it won."""
    dout = np.ascontiguousarray(dout)
    am = np.ascontiguousarray(argmax).ravel()
    flat = dout.ravel()
    n, c, H, W = x_shape
    (KH, KW), (SH, SW) = kernel_size, stride
    OH, OW = dout.shape[2], dout.shape[3]
    i = np.arange(n * c * H * W, dtype=np.int64)
    nc, h, w = _unravel_plane(i, H, W)
    acc = np.zeros(i.shape, dtype=dout.dtype)
    for ok_h, ki, oh in _covering(h, SH, KH, OH):
        for ok_w, kj, ow in _covering(w, SW, KW, OW):
            o = np.where(ok_h & ok_w, (nc * OH + oh) * OW + ow, 0)
            ok = ok_h & ok_w & (am[o].astype(np.int64) == ki * KW + kj)
            acc[ok] += flat[o[ok]]
    return acc.reshape(x_shape)


def _channel_threads(shape, groups, size):
    n, C, H, W = shape
    HW = H * W
    CG, HALF = C // groups, size // 2
    i = np.arange(n * C * HW, dtype=np.int64)
    p = i % HW
    r = i // HW
    c = r % C
    nn = r // C
    lo = (c // CG) * CG
    hi = lo + CG
    plane = nn * C * HW + p
    for d in range(2 * HALF + 1):
        cc = c - HALF + d
        ok = (cc >= lo) & (cc < hi)
        yield ok, np.where(ok, plane + cc * HW, 0)


def lrn_forward(x, size, alpha, beta, k, groups=1):
    """Twin of cuda.lrn_forward: (y, scale, inv), one thread per element."""
    x = np.ascontiguousarray(x)
    t = x.dtype.type
    alpha, beta, k = t(alpha), t(beta), t(k)
    flat = x.ravel()
    s = np.zeros(flat.shape, dtype=x.dtype)
    for ok, j in _channel_threads(x.shape, groups, size):
        v = flat[j[ok]]
        s[ok] += v * v
    scale = s * alpha + k
    inv = scale ** (-beta)
    y = flat * inv
    return y.reshape(x.shape), scale.reshape(x.shape), inv.reshape(x.shape)


def lrn_backward(dout, x, scale, inv, size, alpha, beta, groups=1):
    """Twin of cuda.lrn_backward: dx = dout*inv + coef * x * window sum of dout*x*inv/scale."""
    dout, x, scale, inv = (np.ascontiguousarray(a) for a in (dout, x, scale, inv))
    coef = x.dtype.type(-2.0 * alpha * beta)
    fd, fx, fs, fi = dout.ravel(), x.ravel(), scale.ravel(), inv.ravel()
    s = np.zeros(fx.shape, dtype=x.dtype)
    for ok, j in _channel_threads(x.shape, groups, size):
        jj = j[ok]
        t = fd[jj] * fx[jj]
        t = t * fi[jj]
        s[ok] += t / fs[jj]
    dx = (s * fx) * coef + fd * fi
    return dx.reshape(x.shape)
