"""Process-wide settings of the CPU kernels: worker threads, BLAS threads, reusable buffers and
the opt-in malloc setting. Nothing here is mathematics; docs/performance.md says what each
setting buys, measured.

* ``threads()`` and ``parallel(fn, n)``: the worker pool. NumPy releases the GIL inside its loops
  and copies, so Python threads working on separate chunks of a batch really run in parallel.
* ``single_threaded_blas()`` and ``gemm_workers()``: while our workers each run their own GEMM,
  OpenBLAS must not start threads of its own (two workers x two BLAS threads on two cores is
  slower than either alone).
* ``workspace(owner)`` and ``buffer(owner, key, shape, dtype)``: arrays kept from one step to the
  next. A fresh large array costs page faults every step; a layer runs its kernels inside its
  workspace, and these are kept per layer in a table owned by this module (never in the layer's
  own fields) and freed with the layer. A kernel called outside a workspace gets fresh arrays.
* ``retain_freed_memory()``: glibc's mallopt, called only by the training command line.
"""

import contextvars
import ctypes
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np


# ---------------------------------------------------------------------------------------
# Worker threads
# ---------------------------------------------------------------------------------------
_CPU_COUNT = os.cpu_count() or 1  # read once: os.cpu_count() costs 8 us, and every kernel call asks


