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
* Convolution keeps its im2col matrix in (C*KH*KW, OH*OW*n) order: the forward
  is one big GEMM per group ``W_g @ cols_g`` (not n small ones), dW is
  ``(cols_g @ dy_g^T)^T`` and dcols is ``W_g^T @ dy_g`` -- BLAS reads the
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


# ---------------------------------------------------------------------------------------
# Memory: keep freed large blocks instead of returning them to the kernel
# ---------------------------------------------------------------------------------------
# glibc serves every allocation above 32 MB (most activations here) with a fresh mmap and
# unmaps it on free, so each step page-faults and zero-fills ~2 GB of new pages. Measured
# in the full step that is 0.1-0.16 s for a single 91 MB array (lrn2's output) and 0.4 s per
# step in all (4.40 -> 4.00 s), while peak RSS rose only 2330 -> 2388 MiB: the step's
# allocations repeat, so the kept heap is reused. This is process-wide (like a caching
# allocator); MINIALEX_KEEP_MALLOC=1 leaves glibc's defaults alone.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameter numbers (malloc.h)


def retain_freed_memory():
    """mallopt(M_MMAP_MAX, 0) and a 2 GB M_TRIM_THRESHOLD: large arrays come from the heap and
    freed ones stay mapped for the next step. A no-op off glibc.

    This changes how the whole process allocates memory, and freed memory is no
    longer returned to the operating system, so a library must not do it behind
    its user's back: importing minialex never calls it. The training command line
    (minialex/train/cli.py) and the benchmark call it for NumPy runs, where it
    saves about 0.4 s of page faults per AlexNet step (docs/performance.md).
    """
    if os.environ.get("MINIALEX_KEEP_MALLOC") == "1":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


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


