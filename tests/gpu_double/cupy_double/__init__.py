"""cupy_double: a TEST DOUBLE for CuPy, backed by NumPy, that counts what code asks of a GPU.

It is not CuPy and runs nothing on a GPU. Inside ``with install(n_devices) as ledger:`` it IS the
cupy backend of minialex (through ``minialex.backend.use_cupy_module``), with ``n_devices``
pretend GPUs, so the library's CuPy code path runs on the CPU and every request a real GPU would
see is counted in the Ledger (ledger.py): kernel launches, host syncs, wrong-device operations,
cross-device transfers and whether each was ordered, NumPy functions applied to device arrays,
host-to-device copies and whether they came from pinned memory, streams created.

One concept per file:

* ledger.py     the Ledger and the counting;
* streams.py    devices, streams, events, pinned memory; the current device and stream PER THREAD;
* ndarray.py    the device array and its memory pointer (the ordered cross-device copy);
* functions.py  the module-level API: creation, transfers, ufuncs, matmul, ..., random;
* kernels.py    ElementwiseKernel: CuPy's type and shape rules, computed from the kernel's own
                CUDA source by tests/cuda_on_host/host_kernel.py (HostKernel), or by minialex's
                NumPy twins only where that helper cannot be imported (``kernels.COMPUTED_BY``);
* nccl.py       the NCCL stand-in (``install(..., nccl=True)``).

It is held to the real CuPy: the names, parameters and type rules it offers are CuPy 14's, and
tests/gpu_double/test_conformance.py checks every call minialex makes into it against the real
``cupy`` package (which imports without a GPU).
"""

import contextlib
import sys
import types

import numpy as np

from . import kernels, ledger, streams
from . import nccl as _nccl
from .functions import (UFUNCS, Generator, arange, array, asarray, ascontiguousarray, asnumpy, concatenate, copyto,
                        empty, empty_like, full, full_like, get_array_module, matmul, ones, ones_like, random,
                        tensordot, ufunc, where, zeros, zeros_like)
from .kernels import ElementwiseKernel
from .ledger import Ledger
from .ndarray import MemoryPointer, ndarray
from .streams import CUDARuntimeError, current_device, current_stream

from . import functions as _functions

for _name in UFUNCS + ("abs", "mod"):
    globals()[_name] = getattr(_functions, _name)

# dtypes and constants, as CuPy re-exports NumPy's
float16, float32, float64 = np.float16, np.float32, np.float64
int8, int16, int32, int64 = np.int8, np.int16, np.int32, np.int64
uint8, uint16, uint32, uint64, bool_ = np.uint8, np.uint16, np.uint32, np.uint64, np.bool_
dtype = np.dtype
newaxis, inf, nan, pi = np.newaxis, np.inf, np.nan, np.pi
__version__ = "cupy_double (a test double, not CuPy)"

cuda = types.SimpleNamespace(
    Device=streams.Device, Event=streams.Event, Stream=streams.Stream, runtime=streams.runtime,
    get_current_stream=streams.get_current_stream, get_device_id=streams.get_device_id,
    alloc_pinned_memory=streams.alloc_pinned_memory, PinnedMemoryPointer=streams.PinnedMemoryPointer,
    MemoryPointer=MemoryPointer,
)  # cupy.cuda; ``cuda.nccl`` only with install(..., nccl=True)


@contextlib.contextmanager
def install(n_devices=2, nccl=False):
    """Within this context ``minialex.backend.get_backend("cupy")`` is this package, with
    ``n_devices`` pretend GPUs (and the NCCL stand-in as ``cuda.nccl`` when ``nccl``); yields the
    Ledger."""
    from minialex import backend

    state = streams.install_state(n_devices)
    if nccl:
        cuda.nccl = _nccl
    try:
        with backend.use_cupy_module(sys.modules[__name__]):
            yield state.ledger
    finally:
        vars(cuda).pop("nccl", None)
        streams.uninstall_state()


__all__ = ["install", "Ledger", "ndarray", "ElementwiseKernel", "cuda", "random", "ufunc", "current_device",
           "current_stream", "CUDARuntimeError", "MemoryPointer", "Generator", "kernels", "ledger", "streams",
           "arange", "array", "asarray", "ascontiguousarray", "asnumpy", "concatenate", "copyto", "empty",
           "empty_like", "full", "full_like", "get_array_module", "matmul", "ones", "ones_like", "tensordot",
           "where", "zeros", "zeros_like"]