def threads():
    """Worker threads for the CPU kernels: MINIALEX_NUM_THREADS, OMP_NUM_THREADS or
    OPENBLAS_NUM_THREADS if set, else the CPU count."""
    for var in ("MINIALEX_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        v = os.environ.get(var)
        if v and v.isdigit() and int(v) > 0:
            return int(v)
    return _CPU_COUNT


_pool = None
_pool_lock = threading.Lock()

# When elementwise work is worth splitting over the threads: a thread's share must make at least
# PARALLEL_MIN_PASSES element-passes (elements touched x passes over them), 0.3-1 ms of NumPy
# loops at 0.3-1 ns each, ten or more times the 25-50 us that handing a share to a pool thread and
# collecting it costs here. Below that the calling thread does it all: on the tiny preset at batch
# 16 two threads took 7.4 ms a step and one thread 3.8 ms. Every preset's LRN, max-pool and conv
# ReLUs at batch 128 are far above it (the smallest, synthetic's pool5 backward, about 4M).
PARALLEL_MIN_PASSES = 1 << 20


def parallel_workers(n_items, passes=None, workers=None):
    """Threads for ``n_items`` pieces of work making ``passes`` element-passes in all (the rule
    above; without ``passes``, as many as there are threads and items)."""
    workers = min(workers or threads(), n_items)
    if passes is not None:
        workers = min(workers, int(passes // max(1, PARALLEL_MIN_PASSES)))
    return max(1, workers)


def parallel(fn, n_items, workers=None, passes=None):
    """Call fn(start, stop, t) on contiguous slices of range(n_items), in parallel (t = 0, 1, ...
    numbers the slice, so each call can keep its own buffers): on ``workers`` threads, or as many as
    ``passes`` element-passes of work are worth (parallel_workers)."""
    global _pool
    workers = parallel_workers(n_items, passes, workers)
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
    """(a, b) pieces of range(start, stop), each ``size`` long but the last."""
    for a in range(start, stop, size):
        yield a, min(a + size, stop)


def even_chunks(start, stop, most):
    """(a, b) pieces of range(start, stop): as few as hold at most ``most`` items each, of equal
    sizes (they differ by at most one). ``chunks`` would end on a sliver: 64 samples in chunks of
    62 leave a last chunk of 2, whose GEMM runs far below the rate of the others."""
    total = stop - start
    if total <= 0:
        return
    count = -(-total // max(1, most))
    for k in range(count):
        yield start + total * k // count, start + total * (k + 1) // count


# ---------------------------------------------------------------------------------------
# BLAS: the OpenBLAS library NumPy loaded, its thread count and its raw GEMM
# ---------------------------------------------------------------------------------------
# NumPy wheels ship OpenBLAS with 64-bit integers and prefixed names (scipy_openblas64_);
# older builds and distribution packages use the plain names with 32-bit integers.
_BLAS_NAMES = [  # (thread setter, thread getter, sgemm, dgemm, integer type)
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_",
     "scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", ctypes.c_int64),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_",
     "cblas_sgemm64_", "cblas_dgemm64_", ctypes.c_int64),
    ("openblas_set_num_threads", "openblas_get_num_threads", "cblas_sgemm", "cblas_dgemm", ctypes.c_int),
]


class Blas:
    """The handles found in the loaded OpenBLAS: set/get its thread count, and cblas ?gemm."""

    def __init__(self, lib, names):
        set_name, get_name, sgemm, dgemm, blas_int = names
        self.set_threads, self.get_threads = getattr(lib, set_name), getattr(lib, get_name)
        self.set_threads.argtypes, self.set_threads.restype = [ctypes.c_int], None
        self.get_threads.restype = ctypes.c_int
        self.gemm = {}  # dtype -> cblas_?gemm with its argument types, where the library has it
        for dtype, name, real in ((np.float32, sgemm, ctypes.c_float), (np.float64, dgemm, ctypes.c_double)):
            fn = getattr(lib, name, None)
            if fn is None:
                continue
            i, p = blas_int, ctypes.c_void_p
            # (order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
            fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, i, i, i, real, p, i, p, i, real, p, i]
            fn.restype = None
            self.gemm[np.dtype(dtype)] = fn


def _find_blas():
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
        for names in _BLAS_NAMES:
            if hasattr(lib, names[0]) and hasattr(lib, names[1]):
                return Blas(lib, names)
    return None


_blas = None
_blas_searched = False


def blas():
    """The loaded OpenBLAS (a Blas), or None where NumPy uses another BLAS or none is found."""
    global _blas, _blas_searched
    if not _blas_searched:
        _blas, _blas_searched = _find_blas(), True
    return _blas


class single_threaded_blas:
    """Context: BLAS uses one thread (our worker threads provide the parallelism)."""

    def __enter__(self):
        lib = blas()
        self.old = None
        if lib is not None:
            self.old = lib.get_threads()
            lib.set_threads(1)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            blas().set_threads(self.old)


ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # the CBLAS enum values


def _leading(a):
    """Row stride of a 2-D array in elements if BLAS can read it as a row-major matrix, else None."""
    s0, s1 = a.strides
    if s1 != a.itemsize or s0 % a.itemsize or s0 < a.shape[1] * a.itemsize:
        return None
    return s0 // a.itemsize


def gemm(a, b, c, beta=0.0, trans_a=False, trans_b=False):
    """c = op(a) @ op(b) + beta * c in place (op transposes when asked), on 2-D views of one dtype.

    BLAS reads every operand where it lies, with its own row stride: a window of a wider matrix
    (the conv kernel's strips, minialex/kernels/cpu/conv.py) costs no copy, and beta = 1 adds the
    product into c with no temporary. Without the loaded OpenBLAS (or for views BLAS cannot read)
    NumPy computes the same."""
    lib = blas()
    fn = None if lib is None else lib.gemm.get(c.dtype)
    lda, ldb, ldc = _leading(a), _leading(b), _leading(c)
    oa, ob = (a.T if trans_a else a), (b.T if trans_b else b)
    if fn is None or None in (lda, ldb, ldc) or not (a.dtype == b.dtype == c.dtype) or 0 in a.shape + b.shape:
        if beta == 0.0:
            np.matmul(oa, ob, out=c)
        else:
            if beta != 1.0:
                c *= beta
            c += oa @ ob
        return c
    m, k = oa.shape
    fn(ROW_MAJOR, TRANS if trans_a else NO_TRANS, TRANS if trans_b else NO_TRANS, m, ob.shape[1], k, 1.0,
       a.ctypes.data, lda, b.ctypes.data, ldb, beta, c.ctypes.data, ldc)
    return c


def gemm_workers():
    """Threads that may each run a GEMM: all of them when BLAS can be made single-threaded."""
    return threads() if blas() is not None else 1


# When a product is worth splitting over the threads. Handing work to a pool thread and collecting
# it costs 25-50 us here (parallel() of a no-op on two threads: median 35 us), and a thread's share
# should be worth ten or more of those: at least GEMM_MIN_FLOPS, about 0.4 ms at one core's sgemm
# rate (60-90 GFLOP/s on this machine). Smaller products run on the calling thread alone. Either way
# BLAS itself runs on one thread inside the kernels: OpenBLAS's own threads keep spinning after each
# call and took CPU from our workers (measured on the synthetic preset, batch 128, 2 threads: 346 ms
# of CPU per step with OpenBLAS threads, 213 ms without).
GEMM_MIN_FLOPS = 32e6


def gemm_split(n_items, flops):
    """How many GEMM workers share ``n_items`` pieces of a product of ``flops`` (the rule above)."""
    return max(1, min(gemm_workers(), n_items, int(flops // max(1, GEMM_MIN_FLOPS))))


def run_gemm_workers(work, n, flops=None):
    """work(start, stop, tid) over range(n), on as many GEMM workers as ``flops`` is worth
    (gemm_split; all of them when flops is None), each with a one-thread BLAS."""
    workers = min(gemm_workers(), n) if flops is None else gemm_split(n, flops)
    with single_threaded_blas():
        if workers <= 1:
            work(0, n, 0)
        else:
            parallel(work, n, workers)


# ---------------------------------------------------------------------------------------
# Buffers reused from step to step
# ---------------------------------------------------------------------------------------
# A kernel is a pure function of its arguments, but allocating its large scratch arrays afresh on
# every call costs page faults (up to 0.1 s a step for one 150 MB array). So a caller that runs
# the same op again and again, a layer (minialex/nn/module.py), runs it inside
# ``with workspace(self):``, and the kernel's ``buffer(ws, key, ...)`` calls then hand back the
# arrays kept for that owner. Outside a workspace every buffer is a fresh array.
_buffers = weakref.WeakKeyDictionary()  # owner (a layer) -> {key: array}
_buffers_lock = threading.Lock()
_workspace = contextvars.ContextVar("minialex_workspace", default=None)


class workspace:
    """``with workspace(owner):`` kernels called inside keep their scratch arrays for ``owner``
    (any object that can be weakly referenced; None: fresh arrays)."""

    __slots__ = ("owner", "token")

    def __init__(self, owner):
        self.owner = owner

    def __enter__(self):
        self.token = enter_workspace(self.owner)

    def __exit__(self, *exc):
        leave_workspace(self.token)


def enter_workspace(owner):
    """What ``with workspace(owner):`` does on entry, for a caller on the hot path (a layer enters
    one twice a step); returns the token for ``leave_workspace``."""
    return _workspace.set(owner)


def leave_workspace(token):
    _workspace.reset(token)


def current_workspace():
    """The owner of the ``workspace`` this thread is in, or None. A kernel reads it once on the
    calling thread and passes it to its worker threads (a context does not cross threads)."""
    return _workspace.get()


def buffer(owner, key, shape, dtype, zero=False):
    """An array kept for ``owner`` under ``key`` and reused while shape and dtype match; a fresh
    one when owner is None."""
    if owner is None:
        return np.zeros(shape, dtype=dtype) if zero else np.empty(shape, dtype=dtype)
    with _buffers_lock:
        store = _buffers.setdefault(owner, {})
    buf = store.get(key)
    if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
        buf = np.empty(shape, dtype=dtype)
        store[key] = buf
    if zero:
        buf.fill(0)
    return buf


# ---------------------------------------------------------------------------------------
# Memory: keep freed large blocks instead of returning them to the kernel
# ---------------------------------------------------------------------------------------
# glibc serves every allocation above 32 MB (most activations here) with a fresh mmap and
# unmaps it on free, so each step page-faults and zero-fills ~2 GB of new pages. Measured
# in the full step that is 0.1-0.16 s for a single 91 MB array (lrn2's output) and 0.4 s per
# step in all (4.40 -> 4.00 s), while peak RSS rose only 2330 -> 2388 MiB: the step's
# allocations repeat, so the kept heap is reused. MINIALEX_KEEP_MALLOC=1 leaves glibc alone.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameter numbers (malloc.h)


def retain_freed_memory():
    """mallopt(M_MMAP_MAX, 0) and a 2 GB M_TRIM_THRESHOLD: large arrays come from the heap and
    freed ones stay mapped for the next step. Returns whether it applied (False off glibc).

    This changes how the whole process allocates memory, and freed memory is no
    longer returned to the operating system, so a library must not do it behind
    its user's back: importing minialex never calls it, no layer or kernel does
    (tests/kernels/test_runtime.py checks), and only the training command line
    (minialex/train/cli.py) and the benchmark call it, for NumPy runs.
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
