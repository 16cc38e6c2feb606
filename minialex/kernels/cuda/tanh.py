"""tanh on CuPy: the pair of the reference (minialex/nn/functional/tanh.py, derived in
docs/layers/tanh-sigmoid.md) with the same signatures, one launch per pass, with NumPy twins.
The forward is one launch anyway (cupy.tanh); the backward, which the reference spells as three
launches and two activation-sized temporaries (y * y, 1 - that, dout * that), is one fused
launch that reads dout and y once and writes dx once. Conventions of this folder: elementwise.py.
Tested with every implementation in tests/ops/test_tanh.py, and the kernels' own source on the
host in tests/cuda_on_host/test_kernels.py."""

from collections import namedtuple

import numpy as np

from ... import backend
from .elementwise import check_float, kernel, twin

TanhCache = namedtuple("TanhCache", "y")
TanhCache.__doc__ = "As the reference's: the output y."

TANH_FWD = (
    "T x",
    "T y",
    "y = tanh(x);  // CUDA's tanhf for float (2 ulps), tanh for double (1 ulp); saturates, never overflows",
    "minialex_tanh_fwd",
)

TANH_BWD = (
    "T dout, T y",
    "T dx",
    "dx = dout * ((T)1 - y * y);  // the derivative 1 - tanh^2 from the output (tanh-sigmoid.md)",
    "minialex_tanh_bwd",
)


def tanh_forward(x):
    """y = tanh(x) in a new array, one launch."""
    check_float(x, "tanh.tanh_forward")
    y = backend.get_array_module(x).empty_like(x)
    kernel(TANH_FWD)(x, y)
    return y, TanhCache(y)


def tanh_backward(dout, cache):
    """dx = dout * (1 - y^2) in a new array, one launch."""
    check_float(dout, "tanh.tanh_backward")
    dx = backend.get_array_module(dout).empty_like(dout)
    kernel(TANH_BWD)(dout, cache.y, dx)
    return dx


@twin(TANH_FWD)
def _(p):
    np.tanh(p["x"], out=p["y"])


@twin(TANH_BWD)
def _(p):
    y, dx = p["y"], p["dx"]
    one = dx.dtype.type(1)
    dx[...] = p["dout"] * (one - y * y)
