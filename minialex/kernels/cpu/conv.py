"""conv2d on the CPU, fast: the pair of the reference (minialex/nn/functional/conv.py, derived in
docs/layers/conv2d.md), the same im2col + GEMM reorganised for caches and cores, with the same
signatures. Tested with every implementation in tests/ops/test_conv2d.py; measured in
docs/performance.md.

* The batch is cut into chunks of a few samples whose columns fit in the caches, spread over
  the worker threads; each thread runs a one-thread BLAS on its own chunk, so im2col copies
  overlap with the other thread's GEMMs.
* A chunk's columns are kept in (C*KH*KW, OH*OW*m) order: the forward is one GEMM per group
  ``W_g @ cols_g`` (not m small ones), dW is ``(cols_g @ dy_g^T)^T`` and dcols is ``W_g^T @ dy_g``;
  BLAS reads the transposed operands in place.
* Forward saves only the input; backward recomputes the columns (a conv layer's columns are
  larger than its input), which keeps peak memory below PyTorch's.
"""

from collections import namedtuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import runtime

# How many samples one im2col chunk holds: the size rule (tested in tests/kernels/test_size_rules.py,
# measured in docs/performance.md, round 7). Two effects decide it, at every layer size:
#
# * The columns should stay in the caches between the im2col that writes them and the GEMMs that
#   read them. A GEMM does F/G multiply-adds per column element, 24 to 96 in the small presets,
#   and at that intensity it runs at the speed its operand comes from memory: at conv2's shape of
#   the synthetic preset (32 x 300 weights) sgemm ran at 85 GFLOP/s on 0.8 MB of columns and
#   52 on 6.5 MB. So a chunk's columns are at most CACHE_BYTES ...
# * ... unless that leaves the GEMM too narrow: BLAS runs a product with fewer than
#   GEMM_MIN_COLUMNS columns (output pixels x samples) well below its rate, and the per-chunk
#   fixed cost (a few dozen NumPy calls) grows relative to the work. So a chunk has at least
#   that many output columns; the paper's conv3-5 (169 pixels, 1.6-2.3 MB of columns per sample)
#   get 7 samples, not the one sample CACHE_BYTES alone would give.
#
# chunk = max(CACHE_BYTES // columns per sample, ceil(GEMM_MIN_COLUMNS / pixels)), at most the
# batch; then each thread's share of the batch is cut into equal chunks of at most that size
# (runtime.even_chunks), so no thread ends on a sliver. Measured optimum per layer, one thread,
# 64 samples (fwd + bwd): 1.8-5 MB of columns for every conv of the cifar10 and synthetic
# presets, 6-9 samples for the paper's conv3-5; the rule lands within 5% of it at each.
CACHE_BYTES = 3 << 20
GEMM_MIN_COLUMNS = 1024

ConvGeometry = namedtuple("ConvGeometry", "n c h w kh kw sh sw ph pw oh ow chunk")
ConvGeometry.__doc__ = """Sizes of one convolution: batch n, input (c, h, w), kernel (kh, kw), stride (sh, sw),
padding (ph, pw), output (oh, ow), and ``chunk``, the most samples per im2col chunk."""


