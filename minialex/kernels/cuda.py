"""CuPy kernels for im2col, col2im, max-pool and LRN (forward and backward). See docs/gpu.md.

Every kernel is a ``cupy.ElementwiseKernel`` with one thread per OUTPUT
element that GATHERS its inputs (``raw`` arrays indexed by hand), so no two
threads write the same address: no atomics, and results are bitwise equal
from run to run. The dtype placeholder ``T`` makes each kernel work for
float32 and float64 (CuPy compiles one variant per dtype, on first use).

The index arithmetic is mirrored line by line by the NumPy functions in
``minialex.kernels.twins``, which are tested against the layers on the CPU;
keep the two in step when editing either.

Importing this module does not import CuPy. Kernels are created on the first
call of each function and cached in ``_KERNELS``.
"""

from .. import backend

_KERNELS = {}  # name -> cupy.ElementwiseKernel, filled on first use


def _cupy():
    return backend.get_backend("cupy")  # imports CuPy; BackendError with a hint if unusable


def _contiguous(cp, a):
    return cp.ascontiguousarray(a)


def _out_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


# ---------------------------------------------------------------------------
# kernel sources (one thread = one output element, ``i`` is its flat C-order index)

_IM2COL = (
    "raw T x, int64 H, int64 W, int64 KH, int64 KW, int64 OH, int64 OW, "
    "int64 SH, int64 SW, int64 PH, int64 PW",
    "T out",
    """
    // out[nc, ki, kj, oh, ow] = x_padded[nc, oh*SH + ki, ow*SW + kj]
    const ptrdiff_t ow = i % OW;
    ptrdiff_t r = i / OW;
    const ptrdiff_t oh = r % OH;  r /= OH;
    const ptrdiff_t kj = r % KW;  r /= KW;
    const ptrdiff_t ki = r % KH;
    const ptrdiff_t nc = r / KH;
    const ptrdiff_t h = oh * SH + ki - PH;
    const ptrdiff_t w = ow * SW + kj - PW;
    out = (h >= 0 && h < H && w >= 0 && w < W) ? x[(nc * H + h) * W + w] : (T)0;
    """,
    "minialex_im2col",
)

_COL2IM = (
    "raw T cols, int64 H, int64 W, int64 KH, int64 KW, int64 OH, int64 OW, "
    "int64 SH, int64 SW, int64 PH, int64 PW",
    "T dx",
    """
    // dx[nc, h, w] = sum of cols[nc, ki, kj, oh, ow] over oh*SH + ki == h + PH, ow*SW + kj == w + PW.
    // Kernel rows ki that can reach padded row hp are hp % SH, hp % SH + SH, ... (<= hp, < KH),
    // visited in increasing order, the order in which the NumPy col2im adds them.
    const ptrdiff_t w = i % W;
    ptrdiff_t r = i / W;
    const ptrdiff_t h = r % H;
    const ptrdiff_t nc = r / H;
    const ptrdiff_t hp = h + PH, wp = w + PW;
    T acc = 0;
    for (ptrdiff_t ki = hp % SH; ki < KH && ki <= hp; ki += SH) {
        const ptrdiff_t oh = (hp - ki) / SH;
        if (oh >= OH) continue;
        for (ptrdiff_t kj = wp % SW; kj < KW && kj <= wp; kj += SW) {
            const ptrdiff_t ow = (wp - kj) / SW;
            if (ow >= OW) continue;
            acc += cols[(((nc * KH + ki) * KW + kj) * OH + oh) * OW + ow];
        }
    }
    dx = acc;
    """,
    "minialex_col2im",
)

