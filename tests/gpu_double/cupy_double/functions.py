"""The double's module-level CuPy API: array creation, transfers between host and device, the
ufuncs (``cupy.exp``, ``cupy.add``, ...), ``where``, ``copyto``, ``concatenate``, ``matmul``,
``tensordot``, ``get_array_module`` and ``random``; each with CuPy's parameters, each counted
(one launch per kernel a GPU would run; a sync where the host waits).
"""

import sys

import numpy as np

from . import ledger, streams
from .ndarray import apply_ufunc, ndarray, refuse_host_arrays, unwrap, wrap

# ---------------------------------------------------------------------------------------
# ufuncs
# ---------------------------------------------------------------------------------------


class ufunc:  # noqa: N801  (CuPy's name)
    """A CuPy ufunc: ``f(*inputs[, *outputs], out=None, dtype=None, casting='same_kind')``."""

    _cupy_name = "cupy.ufunc"

    def __init__(self, np_ufunc):
        self._np = np_ufunc
        self.name = self.__name__ = "cupy_" + np_ufunc.__name__
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nin + np_ufunc.nout

    def __repr__(self):
        return f"<ufunc '{self.name}'>"

    def __call__(self, *args, out=None, dtype=None, casting="same_kind", **kwargs):
        if kwargs:
            raise TypeError(f"Wrong arguments {kwargs}")
        if not self.nin <= len(args) <= self.nargs:
            raise TypeError(f"Wrong number of arguments for {self.name!r}. It must be either {self.nin} or "
                            f"{self.nargs} (with outputs), but given {len(args)}.")
        inputs, outs = args[:self.nin], args[self.nin:]
        if out is not None:
            if outs:
                raise ValueError("Cannot specify 'out' as both a positional and keyword argument")
            if isinstance(out, tuple):
                if len(out) != self.nout:
                    raise ValueError("The 'out' tuple must have exactly one entry per ufunc output")
                outs = out
            else:
                if self.nout != 1:
                    raise ValueError("'out' must be a tuple of arrays")
                outs = (out,)
        return apply_ufunc(self._np, inputs, outs, dtype=dtype, casting=casting)


UFUNCS = ("add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "remainder", "power",
          "maximum", "minimum", "exp", "log", "sqrt", "square", "reciprocal", "negative", "positive", "absolute",
          "sign", "equal", "not_equal", "greater", "greater_equal", "less", "less_equal", "bitwise_and",
          "bitwise_or", "bitwise_xor", "invert", "left_shift", "right_shift", "logical_and", "logical_or",
          "logical_not")
for _name in UFUNCS:
    globals()[_name] = ufunc(getattr(np, _name))
abs = globals()["absolute"]  # noqa: A001  (cupy.abs is cupy.absolute)
mod = globals()["remainder"]

# ---------------------------------------------------------------------------------------
# creation: allocation launches nothing, a fill launches one kernel
# ---------------------------------------------------------------------------------------


def _new(fill, np_fn, *args, **kwargs):
    a = np_fn(*args, **kwargs)
    if fill:
        ledger.launch(np_fn.__name__)
    return wrap(a)


def _like(prototype, subok):
    if subok is not None:
        raise TypeError("subok is not supported yet")
    return unwrap(prototype)


def empty(shape, dtype=float, order="C"):
    return _new(False, np.empty, shape, dtype=dtype, order=order)


def zeros(shape, dtype=float, order="C"):
    return _new(True, np.zeros, shape, dtype=dtype, order=order)


def ones(shape, dtype=float, order="C"):
    return _new(True, np.ones, shape, dtype=dtype, order=order)


def full(shape, fill_value, dtype=None, order="C"):
    return _new(True, np.full, shape, unwrap(fill_value), dtype=dtype, order=order)


def empty_like(prototype, dtype=None, order="K", subok=None, shape=None):
    return _new(False, np.empty_like, _like(prototype, subok), dtype=dtype, order=order, shape=shape)


