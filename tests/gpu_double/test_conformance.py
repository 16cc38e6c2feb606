"""The CuPy double held to the real CuPy: every call minialex makes into the double, checked
against the real ``cupy`` package (cupy-cuda12x imports, parses kernels and decides types without
a GPU; only what touches a device raises there).

How: ``recorded`` runs the double's scenarios (the step and transfer tests, the data-parallel
steps with NCCL and through the host, the training script; the step on the CUDA kernels and on
the references) with every public callable of the double wrapped, and records each call and
attribute read whose caller is minialex's own code (``minialex.*``): the CuPy path, the arguments
and the result. Then, per distinct call:

* the name exists at the same path in CuPy (``cupy.cuda.Stream.wait_event``, ...; attributes that
  CuPy sets per instance, such as ``Stream.ptr``, from the class's documented attributes);
* the arguments bind to the real signature: ``inspect.signature(real).bind(...)`` where CuPy's
  callable has an introspectable signature; for ufuncs, the number of inputs and outputs
  (``nin``/``nout``) and the keywords (out, dtype, casting); for Cython methods without one,
  the table ``CYTHON_SIGNATURES`` below, maintained by hand from CuPy 14.2's source and docs,
  and checked against the signature Cython embeds in each docstring wherever it embeds one
  (the operators have none: their table rows are CuPy's operator protocol). C-typed parameters
  (``int``, ``size_t``, ``intptr_t``, ``bytes``, ``MemoryPointer``) are checked for type too;
* the type decisions minialex relies on follow CuPy's rules: each ElementwiseKernel's placeholder
  types as CuPy's own ``_decide_params_type`` decides them for the same argument dtypes, and the
  result dtype of each ufunc and operator call as CuPy's loop selection (with NumPy 2's weak
  Python scalars) picks it.

Where ``cupy`` is not importable these skip, saying so; with MINIALEX_REQUIRE_CUPY_API=1 (CI) a
missing CuPy, or CuPy's NCCL bindings missing (nvidia-nccl-cu12), is a failure instead.
"""

import contextlib
import importlib
import importlib.util
import inspect
import io
import os
import sys
import threading
import types
from collections import namedtuple

import numpy as np
import pytest

from minialex.kernels.cuda import elementwise

from . import cupy_double
from .cupy_double import functions as d_functions
from .cupy_double import kernels as d_kernels
from .cupy_double import nccl as d_nccl
from .cupy_double import streams as d_streams
from ..train.conftest import tiny_folder  # noqa: F401  (a fixture)

d_ndarray = sys.modules[cupy_double.__name__ + ".ndarray"]  # the module (the package's ``ndarray`` is the class)
REQUIRE = os.environ.get("MINIALEX_REQUIRE_CUPY_API", "") not in ("", "0")
INSTALL = 'pip install "cupy-cuda12x>=14,<15" "nvidia-nccl-cu12>=2.18.1,<3"'


def _missing(why):
    if REQUIRE:
        pytest.fail(f"MINIALEX_REQUIRE_CUPY_API=1 but {why} ({INSTALL})")
    pytest.skip(f"{why}: the double is not checked against CuPy here ({INSTALL}; no GPU needed)")


def _real_cupy():
    """The real CuPy, or None. The double lives at tests.gpu_double.cupy_double and never as a
    top-level ``cupy``; this also makes sure that what imports as ``cupy`` is CuPy itself."""
    if importlib.util.find_spec("cupy") is None:
        return None
    import cupy

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.abspath(cupy.__file__).startswith(here) or not hasattr(cupy, "_core"):
        raise RuntimeError(f"the module imported as cupy is not CuPy: {cupy.__file__}")
    return cupy


REAL = _real_cupy()


@pytest.fixture(scope="module")
def cupy():
    if REAL is None:
        _missing("the real CuPy is not installed")
    return REAL


def _real_nccl(cupy):
    nccl = importlib.import_module("cupy.cuda.nccl")
    return nccl if getattr(nccl, "available", False) else None


# ---------------------------------------------------------------------------------------
# recording the calls minialex makes into the double
# ---------------------------------------------------------------------------------------

Call = namedtuple("Call", "kind path args kwargs result")  # kind: "call" or "attr"


def _from_minialex(depth=2):
    return sys._getframe(depth).f_globals.get("__name__", "").startswith("minialex")


