"""A CUDA ``ElementwiseKernel`` run on the CPU from its OWN source: a test tool.

``HostKernel(spec)``, for a kernel spec ``(in_params, out_params, body, name)`` of
minialex/kernels/cuda/, is called exactly as ``cupy.ElementwiseKernel(*spec)`` is (inputs, then
outputs, optional ``size=``, ``stream=`` and ``block_size=``), on NumPy arrays. It pastes the
kernel's CUDA body, unchanged, into a C++ loop with one iteration per CUDA thread, compiles that
with g++ (``-O1 -std=c++17``, no fast-math, no contraction into fused multiply-adds) into a shared
library, loads it with ctypes and runs it. The NumPy twins beside the kernels are a second,
independent opinion; this runs the code a GPU would run.

It follows CuPy's rules for ElementwiseKernel (cupy/_core/_kernel.pyx):

* a non-raw parameter is bound at the thread's element: ``const T &x = _raw_x[i]`` for an
  input, ``T &y = _raw_y[i]`` for an output, after broadcasting the non-raw arrays together; a
  scalar argument is a scalar (a const value for an input);
* a ``raw`` parameter is the whole array, indexed by hand (``x[j]``, j the C-order index), and
  EVERY such access is bounds-checked: an index < 0 or >= the array's size stops the kernel and
  raises ``OutOfBoundsError`` naming the kernel, the parameter, the index and the thread;
* the type of a one-letter placeholder (``T``) is decided as ``_decide_params_type`` decides it:
  from the output arrays, then the input arrays bound to it; a scalar bound to it takes its type
  from them. A fixed-type array parameter needs exactly that dtype; an array of another dtype
  than the decided type is a ``TypeError``, as in CuPy. Scalars are converted to their
  parameter's type as CuPy converts them (NumPy's assignment rules);
* ``i`` is the thread index (``ptrdiff_t``), ``_ind.size()`` the number of threads: the size of
  the broadcast non-raw arrays (the outputs), or ``size=`` where every array is raw;
* inputs are const, as CuPy declares them (a kernel that writes an input does not compile),
  unless declared ``_non_const``.

What it checks beyond the values: the thread loop runs in FORWARD, REVERSE and a SHUFFLED order
(a fixed seed), each time on fresh copies of the outputs (an input that shares memory with an
output is rebuilt as the same view of the fresh copy, so aliasing is kept). A result that
depends on the order is an ``OrderDependentError``: it is how an output that aliases an input,
or threads that read or write each other's elements, show up on a machine that runs one thread
at a time. The outputs are then written as the forward run left them (after an error, nothing is
written).

What it cannot see: real concurrency (only these three orders are tried, one thread at a time),
the launch configuration (blocks, grid, ``block_size``, ``stream``: accepted and ignored), memory
spaces (there is only host memory), and the GPU's own arithmetic: its ``pow`` and other math
functions (CUDA's, with their own error bounds, where this runs glibc's), fused multiply-adds that
NVRTC may form, and flush-to-zero of denormals. Integer division by zero and other undefined
behaviour inside a body are not caught (they may crash the process); a non-raw parameter cannot
be indexed out of bounds. Aliasing is kept exactly through C-contiguous arrays; a non-contiguous
argument runs through a contiguous copy, so an alias through it is not seen.

Each (spec, argument types) variant is compiled once (about 0.3 s) and cached on disk by a hash
of the generated source, under ``$MINIALEX_HOST_KERNEL_CACHE`` or a folder in the system
temporary directory, so a test session compiles each variant once and later sessions not at all.
"""

import collections
import ctypes
import functools
import hashlib
import os
import subprocess
import tempfile
import threading

import numpy as np

__all__ = ["HostKernel", "HostKernelError", "OutOfBoundsError", "OrderDependentError", "CompileError",
           "cache_dir"]

CXX = "g++"
CXXFLAGS = ("-O1", "-std=c++17", "-fPIC", "-shared", "-ffp-contract=off")  # ISO C++17 contracts nothing anyway
SHUFFLE_SEED = 24
ENTRY = "minialex_host_launch"

# CuPy's C names of the dtypes (cupy._core._scalar.get_typename)
C_TYPES = {
    np.dtype(np.bool_): "bool", np.dtype(np.int8): "signed char", np.dtype(np.int16): "short",
    np.dtype(np.int32): "int", np.dtype(np.int64): "long long", np.dtype(np.uint8): "unsigned char",
    np.dtype(np.uint16): "unsigned short", np.dtype(np.uint32): "unsigned int",
    np.dtype(np.uint64): "unsigned long long", np.dtype(np.float32): "float", np.dtype(np.float64): "double",
}


