"""Tanh: the layer that calls the tanh pair, y = tanh(x). The mathematics:
minialex/nn/functional/tanh.py (derived in docs/layers/tanh-sigmoid.md); the fast versions:
minialex/kernels/cpu/tanh.py, minialex/kernels/cuda/tanh.py; all tested in tests/ops/test_tanh.py."""

from ..kernels.cpu import tanh as cpu_tanh
from ..kernels.cuda import tanh as cuda_tanh
from . import functional
from .checks import check_float_input
from .dispatch import Op
from .module import Module

TANH = Op("tanh", reference=functional.tanh, cpu=cpu_tanh, cuda=cuda_tanh)


class Tanh(Module):
    """y = tanh(x), elementwise; any shape. No parameters. The saturating nonlinearity AlexNet
    replaced with ReLU (section 3.1 of the paper; docs/layers/tanh-sigmoid.md says why), here
    for comparison and for networks that want a bounded output."""

    def forward(self, x):
        """x (any shape) -> y = tanh(x): tanh_forward."""
        if not hasattr(x, "dtype") or x.dtype.kind != "f":
            check_float_input(self, x, getattr(x, "ndim", 0))
        return self.forward_with(TANH, x)

    def backward(self, dout):
        """dx = dout * (1 - y^2) (same shape as dout)."""
        return self.backward_with(dout)
