"""The double's ``cupy.ElementwiseKernel``: CuPy's parameter parsing, type rules
(``_decide_params_type``), argument and output-shape checks and keywords (``size=``,
``block_size=``, ``stream=``), then ONE launch on the stream, computed on the host.

How it computes: with the kernel's own CUDA source, through ``HostKernel`` of
tests/cuda_on_host/host_kernel.py (g++ on the CPU, every raw access bounds-checked, the threads
run in three orders), so the accounting tests run the code a GPU would run. Only where that
helper cannot be imported does it fall back to minialex's NumPy twin of the kernel with that name
(minialex/kernels/cuda/elementwise.py: TWINS); ``COMPUTED_BY`` says which.
"""

import re

import numpy as np

from . import ledger, streams
from .ndarray import ndarray, wrap

try:
    from ...cuda_on_host.host_kernel import HostKernel
    COMPUTED_BY = "the kernel's CUDA source (tests/cuda_on_host/host_kernel.py: HostKernel)"
except ImportError:  # the helper is missing: the twins compute
    HostKernel = None
    COMPUTED_BY = "minialex's NumPy twins (tests/cuda_on_host/host_kernel.py could not be imported)"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ParameterInfo:
    """One parameter, as cupy._core._kernel.ParameterInfo reads ``"raw T x"`` or ``"int64 H"``."""

    def __init__(self, param, is_const):
        words = param.split()
        if len(words) < 2:
            raise Exception(f"Syntax error: {param}")  # CuPy's own (bare) Exception
        t, self.name = words[-2:]
        self.raw, self.is_const = False, is_const
        self.dtype = self.ctype = None
        if len(t) == 1:
            self.ctype = t
        else:
            self.dtype = np.dtype(t)
            self.ctype = t
        for word in words[:-2]:
            if word == "raw":
                self.raw = True
            elif word == "_non_const":
                self.is_const = False
            else:
                raise Exception(f'Unknown keyword "{word}"')


def get_param_info(s, is_const):
    if len(s) == 0:
        return ()
    return tuple(ParameterInfo(p, is_const) for p in s.strip().split(","))


def decide_params_type(in_params, out_params, in_args_dtype, out_args_dtype):
    """cupy._core._kernel._decide_params_type: (in_types, out_types, {placeholder: dtype}) from the
    dtypes of the output and input arrays (None for a scalar), or TypeError as CuPy raises it."""
    type_dict = {}
    if out_args_dtype:
        assert len(out_params) == len(out_args_dtype)
        if any(a is None for a in out_args_dtype):
            raise TypeError("Output arguments must be cupy.ndarray")
    assert len(in_params) == len(in_args_dtype)
    # outputs first, then the input arrays (a scalar, None here, takes the type it finds)
    for p, a in zip(list(out_params if out_args_dtype else ()) + list(in_params),
                    list(out_args_dtype or ()) + list(in_args_dtype)):
        if a is None:
            continue
        if p.dtype is not None:
            if np.dtype(a) != p.dtype:
                raise TypeError(f"Type is mismatched. {p.name} {a} {p.dtype}")
        elif p.ctype in type_dict:
            t = type_dict[p.ctype]
            if np.dtype(t) != np.dtype(a):
                raise TypeError(f"Type is mismatched. {p.name} {a} {t} {p.ctype}")
        else:
            type_dict[p.ctype] = np.dtype(a)
    in_types = tuple(type_dict[p.ctype] if p.dtype is None else p.dtype for p in in_params)
    out_types = tuple(type_dict[p.ctype] if p.dtype is None else p.dtype for p in out_params)
    return in_types, out_types, dict(sorted(type_dict.items()))


# kernel name -> twin for kernels of the tests themselves, used only without HostKernel; called with
# the parameters and ``_size``, the loop size
EXTRA_TWINS = {}


def _twins():
    """minialex's registry of kernel twins, filled by importing the kernel modules."""
    import importlib
    import pkgutil

    import minialex.kernels.cuda as package
    from minialex.kernels.cuda.elementwise import TWINS
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    return TWINS