def _kind(x, depth=0):
    """What distinguishes two calls for these checks: types, dtypes, kernel names."""
    if isinstance(x, d_ndarray.ndarray):
        return ("ndarray", x.dtype.name, x.ndim == 0)
    if isinstance(x, d_kernels.ElementwiseKernel):
        return ("ElementwiseKernel", x.name)
    if isinstance(x, np.ndarray):
        return ("numpy.ndarray", x.dtype.name)
    if isinstance(x, np.generic):
        return ("numpy scalar", x.dtype.name)
    if isinstance(x, (tuple, list)) and depth < 2:
        return (type(x).__name__,) + tuple(_kind(v, depth + 1) for v in x[:8])
    if isinstance(x, type):
        return ("type", x.__name__)
    return type(x).__name__


class Recorder:
    def __init__(self):
        self.calls = {}  # key -> the first Call of that kind
        self.counts = {}
        self.lock = threading.Lock()

    def add(self, kind, path, args=(), kwargs=None, result=None):
        kwargs = kwargs or {}
        key = (kind, path, tuple(_kind(a) for a in args), tuple(sorted((k, _kind(v)) for k, v in kwargs.items())),
               _kind(result))
        with self.lock:
            if key not in self.calls:
                self.calls[key] = Call(kind, path, tuple(args), dict(kwargs), result)
            self.counts[key] = self.counts.get(key, 0) + 1

    def of(self, kind=None):
        return [c for c in self.calls.values() if kind is None or c.kind == kind]


class _CallRecorder:
    """What minialex gets for a function of the double (``xp.zeros``, ``cp.cuda.get_current_stream``):
    calls it, and records the call."""

    def __init__(self, recorder, path, target):
        self._recorder, self._path, self._target = recorder, path, target

    def __call__(self, *args, **kwargs):
        result = self._target(*args, **kwargs)
        if _from_minialex():
            self._recorder.add("call", self._path, args, kwargs, result)
        return result

    def __getattr__(self, name):
        return getattr(self._target, name)


class _NamespaceRecorder:
    """What minialex gets for a namespace of the double (``cp.cuda``, ``cp.cuda.runtime``,
    ``cp.random``, ``cp.cuda.nccl``): records each attribute read, and wraps what it hands out."""

    def __init__(self, recorder, path, target):
        object.__setattr__(self, "_recorder", recorder)
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_target", target)

    def __getattr__(self, name):
        value = getattr(self._target, name)
        path = f"{self._path}.{name}"
        if _from_minialex():
            self._recorder.add("attr", path)
        return _for_minialex(self._recorder, path, value)

    def __setattr__(self, name, value):
        setattr(self._target, name, value)


def _is_namespace(value):
    return isinstance(value, (types.SimpleNamespace, types.ModuleType, d_streams._Runtime, d_functions._Random))


def _for_minialex(recorder, path, value):
    if isinstance(value, type):  # classes as they are (isinstance checks); their methods are wrapped
        return value
    if _is_namespace(value):
        return _NamespaceRecorder(recorder, path, value)
    if callable(value):
        return _CallRecorder(recorder, path, value)
    return value


class _RecordingModule(types.ModuleType):
    """The double's package while recording: each attribute minialex reads is recorded."""

    def __getattribute__(self, name):
        value = super().__getattribute__(name)
        if name.startswith("__") and name != "__name__":
            return value
        if _from_minialex():
            recorder = super().__getattribute__("_conformance_recorder")
            recorder.add("attr", f"cupy.{name}")
            return _for_minialex(recorder, f"cupy.{name}", value)
        return value


# the double's classes and the CuPy classes they stand for
CLASSES = {
    d_ndarray.ndarray: "cupy.ndarray",
    d_ndarray.MemoryPointer: "cupy.cuda.MemoryPointer",
    d_streams.Stream: "cupy.cuda.Stream",
    d_streams.Event: "cupy.cuda.Event",
    d_streams.Device: "cupy.cuda.Device",
    d_kernels.ElementwiseKernel: "cupy.ElementwiseKernel",
    d_functions.Generator: "cupy.random.Generator",
    d_nccl.NcclCommunicator: "cupy.cuda.nccl.NcclCommunicator",
}
_NOT_WRAPPED = {"__new__", "__init_subclass__", "__getattr__", "__getattribute__", "__setattr__", "__repr__",
                "__class_getitem__", "__del__"}


def _method_recorder(recorder, path, fn, constructor=False):
    def wrapper(self, *args, **kwargs):
        result = fn(self, *args, **kwargs)
        if _from_minialex():
            if constructor:
                recorder.add("call", path, args, kwargs, self)
            else:
                recorder.add("call", path, (self,) + args, kwargs, result)
        return result
    wrapper.__name__, wrapper.__wrapped__ = fn.__name__, fn
    return wrapper