_MAXPOOL_FWD = (
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

_MAXPOOL_BWD = (
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

_LRN_FWD = (
    "raw T x, int64 C, int64 HW, int64 CG, int64 HALF, T alpha, T beta, T k",
    "T y, T scale, T inv",
    """
    // scale = k + alpha * sum of x[c']^2 over |c' - c| <= HALF inside c's group; inv = scale^-beta
    const ptrdiff_t p = i % HW;
    ptrdiff_t r = i / HW;
    const ptrdiff_t c = r % C;
    const ptrdiff_t n = r / C;
    const ptrdiff_t lo = (c / CG) * CG, hi = lo + CG;  // c's group is [lo, hi)
    const ptrdiff_t plane = n * C * HW + p;
    T s = 0;
    for (ptrdiff_t d = 0; d <= 2 * HALF; ++d) {
        const ptrdiff_t cc = c - HALF + d;
        if (cc < lo || cc >= hi) continue;
        const T v = x[plane + cc * HW];
        s += v * v;
    }
    const T sc = s * alpha + k;
    const T iv = pow(sc, -beta);
    scale = sc;
    inv = iv;
    y = x[i] * iv;
    """,
    "minialex_lrn_fwd",
)

_LRN_BWD = (
    "raw T dout, raw T x, raw T scale, raw T inv, int64 C, int64 HW, int64 CG, int64 HALF, T coef",
    "T dx",
    """
    // dx = dout*inv + coef * x * sum over the window of dout*x*inv/scale, coef = -2*alpha*beta
    const ptrdiff_t p = i % HW;
    ptrdiff_t r = i / HW;
    const ptrdiff_t c = r % C;
    const ptrdiff_t n = r / C;
    const ptrdiff_t lo = (c / CG) * CG, hi = lo + CG;
    const ptrdiff_t plane = n * C * HW + p;
    T s = 0;
    for (ptrdiff_t d = 0; d <= 2 * HALF; ++d) {
        const ptrdiff_t cc = c - HALF + d;
        if (cc < lo || cc >= hi) continue;
        const ptrdiff_t j = plane + cc * HW;
        T t = dout[j] * x[j];
        t = t * inv[j];
        s += t / scale[j];
    }
    dx = (s * x[i]) * coef + dout[i] * inv[i];
    """,
    "minialex_lrn_bwd",
)


def _kernel(name, spec):
    k = _KERNELS.get(name)
    if k is None:
        cp = _cupy()
        in_params, out_params, body, kname = spec
        k = cp.ElementwiseKernel(in_params, out_params, body, kname)
        _KERNELS[name] = k
    return k


def _check_float(x, what):
    if x.dtype.kind != "f" or x.dtype.itemsize not in (4, 8):
        raise TypeError(f"minialex.kernels.cuda.{what}: float32 or float64 expected, got {x.dtype}")


# ---------------------------------------------------------------------------
# public functions: same signatures and results as minialex/nn/im2col.py, pool.py, lrn.py


def im2col(x, kernel_size, stride, padding, out=None):
    """(N, C, H, W) -> (N, C, KH, KW, OH, OW), out[n, c, i, j, oh, ow] = x_pad[n, c, oh*s + i, ow*s + j]."""
    cp = _cupy()
    _check_float(x, "im2col")
    x = _contiguous(cp, x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = _out_size(h, kh, sh, ph), _out_size(w, kw, sw, pw)
    shape = (n, c, kh, kw, oh, ow)
    if out is None:
        out = cp.empty(shape, dtype=x.dtype)
    elif out.shape != shape or out.dtype != x.dtype or not out.flags.c_contiguous:
        raise ValueError(f"im2col: out must be a C-contiguous {x.dtype} array of shape {shape}")
    _kernel("im2col", _IM2COL)(x, h, w, kh, kw, oh, ow, sh, sw, ph, pw, out)
    return out


def col2im(cols, input_shape, kernel_size, stride, padding):
    """Adjoint of im2col as a deterministic gather: one thread per input pixel sums its columns."""
    cp = _cupy()
    _check_float(cols, "col2im")
    cols = _contiguous(cp, cols)
    n, c, h, w = input_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = cols.shape[4], cols.shape[5]
    if cols.shape[:4] != (n, c, kh, kw):
        raise ValueError(f"col2im: cols of shape {cols.shape} do not match {input_shape}, kernel {kernel_size}")
    dx = cp.empty((n, c, h, w), dtype=cols.dtype)
    _kernel("col2im", _COL2IM)(cols, h, w, kh, kw, oh, ow, sh, sw, ph, pw, dx)
    return dx


def maxpool_forward(x, kernel_size, stride):
    """(N, C, H, W) -> (y, argmax): window maxima and the uint8 offset i*KW + j of the first maximum."""
    cp = _cupy()
    _check_float(x, "maxpool_forward")
    x = _contiguous(cp, x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel_size, stride
    if kh * kw > 255:
        raise ValueError("maxpool_forward: windows of more than 255 elements are not supported")
    oh, ow = _out_size(h, kh, sh, 0), _out_size(w, kw, sw, 0)
    y = cp.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = cp.empty((n, c, oh, ow), dtype=cp.uint8)
    _kernel("maxpool_fwd", _MAXPOOL_FWD)(x, h, w, kh, kw, oh, ow, sh, sw, y, argmax)
    return y, argmax


def maxpool_backward(dout, argmax, x_shape, kernel_size, stride):
    """dx (x_shape) as a gather: each input pixel sums dout of the windows whose argmax is it."""
    cp = _cupy()
    _check_float(dout, "maxpool_backward")
    dout = _contiguous(cp, dout)
    argmax = _contiguous(cp, argmax.astype(cp.uint8, copy=False))
    n, c, h, w = x_shape
    (kh, kw), (sh, sw) = kernel_size, stride
    oh, ow = dout.shape[2], dout.shape[3]
    dx = cp.empty((n, c, h, w), dtype=dout.dtype)
    _kernel("maxpool_bwd", _MAXPOOL_BWD)(dout, argmax, h, w, kh, kw, oh, ow, sh, sw, dx)
    return dx


def lrn_forward(x, size, alpha, beta, k, groups=1):
    """(y, scale, inv): scale = k + alpha * channel window sum of x^2 (per group), inv = scale^-beta."""
    cp = _cupy()
    _check_float(x, "lrn_forward")
    x = _contiguous(cp, x)
    n, c, h, w = x.shape
    if c % groups:
        raise ValueError(f"lrn_forward: {c} channels cannot be cut into groups={groups}")
    y = cp.empty_like(x)
    scale = cp.empty_like(x)
    inv = cp.empty_like(x)
    t = x.dtype.type
    _kernel("lrn_fwd", _LRN_FWD)(x, c, h * w, c // groups, size // 2, t(alpha), t(beta), t(k),
                                 y, scale, inv)
    return y, scale, inv


def lrn_backward(dout, x, scale, inv, size, alpha, beta, groups=1):
    """dx = dout*inv - 2*alpha*beta * x * channel window sum of (dout * x * inv / scale)."""
    cp = _cupy()
    _check_float(dout, "lrn_backward")
    dout, x, scale, inv = (_contiguous(cp, a) for a in (dout, x, scale, inv))
    n, c, h, w = x.shape
    dx = cp.empty_like(x)
    coef = x.dtype.type(-2.0 * alpha * beta)  # as the NumPy path: computed in double, then cast
    _kernel("lrn_bwd", _LRN_BWD)(dout, x, scale, inv, c, h * w, c // groups, size // 2, coef, dx)
    return dx
