"""max_pool2d on CuPy: the pair of the reference (minialex/nn/functional/pool.py) with the same
signatures, as one CUDA launch per pass (the reference makes a few per window offset); the
kernels' NumPy twins are beside them. Conventions of this folder: elementwise.py. Tested with
every implementation in tests/ops/test_max_pool2d.py."""

from collections import namedtuple

import numpy as np

from ... import backend
from .elementwise import check_float, covering, kernel, out_size, twin, unravel_plane

MAXPOOL_FWD = (
    "raw T x, int64 H, int64 W, int64 KH, int64 KW, int64 OH, int64 OW, int64 SH, int64 SW",
    "T y, uint8 argmax",
    """
    // y = max of the window, argmax = ki*KW + kj of its FIRST maximum in row-major order
    const ptrdiff_t ow = i % OW;
    ptrdiff_t r = i / OW;
    const ptrdiff_t oh = r % OH;
    const ptrdiff_t nc = r / OH;
    const ptrdiff_t base = (nc * H + oh * SH) * W + ow * SW;
    T best = x[base];
    int arg = 0;
    for (int ki = 0; ki < KH; ++ki) {
        for (int kj = 0; kj < KW; ++kj) {
            const T v = x[base + ki * W + kj];
            if (v > best) { best = v; arg = ki * (int)KW + kj; }  // strict: ties keep the earlier
        }
    }
    y = best;
    argmax = (unsigned char)arg;
    """,
    "minialex_maxpool_fwd",
)

MAXPOOL_BWD = (
    "raw T dout, raw uint8 argmax, int64 H, int64 W, int64 KH, int64 KW, int64 OH, int64 OW, "
    "int64 SH, int64 SW",
    "T dx",
    """
    // dx[nc, h, w] = sum of dout[nc, oh, ow] over the windows (oh, ow) that contain (h, w)
    // at offset (ki, kj) = (h - oh*SH, w - ow*SW) and whose argmax is ki*KW + kj.
    const ptrdiff_t w = i % W;
    ptrdiff_t r = i / W;
    const ptrdiff_t h = r % H;
    const ptrdiff_t nc = r / H;
    T acc = 0;
    for (ptrdiff_t ki = h % SH; ki < KH && ki <= h; ki += SH) {
        const ptrdiff_t oh = (h - ki) / SH;
        if (oh >= OH) continue;
        for (ptrdiff_t kj = w % SW; kj < KW && kj <= w; kj += SW) {
            const ptrdiff_t ow = (w - kj) / SW;
            if (ow >= OW) continue;
            const ptrdiff_t o = (nc * OH + oh) * OW + ow;
            if ((ptrdiff_t)argmax[o] == ki * KW + kj) acc += dout[o];
        }
    }
    dx = acc;
    """,
    "minialex_maxpool_bwd",
)


def maxpool_forward(x, kernel_size, stride):
    """(N, C, H, W) -> (y, argmax): window maxima and the uint8 offset i*KW + j of the first maximum."""
    check_float(x, "maxpool_forward")
    xp = backend.get_array_module(x)
    x = xp.ascontiguousarray(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel_size, stride
    if kh * kw > 256:  # the uint8 argmax holds offsets 0..255
        raise ValueError("maxpool_forward: windows of more than 256 elements are not supported")
    oh, ow = out_size(h, kh, sh, 0), out_size(w, kw, sw, 0)
    y = xp.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = xp.empty((n, c, oh, ow), dtype=xp.uint8)
    kernel(MAXPOOL_FWD)(x, h, w, kh, kw, oh, ow, sh, sw, y, argmax)
    return y, argmax


def maxpool_backward(dout, argmax, x_shape, kernel_size, stride):
    """dx (x_shape) as a gather: each input pixel sums dout of the windows whose argmax is it."""
    check_float(dout, "maxpool_backward")
    xp = backend.get_array_module(dout)
    dout = xp.ascontiguousarray(dout)
    argmax = xp.ascontiguousarray(argmax.astype(xp.uint8, copy=False))
    n, c, h, w = x_shape
    (kh, kw), (sh, sw) = kernel_size, stride
    oh, ow = dout.shape[2], dout.shape[3]
    dx = xp.empty((n, c, h, w), dtype=dout.dtype)
    kernel(MAXPOOL_BWD)(dout, argmax, h, w, kh, kw, oh, ow, sh, sw, dx)
    return dx


# ---------------------------------------------------------------------------------------
# the pair (minialex/nn/dispatch.py picks it for CuPy arrays)
# ---------------------------------------------------------------------------------------
MaxPool2dCache = namedtuple("MaxPool2dCache", "argmax x_shape kernel_size stride")
MaxPool2dCache.__doc__ = "As the reference's: the argmax (uint8, one byte per output), x's shape, hyperparameters."


def max_pool2d_forward(x, kernel_size, stride):
    """y (N, C, OH, OW) from x (N, C, H, W), as the reference: one launch."""
    y, argmax = maxpool_forward(x, kernel_size, stride)
    return y, MaxPool2dCache(argmax, x.shape, kernel_size, stride)


def max_pool2d_backward(dout, cache):
    """dx (N, C, H, W), as the reference: one launch."""
    return maxpool_backward(dout, cache.argmax, cache.x_shape, cache.kernel_size, cache.stride)


# ---------------------------------------------------------------------------------------
# NumPy twins
# ---------------------------------------------------------------------------------------
def maxpool_forward_twin(x, kernel_size, stride):
    """Twin of MAXPOOL_FWD: (y, argmax uint8), first maximum in row-major order wins."""
    x = np.ascontiguousarray(x)
    n, c, H, W = x.shape
    (KH, KW), (SH, SW) = kernel_size, stride
    OH, OW = out_size(H, KH, SH, 0), out_size(W, KW, SW, 0)
    flat = x.ravel()
    i = np.arange(n * c * OH * OW, dtype=np.int64)
    nc, oh, ow = unravel_plane(i, OH, OW)
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


def maxpool_backward_twin(dout, argmax, x_shape, kernel_size, stride):
    """Twin of MAXPOOL_BWD: one "thread" per input pixel sums the windows it won."""
    dout = np.ascontiguousarray(dout)
    am = np.ascontiguousarray(argmax).ravel()
    flat = dout.ravel()
    n, c, H, W = x_shape
    (KH, KW), (SH, SW) = kernel_size, stride
    OH, OW = dout.shape[2], dout.shape[3]
    i = np.arange(n * c * H * W, dtype=np.int64)
    nc, h, w = unravel_plane(i, H, W)
    acc = np.zeros(i.shape, dtype=dout.dtype)
    for ok_h, ki, oh in covering(h, SH, KH, OH, np):
        for ok_w, kj, ow in covering(w, SW, KW, OW, np):
            o = np.where(ok_h & ok_w, (nc * OH + oh) * OW + ow, 0)
            ok = ok_h & ok_w & (am[o].astype(np.int64) == ki * KW + kj)
            acc[ok] += flat[o[ok]]
    return acc.reshape(x_shape)


@twin(MAXPOOL_FWD)
def _(p):
    y, argmax = maxpool_forward_twin(p["x"], (p["KH"], p["KW"]), (p["SH"], p["SW"]))
    p["y"][...], p["argmax"][...] = y, argmax


@twin(MAXPOOL_BWD)
def _(p):
    n, c = p["dout"].shape[:2]
    p["dx"][...] = maxpool_backward_twin(p["dout"], p["argmax"], (n, c, p["H"], p["W"]), (p["KH"], p["KW"]),
                                         (p["SH"], p["SW"]))
