"""MaxPool2d on the CPU, fast: the reference of minialex/nn/pool.py (derived in
docs/layers/maxpool2d.md) without its argmax array and without boolean indexing, in
cache-sized chunks on all threads. Tested against the reference, ties included, in
tests/kernels/test_cpu.py; measured in docs/performance.md.

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


def forward(layer, x):
    """y (N, C, OH, OW); saves the stride phases of x and the maximum on the wide grid."""
    n, c = x.shape[:2]
    kh, kw = layer.kernel_size
    sh, sw = layer.stride
    out_shape = layer.output_shape(x.shape)
    _, _, oh, ow = out_shape
    hp, wp = _phase_plane(x.shape, (kh, kw), (sh, sw), (oh, ow))
    lw = oh * wp  # one (sample, channel)'s windows on the wide grid
    y = np.empty(out_shape, dtype=x.dtype)
    phases = np.empty((sh, sw, n * c, hp, wp), dtype=x.dtype)
    ywide = np.empty((n * c, lw), dtype=x.dtype)
    flat = phases.reshape(sh, sw, n * c, hp * wp)
    cs = _chunk_samples(x)

    def work(start, stop, _t):
        for a, b in runtime.even_chunks(start, stop, cs):
            r0, r1 = a * c, b * c
            for pi in range(sh):
                for pj in range(sw):
                    src = x[a:b, :, pi::sh, pj::sw]
                    hs, ws = src.shape[2:]
                    plane = phases[pi, pj, r0:r1]
                    plane[:, :hs, :ws].reshape(src.shape)[...] = src
                    plane[:, hs:].fill(0)  # cells of no window: zero, so the wide maximum stays finite
                    plane[:, :hs, ws:].fill(0)
            yc = ywide[r0:r1]
            np.copyto(yc, flat[0, 0, r0:r1, :lw])
            for i in range(kh):
                for j in range(kw):
                    if i or j:
                        d = (i // sh) * wp + j // sw
                        np.maximum(yc, flat[i % sh, j % sw, r0:r1, d:d + lw], out=yc)
            y[a:b] = yc.reshape(b - a, c, oh, wp)[:, :, :, :ow]

    # passes: the strided split of x and the strided copy out (each costs about four contiguous
    # passes), and KH*KW maxima on the wide grid
    runtime.parallel(work, n, passes=STRIDED * (x.size + y.size) + kh * kw * ywide.size)
    return y, {"phases": phases, "ywide": ywide, "x_shape": x.shape}


def backward(layer, saved, dout):
    """Each window's gradient goes to the first offset (row-major) whose input equals the max:
    ``rest`` holds what is still to be routed and drops to exactly 0 after the first match.
    The gradient is gathered in the phase layout and interleaved back into dx at the end (one
    strided pass over dx). On the wide grid the columns ow >= OW are not windows: their ``rest``
    is 0, so they route nothing.
    Full step, backward: pool1 0.183 -> 0.150-0.154 s, pool2 0.126 -> 0.107-0.109 s (round 3).
    """
    phases, ywide, x_shape = saved.phases, saved.ywide, saved.x_shape
    n, c = x_shape[:2]
    kh, kw = layer.kernel_size
    sh, sw = layer.stride
    _, _, oh, ow = dout.shape
    hp, wp = phases.shape[3:]
    lw = oh * wp
    dx = np.empty(x_shape, dtype=dout.dtype)
    flat = phases.reshape(sh, sw, n * c, hp * wp)
    cs = max(1, (BLOCK_BYTES * 4) // max(1, c * x_shape[2] * x_shape[3] * dout.itemsize)) if n else 1

    def work(start, stop, tid):
        dt = dout.dtype
        dph = runtime.buffer(layer, ("dphases", tid), (sh, sw, cs * c, hp, wp), dt)
        rest = runtime.buffer(layer, ("rest", tid), (cs * c, lw), dt, zero=True)  # wide columns stay 0
        won = runtime.buffer(layer, ("won", tid), (cs * c, lw), np.bool_)
        tmp = runtime.buffer(layer, ("tmp", tid), (cs * c, lw), dt)
        dflat = dph.reshape(sh, sw, cs * c, hp * wp)
        last = (kh - 1, kw - 1)
        for a, b in runtime.even_chunks(start, stop, cs):
            m, mc, r0 = b - a, (b - a) * c, a * c
            dph[:, :, :mc].fill(0)
            yc, r, wc, t = ywide[r0:r0 + mc], rest[:mc], won[:mc], tmp[:mc]
            r.reshape(m, c, oh, wp)[:, :, :, :ow] = dout[a:b]
            for i in range(kh):
                for j in range(kw):
                    d = (i // sh) * wp + j // sw
                    np.equal(flat[i % sh, j % sw, r0:r0 + mc, d:d + lw], yc, out=wc)
                    np.multiply(r, wc, out=t)
                    dflat[i % sh, j % sw, :mc, d:d + lw] += t
                    if (i, j) != last:  # nothing is routed after the last offset
                        r -= t
            for pi in range(sh):
                for pj in range(sw):
                    dst = dx[a:b, :, pi::sh, pj::sw]
                    dst[...] = dph[pi, pj, :mc, :dst.shape[2], :dst.shape[3]].reshape(dst.shape)

    # passes: zeroing the phase gradient, interleaving it into dx (strided), 4 per window offset
    runtime.parallel(work, n, passes=(1 + STRIDED) * dx.size + (4 * kh * kw + 1) * ywide.size)
    return dx
