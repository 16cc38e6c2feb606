"""How the CUDA kernels of this folder are built and launched (docs/gpu.md).

Every kernel is a ``cupy.ElementwiseKernel`` with one thread per OUTPUT element that GATHERS its
inputs (``raw`` arrays indexed by hand), so no two threads write the same address: no atomics,
and results are bitwise equal from run to run. The dtype placeholder ``T`` makes each kernel
work for float32 and float64 (CuPy compiles one variant per dtype, on first use).

Beside each kernel, in the same file, is its NumPy twin: the same index arithmetic for every
output element at once (``i = np.arange(size)`` stands for the thread index; a loop a thread
runs a data-dependent number of times runs for the largest count, with a mask), registered
under the kernel's name with ``@twin(SPEC)``. A twin takes the kernel's parameters by name (a
dict) and writes its outputs, as the kernel does.

The functions of this folder take CuPy arrays and launch kernels; handed a NumPy array they
raise, and never fall back to a twin. Only inside ``with twins():``, which the tests enter by
name, does ``kernel(spec)`` give the twin and do these functions take NumPy arrays: that runs
each op's whole CUDA implementation, its index arithmetic included, on machines without a GPU
(tests/ops/). ``launched_on_host(launcher)`` is the general form: the tests also run each
kernel's own CUDA source on the host that way (tests/cuda_on_host/), and on a GPU
tests/ops/ and tests/kernels/test_cuda.py run the kernels themselves.

Importing this folder does not import CuPy; a kernel is compiled on its first launch.
"""

import contextlib
import contextvars

import numpy as np

from ... import backend

_KERNELS = {}  # (cupy module, kernel name) -> cupy.ElementwiseKernel, filled on first use
TWINS = {}  # kernel name -> its twin: fn(params: {name: NumPy array or scalar}), writes the outputs
_launcher = contextvars.ContextVar("minialex_cuda_launcher", default=None)  # spec -> callable, on NumPy


def twin(spec):
    """Register the decorated function as the NumPy twin of the kernel ``spec``."""
    def register(fn):
        TWINS[spec[3]] = fn
        return fn
    return register


@contextlib.contextmanager
def launched_on_host(launcher):
    """Inside, the CUDA implementations take NumPy arrays, and ``kernel(spec)`` is
    ``launcher(spec)``: a callable with the ElementwiseKernel's calling convention that computes
    on the host. ``twins()`` is this with the twins; the tests also run each kernel's own CUDA
    source this way (tests/cuda_on_host/)."""
    token = _launcher.set(launcher)
    try:
        yield
    finally:
        _launcher.reset(token)


def twins():
    """Inside, the CUDA implementations take NumPy arrays and run every kernel's twin."""
    return launched_on_host(TwinKernel)


def param_names(params):
    """The names in a kernel's parameter list: ``"raw T x, int64 H"`` -> ["x", "H"]."""
    return [p.split()[-1] for p in params.split(",") if p.strip()]


class TwinKernel:
    """Called as the ElementwiseKernel of ``spec`` is (inputs, then outputs), on NumPy arrays."""

    def __init__(self, spec):
        self.name = spec[3]
        self.inputs, self.outputs = param_names(spec[0]), param_names(spec[1])

    def __call__(self, *args):
        names = self.inputs + self.outputs
        if len(args) != len(names):
            raise TypeError(f"{self.name}: {len(names)} arguments expected ({', '.join(names)}), got {len(args)}")
        TWINS[self.name](dict(zip(names, args)))
        outs = args[len(self.inputs):]
        return outs[0] if len(outs) == 1 else outs


def kernel(spec):
    """The compiled ElementwiseKernel of ``spec`` = (in_params, out_params, body, name); inside
    ``twins()``, its NumPy twin (inside ``launched_on_host(launcher)``, ``launcher(spec)``)."""
    launcher = _launcher.get()
    if launcher is not None:
        return launcher(spec)
    cp = backend.get_backend("cupy")  # imports CuPy; BackendError with a hint if unusable
    k = _KERNELS.get((cp, spec[3]))
    if k is None:  # per CuPy module: a stand-in's kernel (backend.use_cupy_module) is never the real one's
        k = _KERNELS[(cp, spec[3])] = cp.ElementwiseKernel(*spec)
    return k


def require_gpu(x, what):
    """TypeError unless x is a CuPy array (a NumPy array inside ``twins()``)."""
    if backend.is_cupy_array(x) or (_launcher.get() is not None and isinstance(x, np.ndarray)):
        return
    raise TypeError(f"minialex.kernels.cuda.{what} takes CuPy arrays, got {type(x).__module__}.{type(x).__name__} "
                    "(its NumPy twin runs only inside minialex.kernels.cuda.elementwise.twins(), "
                    "or launched_on_host())")


def check_float(x, what):
    """TypeError unless x is a float32 or float64 CuPy array (NumPy inside ``twins()``)."""
    require_gpu(x, what)
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


def is_kernel_spec(value):
    """True for a spec of this folder's shape: a tuple (in_params, out_params, body, name) of four
    strings whose name is a C identifier and whose body is not empty."""
    return (isinstance(value, tuple) and len(value) == 4 and all(isinstance(s, str) for s in value)
            and value[3].isidentifier() and bool(value[2].strip()))


def all_kernel_specs():
    """Every kernel spec defined in the modules of this folder, as {"module.ATTRIBUTE": spec}.

    Found by scanning the module-level values of each module for tuples of the spec shape
    (``is_kernel_spec``), so a kernel added to any file here is listed without being registered.
    A spec that one module imports from another is listed once, under the module whose source
    assigns it. Used by the NVRTC compile checks (tests/kernels/test_nvrtc.py). Imports the
    modules, never CuPy. Raises ValueError when two different specs share a kernel name
    (``kernel()`` caches compiled kernels by name, so one would silently run as the other).
    """
    import importlib
    import pkgutil
    import re

    package = importlib.import_module(__name__.rsplit(".", 1)[0])
    by_name = {}  # kernel name -> ("module.ATTRIBUTE", spec)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        try:
            with open(module.__file__, encoding="utf-8") as f:
                source = f.read()
        except (OSError, TypeError):
            source = ""
        for attr, value in vars(module).items():
            if not is_kernel_spec(value):
                continue
            where, name = f"{info.name}.{attr}", value[3]
            if name not in by_name:
                by_name[name] = (where, value)
            elif by_name[name][1] != value:
                raise ValueError(f"two kernel specs are named {name!r}: {by_name[name][0]} and {where}")
            elif re.search(rf"^{attr}\s*=", source, re.M):
                by_name[name] = (where, value)  # the module that defines it, not one that imports it
    return dict(sorted(by_name.values()))
