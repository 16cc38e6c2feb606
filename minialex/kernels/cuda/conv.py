"""conv2d on CuPy: the pair of the reference (minialex/nn/functional/conv.py, derived in
docs/layers/conv2d.md) with the same signatures, arranged for a GPU. im2col and col2im are one
CUDA launch each (im2col.py here; the reference copies once per kernel offset), and the columns
keep the batch inside each row, (C*KH*KW, N*OH*OW), so each group is ONE GEMM over the whole
batch (the reference's batched matmul broadcasts the weight over N, which CuPy runs as many
small GEMMs plus helper kernels) and dW needs no transposed copy of the columns: cuBLAS reads
cols_g^T in place. Launches per layer: forward 2 + G, backward 5 + 3G (4 + 2G without dx).
Tested with every implementation (the kernels' twins on the CPU) in tests/ops/test_conv2d.py."""

from collections import namedtuple

from ... import backend
from .elementwise import require_gpu
from .im2col import col2im_rows, im2col_rows


Conv2dCache = namedtuple("Conv2dCache", "cols x_shape w stride padding groups")
Conv2dCache.__doc__ = """What this conv2d_forward keeps: the columns in the rows layout (C, KH, KW, N, OH, OW),
x's shape, the weight and the hyperparameters."""


def conv2d_forward(x, w, b, stride, padding, groups):
    """y (N, F, OH, OW) from x (N, C, H, W), w (F, C/G, KH, KW), b (F,); as the reference."""
    xp = backend.get_array_module(x)
    n = x.shape[0]
    g, f = groups, w.shape[0]
    cols = im2col_rows(x, w.shape[2:], stride, padding)  # (C, KH, KW, N, OH, OW)
    c, kh, kw, _, oh, ow = cols.shape
    k, nl = (c // g) * kh * kw, n * oh * ow
    cols_g = cols.reshape(g, k, nl)  # (G, K, N*L): a group's rows are contiguous (C is slowest)
    w_g = w.reshape(g, f // g, k)  # (G, F/G, K)
    yt = xp.empty((g, f // g, nl), dtype=x.dtype)  # (G, F/G, N*L) = (F, N, L)
    for gi in range(g):
        xp.matmul(w_g[gi], cols_g[gi], out=yt[gi])  # one GEMM per group
    # (F, N, L) -> (N, F, L) plus the bias: one elementwise launch that writes NCHW
    y = yt.reshape(f, n, oh * ow).transpose(1, 0, 2) + b.reshape(1, f, 1)
    return y.reshape(n, f, oh, ow), Conv2dCache(cols, x.shape, w, stride, padding, groups)


def conv2d_backward(dout, cache, dw=None, db=None, need_dx=True):
    """(dx, dw, db) as the reference: dx (N, C, H, W) or None without need_dx; dw and db added
    into the arrays given (fresh ones when None)."""
    require_gpu(dout, "conv.conv2d_backward")  # also where it launches nothing (need_dx=False)
    xp = backend.get_array_module(dout)
    cols, w, g = cache.cols, cache.w, cache.groups
    n, f, oh, ow = dout.shape
    c, kh, kw = cols.shape[:3]
    k, nl = (c // g) * kh * kw, n * oh * ow
    dy = xp.ascontiguousarray(dout.reshape(n, f, oh * ow).transpose(1, 0, 2))  # (F, N, L): one copy
    dy_g = dy.reshape(g, f // g, nl)  # (G, F/G, N*L)
    cols_g = cols.reshape(g, k, nl)  # (G, K, N*L)
    dw = xp.zeros_like(w) if dw is None else dw
    db = xp.zeros(f, dtype=dout.dtype) if db is None else db
    db += dy.sum(axis=(1, 2))  # db: sum over samples and pixels
    dw_g = dw.reshape(g, f // g, k)  # (G, F/G, K), a view of dw
    for gi in range(g):
        dw_g[gi] += xp.matmul(dy_g[gi], cols_g[gi].T)  # dW_g = dy_g cols_g^T, cols_g^T read in place
    if not need_dx:
        return None, dw, db
    w_g = w.reshape(g, f // g, k)
    dcols = xp.empty((g, k, nl), dtype=dout.dtype)  # (G, K, N*L) = (C, KH, KW, N, OH, OW)
    for gi in range(g):
        xp.matmul(w_g[gi].T, dy_g[gi], out=dcols[gi])  # dcols_g = W_g^T dy_g
    dx = col2im_rows(dcols.reshape(cols.shape), cache.x_shape, w.shape[2:], cache.stride, cache.padding)
    return dx, dw, db
