"""lrn on CuPy: the pair of the reference (minialex/nn/functional/lrn.py) with the same
signatures, as one CUDA launch per pass (the reference makes one per window offset and
operation); the kernels' NumPy twins are beside them. Conventions of this folder:
elementwise.py. Tested with every implementation in tests/ops/test_lrn.py."""

from collections import namedtuple

import numpy as np

from ... import backend
from .elementwise import check_float, kernel, twin

LRN_FWD = (
    "raw T x, int64 C, int64 HW, int64 CG, int64 HALF, T alpha, T beta, T k",
    "T y, T scale, T scale_pow",
    """
    // scale = k + alpha * sum of x[c']^2 over |c' - c| <= HALF inside c's group; scale_pow = scale^-beta
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
    scale_pow = iv;
    y = x[i] * iv;
    """,
    "minialex_lrn_fwd",
)

LRN_BWD = (
    "raw T dout, raw T x, raw T scale, raw T scale_pow, int64 C, int64 HW, int64 CG, int64 HALF, T coef",
    "T dx",
    """
    // dx = dout*scale_pow + coef * x * sum over the window of dout*x*scale_pow/scale, coef = -2*alpha*beta
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
        t = t * scale_pow[j];
        s += t / scale[j];
    }
    dx = (s * x[i]) * coef + dout[i] * scale_pow[i];
    """,
    "minialex_lrn_bwd",
)


def lrn_kernel_forward(x, size, alpha, beta, k, groups=1):
    """(y, scale, scale_pow): scale = k + alpha * channel window sum of x^2 (per group), scale_pow = scale^-beta."""
    check_float(x, "lrn_kernel_forward")
    xp = backend.get_array_module(x)
    x = xp.ascontiguousarray(x)
    n, c, h, w = x.shape
    if c % groups:
        raise ValueError(f"lrn_kernel_forward: {c} channels cannot be cut into groups={groups}")
    y, scale, scale_pow = xp.empty_like(x), xp.empty_like(x), xp.empty_like(x)
    t = x.dtype.type
    kernel(LRN_FWD)(x, c, h * w, c // groups, size // 2, t(alpha), t(beta), t(k), y, scale, scale_pow)
    return y, scale, scale_pow


def lrn_kernel_backward(dout, x, scale, scale_pow, size, alpha, beta, groups=1):
    """dx = dout*scale_pow - 2*alpha*beta * x * channel window sum of (dout * x * scale_pow / scale)."""
    check_float(dout, "lrn_kernel_backward")
    xp = backend.get_array_module(dout)
    dout, x, scale, scale_pow = (xp.ascontiguousarray(a) for a in (dout, x, scale, scale_pow))
    n, c, h, w = x.shape
    dx = xp.empty_like(x)
    coef = x.dtype.type(-2.0 * alpha * beta)  # as the reference: computed in double, then cast
    kernel(LRN_BWD)(dout, x, scale, scale_pow, c, h * w, c // groups, size // 2, coef, dx)
    return dx


# ---------------------------------------------------------------------------------------
# the pair (minialex/nn/dispatch.py picks it for CuPy arrays)
# ---------------------------------------------------------------------------------------
LRNCache = namedtuple("LRNCache", "x scale scale_pow size alpha beta groups")
LRNCache.__doc__ = "As the reference's: x, scale, scale_pow (N, C, H, W) and the hyperparameters."


def lrn_forward(x, size, alpha, beta, k, groups):
    """y (N, C, H, W), as the reference: one launch, which also writes scale and scale_pow."""
    y, scale, scale_pow = lrn_kernel_forward(x, size, alpha, beta, k, groups)
    return y, LRNCache(x, scale, scale_pow, size, alpha, beta, groups)


def lrn_backward(dout, cache):
    """dx (N, C, H, W), as the reference: one launch."""
    return lrn_kernel_backward(dout, cache.x, cache.scale, cache.scale_pow, cache.size, cache.alpha, cache.beta,
                               cache.groups)


# ---------------------------------------------------------------------------------------
# NumPy twins
# ---------------------------------------------------------------------------------------
def _channel_threads(shape, groups, size):
    """For every "thread" (element), the loop over its window: yield (valid, source index)."""
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


def lrn_forward_twin(x, size, alpha, beta, k, groups=1):
    """Twin of LRN_FWD: (y, scale, scale_pow), one "thread" per element."""
    x = np.ascontiguousarray(x)
    t = x.dtype.type
    alpha, beta, k = t(alpha), t(beta), t(k)
    flat = x.ravel()
    s = np.zeros(flat.shape, dtype=x.dtype)
    for ok, j in _channel_threads(x.shape, groups, size):
        v = flat[j[ok]]
        s[ok] += v * v
    scale = s * alpha + k
    scale_pow = scale ** (-beta)
    y = flat * scale_pow
    return y.reshape(x.shape), scale.reshape(x.shape), scale_pow.reshape(x.shape)


def lrn_backward_twin(dout, x, scale, scale_pow, size, alpha, beta, groups=1):
    """Twin of LRN_BWD: dx = dout*scale_pow + coef * x * window sum of dout*x*scale_pow/scale."""
    dout, x, scale, scale_pow = (np.ascontiguousarray(a) for a in (dout, x, scale, scale_pow))
    coef = x.dtype.type(-2.0 * alpha * beta)
    fd, fx, fs, fi = dout.ravel(), x.ravel(), scale.ravel(), scale_pow.ravel()
    s = np.zeros(fx.shape, dtype=x.dtype)
    for ok, j in _channel_threads(x.shape, groups, size):
        jj = j[ok]
        t = fd[jj] * fx[jj]
        t = t * fi[jj]
        s[ok] += t / fs[jj]
    dx = (s * fx) * coef + fd * fi
    return dx.reshape(x.shape)


@twin(LRN_FWD)
def _(p):
    size, groups = 2 * p["HALF"] + 1, p["C"] // p["CG"]
    p["y"][...], p["scale"][...], p["scale_pow"][...] = lrn_forward_twin(p["x"], size, p["alpha"], p["beta"], p["k"],
                                                                   groups)


@twin(LRN_BWD)
def _(p):
    size, groups = 2 * p["HALF"] + 1, p["C"] // p["CG"]
    alpha_beta = -float(p["coef"]) / 2.0  # coef = -2 alpha beta; the twin only needs the product
    p["dx"][...] = lrn_backward_twin(p["dout"], p["x"], p["scale"], p["scale_pow"], size, alpha_beta, 1.0, groups)