def zeros_like(a, dtype=None, order="K", subok=None, shape=None):
    return _new(True, np.zeros_like, _like(a, subok), dtype=dtype, order=order, shape=shape)


def ones_like(a, dtype=None, order="K", subok=None, shape=None):
    return _new(True, np.ones_like, _like(a, subok), dtype=dtype, order=order, shape=shape)


def full_like(a, fill_value, dtype=None, order="K", subok=None, shape=None):
    return _new(True, np.full_like, _like(a, subok), unwrap(fill_value), dtype=dtype, order=order, shape=shape)


def arange(start, stop=None, step=1, dtype=None):
    if stop is None:
        start, stop = 0, start
    return _new(True, np.arange, start, stop, step, dtype=dtype)


# ---------------------------------------------------------------------------------------
# between host and device
# ---------------------------------------------------------------------------------------


def _to_device(x, dtype=None, copy=None, order="K"):
    """asarray/array: same device -> as is (or a copy); host -> an H2D copy; another device ->
    a cross-device copy that orders nothing (counted as unordered)."""
    device = streams.current_device()
    if isinstance(x, ndarray):
        if x._dev != device:
            if copy is False:
                raise ValueError("Unable to avoid copy while creating an array as requested.")
            ledger.current().unordered.append(f"asarray/array of a device-{x._dev} array on device {device}")
            ledger.current().transfers.append((x._dev, device, x.nbytes))
            ledger.launch("copy")
            return wrap(np.array(x._a, dtype=dtype, order=order))
        if copy or (dtype is not None and np.dtype(dtype) != x.dtype):
            if copy is False:
                raise ValueError("Unable to avoid copy while creating an array as requested.")
            ledger.launch("copy")
            return wrap(np.array(x._a, dtype=dtype, order=order))
        return x
    if copy is False:
        raise ValueError("Unable to avoid copy while creating an array as requested.")
    a = np.array(x, dtype=dtype, copy=True, order=order)
    if a.dtype == object:
        raise ValueError("Unsupported dtype object")
    ledger.current().host_to_device.append((a.nbytes, False))
    # CUDA: "for transfers from pageable host memory to device memory, a stream sync is
    # performed before the copy is initiated"
    ledger.sync("asarray/array of host memory (pageable: the host waits for the stream)")
    ledger.launch("h2d")
    return wrap(a)


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    return _to_device(a, dtype, copy=copy, order="K" if order is None else order)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if ndmin:
        raise NotImplementedError("the CuPy double does not take ndmin")
    return _to_device(obj, dtype, copy=copy, order=order)


def ascontiguousarray(a, dtype=None):
    if isinstance(a, ndarray) and a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    if isinstance(a, ndarray):
        ledger.check_inputs("ascontiguousarray", a)
        ledger.launch("copy")
        return wrap(np.ascontiguousarray(a._a, dtype=dtype))
    return _to_device(np.ascontiguousarray(a, dtype=dtype))


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    if out is not None:
        out[...] = a
        return out
    return np.asarray(a, order=order)


# ---------------------------------------------------------------------------------------
# other routines: one launch each (where a GPU runs one kernel)
# ---------------------------------------------------------------------------------------


def where(condition, x=None, y=None):
    if x is None or y is None:
        raise NotImplementedError("the CuPy double has where(condition, x, y) only")
    refuse_host_arrays("cupy.where", condition, x, y)
    ledger.check_inputs("where", condition, x, y)
    ledger.launch("where")
    return wrap(np.where(unwrap(condition), unwrap(x), unwrap(y)))


def copyto(dst, src, casting="same_kind", where=None):
    if not isinstance(dst, ndarray):
        raise TypeError("dst must be a cupy.ndarray")
    refuse_host_arrays("cupy.copyto", src, where)
    ledger.check_inputs("copyto", dst, src, where)
    ledger.launch("copyto")
    np.copyto(dst._a, unwrap(src), casting=casting, where=True if where is None else unwrap(where))
    ledger.written(dst)


