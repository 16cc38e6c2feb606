"""max_pool2d on the CPU, fast: the pair of the reference (minialex/nn/functional/pool.py, derived
in docs/layers/maxpool2d.md) with the same signatures, without its argmax array, in cache-sized
chunks on all threads. Tested with every implementation, ties included, in
tests/ops/test_max_pool2d.py; measured in docs/performance.md.

Strided views are what cost here (a stride-2 float32 access runs at ~0.8 ns/element against ~0.1
for a contiguous one), so forward splits each chunk of x once into its SH*SW stride phases
P[pi, pj] = x[..., pi::SH, pj::SW] (one strided pass) and keeps them for backward. Window offset
(i, j) is then phase (i % SH, j % SW) shifted by (i // SH, j // SW); taken as a flat shift
d = (i // SH) * wp + j // SW of each (hp, wp) plane, it is one contiguous run of OH * wp elements
per (sample, channel). Forward is a running np.maximum over those KH*KW runs on this "wide" window
grid (its columns ow >= OW are not windows, and are dropped when y is written out); backward finds
each window's winner again from the same phases and the wide maximum: the first offset (row-major)
whose input equals the maximum, the reference's tie rule. Keeping the phases (about the size of x)
instead of x costs no memory, since x is then free, and saves backward its own strided pass.
"""

from collections import namedtuple

import numpy as np

from . import runtime

BLOCK_BYTES = 256 << 10  # a chunk of samples is about 4 of these
STRIDED = 4  # a strided pass costs about as much as this many contiguous ones (for runtime.parallel)