class HostKernelError(RuntimeError):
    """Something a kernel did that a GPU run would not report, or could not be built."""


class OutOfBoundsError(HostKernelError, IndexError):
    """A raw parameter indexed outside its array."""


class OrderDependentError(HostKernelError):
    """The outputs depend on the order in which the threads ran."""


class CompileError(HostKernelError):
    """g++ rejected the generated source (or is missing)."""


def cache_dir():
    """Where compiled variants are kept: $MINIALEX_HOST_KERNEL_CACHE, or a per-user temp folder."""
    where = os.environ.get("MINIALEX_HOST_KERNEL_CACHE")
    if not where:
        user = os.getuid() if hasattr(os, "getuid") else "user"
        where = os.path.join(tempfile.gettempdir(), f"minialex-host-kernels-{user}")
    return where


# ---------------------------------------------------------------------------------------------
# parameters and types, as CuPy reads them
# ---------------------------------------------------------------------------------------------
Param = collections.namedtuple("Param", "name ctype dtype raw const")
Param.__doc__ = """One kernel parameter: ``ctype`` is the placeholder letter (``dtype`` None) or the
C name of the fixed ``dtype``; ``const`` as CuPy declares it (inputs, unless ``_non_const``)."""


@functools.lru_cache(maxsize=None)
def parse_params(text, is_const):
    """The parameters of ``"raw T x, int64 H"`` (cupy._core._kernel.ParameterInfo), a tuple."""
    params = []
    for part in text.strip().split(",") if text.strip() else []:
        words = part.split()
        if len(words) < 2:
            raise ValueError(f"kernel parameter syntax error: {part!r}")
        (*keywords, type_name, name), raw, const = words, False, is_const
        for word in keywords:
            if word == "raw":
                raw = True
            elif word == "_non_const":
                const = False
            else:
                raise ValueError(f"unknown keyword {word!r} in kernel parameter {part.strip()!r}")
        if len(type_name) == 1:
            params.append(Param(name, type_name, None, raw, const))
            continue
        dtype = np.dtype(type_name)
        if dtype not in C_TYPES:
            raise ValueError(f"kernel parameter {part.strip()!r}: dtype {dtype} is not supported on the host")
        params.append(Param(name, C_TYPES[dtype], dtype, raw, const))
    return tuple(params)


def decide_types(kernel_name, in_params, out_params, in_dtypes, out_dtypes):
    """(in_types, out_types, {placeholder: dtype}) as cupy._core._kernel._decide_params_type_core:
    outputs first, then the input ARRAYS (None in ``in_dtypes`` is a scalar, which takes the type)."""
    types = {}
    for side, params, dtypes in (("output", out_params, out_dtypes), ("input", in_params, in_dtypes)):
        for p, a in zip(params, dtypes):
            if a is None:
                continue
            want = p.dtype if p.dtype is not None else types.setdefault(p.ctype, a)
            if a != want:
                what = "" if p.dtype is not None else f" ({p.ctype} is {want})"
                raise TypeError(f"kernel {kernel_name}: type is mismatched: {side} {p.name} is {a}, "
                                f"the kernel takes {want}{what}")
    undecided = sorted({p.ctype for p in in_params + out_params if p.dtype is None} - set(types))
    if undecided:
        raise TypeError(f"kernel {kernel_name}: the type of {', '.join(undecided)} cannot be decided: "
                        "no array argument is bound to it")
    def resolve(params):
        return tuple(p.dtype if p.dtype is not None else types[p.ctype] for p in params)
    return resolve(in_params), resolve(out_params), types


