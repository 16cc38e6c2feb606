"""The array backend: NumPy on the CPU, CuPy on NVIDIA GPUs, chosen by name.

Every layer is written once against ``xp``, the array module of its input
(``xp = get_array_module(x)``), so the same lines run on both. CuPy is
optional: importing minialex never imports it; asking for it does.
How to add a CuPy-only kernel is explained in docs/backend.md.
"""

import collections
import contextlib
import os

import numpy as np

BACKENDS = ("numpy", "cupy")
CUPY_INSTALL_HINT = 'pip install "minialex[cuda12]"  (or "minialex[cuda13]" for CUDA 13)'


class BackendError(RuntimeError):
    """The requested backend or device cannot be used on this machine."""


_cupy = None  # the cupy module once it has passed the check of _import_cupy
_cupy_error = None  # the BackendError of a failed check: raised again without retrying


def _one_line(exc, limit=240):
    """The first non-empty line of an exception's message, with its type, shortened."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cuda_major(cupy):
    """The CUDA major version CuPy was built for (12, 13, ...), or None if it cannot say."""
    try:
        return int(cupy.cuda.runtime.runtimeGetVersion()) // 1000
    except Exception:
        return None


def _toolkit_hint(cupy):
    major = _cuda_major(cupy)
    if major in (12, 13):
        return (f'pip install "minialex[cuda{major}]" (CuPy with its [ctk] extra, which brings NVRTC '
                f"and the CUDA headers), or install a CUDA {major} toolkit and set CUDA_PATH")
    return f"{CUPY_INSTALL_HINT}, which brings NVRTC and the CUDA headers with CuPy"


def _check_kernel(cupy):
    """Compile and run one tiny ElementwiseKernel on the current GPU; raise if the result is wrong.

    Counting devices needs only the driver; the first real kernel also needs NVRTC and the CUDA
    headers (CuPy compiles every kernel at run time), and a driver recent enough for them.
    """
    twice_plus_one = cupy.ElementwiseKernel("T x", "T y", "y = x * 2 + 1", "minialex_backend_check")
    got = twice_plus_one(cupy.arange(4, dtype=cupy.float32)).get().tolist()
    if got != [1.0, 3.0, 5.0, 7.0]:
        raise RuntimeError(f"the check kernel returned {got} instead of [1.0, 3.0, 5.0, 7.0]")


def nvidia_driver_present():
    """Whether the NVIDIA driver's library (libcuda, nvcuda.dll on Windows) can be loaded: without
    it CuPy reports cudaErrorInsufficientDriver, which would wrongly suggest updating a driver."""
    import ctypes
    import ctypes.util

    for name in ("nvcuda.dll",) if os.name == "nt" else ("libcuda.so.1", "libcuda.so"):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return ctypes.util.find_library("cuda") is not None


def _check_cupy():
    """The cupy module after checking that it imports, sees a GPU, and compiles and runs a kernel;
    BackendError, in one line that says what to install, at the first step that fails."""
    try:
        import cupy
    except ImportError as exc:
        raise BackendError(
            f"the cupy backend needs CuPy, which is not installed ({_one_line(exc)}). "
            f"Install it with: {CUPY_INSTALL_HINT}"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError when there is no driver or no device
        what = _one_line(exc)
        if not nvidia_driver_present():  # CuPy says "insufficient driver" when there is none at all
            raise BackendError(f"CuPy is installed but no NVIDIA driver was found on this machine ({what}): "
                               "use --backend numpy, or run on a machine with an NVIDIA GPU and its driver") from None
        if "insufficient" in what.lower():  # the driver is older than CuPy's CUDA
            advice = (f"update the NVIDIA driver, or install the CuPy of the driver's CUDA version "
                      f"({CUPY_INSTALL_HINT})")
        else:
            advice = "use --backend numpy, or install the NVIDIA driver on a machine with an NVIDIA GPU"
        raise BackendError(f"CuPy is installed but cannot reach a CUDA GPU ({what}): {advice}") from None
    if count == 0:
        raise BackendError("CuPy is installed but this machine has no CUDA GPU; use --backend numpy")
    try:
        _check_kernel(cupy)
    except Exception as exc:  # CompileException (no headers), RuntimeError/OSError (no NVRTC), driver errors
        raise BackendError(
            f"CuPy {getattr(cupy, '__version__', '?')} sees {count} GPU(s) but cannot compile and run "
            f"a CUDA kernel ({_one_line(exc)}); it needs NVRTC and the CUDA headers: {_toolkit_hint(cupy)}"
        ) from None
    return cupy


def _import_cupy():
    """Import CuPy and check that it can compile and run a kernel on a GPU; raise BackendError if not.
    The check runs once per process; its failure is kept and raised again."""
    global _cupy, _cupy_error
    if _cupy is not None:
        return _cupy
    if _cupy_error is not None:
        raise _cupy_error
    try:
        _cupy = _check_cupy()
    except BackendError as exc:
        _cupy_error = exc
        raise
    return _cupy


@contextlib.contextmanager
def use_cupy_module(module):
    """Within this context the cupy backend is ``module`` instead of the checked CuPy: a stand-in
    with CuPy's API, such as the test double of tests/gpu_double/ that runs the CuPy code path on
    the CPU and counts what it asks of a GPU. Contexts nest; the previous module comes back on exit."""
    global _cupy
    previous = _cupy
    _cupy = module
    try:
        yield module
    finally:
        _cupy = previous


def cupy_available():
    """True when CuPy imports, sees at least one GPU and runs a kernel there. Never raises."""
    return cupy_unavailable_reason() is None


def cupy_unavailable_reason():
    """None when the cupy backend works here, else the one-line reason (the BackendError's text)."""
    try:
        _import_cupy()
    except BackendError as exc:
        return str(exc)
    return None


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


def device_of(x):
    """The device context of array ``x``: work inside it runs where ``x`` lives (a no-op on NumPy)."""
    if is_cupy_array(x):
        return x.device
    return contextlib.nullcontext()


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
    into the other. A CuPy array on another GPU goes through ``transfer``.
    """
    if xp is np:
        arr = to_numpy(x)
        return arr.copy() if copy and arr is x else arr
    if is_cupy_array(x) and device_id is not None and x.device.id != int(device_id):
        return transfer(x, device_id)
    with device(xp, device_id):
        if copy:
            return xp.array(x, copy=True)
        return xp.asarray(x)


_in_flight = collections.deque()  # (event after a copy, the source it reads): kept until the copy is done


def transfer(x, device_id):
    """A copy of the CuPy array ``x`` on GPU ``device_id``: every cross-device copy goes through here.

    CUDA orders work within one device's stream but nothing between two devices' streams,
    so the copy is ordered by events (docs/gpu.md, "Transfers between devices"):

    1. on the source device, after the work that wrote ``x`` (and after making it contiguous),
       record an event;
    2. on the destination device, the current stream waits for that event, then copies;
    3. the source array stays referenced until an event recorded after the copy says it is
       done, so its memory cannot be freed and reused on the source while the copy reads it.

    Nothing here waits on the host: events are queried, never synchronised. On the same
    device it is a plain copy on that device's stream.
    """
    cp = _cupy
    src, dst = x.device.id, int(device_id)
    if src == dst:
        with cp.cuda.Device(dst):
            return cp.array(x, copy=True)
    with cp.cuda.Device(src):
        x = cp.ascontiguousarray(x)  # a column slice becomes one block, on the source's stream
        written = cp.cuda.Event()
        written.record()
    with cp.cuda.Device(dst):
        stream = cp.cuda.get_current_stream()
        stream.wait_event(written)
        out = cp.empty(x.shape, dtype=x.dtype)
        out.data.copy_from_device_async(x.data, x.nbytes, stream)
        copied = cp.cuda.Event()
        copied.record(stream)
    _in_flight.append((copied, x))
    while _in_flight and _in_flight[0][0].done:  # cudaEventQuery: no wait
        _in_flight.popleft()
    return out


class Uploader:
    """Copies batches from the host to one GPU through pinned buffers on a stream of their own.

    A copy from ordinary (pageable) host memory blocks the host and runs in line with the
    step; from page-locked (pinned) memory, on a side stream, it runs while the GPU is still
    busy with the step before. Each call ``upload(batch)`` (NumPy, any shape) returns the
    batch on the GPU, and the current stream waits for its copy before any kernel reads it.

    The device buffers and pinned buffers are reused in ``slots`` turns. A device slot is
    refilled only after an event recorded on the compute stream when the next batch was
    handed over, i.e. after the step that read it was queued; so the arrays returned must
    not be kept beyond the step they feed (the trainer does not). A pinned slot is refilled
    once its last copy is done; in the rare case it is not yet, the host waits for it.
    docs/gpu.md, "Feeding the GPU".
    """

    def __init__(self, xp, device_id, slots=3):
        self.xp, self.device_id, self.slots = xp, device_id, slots
        self.turn = 0
        self.host, self.dev = [None] * slots, [None] * slots  # pinned NumPy views, device arrays
        self.copied, self.released = [None] * slots, [None] * slots  # events per slot
        with device(xp, device_id):
            self.stream = xp.cuda.Stream(non_blocking=True)

    def upload(self, batch):
        xp, slot = self.xp, self.turn % self.slots
        batch = np.ascontiguousarray(batch)
        with device(xp, self.device_id):
            compute = xp.cuda.get_current_stream()
            previous = (self.turn - 1) % self.slots
            if self.turn:  # the step that read the previous batch is queued now: its slot frees after it
                self.released[previous] = xp.cuda.Event()
                self.released[previous].record(compute)
            if self.copied[slot] is not None and not self.copied[slot].done:
                self.copied[slot].synchronize()  # the pinned buffer is still being read (rare)
            if self.host[slot] is None or self.host[slot].nbytes < batch.nbytes or self.dev[slot].shape != batch.shape \
                    or self.dev[slot].dtype != batch.dtype:
                memory = xp.cuda.alloc_pinned_memory(batch.nbytes)
                self.host[slot] = np.frombuffer(memory, batch.dtype, batch.size).reshape(batch.shape)
                with self.stream:
                    self.dev[slot] = xp.empty(batch.shape, dtype=batch.dtype)
            np.copyto(self.host[slot], batch)
            if self.released[slot] is not None:
                self.stream.wait_event(self.released[slot])  # the step that read this slot is done
            self.dev[slot].set(self.host[slot], stream=self.stream)
            self.copied[slot] = xp.cuda.Event()
            self.copied[slot].record(self.stream)
            compute.wait_event(self.copied[slot])  # kernels of this step read it after the copy
        self.turn += 1
        return self.dev[slot]


def default_rng(xp, seed):
    """A seeded random Generator of the backend (NumPy's PCG64 or CuPy's XORWOW)."""
    if xp is np:
        return np.random.default_rng(seed)
    return xp.random.default_rng(seed)


def synchronize(xp):
    """Wait for queued GPU work (for timing and benchmarks only); a no-op on NumPy."""
    if xp is not np:
        xp.cuda.get_current_stream().synchronize()