def chunk_samples(n, columns_bytes_per_sample, pixels):
    """The size rule above: samples per im2col chunk for a batch of n."""
    by_cache = CACHE_BYTES // max(1, columns_bytes_per_sample)
    by_gemm = -(-GEMM_MIN_COLUMNS // max(1, pixels))
    return max(1, min(n, max(by_cache, by_gemm)))


def geometry(x_shape, kernel_size, stride, padding, itemsize=4):
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    chunk = chunk_samples(n, c * kh * kw * oh * ow * itemsize, oh * ow)
    return ConvGeometry(n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, chunk)


# The chunk's padded input is kept in stride phases with the sample axis innermost:
#     xph[c, pi, pj, u, v, s] = x_padded[a + s, c, u*SH + pi, v*SW + pj]
# and its columns in (C, KH, KW, OH, OW, m) order (the GEMMs do not care about the order of
# the columns). Kernel offset (i, j) then reads xph[:, i % SH, j % SW, i//SH : i//SH + OH,
# j//SW : j//SW + OW, :], whose rows are OW*m contiguous elements: no strided element access
# and few, long rows. With samples outer (x_padded[..., i::SH, j::SW]) the rows were OW
# elements long (13 for conv3-5) and, for conv1, every element 4 apart; NumPy's cost per
# row and per strided element dominated the copies. Measured per batch on one core:
# conv1 im2col 0.117 -> 0.071 s, conv4/5 im2col 0.050 -> 0.037 s and col2im 0.100 -> 0.077 s,
# conv2 col2im 0.210 -> 0.179 s. The price is that the output and dout are transposed with
# the sample axis innermost (a few ms more per layer).
PhaseCopy = namedtuple("PhaseCopy", "pi pj x_rows x_cols rows cols")
PhaseCopy.__doc__ = "Where x's rows/cols of stride phase (pi, pj) land in that phase's plane."


def _phase_plan(geo):
    """(hq, wq): the size of a phase plane, and one PhaseCopy per phase."""
    hq, wq = -(-(geo.h + 2 * geo.ph) // geo.sh), -(-(geo.w + 2 * geo.pw) // geo.sw)
    plan = []
    for pi in range(geo.sh):
        r0 = (pi - geo.ph) % geo.sh  # first x row whose padded row r0 + ph has phase pi
        nr = len(range(r0, geo.h, geo.sh))
        for pj in range(geo.sw):
            c0 = (pj - geo.pw) % geo.sw
            nc = len(range(c0, geo.w, geo.sw))
            u0, v0 = (r0 + geo.ph) // geo.sh, (c0 + geo.pw) // geo.sw
            plan.append(PhaseCopy(pi, pj, slice(r0, geo.h, geo.sh), slice(c0, geo.w, geo.sw),
                                  slice(u0, u0 + nr), slice(v0, v0 + nc)))
    return hq, wq, plan


def _fill_phases(x, a, b, pv, plan):
    """pv[c, pi, pj, u, v, s] = x_padded[a + s, c, u*SH + pi, v*SW + pj] for the chunk a:b."""
    for p in plan:
        plane = pv[:, p.pi, p.pj]
        # zero only what x does not cover (the padding, and any tail past the padded edge)
        plane[:, :p.rows.start].fill(0)
        plane[:, p.rows.stop:].fill(0)
        plane[:, p.rows, :p.cols.start].fill(0)
        plane[:, p.rows, p.cols.stop:].fill(0)
        plane[:, p.rows, p.cols] = x[a:b, :, p.x_rows, p.x_cols].transpose(1, 2, 3, 0)


def _unfill_phases(dx, a, b, pv, plan):
    """The adjoint of _fill_phases without the padding: dx[a:b] from the phase planes."""
    for p in plan:
        dx[a:b, :, p.x_rows, p.x_cols] = pv[:, p.pi, p.pj, p.rows, p.cols].transpose(3, 0, 1, 2)


class _Chunk:
    """One thread's buffers (kept in the caller's workspace, runtime.buffer), viewed for a chunk
    of m samples."""

    def __init__(self, ws, geo, f, dtype, tid):
        g = geo
        self.geo = g
        self.hq, self.wq, self.plan = _phase_plan(g)
        self.f = f
        # flat, so that a partial last chunk (m < chunk) still gets contiguous (..., m) views
        self.cols = runtime.buffer(ws, ("cols", tid), (g.c * g.kh * g.kw * g.oh * g.ow * g.chunk,), dtype)
        self.xph = runtime.buffer(ws, ("xph", tid), (g.c * g.sh * g.sw * self.hq * self.wq * g.chunk,), dtype)
        self.out = runtime.buffer(ws, ("out", tid), (f * g.oh * g.ow * g.chunk,), dtype)

    def views(self, m):
        """cols (C, KH, KW, OH, OW, m), phases (C, SH, SW, HQ, WQ, m), out (F, OH*OW*m)."""
        g = self.geo
        cv = self.cols[:g.c * g.kh * g.kw * g.oh * g.ow * m].reshape(g.c, g.kh, g.kw, g.oh, g.ow, m)
        pv = self.xph[:g.c * g.sh * g.sw * self.hq * self.wq * m].reshape(g.c, g.sh, g.sw, self.hq, self.wq, m)
        ov = self.out[:self.f * g.oh * g.ow * m].reshape(self.f, g.oh * g.ow * m)
        return cv, pv, ov


def _im2col_chunk(x, a, b, geo, cv, pv, plan):
    """cv[c, i, j, oh, ow, s] = x_padded[a + s, c, oh*SH + i, ow*SW + j] for the chunk a:b.

    One copy per stride phase (pi, pj), not one per kernel offset: the offsets i = pi + SH*q,
    j = pj + SW*r of a phase all read phase plane (pi, pj) shifted by (q, r), so a strided view
    of that plane with the shift as two more axes holds all of them at once (for stride 1 the
    whole im2col is one copy; 25 copies before for a 5x5 kernel).
    """
    _fill_phases(x, a, b, pv, plan)
    g = geo
    for pi in range(g.sh):
        for pj in range(g.sw):
            plane = pv[:, pi, pj]  # (C, HQ, WQ, m)
            sc, su, sv, ss = plane.strides
            nq, nr = len(range(pi, g.kh, g.sh)), len(range(pj, g.kw, g.sw))
            shifted = as_strided(plane, (g.c, nq, nr, g.oh, g.ow, plane.shape[3]), (sc, su, sv, su, sv, ss),
                                 writeable=False)
            cv[:, pi::g.sh, pj::g.sw] = shifted
    return cv


def _col2im_chunk(dx, a, b, geo, cv, pv, plan):
    """The adjoint: add every column back onto its input pixel, then write dx[a:b]."""
    pv.fill(0)
    g = geo
    for i in range(g.kh):
        for j in range(g.kw):
            pv[:, i % g.sh, j % g.sw, i // g.sh:i // g.sh + g.oh, j // g.sw:j // g.sw + g.ow] += cv[:, i, j]
    _unfill_phases(dx, a, b, pv, plan)


def _group_sizes(w_shape, groups, geo):
    """(G, F/G, K, L): groups, filters per group, rows of one group's columns, output pixels."""
    g = groups
    return g, w_shape[0] // g, (geo.c // g) * geo.kh * geo.kw, geo.oh * geo.ow


Conv2dCache = namedtuple("Conv2dCache", "x w stride padding groups")
Conv2dCache.__doc__ = """What this conv2d_forward keeps: only the input x and the weight (and the
hyperparameters); backward recomputes the columns, which are larger than x."""


def conv2d_forward(x, w, b, stride, padding, groups):
    """y (N, F, OH, OW) from x (N, C, H, W), w (F, C/G, KH, KW), b (F,); as the reference."""
    geo = geometry(x.shape, w.shape[2:], stride, padding, x.itemsize)
    g, fg, k, L = _group_sizes(w.shape, groups, geo)
    f = w.shape[0]
    wgt = w.reshape(g, fg, k)  # (G, F/G, K)
    bias = b.reshape(1, f, 1)
    y = np.empty((geo.n, f, geo.oh, geo.ow), dtype=x.dtype)
    y3 = y.reshape(geo.n, f, L)  # (N, F, L)
    ws = runtime.current_workspace()

    def work(start, stop, tid):
        buf = _Chunk(ws, geo, f, x.dtype, tid)
        for a, b in runtime.even_chunks(start, stop, geo.chunk):
            m = b - a
            cv, pv, ov = buf.views(m)
            _im2col_chunk(x, a, b, geo, cv, pv, buf.plan)
            cols_g = cv.reshape(g, k, L * m)  # (G, K, L*m): rows of group g are contiguous
            out_g = ov.reshape(g, fg, L * m)  # (G, F/G, L*m)
            for gi in range(g):
                np.matmul(wgt[gi], cols_g[gi], out=out_g[gi])  # (F/G, K) @ (K, L*m)
            # (F, L, m) -> (m, F, L): the one transposing copy, fused with the bias add
            np.add(ov.reshape(f, L, m).transpose(2, 0, 1), bias, out=y3[a:b])

    runtime.run_gemm_workers(work, geo.n, 2.0 * geo.n * f * k * L)
    return y, Conv2dCache(x, w, stride, padding, groups)


def conv2d_backward(dout, cache, dw=None, db=None, need_dx=True):
    """(dx, dw, db) as the reference: dx (N, C, H, W) or None without need_dx; dw and db added
    into the arrays given (fresh ones when None)."""
    x, w = cache.x, cache.w
    geo = geometry(x.shape, w.shape[2:], cache.stride, cache.padding, x.itemsize)
    g, fg, k, L = _group_sizes(w.shape, cache.groups, geo)
    f = w.shape[0]
    wgt = w.reshape(g, fg, k)  # (G, F/G, K)
    dout3 = dout.reshape(geo.n, f, L)  # (N, F, L)
    dx = np.empty(x.shape, dtype=x.dtype) if need_dx else None
    partial = {}  # tid -> (dW, db) of that thread's samples
    ws = runtime.current_workspace()

    def work(start, stop, tid):
        buf = _Chunk(ws, geo, f, x.dtype, tid)
        dw_t = np.zeros((g, fg, k), dtype=x.dtype)
        db_t = np.zeros(f, dtype=x.dtype)
        tmp = np.empty((k, fg), dtype=x.dtype)
        for a, b in runtime.even_chunks(start, stop, geo.chunk):
            m = b - a
            cv, pv, dyv = buf.views(m)
            _im2col_chunk(x, a, b, geo, cv, pv, buf.plan)  # recomputed: cheaper than storing it
            cols_g = cv.reshape(g, k, L * m)  # (G, K, L*m)
            dyv.reshape(f, L, m)[...] = dout3[a:b].transpose(1, 2, 0)  # (m, F, L) -> (F, L*m)
            dy_g = dyv.reshape(g, fg, L * m)  # (G, F/G, L*m)
            # the bias gradient from the chunk while it is in cache, on this thread (summing
            # the whole dout afterwards was a single-threaded pass: 14 ms for conv1's)
            db_t += dyv.sum(axis=1)
            for gi in range(g):
                # dW_g^T = cols_g @ dy_g^T: with the small (F/G x K) result this way round
                # OpenBLAS ran conv1's dW at 0.227 instead of 0.256 core-s per batch
                np.matmul(cols_g[gi], dy_g[gi].T, out=tmp)
                dw_t[gi] += tmp.T
            if not need_dx:
                continue
            for gi in range(g):  # dcols_g = W_g^T @ dy_g, written over the columns just used
                np.matmul(wgt[gi].T, dy_g[gi], out=cols_g[gi])
            _col2im_chunk(dx, a, b, geo, cv, pv, buf.plan)
        partial[tid] = dw_t, db_t

    runtime.run_gemm_workers(work, geo.n, (4.0 if need_dx else 2.0) * geo.n * f * k * L)
    dw = np.zeros_like(w) if dw is None else dw
    db = np.zeros(f, dtype=x.dtype) if db is None else db
    gw = dw.reshape(g, fg, k)
    for dw_t, db_t in partial.values():
        gw += dw_t
        db += db_t
    return dx, dw, db
