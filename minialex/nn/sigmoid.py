"""Sigmoid: the layer that calls the sigmoid pair, y = 1 / (1 + exp(-x)). The mathematics:
minialex/nn/functional/sigmoid.py (derived in docs/layers/tanh-sigmoid.md); the fast versions:
minialex/kernels/cpu/sigmoid.py, minialex/kernels/cuda/sigmoid.py; all tested in
tests/ops/test_sigmoid.py."""

from ..kernels.cpu import sigmoid as cpu_sigmoid
from ..kernels.cuda import sigmoid as cuda_sigmoid
from . import functional
from .checks import check_float_input
from .dispatch import Op
from .module import Module

SIGMOID = Op("sigmoid", reference=functional.sigmoid, cpu=cpu_sigmoid, cuda=cuda_sigmoid)


class Sigmoid(Module):
    """y = 1 / (1 + exp(-x)), elementwise; any shape; safe for any x (no overflow). No
    parameters. Its derivative is at most 1/4, which is why deep stacks of it train slowly
    (docs/layers/tanh-sigmoid.md)."""

    def forward(self, x):
        """x (any shape) -> y = sigmoid(x): sigmoid_forward."""
        if not hasattr(x, "dtype") or x.dtype.kind != "f":
            check_float_input(self, x, getattr(x, "ndim", 0))
        return self.forward_with(SIGMOID, x)

    def backward(self, dout):
        """dx = dout * y (1 - y) (same shape as dout)."""
        return self.backward_with(dout)