def _chunk_samples(x):
    n = x.shape[0]
    return max(1, (BLOCK_BYTES * 4) // max(1, x[0].nbytes)) if n else 1


def _phase_plane(x_shape, kernel, stride, out_hw):
    """Plane size (hp, wp) for the stride phases of x: every window offset is then a shift
    of one plane, and a plane has room for the shifted flat views."""
    _, _, h, w = x_shape
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    hp = max(-(-h // sh), oh + (kh - 1) // sh) + 1  # +1 spare row: flat views stay inside
    wp = max(-(-w // sw), ow + (kw - 1) // sw)
    return hp, wp


MaxPool2dCache = namedtuple("MaxPool2dCache", "phases ymax x_shape plane kernel_size stride")
MaxPool2dCache.__doc__ = """What this max_pool2d_forward keeps: the stride phases of x, the maximum over
whole phase planes, the shape of x, the plane size (hp, wp) and the hyperparameters."""


def max_pool2d_forward(x, kernel_size, stride):
    """y (N, C, OH, OW) from x (N, C, H, W), as the reference."""
    n, c = x.shape[:2]
    kh, kw = kernel_size
    sh, sw = stride
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    out_shape = (n, c, oh, ow)
    hp, wp = _phase_plane(x.shape, (kh, kw), (sh, sw), (oh, ow))
    plane = hp * wp
    y = np.empty(out_shape, dtype=x.dtype)
    # one flat run of planes per phase, and a spare plane at the end for the shifted views
    flat = np.empty((sh, sw, (n * c + 1) * plane), dtype=x.dtype)
    planes = flat[:, :, :n * c * plane].reshape(sh, sw, n * c, hp, wp)
    flat[:, :, n * c * plane:].fill(0)
    ymax = np.empty(n * c * plane, dtype=x.dtype)
    cs = _chunk_samples(x)

    def work(start, stop, _t):
        for a, b in runtime.even_chunks(start, stop, cs):
            r0, r1 = a * c, b * c
            for pi in range(sh):
                for pj in range(sw):
                    src = x[a:b, :, pi::sh, pj::sw]
                    hs, ws = src.shape[2:]
                    pl = planes[pi, pj, r0:r1]
                    pl[:, :hs, :ws].reshape(src.shape)[...] = src
                    pl[:, hs:].fill(0)  # cells of no window: zero, so every maximum stays finite
                    pl[:, :hs, ws:].fill(0)
            f0, f1 = r0 * plane, r1 * plane
            yc = ymax[f0:f1]
            np.copyto(yc, flat[0, 0, f0:f1])
            for i in range(kh):
                for j in range(kw):
                    if i or j:
                        d = (i // sh) * wp + j // sw
                        np.maximum(yc, flat[i % sh, j % sw, f0 + d:f1 + d], out=yc)
            y[a:b] = yc.reshape(b - a, c, hp, wp)[:, :, :oh, :ow]

    # passes: the strided split of x and the strided copy out (each costs about four contiguous
    # passes), and KH*KW maxima over the planes
    runtime.parallel(work, n, passes=STRIDED * (x.size + y.size) + kh * kw * ymax.size)
    return y, MaxPool2dCache(flat, ymax, x.shape, (hp, wp), kernel_size, stride)


def max_pool2d_backward(dout, cache):
    """Each window's gradient goes to the first offset (row-major) whose input equals the max:
    ``rest`` holds what is still to be routed and drops to exactly 0 after the first match.
    The gradient is gathered in the phase layout and interleaved back into dx at the end (one
    strided pass over dx). Cells of a plane that are not windows (rows >= OH, columns >= OW)
    have ``rest`` 0, so they route nothing, whatever their shifted views read.
    Full step, backward: pool1 0.183 -> 0.150-0.154 s, pool2 0.126 -> 0.107-0.109 s (round 3).
    """
    flat, ymax, x_shape = cache.phases, cache.ymax, cache.x_shape
    hp, wp = cache.plane
    plane = hp * wp
    n, c = x_shape[:2]
    kh, kw = cache.kernel_size
    sh, sw = cache.stride
    ws = runtime.current_workspace()
    _, _, oh, ow = dout.shape
    dx = np.empty(x_shape, dtype=dout.dtype)
    cs = max(1, (BLOCK_BYTES * 4) // max(1, c * x_shape[2] * x_shape[3] * dout.itemsize)) if n else 1

    def work(start, stop, tid):
        dt = dout.dtype
        size = cs * c * plane
        dph = runtime.buffer(ws, ("dphases", tid), (sh, sw, size + plane), dt)  # + a spare plane
        rest = runtime.buffer(ws, ("rest", tid), (size,), dt, zero=True)  # non-window cells stay 0
        won = runtime.buffer(ws, ("won", tid), (size,), np.bool_)
        tmp = runtime.buffer(ws, ("tmp", tid), (size,), dt)
        dplanes = dph[:, :, :size].reshape(sh, sw, cs * c, hp, wp)
        last = (kh - 1, kw - 1)
        for a, b in runtime.even_chunks(start, stop, cs):
            m, mc = b - a, (b - a) * c
            f0, fl = a * c * plane, mc * plane
            dph[:, :, :fl + plane].fill(0)
            yc, r, wc, t = ymax[f0:f0 + fl], rest[:fl], won[:fl], tmp[:fl]
            r.reshape(m, c, hp, wp)[:, :, :oh, :ow] = dout[a:b]
            for i in range(kh):
                for j in range(kw):
                    d = (i // sh) * wp + j // sw
                    np.equal(flat[i % sh, j % sw, f0 + d:f0 + d + fl], yc, out=wc)
                    np.multiply(r, wc, out=t)
                    dph[i % sh, j % sw, d:d + fl] += t
                    if (i, j) != last:  # nothing is routed after the last offset
                        r -= t
            for pi in range(sh):
                for pj in range(sw):
                    dst = dx[a:b, :, pi::sh, pj::sw]
                    dst[...] = dplanes[pi, pj, :mc, :dst.shape[2], :dst.shape[3]].reshape(dst.shape)

    # passes: zeroing the phase gradient, interleaving it into dx (strided), 4 per window offset
    runtime.parallel(work, n, passes=(1 + STRIDED) * dx.size + (4 * kh * kw + 1) * ymax.size)
    return dx
