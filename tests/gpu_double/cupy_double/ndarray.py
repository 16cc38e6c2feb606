"""The double's device array (``cupy.ndarray``): a NumPy array on a pretend device, and its
``data`` (``cupy.cuda.MemoryPointer``) with the ordered cross-device copy.

What costs what, as on a GPU: views (basic slicing, a reshape that needs no copy, transpose)
launch nothing; a copy, cast, fill, reduction, fancy index or elementwise operation launches one
kernel; every read by the host (``float()``, ``bool()``, ``item()``, ``get()``, a boolean mask)
is a sync. As in CuPy, the array is not hashable, ``&``, ``|``, ``^`` and ``~`` are bitwise (so
logical only on bool arrays), ``//``, ``%``, ``<<`` and ``>>`` exist, a NumPy array is not
accepted as an operand (CuPy raises "Unsupported type"), it has no ``__index__``, and
``get(stream=None, order='C', out=None, blocking=True)`` takes CuPy's arguments in CuPy's order.
"""

import numpy as np

from . import ledger, streams


def unwrap(x):
    """The NumPy array inside a double array (recursively in lists and tuples)."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, (list, tuple)):
        return type(x)(unwrap(v) for v in x)
    return x


def wrap(a, dev=None):
    """A NumPy result as a double array on ``dev`` (default: the current device)."""
    if isinstance(a, np.ndarray):
        return ndarray._from_numpy(a, streams.current_device() if dev is None else dev)
    return a


def refuse_host_arrays(what, *args):
    """CuPy's kernels take device arrays and scalars only: a NumPy array is a TypeError there."""
    for a in args:
        if isinstance(a, np.ndarray):
            raise TypeError(f"Unsupported type {type(a)} (in {what}: CuPy does not copy host arrays implicitly)")


class MemoryPointer:
    """``ndarray.data``: the array's device memory."""

    _cupy_name = "cupy.cuda.MemoryPointer"

    def __init__(self, arr):
        self._arr = arr
        streams.state().by_data_ptr[self.ptr] = arr

    @property
    def ptr(self):
        return int(self._arr._a.ctypes.data)

    @property
    def device_id(self):
        return self._arr._dev

    def copy_from_device_async(self, src, size, stream=None):
        """The ordered cross-device copy: checked against what ``stream`` has waited for."""
        if not isinstance(src, MemoryPointer):
            raise TypeError(f"Argument 'src' has incorrect type (expected cupy.cuda.memory.MemoryPointer, "
                            f"got {type(src).__name__})")
        size = int(size)
        dst, srca = self._arr, src._arr
        stream = streams.resolve(stream)
        if srca._dev != dst._dev:
            if not ledger.ordered_after_last_write(stream, srca):
                ledger.current().unordered.append(
                    f"copy device {srca._dev} -> {dst._dev}: the destination stream has not waited "
                    f"for the source's last write")
            ledger.current().transfers.append((srca._dev, dst._dev, size))
        np.copyto(dst._a.reshape(-1).view(np.uint8)[:size], srca._a.reshape(-1).view(np.uint8)[:size])
        ledger.launch("copy", stream=stream)
        ledger.written(dst, stream=stream)

    def copy_from_host_async(self, mem, size, stream=None):
        size = int(size)
        stream = streams.resolve(stream)
        ledger.current().host_to_device.append((size, streams.is_pinned(mem)))
        np.copyto(self._arr._a.reshape(-1).view(np.uint8)[:size], mem.reshape(-1).view(np.uint8)[:size])
        ledger.launch("h2d", stream=stream)
        ledger.written(self._arr, stream=stream)


def array_from_ptr(ptr):
    """The array whose ``.data.ptr`` is ``ptr`` (the last one whose ``.data`` was taken), as a library
    handed a device pointer (NCCL) finds its memory."""
    try:
        return streams.state().by_data_ptr[int(ptr)]
    except KeyError:
        raise streams.CUDARuntimeError(f"cudaErrorInvalidValue: no device array at {int(ptr):#x}") from None


