"""MaxPool2d on the CPU, fast: the reference of minialex/nn/pool.py (derived in
docs/layers/maxpool2d.md) without its argmax array and without boolean indexing, in
cache-sized chunks on all threads. Tested against the reference, ties included, in
tests/kernels/test_cpu.py; measured in docs/performance.md.

Forward is a running np.maximum over the KH*KW window offsets. Backward finds each window's
winner again from x and y: the first offset (row-major) whose input equals the maximum, the
reference's tie rule.
"""

import numpy as np

from . import runtime

BLOCK_BYTES = 256 << 10  # a chunk of samples is about 4 of these


def _chunk_samples(x):
    n = x.shape[0]
    return max(1, (BLOCK_BYTES * 4) // max(1, x[0].nbytes)) if n else 1


def forward(layer, x):
    """y (N, C, OH, OW); saves x and a private copy of y (safe from in-place layers after us)."""
    n = x.shape[0]
    kh, kw = layer.kernel_size
    sh, sw = layer.stride
    out_shape = layer.output_shape(x.shape)
    _, _, oh, ow = out_shape
    y = np.empty(out_shape, dtype=x.dtype)
    y_saved = np.empty(out_shape, dtype=x.dtype)
    cs = _chunk_samples(x)

    def work(start, stop, _t):
        for a, b in runtime.chunks(start, stop, cs):
            xc, yc = x[a:b], y_saved[a:b]
            np.copyto(yc, xc[:, :, 0:sh * (oh - 1) + 1:sh, 0:sw * (ow - 1) + 1:sw])
            for i in range(kh):
                for j in range(kw):
                    if i or j:
                        np.maximum(yc, xc[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw], out=yc)
            np.copyto(y[a:b], yc)

    runtime.parallel(work, n)
    return y, {"x": x, "y": y_saved}


def _phase_plane(x_shape, kernel, stride, out_hw):
    """Plane size (hp, wp) for the stride phases of x: every window offset is then a shift
    of one plane, and a plane has room for the shifted flat views (see backward)."""
    _, _, h, w = x_shape
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    hp = max(-(-h // sh), oh + (kh - 1) // sh) + 1  # +1 spare row: flat views stay inside
    wp = max(-(-w // sw), ow + (kw - 1) // sw)
    return hp, wp


def backward(layer, saved, dout):
    """Each window's gradient goes to the first offset (row-major) whose input equals the max:
    ``rest`` holds what is still to be routed and drops to exactly 0 after the first match.

    Strided views are what cost here (a stride-2 float32 access runs at ~0.8 ns/element
    against ~0.1 for a contiguous one), so a chunk of x is first split into its SH*SW stride
    phases P[pi, pj] = x[..., pi::SH, pj::SW] (one strided pass over x), and the gradient is
    gathered in the same phase layout and interleaved back into dx at the end (one strided
    pass over dx). Window offset (i, j) is then phase (i % SH, j % SW) shifted by
    (i // SH, j // SW); taken as a flat shift d = (i // SH) * wp + j // SW of each
    (hp, wp) plane, it is one contiguous run of OH * wp elements per (sample, channel).
    The windows are computed on that wide grid: its columns ow >= OW are not windows,
    their ``rest`` is 0, so they route nothing (whatever the unused plane cells hold).
    Full step, backward: pool1 0.183 -> 0.150-0.154 s, pool2 0.126 -> 0.107-0.109 s.
    """
    x, y = saved.x, saved.y
    n, c = x.shape[:2]
    kh, kw = layer.kernel_size
    sh, sw = layer.stride
    _, _, oh, ow = dout.shape
    hp, wp = _phase_plane(x.shape, (kh, kw), (sh, sw), (oh, ow))
    lw = oh * wp  # one (sample, channel)'s windows on the wide grid
    dx = np.empty(x.shape, dtype=dout.dtype)
    cs = _chunk_samples(x)

    def work(start, stop, tid):
        dt = dout.dtype
        ph = runtime.buffer(layer, ("phases", tid), (sh, sw, cs * c, hp, wp), dt)
        dph = runtime.buffer(layer, ("dphases", tid), (sh, sw, cs * c, hp, wp), dt)
        yw = runtime.buffer(layer, ("ywide", tid), (cs * c, lw), dt)
        rest = runtime.buffer(layer, ("rest", tid), (cs * c, lw), dt, zero=True)  # wide columns stay 0
        won = runtime.buffer(layer, ("won", tid), (cs * c, lw), np.bool_)
        tmp = runtime.buffer(layer, ("tmp", tid), (cs * c, lw), dt)
        flat, dflat = ph.reshape(sh, sw, cs * c, hp * wp), dph.reshape(sh, sw, cs * c, hp * wp)
        for a, b in runtime.chunks(start, stop, cs):
            m, mc = b - a, (b - a) * c
            for pi in range(sh):
                for pj in range(sw):
                    src = x[a:b, :, pi::sh, pj::sw]
                    ph[pi, pj, :mc, :src.shape[2], :src.shape[3]].reshape(src.shape)[...] = src
            dph[:, :, :mc].fill(0)
            yc, r, wc, t = yw[:mc], rest[:mc], won[:mc], tmp[:mc]
            yc.reshape(m, c, oh, wp)[:, :, :, :ow] = y[a:b]
            r.reshape(m, c, oh, wp)[:, :, :, :ow] = dout[a:b]
            for i in range(kh):
                for j in range(kw):
                    d = (i // sh) * wp + j // sw
                    np.equal(flat[i % sh, j % sw, :mc, d:d + lw], yc, out=wc)
                    np.multiply(r, wc, out=t)
                    dflat[i % sh, j % sw, :mc, d:d + lw] += t
                    r -= t
            for pi in range(sh):
                for pj in range(sw):
                    dst = dx[a:b, :, pi::sh, pj::sw]
                    dst[...] = dph[pi, pj, :mc, :dst.shape[2], :dst.shape[3]].reshape(dst.shape)

    runtime.parallel(work, n)
    return dx