def _property_recorder(recorder, path, prop):
    def fget(self):
        value = prop.fget(self)
        if _from_minialex():
            recorder.add("attr", path)
        return value
    return property(fget, prop.fset, prop.fdel, prop.__doc__)


@contextlib.contextmanager
def recording():
    """Inside, every call minialex makes into the double is recorded; yields the Recorder."""
    recorder = Recorder()
    mp = pytest.MonkeyPatch()
    try:
        for cls, path in CLASSES.items():
            for name, value in list(vars(cls).items()):
                if name in _NOT_WRAPPED or (name.startswith("_") and not name.startswith("__")):
                    continue
                if name == "__init__":
                    mp.setattr(cls, name, _method_recorder(recorder, path, value, constructor=True))
                elif isinstance(value, property):
                    mp.setattr(cls, name, _property_recorder(recorder, f"{path}.{name}", value))
                elif inspect.isfunction(value):
                    mp.setattr(cls, name, _method_recorder(recorder, f"{path}.{name}", value))
        mp.setattr(elementwise, "_KERNELS", {})  # minialex's cache of built kernels: build them again, recorded
        cupy_double._conformance_recorder = recorder
        cupy_double.__class__ = _RecordingModule
        yield recorder
    finally:
        cupy_double.__class__ = types.ModuleType
        vars(cupy_double).pop("_conformance_recorder", None)
        mp.undo()


# ---------------------------------------------------------------------------------------
# the scenarios: the double's own tests of minialex, run again while recording
# ---------------------------------------------------------------------------------------


def _scenarios(tiny_folder, tmp_path):  # noqa: F811 - the fixture's value
    from minialex.nn import reference

    from . import test_data_parallel_double as data_parallel
    from . import test_step_accounting as steps
    from . import test_training_script as script

    def with_monkeypatch(test):
        def run():
            mp = pytest.MonkeyPatch()
            try:
                test(mp)
            finally:
                mp.undo()
        return run

    runs = []
    for kernels_on in (True, False):
        for devices in (None, (0, 1), (1, 0)):
            runs.append((f"step {devices} {'kernels' if kernels_on else 'references'}", kernels_on,
                         lambda devices=devices: steps.test_tiny_step(devices)))
    runs += [
        ("transfer", True, with_monkeypatch(steps.test_transfer_orders_the_copy_and_keeps_its_source)),
        ("metrics", True, steps.test_metrics_run_on_the_logits_device),
        ("uploader", True, steps.test_uploader_copies_from_pinned_memory_on_its_own_stream),
        ("float64 steps", True, lambda: steps.test_the_cupy_path_computes_the_numpy_step((0, 1))),
        ("nccl one device", True, lambda: data_parallel.test_nccl_step_is_ordered_and_never_syncs(None)),
        ("nccl two columns", True, lambda: data_parallel.test_nccl_step_is_ordered_and_never_syncs((0, 1))),
        ("staged allreduce", True, data_parallel.test_without_nccl_the_sums_go_through_the_host),
        ("training script 1,0", True,
         lambda: script.test_train_and_test_only_on_the_double(tiny_folder, tmp_path / "a", "1,0")),
    ]
    for _, kernels_on, run in runs:
        with reference(not kernels_on), contextlib.redirect_stdout(io.StringIO()):
            run()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, tiny_folder):  # noqa: F811 - the fixture
    """Every distinct call minialex made into the double in the scenarios (a Recorder)."""
    with recording() as recorder:
        _scenarios(tiny_folder, tmp_path_factory.mktemp("conformance"))
    calls = recorder.of("call")
    print(f"\nconformance: minialex made {sum(recorder.counts.values())} calls and attribute reads into the "
          f"double, {len(recorder.calls)} distinct ({len(calls)} calls, {len(recorder.of('attr'))} attribute "
          f"reads) over {len({c.path for c in recorder.calls.values()})} CuPy names")
    return recorder


def test_the_scenarios_reach_every_part_of_the_double(recorded):
    """The recording sees minialex's calls (not the tests'), in every part of CuPy it uses."""
    paths = {c.path for c in recorded.calls.values()}
    for expected in ("cupy.ElementwiseKernel", "cupy.ElementwiseKernel.__call__", "cupy.cuda.Stream",
                     "cupy.cuda.Event.record", "cupy.cuda.Stream.wait_event", "cupy.cuda.Device.__enter__",
                     "cupy.cuda.MemoryPointer.copy_from_device_async", "cupy.ndarray.get", "cupy.ndarray.set",
                     "cupy.cuda.nccl.NcclCommunicator.allReduce", "cupy.cuda.nccl.get_unique_id",
                     "cupy.ndarray.__add__", "cupy.zeros", "cupy.matmul", "cupy.cuda.alloc_pinned_memory"):
        assert expected in paths, (expected, sorted(paths))
    assert not any(c.path.startswith("cupy.ndarray.__array") for c in recorded.calls.values())


