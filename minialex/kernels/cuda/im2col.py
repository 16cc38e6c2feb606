"""im2col and col2im as CUDA kernels, one launch each (the reference in minialex/nn/functional/im2col.py
makes one copy per kernel offset: 121 for conv1), with their NumPy twins.

The columns are laid out as (C, KH, KW, N, OH, OW), the batch inside each row (the reference's
are (N, C, KH, KW, OH, OW)), so that a group's columns are one (C/G*KH*KW, N*OH*OW) matrix and the
convolution is one GEMM per group (minialex/kernels/cuda/conv.py). Conventions of this folder:
elementwise.py."""

import numpy as np

from ... import backend
from .elementwise import check_float, covering, kernel, out_size, twin

IM2COL_ROWS = (
    "raw T x, int64 N, int64 C, int64 H, int64 W, int64 KH, int64 KW, int64 OH, int64 OW, "
    "int64 SH, int64 SW, int64 PH, int64 PW",
    "T out",
    """
    // out[c, ki, kj, n, oh, ow] = x_padded[n, c, oh*SH + ki, ow*SW + kj]
    const ptrdiff_t ow = i % OW;
    ptrdiff_t r = i / OW;
    const ptrdiff_t oh = r % OH;  r /= OH;
    const ptrdiff_t n = r % N;    r /= N;
    const ptrdiff_t kj = r % KW;  r /= KW;
    const ptrdiff_t ki = r % KH;
    const ptrdiff_t c = r / KH;
    const ptrdiff_t h = oh * SH + ki - PH;
    const ptrdiff_t w = ow * SW + kj - PW;
    out = (h >= 0 && h < H && w >= 0 && w < W) ? x[((n * C + c) * H + h) * W + w] : (T)0;
    """,
    "minialex_im2col_rows",
)

COL2IM_ROWS = (
    "raw T cols, int64 N, int64 C, int64 H, int64 W, int64 KH, int64 KW, int64 OH, int64 OW, "
    "int64 SH, int64 SW, int64 PH, int64 PW",
    "T dx",
    """
    // dx[n, c, h, w] = sum of cols[c, ki, kj, n, oh, ow] over the windows that cover (h, w),
    // kernel offsets in increasing order (the order of the reference col2im)
    const ptrdiff_t w = i % W;
    ptrdiff_t r = i / W;
    const ptrdiff_t h = r % H;  r /= H;
    const ptrdiff_t c = r % C;
    const ptrdiff_t n = r / C;
    const ptrdiff_t hp = h + PH, wp = w + PW;
    T acc = 0;
    for (ptrdiff_t ki = hp % SH; ki < KH && ki <= hp; ki += SH) {
        const ptrdiff_t oh = (hp - ki) / SH;
        if (oh >= OH) continue;
        for (ptrdiff_t kj = wp % SW; kj < KW && kj <= wp; kj += SW) {
            const ptrdiff_t ow = (wp - kj) / SW;
            if (ow >= OW) continue;
            acc += cols[((((c * KH + ki) * KW + kj) * N + n) * OH + oh) * OW + ow];
        }
    }
    dx = acc;
    """,
    "minialex_col2im_rows",
)

def im2col_rows(x, kernel_size, stride, padding):
    """(N, C, H, W) -> (C, KH, KW, N, OH, OW): the columns with the batch inside each row."""
    check_float(x, "im2col_rows")
    xp = backend.get_array_module(x)
    x = xp.ascontiguousarray(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    out = xp.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    kernel(IM2COL_ROWS)(x, n, c, h, w, kh, kw, oh, ow, sh, sw, ph, pw, out)
    return out


def col2im_rows(cols, input_shape, kernel_size, stride, padding):
    """Adjoint of im2col_rows: cols (C, KH, KW, N, OH, OW) -> dx (N, C, H, W), a gather per pixel."""
    check_float(cols, "col2im_rows")
    xp = backend.get_array_module(cols)
    cols = xp.ascontiguousarray(cols)
    n, c, h, w = input_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = cols.shape[4], cols.shape[5]
    if cols.shape[:4] != (c, kh, kw, n):
        raise ValueError(f"col2im_rows: cols of shape {cols.shape} do not match {input_shape}, kernel {kernel_size}")
    dx = xp.empty((n, c, h, w), dtype=cols.dtype)
    kernel(COL2IM_ROWS)(cols, n, c, h, w, kh, kw, oh, ow, sh, sw, ph, pw, dx)
    return dx

# ---------------------------------------------------------------------------------------
# NumPy twins: the kernels' index arithmetic, line by line, vectorised over the threads
# ---------------------------------------------------------------------------------------
def im2col_rows_twin(x, kernel_size, stride, padding):
    """Twin of IM2COL_ROWS: one "thread" per element of (C, KH, KW, N, OH, OW)."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    (KH, KW), (SH, SW), (PH, PW) = kernel_size, stride, padding
    OH, OW = out_size(H, KH, SH, PH), out_size(W, KW, SW, PW)
    shape = (C, KH, KW, N, OH, OW)
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    ow = i % OW
    r = i // OW
    oh = r % OH
    r //= OH
    n = r % N
    r //= N
    kj = r % KW
    r //= KW
    ki = r % KH
    c = r // KH
    h = oh * SH + ki - PH
    w = ow * SW + kj - PW
    inside = (h >= 0) & (h < H) & (w >= 0) & (w < W)
    src = np.where(inside, ((n * C + c) * H + h) * W + w, 0)
    return np.where(inside, x.ravel()[src], x.dtype.type(0)).reshape(shape)


def col2im_rows_twin(cols, input_shape, kernel_size, stride, padding):
    """Twin of COL2IM_ROWS: one "thread" per input pixel gathers the columns that cover it."""
    cols = np.ascontiguousarray(cols)
    N, C, H, W = input_shape
    (KH, KW), (SH, SW), (PH, PW) = kernel_size, stride, padding
    OH, OW = cols.shape[4], cols.shape[5]
    flat = cols.ravel()
    i = np.arange(N * C * H * W, dtype=np.int64)
    w = i % W
    r = i // W
    h = r % H
    r //= H
    c = r % C
    n = r // C
    hp, wp = h + PH, w + PW
    acc = np.zeros(i.shape, dtype=cols.dtype)
    for ok_h, ki, oh in covering(hp, SH, KH, OH, np):
        for ok_w, kj, ow in covering(wp, SW, KW, OW, np):
            ok = ok_h & ok_w
            src = np.where(ok, ((((c * KH + ki) * KW + kj) * N + n) * OH + oh) * OW + ow, 0)
            acc[ok] += flat[src[ok]]
    return acc.reshape(input_shape)


@twin(IM2COL_ROWS)
def _(p):
    p["out"][...] = im2col_rows_twin(p["x"], (p["KH"], p["KW"]), (p["SH"], p["SW"]), (p["PH"], p["PW"]))


@twin(COL2IM_ROWS)
def _(p):
    p["dx"][...] = col2im_rows_twin(p["cols"], (p["N"], p["C"], p["H"], p["W"]), (p["KH"], p["KW"]),
                                    (p["SH"], p["SW"]), (p["PH"], p["PW"]))