def _check_order(order, allowed="CFA"):
    if not isinstance(order, str) or len(order) != 1 or order.upper() not in allowed:
        raise ValueError(f"unsupported order: {order!r}")
    return order.upper()


class ndarray:  # noqa: N801  (CuPy's name)
    """A NumPy array that lives on a pretend device."""

    _cupy_name = "cupy.ndarray"
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        """As ``cupy.ndarray(shape, dtype)``: a new (uninitialised) array on the current device."""
        if memptr is not None or strides is not None:
            raise NotImplementedError("the CuPy double makes arrays only from a shape and a dtype")
        self._init(np.empty(shape, dtype=dtype, order=_check_order(order, "CF")), streams.current_device())

    @classmethod
    def _from_numpy(cls, a, dev):
        self = cls.__new__(cls)
        self._init(a, dev)
        return self

    def _init(self, a, dev):
        self._a, self._dev, self._written_at, self._owner = a, dev, -1, None

    def _view(self, a):
        v = ndarray._from_numpy(a, self._dev)
        v._owner = self._base_owner()
        return v

    def _base_owner(self):
        return self if self._owner is None else self._owner

    # -- attributes ---------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    device = property(lambda self: streams.Device(self._dev))
    data = property(lambda self: MemoryPointer(self))

    @property
    def T(self):  # noqa: N802
        return self._view(self._a.T)

    __hash__ = None  # CuPy's ndarray is not hashable

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __repr__(self):
        return f"cupy_double.ndarray(device={self._dev}, shape={self.shape}, dtype={self.dtype})"

    # -- views: no launch ------------------------------------------------------------------
    def reshape(self, *shape, order="C", copy=None):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        out = self._a.reshape(shape, order=_check_order(order))
        is_view = out.size == 0 or np.shares_memory(out, self._a)
        if copy or not is_view:
            if copy is False:
                raise ValueError("Unable to avoid copy while reshaping.")
            ledger.check_inputs("reshape", self)
            ledger.launch("copy (reshape)")
            return wrap(out.copy() if is_view else out, self._dev)
        return self._view(out)

    def transpose(self, *axes):
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = () if axes[0] is None else tuple(axes[0])
        return self._view(self._a.transpose(*axes))

    def ravel(self, order="C"):
        return self.reshape(-1, order=order)

    def __getitem__(self, slices):
        k = unwrap(slices)
        ledger.check_inputs("getitem", *(slices if isinstance(slices, tuple) else (slices,)))
        if _is_bool_mask(k):
            ledger.sync("boolean-mask getitem (CuPy reads the count back)")
            ledger.launch("getitem (mask)")
            return wrap(self._a[k], self._dev)
        out = self._a[k]
        if _is_fancy(k):
            ledger.launch("getitem (fancy)")
            return wrap(np.asarray(out), self._dev)
        return self._view(out)

    def __setitem__(self, slices, value):
        k = unwrap(slices)
        ledger.check_inputs("setitem", self, value, *(slices if isinstance(slices, tuple) else (slices,)))
        if _is_bool_mask(k):
            ledger.sync("boolean-mask setitem (CuPy reads the count back)")
        ledger.launch("setitem")
        self._a[k] = unwrap(value)
        ledger.written(self)

    # -- copies, fills, casts: one launch --------------------------------------------------
    def copy(self, order="C"):
        ledger.check_inputs("copy", self)
        ledger.launch("copy")
        return wrap(self._a.copy(order=_check_order(order, "CFAK")))

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if subok is not None:
            raise TypeError("subok is not supported yet")
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        ledger.check_inputs("astype", self)
        ledger.launch("astype")
        return wrap(self._a.astype(dtype, order=_check_order(order, "CFAK"), casting=casting or "unsafe"))

    def fill(self, value):
        ledger.check_inputs("fill", self)
        refuse_host_arrays("fill", value)
        ledger.launch("fill")
        self._a.fill(unwrap(value))
        ledger.written(self)

    # -- reductions ------------------------------------------------------------------------
    def _reduce(self, name, out=None, **kw):
        ledger.check_inputs(name, self, out)
        ledger.launch(name)
        kw = {k: unwrap(v) for k, v in kw.items()}
        if out is not None:
            getattr(self._a, name)(out=out._a, **kw)
            ledger.written(out)
            return out
        return wrap(np.asarray(getattr(self._a, name)(**kw)))

    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        return self._reduce("sum", axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
        return self._reduce("mean", axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def max(self, axis=None, out=None, keepdims=False):
        return self._reduce("max", axis=axis, out=out, keepdims=keepdims)

    def min(self, axis=None, out=None, keepdims=False):
        return self._reduce("min", axis=axis, out=out, keepdims=keepdims)

    def any(self, axis=None, out=None, keepdims=False):
        return self._reduce("any", axis=axis, out=out, keepdims=keepdims)

    def all(self, axis=None, out=None, keepdims=False):
        return self._reduce("all", axis=axis, out=out, keepdims=keepdims)

    def argmax(self, axis=None, out=None, dtype=None, keepdims=False):
        result = self._reduce("argmax", axis=axis, out=out, keepdims=keepdims)
        return result if dtype is None else result.astype(dtype, copy=False)

    def argsort(self, axis=-1, kind=None):
        return self._reduce("argsort", axis=axis, kind=kind)

    # -- reads by the host: syncs ----------------------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        """Device -> host copy. With ``blocking=False`` it is queued on ``stream`` and the host
        does not wait (CuPy's asynchronous get); otherwise the host waits: a sync."""
        order = _check_order(order)
        stream = streams.resolve(stream)
        if out is not None:
            if not isinstance(out, np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            if out.dtype != self.dtype:
                raise TypeError(f"{out.dtype} array cannot be obtained from {self.dtype} array")
            if out.shape != self.shape:
                raise ValueError(f"Shape mismatch. Expected shape: {self.shape}, actual shape: {out.shape}")
        if blocking:
            ledger.sync("ndarray.get")
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order="F" if order == "F" else "C", copy=True)

    def set(self, arr, stream=None):
        """Host -> device copy; asynchronous (no sync) only from pinned memory on a given stream."""
        if not isinstance(arr, np.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if arr.dtype != self.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if arr.shape != self.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        pinned = streams.is_pinned(arr)
        ledger.current().host_to_device.append((arr.nbytes, pinned and stream is not None))
        if stream is None or not pinned:
            ledger.sync("ndarray.set from pageable memory or without a stream (the host waits)")
        target = streams.current_stream(self._dev) if stream is None else streams.resolve(stream)
        ledger.launch("h2d", stream=target)
        self._a[...] = arr
        ledger.written(self, stream=target)

    def item(self):
        ledger.sync("ndarray.item")
        return self._a.item()

    def tolist(self):
        ledger.sync("ndarray.tolist")
        return self._a.tolist()

    def __float__(self):
        ledger.sync("float(ndarray)")
        return float(self._a)

    def __int__(self):
        ledger.sync("int(ndarray)")
        return int(self._a)

    def __bool__(self):
        ledger.sync("bool(ndarray)")
        return bool(self._a)

    def __array__(self, dtype=None, copy=None):
        ledger.current().numpy_on_device.append("implicit conversion to a NumPy array")
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
                        "construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        ledger.current().numpy_on_device.append(f"numpy.{ufunc.__name__}.{method} on a device array")
        out = kwargs.pop("out", None)
        outs = () if out is None else (out if isinstance(out, tuple) else (out,))
        return apply_ufunc(ufunc, inputs, outs, method=method, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        ledger.current().numpy_on_device.append(f"numpy.{func.__name__} on a device array")
        return wrap(func(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()}))

    # -- operators: one launch each (the binary ones are CuPy's ufuncs) ----------------------
    def __matmul__(self, other):
        from .functions import matmul

        return matmul(self, other)

    def __rmatmul__(self, other):
        from .functions import matmul

        return matmul(other, self)

    def __neg__(self):
        return apply_ufunc(np.negative, (self,))

    def __pos__(self):
        return apply_ufunc(np.positive, (self,))

    def __abs__(self):
        return apply_ufunc(np.absolute, (self,))

    def __invert__(self):
        return apply_ufunc(np.invert, (self,))

    def __divmod__(self, other):
        return apply_ufunc(np.divmod, (self, other))

    def __rdivmod__(self, other):
        return apply_ufunc(np.divmod, (other, self))


def _binary_operators(name, ufunc, reflected=True, inplace=True):
    def forward(self, other):
        return apply_ufunc(ufunc, (self, other))

    def backward(self, other):
        return apply_ufunc(ufunc, (other, self))

    def in_place(self, other):
        return apply_ufunc(ufunc, (self, other), (self,))

    forward.__name__ = f"__{name}__"
    setattr(ndarray, forward.__name__, forward)
    if reflected:
        backward.__name__ = f"__r{name}__"
        setattr(ndarray, backward.__name__, backward)
    if inplace:
        in_place.__name__ = f"__i{name}__"
        setattr(ndarray, in_place.__name__, in_place)


for _name, _ufunc in (("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("truediv", np.true_divide),
                      ("floordiv", np.floor_divide), ("mod", np.remainder), ("pow", np.power),
                      ("and", np.bitwise_and), ("or", np.bitwise_or), ("xor", np.bitwise_xor),
                      ("lshift", np.left_shift), ("rshift", np.right_shift)):
    _binary_operators(_name, _ufunc)
for _name, _ufunc in (("lt", np.less), ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal),
                      ("eq", np.equal), ("ne", np.not_equal)):
    _binary_operators(_name, _ufunc, reflected=False, inplace=False)
ndarray.__hash__ = None  # defining __eq__ keeps it so, as in CuPy


def _is_bool_mask(k):
    keys = k if isinstance(k, tuple) else (k,)
    return any(isinstance(v, np.ndarray) and v.dtype == np.bool_ for v in keys)


def _is_fancy(k):
    keys = k if isinstance(k, tuple) else (k,)
    return any(isinstance(v, (np.ndarray, list)) for v in keys)


OPERATOR_UFUNCS = {  # ndarray operator -> the CuPy ufunc it runs (for the conformance check)
    "add": "add", "sub": "subtract", "mul": "multiply", "truediv": "true_divide", "floordiv": "floor_divide",
    "mod": "remainder", "pow": "power", "and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor",
    "lshift": "left_shift", "rshift": "right_shift", "lt": "less", "le": "less_equal", "gt": "greater",
    "ge": "greater_equal", "eq": "equal", "ne": "not_equal", "neg": "negative", "pos": "positive",
    "abs": "absolute", "invert": "invert", "divmod": "divmod",
}


def apply_ufunc(ufunc, inputs, outs=(), method="__call__", **kwargs):
    """One elementwise kernel: NumPy's ``ufunc`` on the inputs (device arrays and scalars), into
    ``outs`` when given (then written, and returned), else into new arrays on the current device."""
    outs = tuple(o for o in outs if o is not None)
    refuse_host_arrays(f"cupy.{ufunc.__name__}", *inputs)
    for o in outs:
        if not isinstance(o, ndarray):
            raise TypeError("Output arguments type must be cupy.ndarray")
    ledger.check_inputs(ufunc.__name__, *inputs, *outs)
    kw = {k: unwrap(v) for k, v in kwargs.items() if v is not None}
    what = ufunc.__name__ + ("" if method == "__call__" else f".{method}")
    if outs:  # (CuPy picks the loop before it launches: a type error launches nothing)
        getattr(ufunc, method)(*unwrap(tuple(inputs)), out=tuple(o._a for o in outs), **kw)
        ledger.launch(what)
        ledger.written(*outs)
        return outs[0] if len(outs) == 1 else outs
    result = getattr(ufunc, method)(*unwrap(tuple(inputs)), **kw)
    ledger.launch(what)
    if isinstance(result, tuple):
        return tuple(wrap(np.asarray(r)) for r in result)
    return wrap(np.asarray(result))