# ---------------------------------------------------------------------------------------
# what CuPy offers: names, signatures
# ---------------------------------------------------------------------------------------

# Attributes CuPy sets on each instance (so they are not on the class); each is listed in the
# class's documented attributes ("~Stream.ptr (intptr_t): Raw stream handle.").
INSTANCE_ATTRIBUTES = {"cupy.cuda.Stream": ("ptr", "device_id"), "cupy.cuda.Event": ("ptr",)}

_BINARY = "(self, other, /)"
_UNARY = "(self, /)"
# The parameters of CuPy callables that have no introspectable signature (Cython), by hand from
# CuPy 14.2 (cupy/_core/core.pyx, cupy/cuda/*.pyx, cupy/_core/_kernel.pyx,
# cupy_backends/cuda/libs/nccl.pyx and the API reference). test_the_table_matches_cupy checks
# every row against the signature Cython embeds in the docstring, where it embeds one; the
# operators (no docstring) follow Python's operator protocol, as CuPy's ``def __add__(x, y)``.
CYTHON_SIGNATURES = {
    "cupy.ndarray.get": "(self, stream=None, order='C', out=None, blocking=True)",
    "cupy.ndarray.set": "(self, arr, stream=None)",
    "cupy.ndarray.astype": "(self, dtype, order='K', casting=None, subok=None, copy=True)",
    "cupy.ndarray.reshape": "(self, *shape, order='C', copy=None)",
    "cupy.ndarray.transpose": "(self, *axes)",
    "cupy.ndarray.ravel": "(self, order='C')",
    "cupy.ndarray.copy": "(self, order='C')",
    "cupy.ndarray.fill": "(self, value)",
    "cupy.ndarray.sum": "(self, axis=None, dtype=None, out=None, keepdims=False)",
    "cupy.ndarray.mean": "(self, axis=None, dtype=None, out=None, keepdims=False)",
    "cupy.ndarray.max": "(self, axis=None, out=None, keepdims=False)",
    "cupy.ndarray.min": "(self, axis=None, out=None, keepdims=False)",
    "cupy.ndarray.any": "(self, axis=None, out=None, keepdims=False)",
    "cupy.ndarray.all": "(self, axis=None, out=None, keepdims=False)",
    "cupy.ndarray.argmax": "(self, axis=None, out=None, dtype=None, keepdims=False)",
    "cupy.ndarray.argsort": "(self, axis=-1, kind=None)",
    "cupy.ndarray.item": "(self)",
    "cupy.ndarray.tolist": "(self)",
    "cupy.ndarray.__getitem__": "(self, slices)",
    "cupy.ndarray.__setitem__": "(self, slices, value)",
    "cupy.cuda.Device": "(device=None)",
    "cupy.cuda.Device.__enter__": "(self)",
    "cupy.cuda.Device.__exit__": "(self, *args)",
    "cupy.cuda.Device.synchronize": "(self)",
    "cupy.cuda.Device.use": "(self)",
    "cupy.cuda.get_current_stream": "(int device_id=-1)",
    "cupy.cuda.alloc_pinned_memory": "(size_t size)",
    "cupy.cuda.runtime.getDeviceCount": "()",
    "cupy.cuda.runtime.runtimeGetVersion": "()",
    "cupy.cuda.runtime.getDevice": "()",
    "cupy.cuda.MemoryPointer.copy_from_device_async": "(self, MemoryPointer src, size_t size, stream=None)",
    "cupy.cuda.MemoryPointer.copy_from_host_async": "(self, mem, size_t size, stream=None)",
    "cupy.ElementwiseKernel": "(in_params, out_params, operation, name='kernel', reduce_dims=True, preamble='', "
                              "no_return=False, return_tuple=False, **kwargs)",
    "cupy.ElementwiseKernel.__call__": "(self, *args, **kwargs)",
    "cupy.cuda.nccl.get_unique_id": "()",
    "cupy.cuda.nccl.NcclCommunicator": "(int ndev, bytes commId, int rank, NcclConfig config=None)",
    "cupy.cuda.nccl.NcclCommunicator.allReduce":
        "(self, intptr_t sendbuf, intptr_t recvbuf, size_t count, int datatype, int op, intptr_t stream)",
}
for _op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor", "lshift", "rshift",
            "matmul"):
    CYTHON_SIGNATURES[f"cupy.ndarray.__{_op}__"] = _BINARY
    CYTHON_SIGNATURES[f"cupy.ndarray.__r{_op}__"] = _BINARY
    CYTHON_SIGNATURES[f"cupy.ndarray.__i{_op}__"] = _BINARY