# ---------------------------------------------------------------------------------------------
# the generated C++
# ---------------------------------------------------------------------------------------------
PRELUDE = r"""// generated by tests/cuda_on_host/host_kernel.py: a CUDA ElementwiseKernel body, one loop
// iteration per thread, on the host
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stddef.h>
#include <stdint.h>
#include <type_traits>

// CUDA spellings the bodies may use
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
using std::pow; using std::sqrt; using std::exp; using std::log; using std::fabs; using std::abs;
using std::floor; using std::ceil; using std::fmin; using std::fmax; using std::isnan; using std::isinf;
template <typename A, typename B>
inline typename std::common_type<A, B>::type min(A a, B b) {
  typedef typename std::common_type<A, B>::type C;
  if constexpr (std::is_floating_point<C>::value) return std::fmin(C(a), C(b)); else return C(b) < C(a) ? C(b) : C(a);
}
template <typename A, typename B>
inline typename std::common_type<A, B>::type max(A a, B b) {
  typedef typename std::common_type<A, B>::type C;
  if constexpr (std::is_floating_point<C>::value) return std::fmax(C(a), C(b)); else return C(a) < C(b) ? C(b) : C(a);
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float rsqrt(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __powf(float a, float b) { return std::pow(a, b); }

namespace minialex_host {
struct OutOfBounds { long long param, index, size; };

// a raw parameter: the whole array; every access checked (CuPy: CArray<T, ...>)
template <typename V>
class Raw {
 public:
  Raw(V* data, ptrdiff_t size, int param) : data_(data), size_(size), param_(param) {}
  V& operator[](ptrdiff_t j) { check(j); return data_[j]; }
  const V& operator[](ptrdiff_t j) const { check(j); return data_[j]; }
  ptrdiff_t size() const { return size_; }
 private:
  void check(ptrdiff_t j) const {
    if (j < 0 || j >= size_) throw OutOfBounds{param_, (long long)j, (long long)size_};
  }
  V* data_;
  ptrdiff_t size_;
  int param_;
};

// CuPy's CIndexer _ind, for a flat loop
class Indexer {
 public:
  explicit Indexer(ptrdiff_t size) : size_(size), i_(0) {}
  ptrdiff_t size() const { return size_; }
  void set(ptrdiff_t i) { i_ = i; }
  ptrdiff_t get() const { return i_; }
 private:
  ptrdiff_t size_, i_;
};
}  // namespace minialex_host
"""


def generate_source(name, body, params, kinds, types):
    """The C++ of one variant: ``params`` (inputs then outputs), ``kinds`` ('array' or 'scalar'
    per parameter), ``types`` {placeholder: dtype}. The entry point is

        int minialex_host_launch(void *const *argv, const long long *sizes, const long long *order,
                                 long long n, long long *fault)

    argv[k]: parameter k's data (a scalar's value); sizes[k]: its element count; order: the n
    thread indices in the order to run them. Returns 0, or 1 after an out-of-bounds access, with
    fault = (parameter, index, size, thread)."""
    lines = PRELUDE.splitlines()
    lines += [f"typedef {C_TYPES[np.dtype(t)]} {letter};" for letter, t in sorted(types.items())]
    lines += ["",
              f"extern \"C\" int {ENTRY}(void *const *_mx_argv, const long long *_mx_sizes,",
              "                        const long long *_mx_order, long long _mx_n, long long *_mx_fault) {"]
    bindings = []
    for k, (p, kind) in enumerate(zip(params, kinds)):
        const = "const " if p.const else ""
        if kind == "scalar":
            lines.append(f"  {const}{p.ctype} {p.name} = *static_cast<const {p.ctype} *>(_mx_argv[{k}]);")
        elif p.raw:
            lines.append(f"  {const}minialex_host::Raw<{p.ctype}> {p.name}(static_cast<{p.ctype} *>(_mx_argv[{k}]), "
                         f"_mx_sizes[{k}], {k});")
        else:
            lines.append(f"  {p.ctype} *const _raw_{p.name} = static_cast<{p.ctype} *>(_mx_argv[{k}]);")
            bindings.append(f"      {const}{p.ctype} &{p.name} = _raw_{p.name}[_ind.get()];")
    lines += ["  minialex_host::Indexer _ind(_mx_n);",
              "  long long _mx_t = 0;",
              "  try {",
              "    for (_mx_t = 0; _mx_t < _mx_n; ++_mx_t) {",
              "      ptrdiff_t i = (ptrdiff_t)_mx_order[_mx_t];",
              "      _ind.set(i);",
              *bindings,
              f"#line 1 \"{name} (kernel body)\""]
    body_lines = body.splitlines() or [""]
    body_lines[-1] += ";"
    lines += body_lines
    lines.append(f"#line {len(lines) + 2} \"{name} (generated)\"")
    lines += ["    }",
              "  } catch (const minialex_host::OutOfBounds &e) {",
              "    _mx_fault[0] = e.param; _mx_fault[1] = e.index; _mx_fault[2] = e.size;",
              "    _mx_fault[3] = _mx_order[_mx_t];",
              "    return 1;",
              "  }",
              "  return 0;",
              "}",
              ""]
    return "\n".join(lines)


