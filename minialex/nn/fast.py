"""Fast CPU paths for the layers, kept apart from the readable ones.

Every layer file keeps its plain implementation (``_forward_plain`` /
``_backward_plain``), which is the reference the tests compare these against
(tests/nn/test_fast_paths.py). The layers call the functions here when the
input is a NumPy array and ``minialex.nn.fast.ENABLED`` is true; on CuPy they
use the plain path, which already runs as large GPU kernels.

What makes these faster (measured in docs/performance.md):

* The batch is cut into chunks of a few samples. Each chunk's intermediates fit
  in the CPU caches, so a sequence of elementwise NumPy operations costs one
  trip to memory instead of one per operation.
* Chunks are spread over ``threads()`` Python threads. NumPy releases the GIL
  inside its loops and copies, so the threads really run in parallel; during
  convolutions each thread calls a single-threaded BLAS on its own chunk, so
  im2col copies overlap with the GEMMs of the other thread.
* Convolution keeps its im2col matrix in (C*KH*KW, n*OH*OW) order: the forward
  is one big GEMM per group ``W_g @ cols_g`` (not n small ones), dW is
  ``dy_g @ cols_g^T`` and dcols is ``W_g^T @ dy_g`` -- BLAS reads the
  transposed operands in place, so no transpose is ever copied. The columns
  are recomputed in backward instead of stored (a conv layer's columns are
  larger than its input), which keeps peak memory below PyTorch's.
* Buffers are kept on the layer and reused from step to step: fresh large
  arrays cost page faults every step.
"""

import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ENABLED = True  # set False to run every layer's plain reference path

_pool = None
_pool_lock = threading.Lock()