for _op in ("lt", "le", "gt", "ge", "eq", "ne", "divmod", "rdivmod"):
    CYTHON_SIGNATURES[f"cupy.ndarray.__{_op}__"] = _BINARY
for _op in ("neg", "pos", "abs", "invert", "float", "int", "bool", "len", "iter"):
    CYTHON_SIGNATURES[f"cupy.ndarray.__{_op}__"] = _UNARY
del CYTHON_SIGNATURES["cupy.ndarray.__imatmul__"]  # CuPy has no in-place matmul

_INTEGER_CTYPES = {"int", "size_t", "intptr_t", "Py_ssize_t", "long"}
UFUNC_KEYWORDS = {"out", "dtype", "casting"}  # cupy._core._kernel.ufunc.__call__
KERNEL_KEYWORDS = {"size", "stream", "block_size"}  # cupy._core._kernel.ElementwiseKernel.__call__

Param = namedtuple("Param", "name ctype default kind")


def parse_signature(text):
    """``"(self, MemoryPointer src, size_t size, stream=None)"`` -> [Param]: Cython's embedded
    signatures and this file's table (C types kept; ``\\*`` as Sphinx escapes it)."""
    inner = text.strip()
    inner = inner[inner.index("(") + 1:inner.rindex(")")]
    params, kind = [], inspect.Parameter.POSITIONAL_OR_KEYWORD
    for token in (t.strip().replace("\\*", "*") for t in inner.split(",")):
        if not token:
            continue
        if token == "/":
            params = [p._replace(kind=inspect.Parameter.POSITIONAL_ONLY) for p in params]
            continue
        if token == "*":
            kind = inspect.Parameter.KEYWORD_ONLY
            continue
        head, _, default = token.partition("=")
        words = head.split()
        name, ctype = words[-1], " ".join(words[:-1]) or None
        if name.startswith("**"):
            params.append(Param(name[2:], ctype, None, inspect.Parameter.VAR_KEYWORD))
        elif name.startswith("*"):
            params.append(Param(name[1:], ctype, None, inspect.Parameter.VAR_POSITIONAL))
            kind = inspect.Parameter.KEYWORD_ONLY
        else:
            params.append(Param(name, ctype, default.strip() if default else None, kind))
    return params


def _signature(params):
    return inspect.Signature([inspect.Parameter(p.name, p.kind, default=inspect.Parameter.empty if p.default is None
                                                else p.default) for p in params])