_LOCK = threading.Lock()
_LOADED = {}  # digest of the source -> (library, entry function)


def compile_source(source, name):
    """The entry function of ``source``, compiled once per source (on disk, keyed by its hash)."""
    digest = hashlib.sha256("\0".join([CXX, *CXXFLAGS, source]).encode()).hexdigest()[:24]
    with _LOCK:
        if digest in _LOADED:
            return _LOADED[digest][1]
        folder = cache_dir()
        os.makedirs(folder, exist_ok=True)
        stem = os.path.join(folder, f"{name}-{digest}")
        if not os.path.exists(stem + ".so"):
            unique = f".{os.getpid()}.{threading.get_ident()}.tmp"
            with open(stem + ".cpp" + unique, "w", encoding="utf-8") as f:
                f.write(source)
            os.replace(stem + ".cpp" + unique, stem + ".cpp")  # kept, for reading the errors against
            try:
                done = subprocess.run([CXX, *CXXFLAGS, "-o", stem + ".so" + unique, stem + ".cpp"],
                                      capture_output=True, text=True)
            except FileNotFoundError:
                raise CompileError(f"{CXX} was not found: running the CUDA kernels' source on the host "
                                   "(tests/cuda_on_host) needs a C++17 compiler") from None
            if done.returncode != 0:
                raise CompileError(f"kernel {name}: {CXX} could not compile its host variant "
                                   f"({stem}.cpp):\n{done.stderr[-4000:]}")
            os.replace(stem + ".so" + unique, stem + ".so")  # atomic: parallel sessions share the cache
        library = ctypes.CDLL(stem + ".so")
        entry = getattr(library, ENTRY)
        entry.restype = ctypes.c_int
        entry.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong, ctypes.c_void_p]
        _LOADED[digest] = (library, entry)
        return entry


ORDERS = ("forward", "reverse", "shuffled")


def thread_orders(n, names=ORDERS):
    """(name, thread indices) of the orders the loop runs in (kept for small loops)."""
    orders = _small_thread_orders(n) if n <= 1 << 18 else _thread_orders(n, "shuffled" in names)
    return tuple(o for o in orders if o[0] in names)


def _thread_orders(n, shuffled=True):
    forward = np.arange(n, dtype=np.int64)
    orders = (("forward", forward), ("reverse", forward[::-1].copy()))
    if shuffled:  # a permutation of a large loop costs more than the loop itself
        orders += (("shuffled", np.random.default_rng(SHUFFLE_SEED).permutation(n).astype(np.int64)),)
    for _, order in orders:
        order.flags.writeable = False
    return orders


_small_thread_orders = functools.lru_cache(maxsize=32)(_thread_orders)


# ---------------------------------------------------------------------------------------------
# memory: fresh copies of the outputs that keep every alias
# ---------------------------------------------------------------------------------------------
def _address(a):
    return a.__array_interface__["data"][0]


def _memory_key(a):
    """Arrays with the same key may share memory: the same owning array or buffer object."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return id(a.base) if a.base is not None else id(a)


def _extent(a):
    """[lo, hi) byte addresses that the array a spans."""
    lo = hi = _address(a)
    for n, stride in zip(a.shape, a.strides):
        if stride < 0:
            lo += (n - 1) * stride
        else:
            hi += (n - 1) * stride
    return lo, hi + a.itemsize


def fresh_copies(outputs, inputs):
    """For one run of the loop: (outputs, inputs) where every output, and every input that may
    share memory with one, is the same view of a fresh copy of that memory; other inputs as they
    are. The caller's arrays are not touched."""
    spans = {}
    for a in outputs:
        if a.size:
            spans[_memory_key(a)] = None
    for a in list(outputs) + [a for a in inputs if isinstance(a, np.ndarray)]:
        key = _memory_key(a) if a.size else None
        if key in spans:
            lo, hi = _extent(a)
            old = spans[key]
            spans[key] = (lo, hi) if old is None else (min(lo, old[0]), max(hi, old[1]))
    buffers = {}
    for key, (lo, hi) in spans.items():
        buffers[key] = buf = np.empty(hi - lo, dtype=np.uint8)
        ctypes.memmove(buf.ctypes.data, lo, hi - lo)

    def rebuild(a):
        if not isinstance(a, np.ndarray) or not a.size or _memory_key(a) not in buffers:
            return a
        key = _memory_key(a)
        return np.ndarray(a.shape, a.dtype, buffer=buffers[key], offset=_address(a) - spans[key][0],
                          strides=a.strides)

    return [rebuild(a) for a in outputs], [rebuild(a) for a in inputs]


