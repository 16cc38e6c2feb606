"""How the CUDA kernels of this folder are built and launched (docs/gpu.md).

Every kernel is a ``cupy.ElementwiseKernel`` with one thread per OUTPUT element that GATHERS its
inputs (``raw`` arrays indexed by hand), so no two threads write the same address: no atomics,
and results are bitwise equal from run to run. The dtype placeholder ``T`` makes each kernel
work for float32 and float64 (CuPy compiles one variant per dtype, on first use).

Beside each kernel, in the same file, is its NumPy twin: the same index arithmetic for every
output element at once (``i = np.arange(size)`` stands for the thread index; a loop a thread
runs a data-dependent number of times runs for the largest count, with a mask). The public
functions run the kernel on a CuPy array and the twin on a NumPy array, so the GPU code path
of every layer is exercised on machines without a GPU (tests/kernels/test_cuda_twins.py),
and tests/kernels/test_cuda.py compares kernel and twin on a GPU.

Importing this folder does not import CuPy; a kernel is compiled on its first launch.
"""

from ... import backend

_KERNELS = {}  # name -> cupy.ElementwiseKernel, filled on first use


def kernel(spec):
    """The compiled ElementwiseKernel of ``spec`` = (in_params, out_params, body, name)."""
    name = spec[3]
    k = _KERNELS.get(name)
    if k is None:
        cp = backend.get_backend("cupy")  # imports CuPy; BackendError with a hint if unusable
        k = cp.ElementwiseKernel(*spec)
        _KERNELS[name] = k
    return k


def on_gpu(x):
    """True for a CuPy array (run the kernel), False for a NumPy one (run the twin)."""
    return backend.is_cupy_array(x)


def check_float(x, what):
    if x.dtype.kind != "f" or x.dtype.itemsize not in (4, 8):
        raise TypeError(f"minialex.kernels.cuda.{what}: float32 or float64 expected, got {x.dtype}")


def out_size(size, kernel_size, stride, padding):
    return (size + 2 * padding - kernel_size) // stride + 1


def unravel_plane(i, h, w):
    """(n*C + c, row, col) of flat NCHW indices i, as each CUDA thread derives them from its id."""
    return i // (h * w), (i // w) % h, i % w


def covering(p, stride, kernel_size, count, xp):
    """The kernel-offset loop of the gathers, for all threads at once: yield (valid, k, o) for
    ``for (k = p % stride; k < kernel && k <= p; k += stride) { o = (p - k) / stride;
    if (o >= count) continue; ... }``, one step of the loop per yield."""
    k = p % stride
    for _ in range(-(-kernel_size // stride)):  # the most iterations any thread runs
        live = (k < kernel_size) & (k <= p)
        o = xp.where(live, (p - k) // stride, 0)
        yield live & (o < count), k, o
        k = k + stride