def embedded_signature(obj):
    """The signature Cython embedded in the first line of ``obj.__doc__`` (``name(...)``), or None."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    first = doc.splitlines()[0] if doc else ""
    name = getattr(obj, "__name__", "")
    if not name or "(" not in first or not first.split("(")[0].strip().endswith(name):
        return None
    return first[first.index("("):first.rindex(")") + 1]


class _InstanceAttribute:
    def __init__(self, owner, name):
        self.owner, self.name = owner, name


def resolve(cupy, path):
    """The CuPy object at ``path`` (importing submodules such as cupy.cuda.nccl), or AttributeError."""
    parts = path.split(".")
    obj, walked = cupy, "cupy"
    for part in parts[1:]:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            if isinstance(obj, types.ModuleType):
                try:
                    obj = importlib.import_module(f"{walked}.{part}")
                    walked += "." + part
                    continue
                except ImportError:
                    pass
            if part in INSTANCE_ATTRIBUTES.get(walked, ()):
                return _InstanceAttribute(obj, part)
            raise AttributeError(f"CuPy has no {walked}.{part}") from None
        walked += "." + part
    return obj


def _is_ufunc(cupy, obj):
    return isinstance(obj, cupy._core._kernel.ufunc)


def binding_problem(cupy, call):
    """None when ``call`` binds to CuPy's own parameters, else what is wrong."""
    try:
        real = resolve(cupy, call.path)
    except AttributeError as exc:
        return str(exc)
    if call.kind == "attr" or isinstance(real, _InstanceAttribute):
        return None
    args, kwargs = call.args, call.kwargs
    if _is_ufunc(cupy, real):
        if not real.nin <= len(args) <= real.nargs:
            return f"{call.path}: {len(args)} positional arguments, CuPy takes {real.nin} to {real.nargs}"
        if set(kwargs) - UFUNC_KEYWORDS:
            return f"{call.path}: keywords {sorted(set(kwargs) - UFUNC_KEYWORDS)} (CuPy's ufuncs take {UFUNC_KEYWORDS})"
        return None
    params = None
    if call.path in CYTHON_SIGNATURES:
        params = parse_signature(CYTHON_SIGNATURES[call.path])
        signature = _signature(params)
    else:
        try:  # a class: its constructor's parameters; a method: with self (the recorded args start with it)
            signature = inspect.signature(real)
        except (TypeError, ValueError):
            return f"{call.path}: no introspectable signature and no row in CYTHON_SIGNATURES (add one from CuPy)"
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        return f"{call.path}{signature}: {exc} (args {[_kind(a) for a in args]}, kwargs {sorted(kwargs)})"
    for p in params or ():
        if p.name not in bound.arguments or p.ctype is None:
            continue
        value = bound.arguments[p.name]
        if p.ctype in _INTEGER_CTYPES and not (hasattr(value, "__index__") and not isinstance(value, bool)):
            return f"{call.path}: {p.name} is a C {p.ctype}, got {type(value).__name__}"
        if p.ctype == "bytes" and not isinstance(value, bytes):
            return f"{call.path}: {p.name} is bytes, got {type(value).__name__}"
        if p.ctype == "MemoryPointer" and not isinstance(value, d_ndarray.MemoryPointer):
            return f"{call.path}: {p.name} is a MemoryPointer, got {type(value).__name__}"
    for p in params or ():  # a parameter whose default is a string ('C', 'K') takes a string
        value = bound.arguments.get(p.name)
        if p.default and p.default[0] in "'\"" and p.name in bound.arguments and not isinstance(value, str):
            return f"{call.path}: {p.name} (default {p.default}) takes a string, got {type(value).__name__}"
    if call.path == "cupy.ElementwiseKernel":
        try:
            cupy.ElementwiseKernel(*args, **kwargs)  # CuPy parses the parameters and checks the name here
        except Exception as exc:  # noqa: BLE001 - anything CuPy refuses
            return f"cupy.ElementwiseKernel refuses {args[3] if len(args) > 3 else args}: {exc!r}"
    if call.path == "cupy.ElementwiseKernel.__call__":
        kernel = cupy.ElementwiseKernel(*args[0].spec)
        if len(args) - 1 not in (kernel.nin, kernel.nargs):
            return f"kernel {kernel.name}: {len(args) - 1} arguments, CuPy takes {kernel.nin} or {kernel.nargs}"
        if set(kwargs) - KERNEL_KEYWORDS:
            return f"kernel {kernel.name}: keywords {sorted(set(kwargs) - KERNEL_KEYWORDS)}"
    return None


def _calls(recorded, nccl):
    """The recorded calls, without (nccl=False) or only (nccl=True) those into NCCL."""
    return [c for c in recorded.calls.values() if c.path.startswith("cupy.cuda.nccl") == nccl]


def test_every_name_minialex_uses_exists_in_cupy(cupy, recorded):
    missing = []
    for c in sorted({c.path for c in _calls(recorded, nccl=False)}):
        try:
            resolve(cupy, c)
        except AttributeError as exc:
            missing.append(str(exc))
    assert not missing, missing


def test_every_call_binds_to_cupys_signature(cupy, recorded):
    calls = [c for c in _calls(recorded, nccl=False) if c.kind == "call"]
    problems = [p for p in (binding_problem(cupy, c) for c in calls) if p]
    introspected = sum(1 for c in calls if c.path not in CYTHON_SIGNATURES)
    print(f"\nconformance: {len(calls)} distinct calls bound to CuPy's signatures ({introspected} introspected, "
          f"{len(calls) - introspected} through the table)")
    assert not problems, "\n".join(problems)


def test_the_table_matches_cupy(cupy):
    """Every row of CYTHON_SIGNATURES is CuPy's own, wherever Cython embedded a signature (and
    every instance attribute listed is among the class's documented attributes)."""
    checked, differ = 0, []
    for path, text in CYTHON_SIGNATURES.items():
        if path.startswith("cupy.cuda.nccl") and _real_nccl(cupy) is None:
            continue
        real = resolve(cupy, path)
        embedded = embedded_signature(real)
        if embedded is None:
            assert path.rsplit(".", 1)[1].startswith("__"), f"{path}: no embedded signature to check the row by"
            continue
        ours = [(p.name, p.ctype, p.default, p.kind) for p in parse_signature(text)]
        theirs = [(p.name, p.ctype, p.default, p.kind) for p in parse_signature(embedded)]
        checked += 1
        if ours != theirs:
            differ.append(f"{path}: table {text}, CuPy {embedded}")
    assert not differ, "\n".join(differ)
    assert checked >= 20, checked
    for path, names in INSTANCE_ATTRIBUTES.items():
        cls = resolve(cupy, path)
        for name in names:
            assert f"~{cls.__name__}.{name} " in cls.__doc__, (path, name)


