"""AccountingCupy: a TEST DOUBLE for CuPy, backed by NumPy, that counts what code asks of a GPU.

It is not CuPy and computes nothing on a GPU. It stands in for the ``cupy`` module inside
``minialex.backend`` (see ``install``), so that the library's CuPy code path runs on the CPU
and every request a real GPU would see is counted:

* **launches**: each elementwise operation, reduction, copy, fill, GEMM, fancy-index and
  ElementwiseKernel call counts one (a batched matmul whose operand is broadcast counts 7: CuPy
  runs it as a pointer-array batched GEMM plus six helper kernels). Views (basic slicing,
  reshape of a contiguous array, transpose) count none, as on a GPU.
* **syncs**: every read of device data by the host (``float()``, ``bool()``, ``item()``,
  ``get()``, ``asnumpy``, a boolean-mask index, ``Stream.synchronize``...), which stalls the host
  until the GPU is done.
* **wrong-device operations**: an operation with an input on another device than the current
  one (CuPy would raise "peer access is unavailable" or read across the bus).
* **transfers**: copies between devices. The only accepted form is the ordered protocol of
  ``minialex.backend.transfer``: ``dst.data.copy_from_device_async(src.data, nbytes, stream)``
  where ``stream`` (on the destination) has waited on an event recorded on the source device
  after the source array was last written. Any other cross-device copy is counted as unordered.
* **numpy-on-device**: a NumPy function applied to a device array (``np.exp(x)``), which CuPy
  would route or refuse; minialex code must call ``xp`` functions.
* **host-to-device** copies, and whether their source was pinned host memory.

ElementwiseKernels are recognised by name and computed with minialex's NumPy twins, so the
results are right and a whole training step runs. Kernel sources are not compiled here
(tests/kernels/test_nvrtc.py does that).
"""

import contextlib
import re
from collections import Counter

import numpy as np

# ---------------------------------------------------------------------------------------
# the ledger
# ---------------------------------------------------------------------------------------


class Ledger:
    def __init__(self):
        self.reset()

    def reset(self):
        self.launches = Counter()  # what -> count
        self.syncs = []  # descriptions
        self.wrong_device = []
        self.unordered = []
        self.numpy_on_device = []
        self.transfers = []  # (src, dst, nbytes)
        self.host_to_device = []  # (nbytes, pinned)

    @property
    def total_launches(self):
        return sum(self.launches.values())

    def summary(self):
        return (f"launches {self.total_launches}, syncs {len(self.syncs)}, transfers {len(self.transfers)}, "
                f"wrong-device ops {len(self.wrong_device)}, unordered copies {len(self.unordered)}, "
                f"numpy-on-device {len(self.numpy_on_device)}, host-to-device {len(self.host_to_device)} "
                f"({sum(1 for _, pinned in self.host_to_device if pinned)} pinned)")


class _State:
    def __init__(self, n_devices):
        self.n_devices = n_devices
        self.current = [0]
        self.ledger = Ledger()
        self.null = {d: Stream.__new__(Stream) for d in range(n_devices)}  # each device's default stream
        for d, st in self.null.items():
            st.device_id, st.ops, st.waited = d, 0, {}
        self.stream_stack = {d: [] for d in range(n_devices)}

    @property
    def device(self):
        return self.current[-1]

    @property
    def streams(self):
        """device -> its current stream."""
        return {d: (self.stream_stack[d][-1] if self.stream_stack[d] else self.null[d])
                for d in range(self.n_devices)}


_S = None  # the one _State while installed


def _launch(what, n=1):
    _S.ledger.launches[what] += n
    _S.streams[_S.device].ops += n


def _sync(what):
    _S.ledger.syncs.append(what)


def _check_inputs(what, *arrays):
    for a in arrays:
        if isinstance(a, ndarray) and a._dev != _S.device:
            _S.ledger.wrong_device.append(f"{what}: input on device {a._dev}, current device {_S.device}")


def _written(*arrays):
    """Record that these arrays were written by work on their device's stream, now."""
    for a in arrays:
        if isinstance(a, ndarray):
            a._base_owner()._written_at = _S.streams[a._dev].ops


