"""Shared fixtures of the per-op tests: every implementation of an op, run through one interface.

An op (minialex/nn/dispatch.py: ``Op``) has a readable reference and may have a CPU kernel and
a CUDA kernel, all the same pair of functions. ``implementations(OP)`` parametrises a test over
every one of them that exists for OP:

    reference   the readable pair (minialex/nn/functional/), on NumPy
    cpu         the CPU kernels (minialex/kernels/cpu/), on NumPy
    cuda-twin   the CUDA implementation with every kernel replaced by its NumPy twin
                (minialex/kernels/cuda/elementwise.py: twins()), on NumPy: its index
                arithmetic and the code around the launches, on a machine without a GPU
    cuda-source the CUDA implementation with every kernel's own CUDA source compiled with g++
                and run on the CPU, one loop iteration per thread, raw accesses bounds-checked,
                the threads in three orders (tests/cuda_on_host/host_kernel.py: HostKernel,
                inside launched_on_host(HostKernel)), on NumPy
    cuda        the CUDA implementation on CuPy arrays (``gpu`` marker: skipped without a GPU)

and the ``impl`` fixture is then an ``Implementation``: ``impl.forward(*args)`` and
``impl.backward(*args, **kwargs)`` move array arguments to the implementation's backend, run
its pair there (inside ``twins()`` for cuda-twin, ``launched_on_host(HostKernel)`` for
cuda-source) and return the results as NumPy arrays; a cache stays where it was made.
Tolerances per dtype are in ``TOL``.
"""

import contextlib

import numpy as np
import pytest

from minialex import backend
from minialex.kernels.cuda.elementwise import launched_on_host, twins
from minialex.nn.dispatch import CPU, CUDA, REFERENCE

from ..cuda_on_host.host_kernel import HostKernel

KINDS = {REFERENCE: REFERENCE, CPU: CPU, "cuda-twin": CUDA, "cuda-source": CUDA, "cuda": CUDA}

# Comparisons of an implementation with the reference or a naive loop (float32 sums in another
# order differ by a few ulps of the largest term; the GPU may fuse multiply-adds).
TOL = {np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12), np.dtype(np.float32): dict(rtol=2e-4, atol=2e-5)}


def implementations(op):
    """pytest parameters, one per implementation of ``op`` (cuda-twin, cuda-source and cuda where it
    has CUDA)."""
    params = []
    for name, kind in KINDS.items():
        if kind not in op.modules:
            continue
        marks = [pytest.mark.gpu] if name == "cuda" else []
        params.append(pytest.param((op, name), marks=marks, id=name))
    return params


class Implementation:
    """One implementation of one op, called as the tests call it (see the module docstring)."""

    def __init__(self, op, name):
        self.op, self.name = op, name
        self.pair = op.pair(KINDS[name])
        self.xp = backend.get_backend("cupy") if name == "cuda" else np

    def context(self):
        if self.name == "cuda-twin":
            return twins()
        if self.name == "cuda-source":
            return launched_on_host(HostKernel)
        return contextlib.nullcontext()

    def to(self, a):
        """An argument on this implementation's backend (arrays moved, everything else as is)."""
        if isinstance(a, np.ndarray) and self.name == "cuda":
            return self.xp.asarray(a)
        if isinstance(a, (list, tuple)) and not hasattr(a, "_fields") and any(isinstance(v, np.ndarray) for v in a):
            return type(a)(self.to(v) for v in a)
        return a

    def get(self, a):
        """A result as NumPy (tuples element by element; caches and None as they are)."""
        if backend.is_cupy_array(a):
            return backend.to_numpy(a)
        if isinstance(a, tuple) and not hasattr(a, "_fields"):
            return tuple(self.get(v) for v in a)
        return a

    def forward(self, *args):
        """(y as NumPy, cache)."""
        with self.context():
            y, cache = self.pair.forward(*(self.to(a) for a in args))
        return self.get(y), cache

    def backward(self, *args, **kwargs):
        with self.context():
            out = self.pair.backward(*(self.to(a) for a in args), **{k: self.to(v) for k, v in kwargs.items()})
        return self.get(out)

    def call(self, *args):
        """A single-function op (SGD's update, dropout's hash): run it; arrays updated in place
        on a GPU are the caller's to copy back."""
        with self.context():
            return self.pair.forward(*args)

    def __repr__(self):
        return f"Implementation({self.op.name}, {self.name})"


@pytest.fixture
def impl(request):
    op, name = request.param
    return Implementation(op, name)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# -- the CPU kernels' threads and chunk sizes (they matter only to the "cpu" implementation) --------
@pytest.fixture(params=["1", "2", "3"], ids=lambda t: f"threads{t}")
def threads(request, monkeypatch):
    """The kernels on 1-3 threads. The size rules (runtime.gemm_split, runtime.parallel_workers)
    would keep arrays this small on one thread, so here any work is worth a thread: the threaded
    paths are the ones compared (tests/kernels/test_size_rules.py tests the rules themselves)."""
    from minialex.kernels.cpu import runtime

    monkeypatch.setenv("MINIALEX_NUM_THREADS", request.param)
    monkeypatch.setattr(runtime, "GEMM_MIN_FLOPS", 1)
    monkeypatch.setattr(runtime, "PARALLEL_MIN_PASSES", 1)
    return int(request.param)


@pytest.fixture(params=["small", "default"])
def chunking(request, monkeypatch):
    """'small': chunks of 1-2 samples and blocks of a few positions, so batches split unevenly."""
    from minialex.kernels.cpu import conv as cpu_conv
    from minialex.kernels.cpu import lrn as cpu_lrn
    from minialex.kernels.cpu import pool as cpu_pool

    if request.param == "small":
        monkeypatch.setattr(cpu_conv, "CACHE_BYTES", 1)  # one sample per conv chunk
        monkeypatch.setattr(cpu_conv, "GEMM_MIN_COLUMNS", 1)
        monkeypatch.setattr(cpu_pool, "BLOCK_BYTES", 64)
        monkeypatch.setattr(cpu_lrn, "BLOCK_BYTES", 64)
        monkeypatch.setattr(cpu_lrn, "RUN_BYTES", 64)  # runs of 8 positions, the last partial
    return request.param


@pytest.fixture(params=["default", "small"])
def relu_pieces(request, monkeypatch):
    """'small': ReLU jobs of 4096 elements, so every test array is split up (threaded: see threads)."""
    from minialex.kernels.cpu import relu as cpu_relu

    if request.param == "small":
        monkeypatch.setattr(cpu_relu, "STEP", 4096)
    return request.param


@pytest.fixture(params=["default", "small"])
def tanh_pieces(request, monkeypatch):
    """'small': pieces of 4096 elements (tanh's and sigmoid's CPU kernels share them), so every
    test array is split up, unevenly (threaded: see the threads fixture)."""
    from minialex.kernels.cpu import tanh as cpu_tanh

    if request.param == "small":
        monkeypatch.setattr(cpu_tanh, "STEP", 4096)
    return request.param