# ---------------------------------------------------------------------------------------
# CuPy's type rules
# ---------------------------------------------------------------------------------------


def _real_empty(cupy, dtype):
    """A zero-size CuPy array of ``dtype`` that needs no GPU (for CuPy's type resolution)."""
    memory = cupy.cuda.memory.UnownedMemory(0, 0, None, 0)
    return cupy.ndarray((0,), dtype=dtype, memptr=cupy.cuda.MemoryPointer(memory, 0))


def _real_operand(cupy, x):
    from cupy._core import _scalar

    if isinstance(x, d_ndarray.ndarray):
        return _real_empty(cupy, x.dtype)
    return _scalar.CScalar(x)  # Python scalars are weak, as in CuPy's own ufunc call


def test_kernel_types_are_decided_as_cupy_decides_them(cupy, recorded):
    """Each ElementwiseKernel call: the placeholder types the double decided are the ones CuPy's
    ``_decide_params_type`` decides for the same array dtypes (scalars: None)."""
    calls = [c for c in recorded.of("call") if c.path == "cupy.ElementwiseKernel.__call__"]
    assert calls
    for c in calls:
        kernel, args = c.args[0], c.args[1:]
        in_dtypes = tuple(a.dtype if isinstance(a, d_ndarray.ndarray) else None for a in args[:kernel.nin])
        out_dtypes = tuple(a.dtype for a in args[kernel.nin:])
        real = cupy.ElementwiseKernel(*kernel.spec)
        want = real._decide_params_type(in_dtypes, out_dtypes)[:2]
        assert kernel._decide_params_type(in_dtypes, out_dtypes) == want, (kernel.name, in_dtypes, out_dtypes)
        # and the module-level function of CuPy, on the parameters CuPy parsed, agrees
        assert cupy._core._kernel._decide_params_type(real.in_params, real.out_params, in_dtypes,
                                                      out_dtypes)[:2] == want
    print(f"\nconformance: {len(calls)} distinct kernel calls "
          f"({len({c.args[0].name for c in calls})} kernels) typed as CuPy types them")


def _ufunc_calls(recorded):
    """(ufunc name, inputs, outputs given, result) of each recorded ufunc or operator call."""
    for c in recorded.of("call"):
        name = c.path.rsplit(".", 1)[1]
        if c.path.startswith("cupy.ndarray.__") and name.strip("_") != "matmul":
            op = name.strip("_")
            if op in d_ndarray.OPERATOR_UFUNCS:
                yield d_ndarray.OPERATOR_UFUNCS[op], c.args, (), c.result
            elif op.startswith("r") and op[1:] in d_ndarray.OPERATOR_UFUNCS:
                yield d_ndarray.OPERATOR_UFUNCS[op[1:]], c.args[::-1], (), c.result
            elif op.startswith("i") and op[1:] in d_ndarray.OPERATOR_UFUNCS:
                yield d_ndarray.OPERATOR_UFUNCS[op[1:]], c.args, (c.args[0],), c.result
        elif c.path.count(".") == 1 and isinstance(getattr(d_functions, name, None), d_functions.ufunc):
            u = getattr(d_functions, name)
            out = c.kwargs.get("out")
            outs = tuple(c.args[u.nin:]) + ((out if isinstance(out, tuple) else (out,)) if out is not None else ())
            yield u._np.__name__, c.args[:u.nin], outs, c.result


def test_result_dtypes_follow_cupys_rules(cupy, recorded):
    """Each ufunc and operator call: CuPy's loop selection for the same operands (Python scalars
    weak) gives the dtype the double gave; into a given output, CuPy's 'same_kind' cast allows it."""
    checked = 0
    for name, inputs, outs, result in _ufunc_calls(recorded):
        real = getattr(cupy, name)
        operands = [_real_operand(cupy, x) for x in inputs]
        op = real._ops.guess_routine(real.name, {}, operands, None, real._out_ops)
        _, out_dtypes = op.resolve_dtypes(operands, [None] * real.nout)
        results = result if isinstance(result, tuple) else (result,)
        if outs:
            for o, t in zip(outs, out_dtypes):
                assert np.can_cast(t, o.dtype, "same_kind"), (name, [_kind(x) for x in inputs], t, o.dtype)
        else:
            got = tuple(r.dtype for r in results)
            assert got == tuple(out_dtypes), (name, [_kind(x) for x in inputs], got, out_dtypes)
        checked += 1
    assert checked
    print(f"\nconformance: {checked} distinct ufunc and operator calls give CuPy's result dtypes")


