"""Naive loop versions of conv2d, max-pool and LRN: one Python loop per index, written
straight from the definitions (docs/layers/), as CS231n's conv_forward_naive. Slow and
obviously right: the tests compare every implementation with them on tiny inputs
(tests/ops/), and docs/layers/ shows them beside the readable references in
minialex/nn/functional/. NumPy only; the arguments are those of the functional pairs.
"""

import numpy as np


def conv2d_forward_naive(x, w, b, stride, padding, groups):
    """y[n, f, i, j] = b[f] + sum over c < C/G, a < KH, e < KW of
    w[f, c, a, e] * x_padded[n, g*C/G + c, i*sh + a, j*sw + e], g = f's group."""
    n, _, h, wid = x.shape
    f, cg, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wid + 2 * pw - kw) // sw + 1
    fg = f // groups
    y = np.zeros((n, f, oh, ow), dtype=x.dtype)
    for ni in range(n):
        for fi in range(f):
            g = fi // fg
            for i in range(oh):
                for j in range(ow):
                    total = b[fi]
                    for ci in range(cg):
                        for a in range(kh):
                            for e in range(kw):
                                total += w[fi, ci, a, e] * xp[ni, g * cg + ci, i * sh + a, j * sw + e]
                    y[ni, fi, i, j] = total
    return y


def conv2d_backward_naive(x, w, dout, stride, padding, groups):
    """(dx, dw, db): each output's gradient sent back along every product that formed it."""
    _, _, h, wid = x.shape
    f, cg, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    db = np.zeros(f, dtype=dout.dtype)
    fg = f // groups
    n, _, oh, ow = dout.shape
    for ni in range(n):
        for fi in range(f):
            g = fi // fg
            for i in range(oh):
                for j in range(ow):
                    d = dout[ni, fi, i, j]
                    db[fi] += d
                    for ci in range(cg):
                        for a in range(kh):
                            for e in range(kw):
                                dw[fi, ci, a, e] += d * xp[ni, g * cg + ci, i * sh + a, j * sw + e]
                                dxp[ni, g * cg + ci, i * sh + a, j * sw + e] += d * w[fi, ci, a, e]
    return dxp[:, :, ph:ph + h, pw:pw + wid], dw, db


def max_pool2d_forward_naive(x, kernel_size, stride):
    """y[n, c, i, j] = the maximum of x[n, c, i*sh : i*sh + KH, j*sw : j*sw + KW]."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel_size, stride
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    y = np.zeros((n, c, oh, ow), dtype=x.dtype)
    for ni in range(n):
        for ci in range(c):
            for i in range(oh):
                for j in range(ow):
                    y[ni, ci, i, j] = x[ni, ci, i * sh:i * sh + kh, j * sw:j * sw + kw].max()
    return y


def max_pool2d_backward_naive(x, dout, kernel_size, stride):
    """dx: each window's gradient added to the first maximum of its window in row-major order."""
    (kh, kw), (sh, sw) = kernel_size, stride
    dx = np.zeros_like(x)
    n, c, oh, ow = dout.shape
    for ni in range(n):
        for ci in range(c):
            for i in range(oh):
                for j in range(ow):
                    window = x[ni, ci, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    a, e = np.unravel_index(np.argmax(window), window.shape)  # argmax takes the first
                    dx[ni, ci, i * sh + a, j * sw + e] += dout[ni, ci, i, j]
    return dx


def _window(c, size, groups, channels):
    """The channels in c's window: |c' - c| <= size // 2, inside c's group."""
    cg = channels // groups
    lo_group = (c // cg) * cg
    return range(max(lo_group, c - size // 2), min(lo_group + cg - 1, c + size // 2) + 1)


def lrn_forward_naive(x, size, alpha, beta, k, groups):
    """y[n, c, h, w] = x[n, c, h, w] / (k + alpha * sum over c' in window(c) of x[n, c', h, w]^2)^beta."""
    n, c, h, w = x.shape
    y = np.zeros_like(x)
    for ni in range(n):
        for ci in range(c):
            for hi in range(h):
                for wi in range(w):
                    s = sum(x[ni, cj, hi, wi] ** 2 for cj in _window(ci, size, groups, c))
                    y[ni, ci, hi, wi] = x[ni, ci, hi, wi] / (k + alpha * s) ** beta
    return y


def lrn_backward_naive(x, dout, size, alpha, beta, k, groups):
    """dx[c] = sum over the outputs c' of dout[c'] * dy[c']/dx[c], the Jacobian written out:
    dy[c']/dx[c] = [c == c'] s[c']^-beta - 2 alpha beta x[c'] x[c] s[c']^(-beta-1) [c in window(c')]."""
    n, c, h, w = x.shape
    dx = np.zeros_like(x)
    for ni in range(n):
        for hi in range(h):
            for wi in range(w):
                a = x[ni, :, hi, wi]
                s = [k + alpha * sum(a[cj] ** 2 for cj in _window(co, size, groups, c)) for co in range(c)]
                for ci in range(c):
                    total = 0.0
                    for co in range(c):
                        jac = (s[co] ** -beta if co == ci else 0.0)
                        if ci in _window(co, size, groups, c):
                            jac -= 2 * alpha * beta * a[co] * a[ci] * s[co] ** (-beta - 1)
                        total += dout[ni, co, hi, wi] * jac
                    dx[ni, ci, hi, wi] = total
    return dx