def _differences(a, b):
    """(number of elements whose bits differ, flat index of the first) of two same-shape arrays."""
    bits_a = np.ascontiguousarray(a).reshape(-1).view(np.uint8).reshape(a.size, a.itemsize)
    bits_b = np.ascontiguousarray(b).reshape(-1).view(np.uint8).reshape(b.size, b.itemsize)
    differ = (bits_a != bits_b).any(axis=1)
    count = int(differ.sum())
    return count, (int(np.argmax(differ)) if count else None)


# ---------------------------------------------------------------------------------------------
# the kernel
# ---------------------------------------------------------------------------------------------
Plan = collections.namedtuple("Plan", "entry source kinds")
Plan.__doc__ = "One compiled variant: its entry function, its C++ source, 'array' or 'scalar' per parameter."


class HostKernel:
    """``cupy.ElementwiseKernel(*spec)``, run on NumPy arrays from the kernel's own CUDA source
    (see the module docstring)."""

    _plans = {}  # (spec, kinds, types) -> Plan, shared by every HostKernel of the process

    def __init__(self, spec, orders=ORDERS):
        """``orders``: the thread orders each launch runs and compares, of ORDERS (the CuPy test
        double runs whole training steps and asks for forward and reverse only: the shuffled order
        of a large loop costs more than the loop)."""
        in_params, out_params, body, name = spec
        if not orders or set(orders) - set(ORDERS):
            raise ValueError(f"orders must be some of {ORDERS}, got {orders!r}")
        self.orders = tuple(orders)
        if not name.isidentifier():
            raise ValueError(f"Invalid kernel name: {name!r}")
        self.spec = tuple(spec)
        self.name, self.body = name, body
        self.in_params = parse_params(in_params, True)
        self.out_params = parse_params(out_params, False)
        self.params = self.in_params + self.out_params
        self.nin, self.nout = len(self.in_params), len(self.out_params)
        if "i" in [p.name for p in self.params]:
            raise ValueError("Can not use 'i' as a parameter name")

    def __repr__(self):
        return f"HostKernel({self.name})"

    # -- CuPy's argument rules --------------------------------------------------------------
    def _prepare(self, args, size):
        """(loop shape, outputs, plan, kernel arguments): CuPy's checks, in CuPy's order."""
        if len(args) not in (self.nin, self.nin + self.nout):
            raise TypeError(f"Wrong number of arguments for {self.name!r}. It must be either {self.nin} or "
                            f"{self.nin + self.nout} (with outputs), but given {len(args)}.")
        for a in args:
            if not isinstance(a, (np.ndarray, np.generic, bool, int, float)):
                raise TypeError(f"kernel {self.name}: unsupported argument type {type(a).__name__} "
                                "(NumPy arrays and scalars only)")
        ins, outs = list(args[:self.nin]), list(args[self.nin:])
        for p, a in zip(self.out_params, outs):
            if not isinstance(a, np.ndarray):
                raise TypeError(f"kernel {self.name}: output {p.name} must be an array, got {type(a).__name__}")
        nonraw = [a for p, a in zip(self.params, args) if not p.raw and isinstance(a, np.ndarray)]
        if size is not None and size != -1:
            if nonraw:
                raise ValueError("Specified 'size' can be used only if all of the ndarray are 'raw'.")
            shape = (int(size),)
        elif not nonraw:
            raise ValueError("Loop size is undecided.")
        else:
            shape = np.broadcast_shapes(*[a.shape for a in nonraw])
        in_types, out_types, types = decide_types(
            self.name, self.in_params, self.out_params,
            [a.dtype if isinstance(a, np.ndarray) else None for a in ins], [a.dtype for a in outs])
        if not outs:
            if any(p.raw for p in self.out_params) and (size is None or size == -1):
                raise ValueError("Output array size is Undecided")
            outs = [np.empty(shape, dtype=t) for t in out_types]
        for p, a in zip(self.out_params, outs):
            if not p.raw and a.shape != tuple(shape):
                raise ValueError(f"kernel {self.name}: Out shape is mismatched: {p.name} is {a.shape}, "
                                 f"the loop is {tuple(shape)}")
        # a scalar becomes its parameter's type as CuPy stores it (NumPy's assignment rules)
        ins = [a if isinstance(a, np.ndarray) else np.array(a, dtype=t) for a, t in zip(ins, in_types)]
        kinds = tuple("array" if isinstance(a, np.ndarray) else "scalar" for a in args[:self.nin]) + \
            ("array",) * self.nout
        key = (self.spec, kinds, tuple(sorted((k, str(v)) for k, v in types.items())))
        plan = self._plans.get(key)
        if plan is None:
            source = generate_source(self.name, self.body, self.params, kinds, types)
            plan = Plan(compile_source(source, self.name), source, kinds)
            self._plans[key] = plan
        return tuple(shape), outs, plan, ins

    def source(self, *args, size=-1):
        """The C++ of the variant that a call with these arguments runs (compiled, not run)."""
        return self._prepare(args, size)[2].source

    # -- the launch ----------------------------------------------------------------------------
    def __call__(self, *args, size=-1, stream=None, block_size=128):
        if block_size <= 0:
            raise ValueError("block_size must be greater than zero")
        shape, outs, plan, ins = self._prepare(args, size)
        ret = outs[0] if self.nout == 1 else tuple(outs)
        n = int(np.prod(shape, dtype=np.int64))
        if n == 0:
            return ret
        out_keys = [_memory_key(a) for a in outs if a.size]
        aliased = len(set(out_keys)) < len(out_keys) or any(
            isinstance(a, np.ndarray) and a.size and _memory_key(a) in out_keys for a in ins)
        if not aliased:  # the usual launch: the inputs once, a plain copy of each output per run
            in_work = self._input_work(plan, shape, ins)
            in_ptrs = [_address(a) for a in in_work]
        runs = []
        for order_name, order in thread_orders(n, self.orders):
            if aliased:  # every alias kept: views of one fresh copy of the memory they share
                fresh_outs, fresh_ins = fresh_copies(outs, ins)
                in_work = self._input_work(plan, shape, fresh_ins)
                in_ptrs = [_address(a) for a in in_work]
            else:
                fresh_outs = [np.array(a, order="C") for a in outs]
            out_work = [a if a.flags.c_contiguous else np.ascontiguousarray(a) for a in fresh_outs]
            self._run(plan, in_work + out_work, in_ptrs + [_address(a) for a in out_work], order, order_name)
            for a, w in zip(fresh_outs, out_work):
                if w is not a:  # a non-contiguous view of the shared copy
                    a[...] = w
            runs.append((order_name, fresh_outs))
        (_, first), later = runs[0], runs[1:]
        for order_name, result in later:
            for p, a, b in zip(self.out_params, first, result):
                if a.tobytes() != b.tobytes():
                    count, where = _differences(a, b)
                    raise OrderDependentError(
                        f"order-dependent: kernel {self.name} wrote different results in forward and {order_name} "
                        f"order (output {p.name}: {count} of {a.size} elements differ, the first at flat index "
                        f"{where}: {a.reshape(-1)[where]} against {b.reshape(-1)[where]}). An output that "
                        "aliases an input, or threads that read or write each other's output elements?")
        for out, result in zip(outs, first):
            np.copyto(out, result)
        return ret

    def _input_work(self, plan, shape, ins):
        """The inputs as the loop reads them: C-contiguous, non-raw arrays broadcast to the loop."""
        work = []
        for p, kind, a in zip(self.in_params, plan.kinds, ins):
            if kind == "array" and not p.raw and a.shape != shape:
                a = np.broadcast_to(a, shape)
            work.append(a if a.flags.c_contiguous else np.ascontiguousarray(a))
        return work

    def _run(self, plan, work, pointers, order, order_name):
        """One pass of the loop over the threads in ``order``, on the arrays ``work`` (inputs, then
        outputs, each C-contiguous; a scalar as a 0-d array)."""
        argv = (ctypes.c_void_p * len(work))(*pointers)
        sizes = np.array([w.size for w in work], dtype=np.int64)
        fault = np.zeros(4, dtype=np.int64)
        status = plan.entry(argv, _address(sizes), _address(order), len(order), _address(fault))
        if status:
            param, index, size, thread = (int(v) for v in fault)
            raise OutOfBoundsError(
                f"kernel {self.name}: raw parameter {self.params[param].name} indexed out of bounds at {index} "
                f"(it has {size} elements), by thread i = {thread} of {len(order)} ({order_name} order)")
