"""sigmoid on CuPy: the pair of the reference (minialex/nn/functional/sigmoid.py, derived in
docs/layers/tanh-sigmoid.md) with the same signatures, one launch per pass, with NumPy twins.
The reference's safe forward is seven launches on CuPy, each into a new array (abs, negative,
exp, 1 + z, the two quotients, where), its backward three; here each is one launch that reads its
inputs once and writes its output once, with the reference's operations in its order. Conventions
of this folder: elementwise.py. Tested with every implementation in tests/ops/test_sigmoid.py,
and the kernels' own source on the host in tests/cuda_on_host/test_kernels.py."""

from collections import namedtuple

import numpy as np

from ... import backend
from .elementwise import check_float, kernel, twin

SigmoidCache = namedtuple("SigmoidCache", "y")
SigmoidCache.__doc__ = "As the reference's: the output y."

SIGMOID_FWD = (
    "T x",
    "T y",
    """
    // z = exp(-|x|) is in (0, 1]: it cannot overflow, and 1 + z cannot be 0 (tanh-sigmoid.md,
    // "Computing the sigmoid safely"); y = 1 / (1 + z) for x >= 0, z / (1 + z) = the same
    // function times exp(x) / exp(x) for x < 0, so both tails keep their relative accuracy
    const T z = exp(-fabs(x));
    const T denom = (T)1 + z;
    y = (x >= (T)0) ? (T)1 / denom : z / denom;
    """,
    "minialex_sigmoid_fwd",
)

SIGMOID_BWD = (
    "T dout, T y",
    "T dx",
    "dx = dout * (y * ((T)1 - y));  // the derivative y (1 - y) from the output (tanh-sigmoid.md)",
    "minialex_sigmoid_bwd",
)


def sigmoid_forward(x):
    """y = 1 / (1 + exp(-x)) in a new array, safely for any x, one launch."""
    check_float(x, "sigmoid.sigmoid_forward")
    y = backend.get_array_module(x).empty_like(x)
    kernel(SIGMOID_FWD)(x, y)
    return y, SigmoidCache(y)


def sigmoid_backward(dout, cache):
    """dx = dout * y (1 - y) in a new array, one launch."""
    check_float(dout, "sigmoid.sigmoid_backward")
    dx = backend.get_array_module(dout).empty_like(dout)
    kernel(SIGMOID_BWD)(dout, cache.y, dx)
    return dx


@twin(SIGMOID_FWD)
def _(p):
    x, y = p["x"], p["y"]
    one = y.dtype.type(1)
    z = np.exp(-np.abs(x))
    denom = one + z
    y[...] = np.where(x >= 0, one / denom, z / denom)


@twin(SIGMOID_BWD)
def _(p):
    y, dx = p["y"], p["dx"]
    dx[...] = p["dout"] * (y * (y.dtype.type(1) - y))