def threads():
    """Worker threads for the fast paths: OMP_NUM_THREADS if set, else the CPU count."""
    for var in ("MINIALEX_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        v = os.environ.get(var)
        if v and v.isdigit() and int(v) > 0:
            return int(v)
    return os.cpu_count() or 1


def use_fast(x):
    return ENABLED and isinstance(x, np.ndarray) and x.dtype.kind == "f"


def parallel(fn, n_items, workers=None):
    """Call fn(start, stop, t) on ``workers`` contiguous slices of range(n_items), in parallel
    (t = 0, 1, ... numbers the slice, so each call can keep its own buffers)."""
    global _pool
    workers = min(workers or threads(), n_items)
    if workers <= 1:
        fn(0, n_items, 0)
        return
    with _pool_lock:
        if _pool is None or _pool._max_workers < workers:
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minialex")
    bounds = [(n_items * t // workers, n_items * (t + 1) // workers) for t in range(workers)]
    futures = [_pool.submit(fn, a, b, t) for t, (a, b) in enumerate(bounds) if t > 0]
    fn(*bounds[0], 0)  # the calling thread does the first slice
    for f in futures:
        f.result()


def chunks(start, stop, size):
    for a in range(start, stop, size):
        yield a, min(a + size, stop)


# ---------------------------------------------------------------------------------------
# BLAS threads: one per worker thread while the workers run their own GEMMs
# ---------------------------------------------------------------------------------------
def _find_blas():
    names = [("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
             ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
             ("openblas_set_num_threads", "openblas_get_num_threads")]
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.lower() and ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in names:
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                setter, getter = getattr(lib, set_name), getattr(lib, get_name)
                setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
                return setter, getter
    return None


_blas = None
_blas_searched = False


class single_threaded_blas:
    """Context: BLAS uses one thread (our worker threads provide the parallelism)."""

    def __enter__(self):
        global _blas, _blas_searched
        if not _blas_searched:
            _blas, _blas_searched = _find_blas(), True
        self.old = None
        if _blas is not None:
            self.old = _blas[1]()
            _blas[0](1)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            _blas[0](self.old)


def gemm_workers():
    """Threads that may each run a GEMM: all of them when BLAS can be made single-threaded."""
    global _blas, _blas_searched
    if not _blas_searched:
        _blas, _blas_searched = _find_blas(), True
    return threads() if _blas is not None else 1


def buffer(owner, key, shape, dtype, zero=False):
    """An array kept in ``owner._buffers`` under ``key`` and reused while shape and dtype match."""
    store = owner.__dict__.setdefault("_buffers", {})
    buf = store.get(key)
    if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
        buf = np.empty(shape, dtype=dtype)
        store[key] = buf
    if zero:
        buf.fill(0)
    return buf


# ---------------------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------------------
COLS_BYTES = 24 << 20  # target size of one thread's im2col chunk


def _conv_geometry(layer, x_shape):
    n, c, h, w = x_shape
    kh, kw = layer.kernel_size
    sh, sw = layer.stride
    ph, pw = layer.padding
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    per_sample = c * kh * kw * oh * ow * np.dtype(np.float32).itemsize
    chunk = max(1, min(n, COLS_BYTES // per_sample))
    return n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, chunk


def _im2col_chunk(x, a, b, geo, xpad, cols):
    """cols[(c, i, j), (s, oh, ow)] = x_padded[a + s, c, oh*sh + i, ow*sw + j] for the chunk a:b.

    ``xpad`` (C, n, H+2ph, W+2pw) holds the chunk with channels first, so that every
    kernel offset is one strided copy with matching axis order.
    """
    _, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, _ = geo
    m = b - a
    xp_ = xpad[:, :m]
    if ph or pw:
        # only the border needs zeros; the interior is overwritten below
        xp_[:, :, :ph].fill(0)
        xp_[:, :, ph + h:].fill(0)
        xp_[:, :, ph:ph + h, :pw].fill(0)
        xp_[:, :, ph:ph + h, pw + w:].fill(0)
    xp_[:, :, ph:ph + h, pw:pw + w] = x[a:b].transpose(1, 0, 2, 3)
    cv = cols[:, :, :, :m * oh * ow].reshape(c, kh, kw, m, oh, ow)
    for i in range(kh):
        i_end = i + sh * (oh - 1) + 1
        for j in range(kw):
            cv[:, i, j] = xp_[:, :, i:i_end:sh, j:j + sw * (ow - 1) + 1:sw]
    return cv


def conv_forward(layer, x):
    geo = _conv_geometry(layer, x.shape)
    n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, chunk = geo
    f, g = layer.out_channels, layer.groups
    fg, k = f // g, (c // g) * kh * kw
    L = oh * ow
    wgt = layer.weight.data.reshape(g, fg, k)
    bias = layer.bias.data.reshape(1, f, 1)
    y = np.empty((n, f, oh, ow), dtype=x.dtype)
    y3 = y.reshape(n, f, L)

    def work(start, stop, tid):
        cols = buffer(layer, ("cols", tid), (c, kh, kw, chunk * L), x.dtype)
        xpad = buffer(layer, ("xpad", tid), (c, chunk, h + 2 * ph, w + 2 * pw), x.dtype)
        out = buffer(layer, ("out", tid), (g, fg, chunk * L), x.dtype)
        for a, b in chunks(start, stop, chunk):
            m = b - a
            _im2col_chunk(x, a, b, geo, xpad, cols)
            cols_g = cols.reshape(g, k, chunk * L)[:, :, :m * L]  # rows of group g are contiguous
            for gi in range(g):
                np.matmul(wgt[gi], cols_g[gi], out=out[gi, :, :m * L])  # (F/G, K) @ (K, m*L)
            # (F, m, L) -> (m, F, L): the one transposing copy, fused with the bias add
            np.add(out[:, :, :m * L].reshape(f, m, L).transpose(1, 0, 2), bias, out=y3[a:b])

    _run(work, n)
    return y


def conv_backward(layer, x, dout, need_dx=True):
    geo = _conv_geometry(layer, x.shape)
    n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, chunk = geo
    f, g = layer.out_channels, layer.groups
    fg, k = f // g, (c // g) * kh * kw
    L = oh * ow
    wgt = layer.weight.data.reshape(g, fg, k)
    dout3 = dout.reshape(n, f, L)
    dx = np.empty(x.shape, dtype=x.dtype) if need_dx else None
    partial_dw = {}

    def work(start, stop, tid):
        cols = buffer(layer, ("cols", tid), (c, kh, kw, chunk * L), x.dtype)
        xpad = buffer(layer, ("xpad", tid), (c, chunk, h + 2 * ph, w + 2 * pw), x.dtype)
        dy = buffer(layer, ("out", tid), (g, fg, chunk * L), x.dtype)
        dw = np.zeros((g, fg, k), dtype=x.dtype)
        tmp = np.empty((fg, k), dtype=x.dtype)
        for a, b in chunks(start, stop, chunk):
            m = b - a
            cv = _im2col_chunk(x, a, b, geo, xpad, cols)  # recomputed: cheaper than storing it
            cols_g = cols.reshape(g, k, chunk * L)[:, :, :m * L]
            dy_g = dy[:, :, :m * L]
            dy_g.reshape(f, m, L)[...] = dout3[a:b].transpose(1, 0, 2)  # (m, F, L) -> (F, m*L)
            for gi in range(g):
                np.matmul(dy_g[gi], cols_g[gi].T, out=tmp)  # dW_g += dy_g @ cols_g^T
                dw[gi] += tmp
            if not need_dx:
                continue
            for gi in range(g):  # dcols_g = W_g^T @ dy_g, written over the columns just used
                np.matmul(wgt[gi].T, dy_g[gi], out=cols_g[gi])
            # col2im into the channels-first padded chunk, then one copy back to (m, C, H, W)
            dpad = xpad[:, :m]
            dpad.fill(0)
            for i in range(kh):
                i_end = i + sh * (oh - 1) + 1
                for j in range(kw):
                    dpad[:, :, i:i_end:sh, j:j + sw * (ow - 1) + 1:sw] += cv[:, i, j]
            dx[a:b] = dpad[:, :, ph:ph + h, pw:pw + w].transpose(1, 0, 2, 3)
        partial_dw[tid] = dw

    _run(work, n)
    gw = layer.weight.grad.reshape(g, fg, k)
    for dw in partial_dw.values():
        gw += dw
    layer.bias.grad += dout3.sum(axis=(0, 2))
    return dx


def _run(work, n):
    workers = min(gemm_workers(), n)
    if workers <= 1:
        work(0, n, 0)
        return
    with single_threaded_blas():
        parallel(work, n, workers)


# ---------------------------------------------------------------------------------------
# Local response normalization
# ---------------------------------------------------------------------------------------
def _window_sum_into(a, s, size, groups):
    """s = channel window sum of a (n, C, P), windows clipped at group edges; a and s may be views."""
    n, c, p = a.shape
    half, cg = size // 2, c // groups
    np.copyto(s, a)
    for gi in range(groups):
        a_g, s_g = a[:, gi * cg:(gi + 1) * cg], s[:, gi * cg:(gi + 1) * cg]
        for d in range(1, min(half, cg - 1) + 1):
            s_g[:, d:] += a_g[:, :-d]
            s_g[:, :-d] += a_g[:, d:]


def _neg_pow(scale, beta, out):
    """out = scale ** -beta; for the paper's beta = 0.75 as 1 / (sqrt(s) * sqrt(sqrt(s)))."""
    if beta == 0.75:
        np.sqrt(scale, out=out)
        r = np.sqrt(out)
        out *= r
        np.reciprocal(out, out=out)
    elif beta == 0.5:
        np.sqrt(scale, out=out)
        np.reciprocal(out, out=out)
    else:
        np.power(scale, -beta, out=out)
    return out


BLOCK_BYTES = 256 << 10  # one working array of an elementwise block: several fit in L2


def _blocks(shape, itemsize):
    """(n, p0, p1) blocks of an (N, C, P) array: one sample, a run of positions, all channels."""
    n, c, p = shape
    step = max(64, BLOCK_BYTES // max(1, c * itemsize))
    return [(i, a, min(a + step, p)) for i in range(n) for a in range(0, p, step)]


def lrn_forward(layer, x):
    n, c = x.shape[:2]
    x3 = x.reshape(n, c, -1)
    y, scale, inv = np.empty_like(x3), np.empty_like(x3), np.empty_like(x3)
    jobs = _blocks(x3.shape, x.itemsize)

    def work(start, stop, _t):
        for i, a, b in jobs[start:stop]:
            xs = x3[i:i + 1, :, a:b]
            sq = np.multiply(xs, xs)
            sq *= layer.alpha
            s = scale[i:i + 1, :, a:b]
            _window_sum_into(sq, s, layer.size, layer.groups)  # alpha * sum of squares
            s += layer.k
            iv = _neg_pow(s, layer.beta, inv[i:i + 1, :, a:b])
            np.multiply(xs, iv, out=y[i:i + 1, :, a:b])

    parallel(work, len(jobs))
    return y.reshape(x.shape), scale.reshape(x.shape), inv.reshape(x.shape)


def lrn_backward(layer, x, scale, inv, dout):
    n, c = x.shape[:2]
    x3, s3, i3, d3 = (a.reshape(n, c, -1) for a in (x, scale, inv, dout))
    dx = np.empty_like(x3)
    jobs = _blocks(x3.shape, x.itemsize)
    c2 = -2.0 * layer.alpha * layer.beta

    def work(start, stop, _t):
        for i, a, b in jobs[start:stop]:
            sl = (slice(i, i + 1), slice(None), slice(a, b))
            xs, d = x3[sl], dx[sl]
            np.multiply(d3[sl], i3[sl], out=d)  # dout_i s_i^-beta, the direct term
            t = np.multiply(d, xs)
            t /= s3[sl]  # dout_j a_j s_j^(-beta-1)
            ws = np.empty_like(t)
            _window_sum_into(t, ws, layer.size, layer.groups)
            ws *= xs
            ws *= c2
            d += ws

    parallel(work, len(jobs))
    return dx.reshape(x.shape)


# ---------------------------------------------------------------------------------------
# Max-pool
# ---------------------------------------------------------------------------------------
def maxpool_forward(layer, x, out_shape):
    """A running np.maximum over the KH*KW offsets; no argmax (backward finds the winners from x
    and y). Returns y and a private copy of it for backward, safe from in-place layers after us."""
    n = x.shape[0]
    kh, kw = layer.kernel_size
    sh, sw = layer.stride
    _, _, oh, ow = out_shape
    y = np.empty(out_shape, dtype=x.dtype)
    saved = np.empty(out_shape, dtype=x.dtype)
    cs = max(1, (BLOCK_BYTES * 4) // max(1, x[0].nbytes)) if n else 1

    def work(start, stop, _t):
        for a, b in chunks(start, stop, cs):
            xc, yc = x[a:b], saved[a:b]
            np.copyto(yc, xc[:, :, 0:sh * (oh - 1) + 1:sh, 0:sw * (ow - 1) + 1:sw])
            for i in range(kh):
                for j in range(kw):
                    if i or j:
                        np.maximum(yc, xc[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw], out=yc)
            np.copyto(y[a:b], yc)

    parallel(work, n)
    return y, saved


def maxpool_backward(layer, x, y, dout):
    """Each window's gradient goes to the first offset (row-major) whose input equals the max:
    ``rest`` holds what is still to be routed and drops to exactly 0 after the first match."""
    n = x.shape[0]
    kh, kw = layer.kernel_size
    sh, sw = layer.stride
    _, _, oh, ow = dout.shape
    dx = np.empty(x.shape, dtype=dout.dtype)
    cs = max(1, (BLOCK_BYTES * 4) // max(1, x[0].nbytes)) if n else 1

    def work(start, stop, _t):
        for a, b in chunks(start, stop, cs):
            xc, yc, dxc = x[a:b], y[a:b], dx[a:b]
            dxc.fill(0)
            rest = dout[a:b].copy()
            won = np.empty(yc.shape, dtype=bool)
            tmp = np.empty_like(rest)
            for i in range(kh):
                for j in range(kw):
                    win = (slice(None), slice(None), slice(i, i + sh * (oh - 1) + 1, sh),
                           slice(j, j + sw * (ow - 1) + 1, sw))
                    np.equal(xc[win], yc, out=won)
                    np.multiply(rest, won, out=tmp)
                    dxc[win] += tmp
                    rest -= tmp

    parallel(work, n)
    return dx


# ---------------------------------------------------------------------------------------
# ReLU
# ---------------------------------------------------------------------------------------
def relu_backward(y, dout):
    dx = np.empty_like(dout)
    flat_y, flat_d, flat_x = y.reshape(-1), dout.reshape(-1), dx.reshape(-1)
    step = 1 << 18

    def work(start, stop, _t):
        for a, b in chunks(start * step, min(stop * step, flat_y.size), step):
            np.multiply(flat_d[a:b], flat_y[a:b] > 0, out=flat_x[a:b])

    parallel(work, -(-flat_y.size // step))
    return dx


# ---------------------------------------------------------------------------------------
# SGD
# ---------------------------------------------------------------------------------------
SGD_BLOCK = 1 << 16


def sgd_update(params, velocities, lr, momentum, wd_of):
    """v <- momentum v - wd lr w - lr g;  w <- w + v, in cache-sized blocks, no full temporaries."""
    jobs = []
    for p, v in zip(params, velocities):
        w, gr, vv = p.data.reshape(-1), p.grad.reshape(-1), v.reshape(-1)
        for a in range(0, w.size, SGD_BLOCK):
            jobs.append((w, gr, vv, a, min(a + SGD_BLOCK, w.size), wd_of(p)))

    def work(start, stop, _t):
        tmps = {}
        for w, gr, vv, a, b, wd in jobs[start:stop]:
            t = tmps.setdefault(w.dtype, np.empty(SGD_BLOCK, dtype=w.dtype))[:b - a]
            vb, wb = vv[a:b], w[a:b]
            vb *= momentum
            if wd:
                np.multiply(wb, wd * lr, out=t)
                vb -= t
            np.multiply(gr[a:b], lr, out=t)
            vb -= t
            wb += vb

    parallel(work, len(jobs))