def concatenate(tup, axis=0, out=None, *, dtype=None, casting="same_kind"):
    arrays = list(tup)
    refuse_host_arrays("cupy.concatenate", *arrays)
    ledger.check_inputs("concatenate", *arrays, out)
    ledger.launch("concatenate")
    result = np.concatenate(unwrap(arrays), axis=axis, dtype=dtype, casting=casting)
    if out is not None:
        out._a[...] = result
        ledger.written(out)
        return out
    return wrap(result)


def matmul(*args, out=None, axes=None, axis=None, keepdims=False, casting="same_kind", dtype=None,
           signature=None, order="K"):
    """cupy.matmul (a gufunc: ``matmul(x1, x2, /, out=None, **kwargs)``): one GEMM launch; a batched
    one whose operand is broadcast counts 7 (CuPy's pointer-array batched GEMM and six helpers)."""
    if len(args) == 3 and out is None:
        args, out = args[:2], args[2]
    if len(args) != 2:
        raise TypeError(f"matmul takes 2 inputs, got {len(args)}")
    if axes is not None or axis is not None or keepdims or signature is not None:
        raise NotImplementedError("the CuPy double's matmul takes no axes, axis, keepdims or signature")
    a, b = args
    refuse_host_arrays("cupy.matmul", a, b)
    ledger.check_inputs("matmul", a, b, out)
    au, bu = unwrap(a), unwrap(b)
    if au.ndim > 2 or bu.ndim > 2:
        broadcast = au.shape[:-2] != bu.shape[:-2]
        ledger.launch("matmul (batched, broadcast)" if broadcast else "matmul (batched)", 7 if broadcast else 1)
    else:
        ledger.launch("matmul")
    if out is not None:
        np.matmul(au, bu, out=out._a, casting=casting, dtype=dtype)
        ledger.written(out)
        return out
    return wrap(np.matmul(au, bu, dtype=dtype, casting=casting))


def tensordot(a, b, axes=2):
    refuse_host_arrays("cupy.tensordot", a, b)
    ledger.check_inputs("tensordot", a, b)
    # CuPy moves the contracted axes together; an operand that is not already laid out that way
    # is copied (one launch each), then one GEMM
    ledger.launch("tensordot (gemm)")
    for x, ax in zip((a, b), axes if isinstance(axes, (list, tuple)) else ((), ())):
        moved = np.moveaxis(unwrap(x), list(ax), list(range(-len(ax), 0))) if x is a else \
            np.moveaxis(unwrap(x), list(ax), list(range(len(ax))))
        if not (moved.flags.c_contiguous or moved.flags.f_contiguous):
            ledger.launch("tensordot (transpose copy)")
    return wrap(np.tensordot(unwrap(a), unwrap(b), axes=axes))


def get_array_module(*args):
    """This package when an argument is one of its arrays, else NumPy."""
    return sys.modules[__package__] if any(isinstance(a, ndarray) for a in args) else np


# ---------------------------------------------------------------------------------------
# random
# ---------------------------------------------------------------------------------------


class Generator:
    """cupy.random.Generator (XORWOW states; here NumPy's PCG64): one launch per draw."""

    _cupy_name = "cupy.random.Generator"

    def __init__(self, seed):
        ledger.launch("curand init (XORWOW states)")
        self._g = np.random.default_rng(None if seed is None else int(seed))

    def random(self, size=None, dtype=np.float64, out=None):
        ledger.launch("curand")
        return self._fill(self._g.random(size, dtype=dtype), out)

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        ledger.launch("curand")
        return self._fill(self._g.standard_normal(size, dtype=dtype), out)

    @staticmethod
    def _fill(values, out):
        if out is None:
            return wrap(np.asarray(values))
        out._a[...] = values
        ledger.written(out)
        return out


class _Random:
    """cupy.random: the generator minialex asks for."""

    _cupy_name = "cupy.random"
    Generator = Generator

    @staticmethod
    def default_rng(seed=None):
        return Generator(seed)


random = _Random()