# The chunk's padded input is kept in stride phases with the sample axis innermost:
#     xph[c, pi, pj, u, v, s] = x_padded[a + s, c, u*SH + pi, v*SW + pj]
# and its columns in (C, KH, KW, OH, OW, m) order (the GEMMs do not care about the order of
# the columns). Kernel offset (i, j) then reads xph[:, i % SH, j % SW, i//SH : i//SH + OH,
# j//SW : j//SW + OW, :], whose rows are OW*m contiguous elements: no strided element access
# and few, long rows. Before (samples outer, x_padded[..., i::SH, j::SW]) the rows were OW
# elements long (13 for conv3-5) and, for conv1, every element 4 apart; NumPy's cost per
# row and per strided element dominated the copies. Measured per batch on one core:
# conv1 im2col 0.117 -> 0.071 s, conv4/5 im2col 0.050 -> 0.037 s and col2im 0.100 -> 0.077 s,
# conv2 col2im 0.210 -> 0.179 s. The price is that the output and dout are transposed with
# the sample axis innermost (a few ms more per layer).
def _phase_plan(geo):
    """(hq, wq) of a phase plane and, per phase, where x's rows/cols land in it:
    (pi, pj, x row slice, x col slice, plane row slice, plane col slice)."""
    _, _, h, w, _, _, sh, sw, ph, pw, _, _, _ = geo
    hq, wq = -(-(h + 2 * ph) // sh), -(-(w + 2 * pw) // sw)
    plan = []
    for pi in range(sh):
        r0 = (pi - ph) % sh  # first x row whose padded row r0 + ph has phase pi
        nr = len(range(r0, h, sh))
        for pj in range(sw):
            c0 = (pj - pw) % sw
            nc = len(range(c0, w, sw))
            u0, v0 = (r0 + ph) // sh, (c0 + pw) // sw
            plan.append((pi, pj, slice(r0, h, sh), slice(c0, w, sw), slice(u0, u0 + nr), slice(v0, v0 + nc)))
    return hq, wq, plan


def _fill_phases(x, a, b, pv, plan):
    """pv[c, pi, pj, u, v, s] = x_padded[a + s, c, u*SH + pi, v*SW + pj] for the chunk a:b."""
    for pi, pj, xr, xc, pr, pc in plan:
        plane = pv[:, pi, pj]
        # zero only what x does not cover (the padding, and any tail past the padded edge)
        plane[:, :pr.start].fill(0)
        plane[:, pr.stop:].fill(0)
        plane[:, pr, :pc.start].fill(0)
        plane[:, pr, pc.stop:].fill(0)
        plane[:, pr, pc] = x[a:b, :, xr, xc].transpose(1, 2, 3, 0)


def _unfill_phases(dx, a, b, pv, plan):
    """The adjoint of _fill_phases without the padding: dx[a:b] from the phase planes."""
    for pi, pj, xr, xc, pr, pc in plan:
        dx[a:b, :, xr, xc] = pv[:, pi, pj, pr, pc].transpose(3, 0, 1, 2)


def _conv_buffers(layer, geo, dtype, tid):
    n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, chunk = geo
    hq, wq, _ = _phase_plan(geo)
    f = layer.out_channels
    # flat, so that a partial last chunk (m < chunk) still gets contiguous (..., m) views
    cols = buffer(layer, ("cols", tid), (c * kh * kw * oh * ow * chunk,), dtype)
    xph = buffer(layer, ("xph", tid), (c * sh * sw * hq * wq * chunk,), dtype)
    out = buffer(layer, ("out", tid), (f * oh * ow * chunk,), dtype)
    return cols, xph, out


def _views(geo, m, cols, xph, out, f):
    _, c, _, _, kh, kw, sh, sw, _, _, oh, ow, _ = geo
    hq, wq, plan = _phase_plan(geo)
    cv = cols[:c * kh * kw * oh * ow * m].reshape(c, kh, kw, oh, ow, m)
    pv = xph[:c * sh * sw * hq * wq * m].reshape(c, sh, sw, hq, wq, m)
    ov = out[:f * oh * ow * m].reshape(f, oh * ow * m)
    return cv, pv, ov, plan


def _im2col_chunk(x, a, b, geo, cv, pv, plan):
    """cv[c, i, j, oh, ow, s] = x_padded[a + s, c, oh*SH + i, ow*SW + j] for the chunk a:b."""
    kh, kw, sh, sw, oh, ow = geo[4], geo[5], geo[6], geo[7], geo[10], geo[11]
    _fill_phases(x, a, b, pv, plan)
    for i in range(kh):
        for j in range(kw):
            cv[:, i, j] = pv[:, i % sh, j % sw, i // sh:i // sh + oh, j // sw:j // sw + ow]
    return cv


def _col2im_chunk(dx, a, b, geo, cv, pv, plan):
    """The adjoint: add every column back onto its input pixel, then write dx[a:b]."""
    kh, kw, sh, sw, oh, ow = geo[4], geo[5], geo[6], geo[7], geo[10], geo[11]
    pv.fill(0)
    for i in range(kh):
        for j in range(kw):
            pv[:, i % sh, j % sw, i // sh:i // sh + oh, j // sw:j // sw + ow] += cv[:, i, j]
    _unfill_phases(dx, a, b, pv, plan)


def _conv_setup(layer, x):
    """Geometry, sizes and the (G, F/G, K) weight view shared by forward and backward."""
    geo = _conv_geometry(layer, x.shape)
    n, c, _, _, kh, kw, _, _, _, _, oh, ow, chunk = geo
    f, g = layer.out_channels, layer.groups
    fg, k = f // g, (c // g) * kh * kw  # K: rows of one group's columns
    wgt = layer.weight.data.reshape(g, fg, k)
    return geo, n, f, g, fg, k, oh * ow, chunk, wgt


def conv_forward(layer, x):
    geo, n, f, g, fg, k, L, chunk, wgt = _conv_setup(layer, x)
    oh, ow = geo[10], geo[11]
    bias = layer.bias.data.reshape(1, f, 1)
    y = np.empty((n, f, oh, ow), dtype=x.dtype)
    y3 = y.reshape(n, f, L)

    def work(start, stop, tid):
        bufs = _conv_buffers(layer, geo, x.dtype, tid)
        for a, b in chunks(start, stop, chunk):
            m = b - a
            cv, pv, ov, plan = _views(geo, m, *bufs, f)
            _im2col_chunk(x, a, b, geo, cv, pv, plan)
            cols_g = cv.reshape(g, k, L * m)  # rows of group g are contiguous
            out_g = ov.reshape(g, fg, L * m)
            for gi in range(g):
                np.matmul(wgt[gi], cols_g[gi], out=out_g[gi])  # (F/G, K) @ (K, L*m)
            # (F, L, m) -> (m, F, L): the one transposing copy, fused with the bias add
            np.add(ov.reshape(f, L, m).transpose(2, 0, 1), bias, out=y3[a:b])

    _run_workers(work, n)
    return y


def conv_backward(layer, x, dout, need_dx=True):
    geo, n, f, g, fg, k, L, chunk, wgt = _conv_setup(layer, x)
    dout3 = dout.reshape(n, f, L)
    dx = np.empty(x.shape, dtype=x.dtype) if need_dx else None
    partial_dw = {}

    def work(start, stop, tid):
        bufs = _conv_buffers(layer, geo, x.dtype, tid)
        dw = np.zeros((g, fg, k), dtype=x.dtype)
        db = np.zeros(f, dtype=x.dtype)
        tmp = np.empty((k, fg), dtype=x.dtype)
        for a, b in chunks(start, stop, chunk):
            m = b - a
            cv, pv, dyv, plan = _views(geo, m, *bufs, f)
            _im2col_chunk(x, a, b, geo, cv, pv, plan)  # recomputed: cheaper than storing it
            cols_g = cv.reshape(g, k, L * m)
            dyv.reshape(f, L, m)[...] = dout3[a:b].transpose(1, 2, 0)  # (m, F, L) -> (F, L*m)
            dy_g = dyv.reshape(g, fg, L * m)
            # the bias gradient from the chunk while it is in cache, on this thread (summing
            # the whole dout afterwards was a single-threaded pass: 14 ms for conv1's)
            db += dyv.sum(axis=1)
            for gi in range(g):
                # dW_g^T = cols_g @ dy_g^T: with the small (F/G x K) result this way round
                # OpenBLAS ran conv1's dW at 0.227 instead of 0.256 core-s per batch
                np.matmul(cols_g[gi], dy_g[gi].T, out=tmp)
                dw[gi] += tmp.T
            if not need_dx:
                continue
            for gi in range(g):  # dcols_g = W_g^T @ dy_g, written over the columns just used
                np.matmul(wgt[gi].T, dy_g[gi], out=cols_g[gi])
            _col2im_chunk(dx, a, b, geo, cv, pv, plan)
        partial_dw[tid] = dw, db

    _run_workers(work, n)
    gw = layer.weight.grad.reshape(g, fg, k)
    for dw, db in partial_dw.values():
        gw += dw
        layer.bias.grad += db
    return dx


def _run_workers(work, n):
    """work(start, stop, tid) over range(n) on the GEMM workers, each with a one-thread BLAS."""
    workers = min(gemm_workers(), n)
    if workers <= 1:
        work(0, n, 0)
        return
    with single_threaded_blas():
        parallel(work, n, workers)


# ---------------------------------------------------------------------------------------
# Local response normalization
# ---------------------------------------------------------------------------------------
# A block is one sample x all channels x all positions when that slab is at most
# LRN_BLOCK_BYTES (lrn1: 1.2 MB, lrn2: 0.75 MB), seen as (G, C/G, P). Whole samples matter:
# a block is then contiguous in x, y, scale and inv, and NumPy's SIMD loops run on it;
# on a strided run of positions (rows of m < P) the same ufuncs measured 3-4x slower per
# element (34 vs 9 us for 131K floats). Larger samples fall back to runs of positions.
# The costs that remain are the number of passes, which are counted:
#   forward  11 passes: (x sqrt(alpha))^2 (2), window sum (3), + k (1), ^-beta (4), y (1)
#   backward  9 passes: d = dout s^-beta (1), t = d x / s (2), window sum (3), * x, * c2, + d (3)
LRN_BLOCK_BYTES = 2 << 20


def _lrn_blocks(n, c, p, itemsize):
    """(sample, p0, p1) blocks: one sample, all channels, all positions or a run of them."""
    step = p if c * p * itemsize <= LRN_BLOCK_BYTES else max(8, LRN_BLOCK_BYTES // max(1, c * itemsize))
    return step, [(i, a, min(a + step, p)) for i in range(n) for a in range(0, p, step)]


def _window_sum_padded(ap, s, size, cg, pairs):
    """s[g, i] = sum of ap[g, i : i + size]: the window sum of a channel-padded block.

    ``ap`` (G, cg + size - 1, m) holds the block between ``size // 2`` zero channels on
    each side of every group, so windows clip at group edges with no special cases.
    Sums of neighbouring pairs halve the shifted adds: for size 5,
    s = (a0 + a1) + (a2 + a3) + a4 is 3 passes instead of 5.
    """
    if size == 1:
        np.copyto(s, ap)
        return s
    np.add(ap[:, :-1], ap[:, 1:], out=pairs)
    terms = [pairs[:, q:q + cg] for q in range(0, size - 1, 2)] + [ap[:, size - 1:size - 1 + cg]]
    np.add(terms[0], terms[1], out=s)
    for t in terms[2:]:
        s += t
    return s


def _neg_pow(scale, beta, out, tmp):
    """out = scale ** -beta; for the paper's beta = 0.75 as 1 / (sqrt(s) * sqrt(sqrt(s)))
    (4 cheap passes; np.power is about 3x slower than all four together)."""
    if beta == 0.75:
        np.sqrt(scale, out=out)
        np.sqrt(out, out=tmp)
        out *= tmp
        np.reciprocal(out, out=out)
    elif beta == 0.5:
        np.sqrt(scale, out=out)
        np.reciprocal(out, out=out)
    else:
        np.power(scale, -beta, out=out)
    return out


def _lrn_scratch(layer, tid, g, cg, half, step, dtype):
    """Per-thread block buffers: the channel-padded block (its pads zeroed here and never
    written afterwards), the pair sums, and one spare block."""
    padded = buffer(layer, ("lrn_pad", tid), (g, cg + 2 * half, step), dtype, zero=True)
    pairs = buffer(layer, ("lrn_pairs", tid), (g, cg + 2 * half - 1, step), dtype)
    spare = buffer(layer, ("lrn_spare", tid), (g, cg, step), dtype)
    return padded, pairs, spare


def lrn_forward(layer, x):
    n, c = x.shape[:2]
    g, size = layer.groups, layer.size
    cg, half = c // g, size // 2
    x3 = x.reshape(n, c, -1)
    # scale and inv live on the layer from step to step (only its backward reads them): fresh
    # 150 MB arrays cost page faults every step, which measured up to 0.1 s for lrn2 in the
    # full step. y is returned to the caller, so it is always a new array.
    y = np.empty_like(x3)
    scale, inv = buffer(layer, "lrn_scale", x3.shape, x.dtype), buffer(layer, "lrn_inv", x3.shape, x.dtype)
    step, jobs = _lrn_blocks(n, c, x3.shape[2], x.itemsize)
    root_alpha = float(np.sqrt(layer.alpha))

    def work(start, stop, tid):
        padded, pairs, spare = _lrn_scratch(layer, tid, g, cg, half, step, x.dtype)
        for i, a, b in jobs[start:stop]:
            m = b - a
            xs = x3[i, :, a:b].reshape(g, cg, m)
            sq = padded[:, half:half + cg, :m]
            np.multiply(xs, root_alpha, out=sq)  # alpha a^2 as (sqrt(alpha) a)^2: alpha folded in
            np.square(sq, out=sq)
            s = _window_sum_padded(padded[:, :, :m], scale[i, :, a:b].reshape(g, cg, m), size, cg,
                                   pairs[:, :, :m])
            s += layer.k
            iv = _neg_pow(s, layer.beta, inv[i, :, a:b].reshape(g, cg, m), spare[:, :, :m])
            np.multiply(xs, iv, out=y[i, :, a:b].reshape(g, cg, m))

    parallel(work, len(jobs))
    return y.reshape(x.shape), scale.reshape(x.shape), inv.reshape(x.shape)


def lrn_backward(layer, x, scale, inv, dout):
    n, c = x.shape[:2]
    g, size = layer.groups, layer.size
    cg, half = c // g, size // 2
    x3, s3, i3, d3 = (a.reshape(n, c, -1) for a in (x, scale, inv, dout))
    dx = np.empty_like(x3)
    step, jobs = _lrn_blocks(n, c, x3.shape[2], x.itemsize)
    c2 = -2.0 * layer.alpha * layer.beta

    def work(start, stop, tid):
        padded, pairs, ws = _lrn_scratch(layer, tid, g, cg, half, step, x.dtype)
        for i, a, b in jobs[start:stop]:
            m = b - a
            xs, ss, ivs, ds, d = (arr[i, :, a:b].reshape(g, cg, m) for arr in (x3, s3, i3, d3, dx))
            np.multiply(ds, ivs, out=d)  # dout_i s_i^-beta, the direct term
            t = padded[:, half:half + cg, :m]
            np.multiply(d, xs, out=t)
            t /= ss  # dout_j a_j s_j^(-beta-1)
            w = _window_sum_padded(padded[:, :, :m], ws[:, :, :m], size, cg, pairs[:, :, :m])
            w *= xs
            w *= c2
            d += w

    parallel(work, len(jobs))
    return dx.reshape(x.shape)


# ---------------------------------------------------------------------------------------
# Max-pool
# ---------------------------------------------------------------------------------------
BLOCK_BYTES = 256 << 10  # a chunk of samples is about 4 of these


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


def _pool_phase_geometry(x_shape, kernel, stride, out_hw):
    """Plane size (hp, wp) for the stride phases of x: every window offset is then a shift
    of one plane, and a plane has room for the shifted flat views (see maxpool_backward)."""
    _, _, h, w = x_shape
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    hp = max(-(-h // sh), oh + (kh - 1) // sh) + 1  # +1 spare row: flat views stay inside
    wp = max(-(-w // sw), ow + (kw - 1) // sw)
    return hp, wp


def maxpool_backward(layer, x, y, dout):
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
    n, c = x.shape[:2]
    kh, kw = layer.kernel_size
    sh, sw = layer.stride
    _, _, oh, ow = dout.shape
    hp, wp = _pool_phase_geometry(x.shape, (kh, kw), (sh, sw), (oh, ow))
    lw = oh * wp  # one (sample, channel)'s windows on the wide grid
    dx = np.empty(x.shape, dtype=dout.dtype)
    cs = max(1, (BLOCK_BYTES * 4) // max(1, x[0].nbytes)) if n else 1

    def work(start, stop, tid):
        dt = dout.dtype
        ph = buffer(layer, ("phases", tid), (sh, sw, cs * c, hp, wp), dt)
        dph = buffer(layer, ("dphases", tid), (sh, sw, cs * c, hp, wp), dt)
        yw = buffer(layer, ("ywide", tid), (cs * c, lw), dt)
        rest = buffer(layer, ("rest", tid), (cs * c, lw), dt, zero=True)  # wide columns stay 0
        won = buffer(layer, ("won", tid), (cs * c, lw), np.bool_)
        tmp = buffer(layer, ("tmp", tid), (cs * c, lw), dt)
        flat, dflat = ph.reshape(sh, sw, cs * c, hp * wp), dph.reshape(sh, sw, cs * c, hp * wp)
        for a, b in chunks(start, stop, cs):
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

    parallel(work, n)
    return dx


# ---------------------------------------------------------------------------------------
# ReLU
# ---------------------------------------------------------------------------------------
RELU_STEP = 1 << 18  # elements per job: 1 MB of float32, a cache-sized piece
# Below this many elements one thread does it all: right after a fully connected layer's
# GEMM, OpenBLAS's own threads still spin on the other core, and handing fc6's 0.5M
# activations to our second thread measured 3 ms instead of well under 1.
RELU_THREADED_MIN = 8 * RELU_STEP


def _relu_workers(size):
    return None if size >= RELU_THREADED_MIN else 1


def relu_forward(x, inplace=False):
    """y = max(x, 0) over C-contiguous x in cache-sized pieces on all threads; with
    ``inplace`` written over x. (One np.maximum ran on one core: conv1's 149 MB output
    took 11 ms of the step while the other core idled.)"""
    y = x if inplace else np.empty_like(x)
    flat_x, flat_y = x.reshape(-1), y.reshape(-1)

    def work(start, stop, _t):
        for a, b in chunks(start * RELU_STEP, min(stop * RELU_STEP, flat_x.size), RELU_STEP):
            np.maximum(flat_x[a:b], 0, out=flat_y[a:b])

    parallel(work, -(-flat_x.size // RELU_STEP), _relu_workers(flat_x.size))
    return y


def relu_backward(y, dout, inplace=False):
    """dx = dout * (y > 0); with ``inplace`` written over dout (C-contiguous), which saves a
    fresh array per ReLU (conv1's gradient is 149 MB) and one stream of memory traffic."""
    dx = dout if inplace else np.empty_like(dout)
    flat_y, flat_d, flat_x = y.reshape(-1), dout.reshape(-1), dx.reshape(-1)

    def work(start, stop, _t):
        for a, b in chunks(start * RELU_STEP, min(stop * RELU_STEP, flat_y.size), RELU_STEP):
            np.multiply(flat_d[a:b], flat_y[a:b] > 0, out=flat_x[a:b])

    parallel(work, -(-flat_y.size // RELU_STEP), _relu_workers(flat_y.size))
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
