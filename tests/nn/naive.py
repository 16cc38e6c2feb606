"""Naive loop implementations of convolution and max-pooling, written straight from
the definitions with one Python loop per index. Slow, obviously correct, and the
reference the fast layers are compared against on tiny inputs."""

import numpy as np


def conv2d_forward(x, w, b, stride, padding, groups):
    n, c, h, wid = x.shape
    f, cg, kh, kw = w.shape
    s, p = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    oh, ow = (h + 2 * p - kh) // s + 1, (wid + 2 * p - kw) // s + 1
    fg = f // groups
    y = np.zeros((n, f, oh, ow))
    for ni in range(n):
        for fi in range(f):
            g = fi // fg
            for i in range(oh):
                for j in range(ow):
                    total = b[fi]
                    for ci in range(cg):
                        for a in range(kh):
                            for bb in range(kw):
                                total += w[fi, ci, a, bb] * xp[ni, g * cg + ci, i * s + a, j * s + bb]
                    y[ni, fi, i, j] = total
    return y


def conv2d_backward(x, w, dout, stride, padding, groups):
    """(dx, dw, db) by sending each output's gradient back along every product that formed it."""
    n, c, h, wid = x.shape
    f, cg, kh, kw = w.shape
    s, p = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    db = np.zeros(f)
    fg = f // groups
    _, _, oh, ow = dout.shape
    for ni in range(n):
        for fi in range(f):
            g = fi // fg
            for i in range(oh):
                for j in range(ow):
                    d = dout[ni, fi, i, j]
                    db[fi] += d
                    for ci in range(cg):
                        for a in range(kh):
                            for bb in range(kw):
                                dw[fi, ci, a, bb] += d * xp[ni, g * cg + ci, i * s + a, j * s + bb]
                                dxp[ni, g * cg + ci, i * s + a, j * s + bb] += d * w[fi, ci, a, bb]
    return dxp[:, :, p:p + h, p:p + wid], dw, db


def maxpool_forward(x, k, s):
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    y = np.zeros((n, c, oh, ow))
    for ni in range(n):
        for ci in range(c):
            for i in range(oh):
                for j in range(ow):
                    y[ni, ci, i, j] = x[ni, ci, i * s:i * s + k, j * s:j * s + k].max()
    return y


def maxpool_backward(x, dout, k, s):
    """Each output gradient goes to the first maximum of its window in row-major order."""
    dx = np.zeros_like(x)
    n, c, oh, ow = dout.shape
    for ni in range(n):
        for ci in range(c):
            for i in range(oh):
                for j in range(ow):
                    window = x[ni, ci, i * s:i * s + k, j * s:j * s + k]
                    a, b = np.unravel_index(np.argmax(window), window.shape)  # argmax takes the first
                    dx[ni, ci, i * s + a, j * s + b] += dout[ni, ci, i, j]
    return dx


def lrn_forward(x, size, alpha, beta, k, groups=1):
    """The paper's formula, one channel at a time, windows clipped at each group's edges."""
    n, c, h, w = x.shape
    cg = c // groups
    y = np.zeros_like(x)
    for ci in range(c):
        g0 = (ci // cg) * cg
        lo, hi = max(g0, ci - size // 2), min(g0 + cg - 1, ci + size // 2)
        denom = (k + alpha * (x[:, lo:hi + 1] ** 2).sum(axis=1)) ** beta
        y[:, ci] = x[:, ci] / denom
    return y
