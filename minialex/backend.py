"""The array backend: NumPy on the CPU, CuPy on NVIDIA GPUs, chosen by name.

Every layer is written once against ``xp``, the array module of its input
(``xp = get_array_module(x)``), so the same lines run on both. CuPy is
optional: importing minialex never imports it; asking for it does.
How to add a CuPy-only kernel is explained in docs/backend.md.
"""

import contextlib

import numpy as np

BACKENDS = ("numpy", "cupy")
CUPY_INSTALL_HINT = 'pip install "minialex[cuda12]"  (or "minialex[cuda13]" for CUDA 13)'


class BackendError(RuntimeError):
    """The requested backend or device cannot be used on this machine."""


_cupy = None  # the cupy module once it has been imported successfully


def _import_cupy():
    """Import CuPy and check that it can reach a GPU; raise BackendError if not."""
    global _cupy
    if _cupy is not None:
        return _cupy
    try:
        import cupy
    except ImportError as exc:
        raise BackendError(
            f"the cupy backend needs CuPy, which is not installed ({exc}). "
            f"Install it with: {CUPY_INSTALL_HINT}"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError when there is no driver or no device
        raise BackendError(
            f"CuPy is installed but cannot reach a CUDA GPU ({exc}). "
            "Use --backend numpy, or run on a machine with an NVIDIA GPU and driver."
        ) from None
    if count == 0:
        raise BackendError("CuPy is installed but this machine has no CUDA GPU; use the numpy backend")
    _cupy = cupy
    return cupy


def cupy_available():
    """True when CuPy imports and sees at least one GPU. Never raises."""
    try:
        _import_cupy()
    except BackendError:
        return False
    return True


def get_backend(name):
    """The array module for a backend name: ``numpy`` or ``cupy``."""
    if name in (None, "numpy", "np", "cpu"):
        return np
    if name in ("cupy", "cp", "cuda", "gpu"):
        return _import_cupy()
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def backend_name(xp):
    """``'numpy'`` or ``'cupy'`` for an array module."""
    return "numpy" if xp is np else "cupy"


def get_array_module(*arrays):
    """NumPy or CuPy, whichever owns the arrays (NumPy for plain Python values)."""
    if _cupy is not None:
        return _cupy.get_array_module(*arrays)
    # CuPy was never imported, so no array can be a CuPy array.
    return np


def is_cupy_array(x):
    return _cupy is not None and isinstance(x, _cupy.ndarray)


def device_count(xp):
    """Number of devices the backend can address (the CPU counts as one)."""
    if xp is np:
        return 1
    return xp.cuda.runtime.getDeviceCount()


def check_device(xp, device_id):
    """Raise BackendError naming the device when ``device_id`` does not exist."""
    if not isinstance(device_id, (int, np.integer)) or device_id < 0:
        raise BackendError(f"device id must be a non-negative integer, got {device_id!r}")
    if xp is np:
        # The CPU is one device; ids 0 and 1 only label the paper's two columns
        # so that the two-device code path runs (and is tested) without a GPU.
        if device_id > 1:
            raise BackendError(
                f"device {device_id} does not exist: the numpy backend runs on the CPU, where "
                "ids 0 and 1 only name the two columns"
            )
        return
    count = device_count(xp)
    if device_id >= count:
        raise BackendError(
            f"GPU {device_id} does not exist: this machine has {count} GPU(s), ids 0..{count - 1}"
        )


def device(xp, device_id):
    """Context in which new arrays and kernels go to ``device_id``; a no-op on NumPy."""
    if xp is np or device_id is None:
        return contextlib.nullcontext()
    return xp.cuda.Device(int(device_id))


def to_numpy(x):
    """A NumPy array with the values of ``x`` (copies device arrays to the host)."""
    if is_cupy_array(x):
        return x.get()
    return np.asarray(x)


def to_backend(x, xp, device_id=None, copy=False):
    """``x`` as an array of backend ``xp``, on ``device_id`` for CuPy.

    ``copy=True`` always returns a new array. The two-device model relies on it:
    with ids (0, 0) a CuPy "transfer" to the same GPU would otherwise hand back
    the very same array, and a later in-place update on one side would leak
    into the other.
    """
    if xp is np:
        arr = to_numpy(x)
        return arr.copy() if copy and arr is x else arr
    with device(xp, device_id):
        if copy:
            return xp.array(x, copy=True)
        return xp.asarray(x)


def default_rng(xp, seed):
    """A seeded random Generator of the backend (NumPy's PCG64 or CuPy's XORWOW)."""
    if xp is np:
        return np.random.default_rng(seed)
    return xp.random.default_rng(seed)


def synchronize(xp):
    """Wait for queued GPU work (for timing and benchmarks only); a no-op on NumPy."""
    if xp is not np:
        xp.cuda.get_current_stream().synchronize()