class ElementwiseKernel:
    """cupy.ElementwiseKernel(in_params, out_params, operation, name='kernel', reduce_dims=True,
    preamble='', no_return=False, return_tuple=False, **kwargs)."""

    _cupy_name = "cupy.ElementwiseKernel"
    _host_kernels = {}  # spec -> HostKernel, shared

    def __init__(self, in_params, out_params, operation, name="kernel", reduce_dims=True, preamble="",
                 no_return=False, return_tuple=False, **kwargs):
        if not _NAME.match(name):
            raise ValueError(f'Invalid kernel name: "{name}"')
        self.in_params = get_param_info(in_params, True)
        self.out_params = get_param_info(out_params, False)
        self.nin, self.nout = len(self.in_params), len(self.out_params)
        self.nargs = self.nin + self.nout
        self.params = self.in_params + self.out_params
        self.operation, self.name, self.__name__ = operation, name, name
        self.reduce_dims, self.preamble = reduce_dims, preamble
        self.no_return, self.return_tuple, self.kwargs = no_return, return_tuple, kwargs
        if "i" in [p.name for p in self.params]:
            raise ValueError("Can not use 'i' as a parameter name")
        self.spec = (in_params, out_params, operation, name)
        if preamble or set(kwargs) - {"options", "loop_prep", "after_loop"}:
            raise NotImplementedError(f"the CuPy double runs kernels without preamble, loop_prep or after_loop "
                                      f"({name})")

    def _decide_params_type(self, in_args_dtype, out_args_dtype):
        in_types, out_types, _ = decide_params_type(self.in_params, self.out_params, tuple(in_args_dtype),
                                                    tuple(out_args_dtype))
        return in_types, out_types

    def __call__(self, *args, **kwargs):
        size = kwargs.pop("size", -1)
        stream = kwargs.pop("stream", None)
        block_size = kwargs.pop("block_size", 128)
        if kwargs:
            raise TypeError(f"Wrong arguments {kwargs}")
        if block_size <= 0:
            raise ValueError("block_size must be greater than zero")
        if len(args) not in (self.nin, self.nargs):
            raise TypeError(f"Wrong number of arguments for {self.name!r}. It must be either {self.nin} or "
                            f"{self.nargs} (with outputs), but given {len(args)}.")
        for a in args:
            if isinstance(a, np.ndarray) or not isinstance(a, (ndarray, np.generic, bool, int, float, complex)):
                raise TypeError(f"Unsupported type {type(a)}")
        ledger.check_inputs(self.name, *args)
        ins, outs = list(args[:self.nin]), list(args[self.nin:])
        # the loop shape: the broadcast non-raw arrays, or size= where every array is raw
        nonraw = [a for p, a in zip(self.params, args) if not p.raw and isinstance(a, ndarray)]
        if size != -1:
            if nonraw:
                raise ValueError("Specified 'size' can be used only if all of the ndarray are 'raw'.")
            shape = (int(size),)
        elif not nonraw:
            raise ValueError("Loop size is undecided.")
        else:
            try:
                shape = np.broadcast_shapes(*(a.shape for a in nonraw))
            except ValueError:
                raise ValueError("operands could not be broadcast together with shapes "
                                 + " ".join(str(a.shape) for a in nonraw)) from None
        in_types, out_types = self._decide_params_type(
            [a.dtype if isinstance(a, ndarray) else None for a in ins], [a.dtype for a in outs])
        if not outs:
            if any(p.raw for p in self.out_params) and size == -1:
                raise ValueError("Output array size is Undecided")
            outs = [wrap(np.empty(shape, dtype=t)) for t in out_types]
        for p, a in zip(self.out_params, outs):
            if not isinstance(a, ndarray):
                raise TypeError("Output arguments type must be cupy.ndarray")
            if not p.raw and a.shape != tuple(shape):
                raise ValueError("Out shape is mismatched")
        for p, a in zip(self.in_params, ins):  # minialex's kernels index raw inputs as C-ordered blocks
            if p.raw and isinstance(a, ndarray) and not a.flags.c_contiguous:
                raise ValueError(f"{self.name}: raw input {p.name} must be C-contiguous")
        ret = None if self.no_return else (outs[0] if self.nout == 1 and not self.return_tuple else tuple(outs))
        if int(np.prod(shape, dtype=np.int64)) == 0:  # CuPy returns before launching
            return ret
        target = streams.resolve(stream)
        if stream is not None:
            target_device = target.device_id if target.device_id != -1 else streams.current_device()
            if target_device != streams.current_device():  # a launch on a stream of another device fails
                raise streams.CUDARuntimeError(
                    f"cudaErrorInvalidResourceHandle: kernel {self.name} launched on a stream of device "
                    f"{target_device} while device {streams.current_device()} is current")
        ledger.launch(f"kernel {self.name}", stream=target)
        # scalars take their parameter's type as CuPy stores them (NumPy's assignment rules)
        host_ins = [a._a if isinstance(a, ndarray) else np.array(a, dtype=t)[()] for a, t in zip(ins, in_types)]
        host_outs = [a._a for a in outs]
        if HostKernel is not None:
            k = self._host_kernels.get(self.spec)
            if k is None:
                # two orders: enough to see an order-dependent kernel; each op's tests add a shuffled one
                k = self._host_kernels[self.spec] = HostKernel(self.spec, orders=("forward", "reverse"))
            k(*host_ins, *host_outs, size=size, block_size=block_size)
        else:
            params = dict(zip([p.name for p in self.params], host_ins + host_outs))
            if self.name in EXTRA_TWINS:
                EXTRA_TWINS[self.name](dict(params, _size=int(np.prod(shape, dtype=np.int64))))
            elif self.name in _twins():
                _twins()[self.name](params)
            else:
                raise NotImplementedError(f"the CuPy double has no twin for kernel {self.name!r} (and no HostKernel)")
        ledger.written(*outs, stream=target)
        return ret