def _un(x):
    """The NumPy array inside a fake array (recursively in lists and tuples)."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, (list, tuple)):
        return type(x)(_un(v) for v in x)
    return x


def _wrap(a, dev=None):
    if isinstance(a, np.ndarray):
        return ndarray(a, _S.device if dev is None else dev)
    return a


# ---------------------------------------------------------------------------------------
# streams, events, devices
# ---------------------------------------------------------------------------------------


class Stream:
    def __init__(self, non_blocking=False, **kwargs):
        self.device_id, self.ops, self.waited = _S.device, 0, {}

    def __enter__(self):
        _S.stream_stack[self.device_id].append(self)
        return self

    def __exit__(self, *exc):
        _S.stream_stack[self.device_id].pop()

    def wait_event(self, event):
        key = event.device_id
        self.waited[key] = max(self.waited.get(key, -1), event.ops)
        self.waited_events = getattr(self, "waited_events", []) + [event]

    def synchronize(self):
        _sync(f"Stream.synchronize on device {self.device_id}")

    def record(self, event=None):
        event = Event() if event is None else event
        event.record(self)
        return event


class Event:
    def __init__(self, *args, **kwargs):
        self.device_id, self.ops = None, -1

    def record(self, stream=None):
        stream = _S.streams[_S.device] if stream is None else stream
        self.device_id, self.ops, self.stream = stream.device_id, stream.ops, stream

    @property
    def done(self):  # cudaEventQuery: answers without waiting
        return True

    def query(self):
        return True

    def synchronize(self):
        _sync("Event.synchronize")


class Device:
    def __init__(self, device=None):
        self.id = _S.device if device is None else int(device)
        if not 0 <= self.id < _S.n_devices:
            raise RuntimeError(f"AccountingCupy: device {self.id} does not exist ({_S.n_devices} devices)")

    def __enter__(self):
        _S.current.append(self.id)
        return self

    def __exit__(self, *exc):
        _S.current.pop()

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def synchronize(self):
        _sync(f"Device({self.id}).synchronize")

    def __repr__(self):
        return f"<Device {self.id}>"


class _Runtime:
    @staticmethod
    def getDeviceCount():
        return _S.n_devices

    @staticmethod
    def runtimeGetVersion():
        return 12080


class _Cuda:
    Device, Event, Stream = Device, Event, Stream
    runtime = _Runtime()

    @staticmethod
    def get_current_stream():
        return _S.streams[_S.device]

    @staticmethod
    def alloc_pinned_memory(nbytes):
        return PinnedMemory(nbytes)


class PinnedMemory(bytearray):
    """Page-locked host memory (here: a bytearray that says it is pinned)."""

    def __init__(self, nbytes):
        super().__init__(max(int(nbytes), 1))


def is_pinned(a):
    base = a
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return isinstance(base, PinnedMemory) or isinstance(getattr(base, "obj", None), PinnedMemory)


# ---------------------------------------------------------------------------------------
# the device array
# ---------------------------------------------------------------------------------------


class _MemPtr:
    def __init__(self, arr):
        self.arr = arr

    @property
    def ptr(self):
        return self.arr._a.ctypes.data

    def copy_from_device_async(self, src, nbytes, stream=None):
        """The ordered cross-device copy: checked against what ``stream`` has waited for."""
        dst, srca = self.arr, src.arr
        stream = _S.streams[_S.device] if stream is None else stream
        if srca._dev != dst._dev:
            last_write = srca._base_owner()._written_at
            if stream.waited.get(srca._dev, -1) < last_write:
                _S.ledger.unordered.append(
                    f"copy device {srca._dev} -> {dst._dev}: the destination stream has not waited "
                    f"for the source's last write")
            _S.ledger.transfers.append((srca._dev, dst._dev, int(nbytes)))
        np.copyto(dst._a.reshape(-1).view(np.uint8)[:nbytes], srca._a.reshape(-1).view(np.uint8)[:nbytes])
        stream.ops += 1
        _S.ledger.launches["copy"] += 1
        _written(dst)

    def copy_from_host_async(self, host, nbytes, stream=None):
        _S.ledger.host_to_device.append((int(nbytes), is_pinned(host)))
        np.copyto(self.arr._a.reshape(-1).view(np.uint8)[:nbytes], host.reshape(-1).view(np.uint8)[:nbytes])
        _S.ledger.launches["h2d"] += 1
        _written(self.arr)


class ndarray:  # noqa: N801  (CuPy's name)
    """A NumPy array that lives on a pretend device."""

    __array_priority__ = 100

    def __init__(self, a, dev):
        self._a, self._dev, self._written_at, self._owner = a, dev, -1, None

    def _view(self, a):
        v = ndarray(a, self._dev)
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
    device = property(lambda self: Device(self._dev))
    data = property(lambda self: _MemPtr(self))

    @property
    def T(self):  # noqa: N802
        return self._view(self._a.T)

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return f"AccountingCupy.ndarray(device={self._dev}, shape={self.shape}, dtype={self.dtype})"

    # -- views: no launch ------------------------------------------------------------------
    def reshape(self, *shape, **kw):
        out = self._a.reshape(*shape, **kw)
        if not np.shares_memory(out, self._a):
            _launch("copy (reshape)")
        return self._view(out)

    def transpose(self, *axes):
        return self._view(self._a.transpose(*axes))

    def ravel(self):
        return self.reshape(-1)

    def __getitem__(self, key):
        k = _un(key)
        _check_inputs("getitem", *(key if isinstance(key, tuple) else (key,)))
        if _is_bool_mask(k):
            _sync("boolean-mask getitem (CuPy reads the count back)")
            _launch("getitem (mask)")
            return _wrap(self._a[k], self._dev)
        out = self._a[k]
        if _is_fancy(k):
            _launch("getitem (fancy)")
            return _wrap(np.asarray(out), self._dev)
        return self._view(out)

    def __setitem__(self, key, value):
        k = _un(key)
        _check_inputs("setitem", self, value, *(key if isinstance(key, tuple) else (key,)))
        if _is_bool_mask(k):
            _sync("boolean-mask setitem (CuPy reads the count back)")
        _launch("setitem")
        self._a[k] = _un(value)
        _written(self)

    # -- copies, fills, casts: one launch --------------------------------------------------
    def copy(self, order="C"):
        _check_inputs("copy", self)
        _launch("copy")
        return _wrap(self._a.copy(order=order))

    def astype(self, dtype, copy=True, **kw):
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        _check_inputs("astype", self)
        _launch("astype")
        return _wrap(self._a.astype(dtype, **kw))

    def fill(self, value):
        _check_inputs("fill", self)
        _launch("fill")
        self._a.fill(value)
        _written(self)

    # -- reductions ------------------------------------------------------------------------
    def _reduce(self, name, *args, **kw):
        _check_inputs(name, self)
        _launch(name)
        kw = {k: _un(v) for k, v in kw.items()}
        return _wrap(np.asarray(getattr(self._a, name)(*args, **kw)))

    def sum(self, *a, **k):
        return self._reduce("sum", *a, **k)

    def max(self, *a, **k):
        return self._reduce("max", *a, **k)

    def min(self, *a, **k):
        return self._reduce("min", *a, **k)

    def mean(self, *a, **k):
        return self._reduce("mean", *a, **k)

    def any(self, *a, **k):
        return self._reduce("any", *a, **k)

    def all(self, *a, **k):
        return self._reduce("all", *a, **k)

    def argmax(self, *a, **k):
        return self._reduce("argmax", *a, **k)

    def argsort(self, *a, **k):
        return self._reduce("argsort", *a, **k)

    # -- reads by the host: syncs ----------------------------------------------------------
    def get(self, stream=None, out=None, blocking=True):
        _sync("ndarray.get")
        if out is not None:
            out[...] = self._a
            return out
        return self._a.copy()

    def set(self, host, stream=None):
        """Host -> device copy; asynchronous (no sync) only from pinned memory on a given stream."""
        pinned = is_pinned(host)
        _S.ledger.host_to_device.append((host.nbytes, pinned and stream is not None))
        if stream is None or not pinned:
            _sync("ndarray.set from pageable memory or without a stream (the host waits)")
        target = _S.streams[self._dev] if stream is None else stream
        target.ops += 1
        _S.ledger.launches["h2d"] += 1
        self._a[...] = host
        self._base_owner()._written_at = target.ops
        self._written_stream = target

    def item(self):
        _sync("ndarray.item")
        return self._a.item()

    def tolist(self):
        _sync("ndarray.tolist")
        return self._a.tolist()

    def __float__(self):
        _sync("float(ndarray)")
        return float(self._a)

    def __int__(self):
        _sync("int(ndarray)")
        return int(self._a)

    def __index__(self):
        _sync("index(ndarray)")
        return int(self._a)

    def __bool__(self):
        _sync("bool(ndarray)")
        return bool(self._a)

    def __array__(self, dtype=None, copy=None):
        _S.ledger.numpy_on_device.append("implicit conversion to a NumPy array")
        raise TypeError("AccountingCupy: implicit conversion to a NumPy array is not allowed "
                        "(as in CuPy); use .get() or cupy.asnumpy()")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _S.ledger.numpy_on_device.append(f"numpy.{ufunc.__name__}.{method} on a device array")
        return _ufunc(ufunc, method, *inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        _S.ledger.numpy_on_device.append(f"numpy.{func.__name__} on a device array")
        return _wrap(func(*_un(args), **{k: _un(v) for k, v in kwargs.items()}))

    # -- operators: one launch each ----------------------------------------------------------
    def _binary(self, ufunc, other, reflected=False, inplace=False):
        args = (other, self) if reflected else (self, other)
        if inplace:
            return _ufunc(ufunc, "__call__", *args, out=(self,))
        return _ufunc(ufunc, "__call__", *args)

    def __add__(self, o): return self._binary(np.add, o)  # noqa: E704
    def __radd__(self, o): return self._binary(np.add, o, True)  # noqa: E704
    def __iadd__(self, o): return self._binary(np.add, o, inplace=True)  # noqa: E704
    def __sub__(self, o): return self._binary(np.subtract, o)  # noqa: E704
    def __rsub__(self, o): return self._binary(np.subtract, o, True)  # noqa: E704
    def __isub__(self, o): return self._binary(np.subtract, o, inplace=True)  # noqa: E704
    def __mul__(self, o): return self._binary(np.multiply, o)  # noqa: E704
    def __rmul__(self, o): return self._binary(np.multiply, o, True)  # noqa: E704
    def __imul__(self, o): return self._binary(np.multiply, o, inplace=True)  # noqa: E704
    def __truediv__(self, o): return self._binary(np.true_divide, o)  # noqa: E704
    def __rtruediv__(self, o): return self._binary(np.true_divide, o, True)  # noqa: E704
    def __itruediv__(self, o): return self._binary(np.true_divide, o, inplace=True)  # noqa: E704
    def __pow__(self, o): return self._binary(np.power, o)  # noqa: E704
    def __matmul__(self, o): return matmul(self, o)  # noqa: E704
    def __rmatmul__(self, o): return matmul(o, self)  # noqa: E704
    def __gt__(self, o): return self._binary(np.greater, o)  # noqa: E704
    def __ge__(self, o): return self._binary(np.greater_equal, o)  # noqa: E704
    def __lt__(self, o): return self._binary(np.less, o)  # noqa: E704
    def __le__(self, o): return self._binary(np.less_equal, o)  # noqa: E704
    def __eq__(self, o): return self._binary(np.equal, o)  # noqa: E704
    def __ne__(self, o): return self._binary(np.not_equal, o)  # noqa: E704
    def __and__(self, o): return self._binary(np.logical_and, o)  # noqa: E704
    def __neg__(self): return _ufunc(np.negative, "__call__", self)  # noqa: E704
    def __abs__(self): return _ufunc(np.absolute, "__call__", self)  # noqa: E704
    __hash__ = object.__hash__


def _is_bool_mask(k):
    keys = k if isinstance(k, tuple) else (k,)
    return any(isinstance(v, np.ndarray) and v.dtype == np.bool_ for v in keys)


def _is_fancy(k):
    keys = k if isinstance(k, tuple) else (k,)
    return any(isinstance(v, (np.ndarray, list)) for v in keys)


def _ufunc(ufunc, method, *inputs, out=None, **kwargs):
    outs = () if out is None else (out if isinstance(out, tuple) else (out,))
    outs = tuple(o for o in outs if o is not None)
    _check_inputs(ufunc.__name__, *inputs, *outs)
    _launch(f"{ufunc.__name__}" + ("" if method == "__call__" else f".{method}"))
    kw = {k: _un(v) for k, v in kwargs.items()}
    if outs:
        getattr(ufunc, method)(*_un(inputs), out=tuple(_un(o) for o in outs), **kw)
        _written(*outs)
        return outs[0] if len(outs) == 1 else outs
    return _wrap(np.asarray(getattr(ufunc, method)(*_un(inputs), **kw)))


# ---------------------------------------------------------------------------------------
# module functions (xp.*)
# ---------------------------------------------------------------------------------------


def _to_device(x, dtype=None, copy=False):
    """asarray/array: same device -> as is (or a copy); host -> an H2D copy; another device ->
    a cross-device copy that orders nothing (counted as unordered)."""
    if isinstance(x, ndarray):
        if x._dev != _S.device:
            _S.ledger.unordered.append(f"asarray/array of a device-{x._dev} array on device {_S.device}")
            _S.ledger.transfers.append((x._dev, _S.device, x.nbytes))
            _launch("copy")
            return _wrap(np.array(x._a, dtype=dtype))
        if copy or (dtype is not None and np.dtype(dtype) != x.dtype):
            _launch("copy")
            return _wrap(np.array(x._a, dtype=dtype))
        return x
    a = np.array(x, dtype=dtype, copy=True)
    _S.ledger.host_to_device.append((a.nbytes, False))
    # CUDA: "for transfers from pageable host memory to device memory, a stream sync is
    # performed before the copy is initiated"
    _sync("asarray/array of host memory (pageable: the host waits for the stream)")
    _launch("h2d")
    return _wrap(a)


def asarray(x, dtype=None):
    return _to_device(x, dtype)


def array(x, dtype=None, copy=True):
    return _to_device(x, dtype, copy=copy)


def ascontiguousarray(x, dtype=None):
    if isinstance(x, ndarray) and x.flags.c_contiguous and (dtype is None or np.dtype(dtype) == x.dtype):
        return x
    if isinstance(x, ndarray):
        _check_inputs("ascontiguousarray", x)
        _launch("copy")
        return _wrap(np.ascontiguousarray(x._a, dtype=dtype))
    return _to_device(np.ascontiguousarray(x, dtype=dtype))


def asnumpy(x):
    if isinstance(x, ndarray):
        _sync("asnumpy")
        return x._a.copy()
    return np.asarray(x)


def _creator(fn, launches):
    def make(*args, **kwargs):
        if launches:
            _launch(fn.__name__)
        return _wrap(fn(*_un(args), **kwargs))
    make.__name__ = fn.__name__
    return make


empty = _creator(np.empty, 0)
empty_like = _creator(np.empty_like, 0)
zeros = _creator(np.zeros, 1)
zeros_like = _creator(np.zeros_like, 1)
ones = _creator(np.ones, 1)
ones_like = _creator(np.ones_like, 1)
full = _creator(np.full, 1)
full_like = _creator(np.full_like, 1)
arange = _creator(np.arange, 1)


def _elementwise(ufunc):
    def fn(*args, out=None, **kwargs):
        return _ufunc(ufunc, "__call__", *args, out=out, **kwargs)
    fn.__name__ = ufunc.__name__
    return fn


for _name in ("add", "subtract", "multiply", "divide", "true_divide", "maximum", "minimum", "exp", "log",
              "sqrt", "square", "reciprocal", "power", "equal", "greater", "negative", "absolute", "sign"):
    globals()[_name] = _elementwise(getattr(np, _name))


def where(cond, a, b):
    _check_inputs("where", cond, a, b)
    _launch("where")
    return _wrap(np.where(_un(cond), _un(a), _un(b)))


def copyto(dst, src, where=None):
    _check_inputs("copyto", dst, src, where)
    _launch("copyto")
    np.copyto(dst._a, _un(src), where=True if where is None else _un(where))
    _written(dst)


def concatenate(arrays, axis=0):
    _check_inputs("concatenate", *arrays)
    _launch("concatenate")
    return _wrap(np.concatenate(_un(list(arrays)), axis=axis))


def matmul(a, b, out=None):
    _check_inputs("matmul", a, b, out)
    au, bu = _un(a), _un(b)
    if au.ndim > 2 or bu.ndim > 2:
        broadcast = au.shape[:-2] != bu.shape[:-2]
        _launch("matmul (batched, broadcast)" if broadcast else "matmul (batched)", 7 if broadcast else 1)
    else:
        _launch("matmul")
    if out is not None:
        np.matmul(au, bu, out=out._a)
        _written(out)
        return out
    return _wrap(np.matmul(au, bu))


def tensordot(a, b, axes=2):
    _check_inputs("tensordot", a, b)
    # CuPy moves the contracted axes together; an operand that is not already laid out that way
    # is copied (one launch each), then one GEMM
    _launch("tensordot (gemm)")
    for x, ax in zip((a, b), axes if isinstance(axes, (list, tuple)) else ((), ())):
        moved = np.moveaxis(_un(x), list(ax), list(range(-len(ax), 0))) if x is a else \
            np.moveaxis(_un(x), list(ax), list(range(len(ax))))
        if not (moved.flags.c_contiguous or moved.flags.f_contiguous):
            _launch("tensordot (transpose copy)")
    return _wrap(np.tensordot(_un(a), _un(b), axes=axes))


def get_array_module(*arrays):
    import sys

    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in arrays) else np


# dtypes and constants, as CuPy re-exports them
float16, float32, float64 = np.float16, np.float32, np.float64
int8, int32, int64, uint8, uint32, uint64, bool_ = np.int8, np.int32, np.int64, np.uint8, np.uint32, np.uint64, np.bool_
dtype = np.dtype
cuda = _Cuda()
__version__ = "AccountingCupy (a test double, not CuPy)"


class _Random:
    class Generator:
        def __init__(self, seed):
            _launch("curand init (XORWOW states)")
            self._g = np.random.default_rng(int(seed))

        def random(self, size=None, dtype=np.float64):
            _launch("curand")
            return _wrap(self._g.random(size, dtype=dtype))

        def standard_normal(self, size=None, dtype=np.float64):
            _launch("curand")
            return _wrap(self._g.standard_normal(size, dtype=dtype))

    def default_rng(self, seed=None):
        return self.Generator(seed)


random = _Random()


# ---------------------------------------------------------------------------------------
# ElementwiseKernel: launched once, computed by the twin of the kernel with that name
# ---------------------------------------------------------------------------------------
def _twins():
    """minialex's registry of kernel twins (minialex/kernels/cuda/elementwise.py: TWINS), filled by
    importing the kernel modules: kernel name -> fn(params: {name: array or scalar})."""
    import importlib
    import pkgutil

    import minialex.kernels.cuda as package
    from minialex.kernels.cuda.elementwise import TWINS
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    return TWINS


class ElementwiseKernel:
    def __init__(self, in_params, out_params, operation, name="kernel", **kwargs):
        self.name = name
        self.in_names = [p.split()[-1] for p in in_params.split(",") if p.strip()]
        self.out_names = [p.split()[-1] for p in out_params.split(",") if p.strip()]
        if name not in _twins():
            raise NotImplementedError(f"AccountingCupy: no twin registered for kernel {name!r}")

    def __call__(self, *args):
        names = self.in_names + self.out_names
        if len(args) != len(names):
            raise TypeError(f"{self.name}: {len(names)} arguments expected ({', '.join(names)}), got {len(args)}")
        _check_inputs(self.name, *args)
        for a, n in zip(args, names):
            if isinstance(a, ndarray) and n in self.in_names and not a.flags.c_contiguous:
                raise ValueError(f"{self.name}: raw input {n} must be C-contiguous")
        _launch(f"kernel {self.name}")
        _twins()[self.name]({n: _un(a) for n, a in zip(names, args)})
        _written(*(a for a, n in zip(args, names) if n in self.out_names))
        return args[len(self.in_names)] if len(self.out_names) == 1 else args[len(self.in_names):]


# ---------------------------------------------------------------------------------------
# installing the double into minialex.backend
# ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def install(n_devices=2):
    """Within this context ``minialex.backend.get_backend("cupy")`` is this module, with
    ``n_devices`` pretend GPUs; yields the Ledger."""
    import sys

    from minialex import backend

    global _S
    module = sys.modules[__name__]
    _S = _State(n_devices)
    old = backend._cupy
    backend._cupy = module
    try:
        yield _S.ledger
    finally:
        backend._cupy = old
        _S = None


def kernel_names_in(source):
    return re.findall(r'"(minialex_\w+)"', source)