# ---------------------------------------------------------------------------------------
# NCCL
# ---------------------------------------------------------------------------------------


def test_nccl_calls_match_cupys_nccl(cupy, recorded):
    """The NCCL calls bind to cupy.cuda.nccl's (the bindings import without a GPU once
    nvidia-nccl-cu12 is installed), the stand-in's constants are NCCL's, and its unique id has
    the type and length of a real one."""
    nccl = _real_nccl(cupy)
    if nccl is None:
        _missing("CuPy's NCCL bindings are not available (cupy.cuda.nccl.available is False)")
    calls = _calls(recorded, nccl=True)
    assert {c.path for c in calls} >= {"cupy.cuda.nccl.get_unique_id", "cupy.cuda.nccl.NcclCommunicator",
                                       "cupy.cuda.nccl.NcclCommunicator.allReduce"}
    problems = [p for p in (binding_problem(cupy, c) for c in calls) if p]
    assert not problems, "\n".join(problems)
    for name in ("NCCL_SUM", "NCCL_FLOAT16", "NCCL_FLOAT32", "NCCL_FLOAT64", "NCCL_INT32", "NCCL_INT64"):
        assert getattr(d_nccl, name) == getattr(nccl, name), name
    real_id, our_id = nccl.get_unique_id(), d_nccl.get_unique_id()
    assert type(our_id) is type(real_id) and len(our_id) == len(real_id) == d_nccl.NCCL_UNIQUE_ID_BYTES
    with pytest.raises(TypeError, match="commId"):  # CuPy refuses the old stand-in's id before NCCL sees it
        nccl.NcclCommunicator(2, (42,), 0)
    for c in calls:
        if c.kind == "call" and c.path == "cupy.cuda.nccl.NcclCommunicator":  # the id minialex passed
            ndev, uid, rank = c.args[:3]
            assert isinstance(uid, bytes) and len(uid) == len(real_id)


# ---------------------------------------------------------------------------------------
# the checker catches what it is there to catch
# ---------------------------------------------------------------------------------------


def test_the_checks_catch_calls_cupy_refuses(cupy):
    """Controls: calls the old double accepted and CuPy does not are each reported."""
    with cupy_double.install(2, nccl=True):
        x = cupy_double.zeros(3, dtype=np.float32)
        kernel = cupy_double.ElementwiseKernel("T x", "T y", "y = x", "minialex_control")
        stream = cupy_double.cuda.Stream()
        wrong = [
            Call("call", "cupy.cuda.Event", (), {"flags": 1}, None),  # Event(*args, **kwargs) took anything
            Call("call", "cupy.cuda.Stream", (), {"device": 1}, None),  # Stream(**kwargs) likewise
            Call("attr", "cupy.cuda.Event.query", (), {}, None),  # CuPy's Event has `done`, no query()
            Call("call", "cupy.ndarray.get", (x, None, np.zeros(3, np.float32), False), {}, None),  # old order
            Call("call", "cupy.ElementwiseKernel.__call__", (kernel, x, x), {"grid": 4}, None),
            Call("call", "cupy.ElementwiseKernel.__call__", (kernel, x, x, x), {}, None),
            Call("call", "cupy.cuda.MemoryPointer.copy_from_device_async", (x.data, x, 12, stream), {}, None),
            Call("call", "cupy.exp", (x,), {"where": True}, None),
            Call("call", "cupy.ElementwiseKernel", ("T x", "T y", "y = x", "not a name"), {}, None),
        ]
        for call in wrong:
            assert binding_problem(cupy, call) is not None, call
        nccl = _real_nccl(cupy)
        if nccl is not None:
            stale = Call("call", "cupy.cuda.nccl.NcclCommunicator", (2, (42,), 0), {}, None)  # the old stand-in's id
            assert binding_problem(cupy, stale) is not None
            unpointered = Call("call", "cupy.cuda.nccl.NcclCommunicator.allReduce",
                               (None, 1, 1, 3, 7, 0, stream), {}, None)  # a Stream object where CuPy wants stream.ptr
            assert binding_problem(cupy, unpointered) is not None
