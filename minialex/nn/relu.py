"""ReLU: the layer that calls the relu pair, y = max(0, x). The mathematics:
minialex/nn/functional/relu.py (derived in docs/layers/relu.md); the fast version and the
in-place variants: minialex/kernels/cpu/relu.py, minialex/kernels/cuda/relu.py; all tested in
tests/ops/test_relu.py."""

from ..kernels.cpu import relu as cpu_relu
from ..kernels.cuda import relu as cuda_relu
from . import functional
from .checks import check_float_input
from .dispatch import Op
from .module import Module

RELU = Op("relu", reference=functional.relu, cpu=cpu_relu)
# The in-place variants have no reference of their own: inside reference() the pure pair runs.
RELU_INPLACE = Op("relu_inplace", reference=(functional.relu_forward, functional.relu_backward),
                  cpu=(cpu_relu.relu_forward_inplace, cpu_relu.relu_backward_inplace),
                  cuda=(cuda_relu.relu_forward_inplace, cuda_relu.relu_backward_inplace))


class ReLU(Module):
    """y = max(0, x), elementwise; any shape.

    ``inplace=True`` (as PyTorch's) writes y over x in forward, and dx over dout in backward,
    saving two activation-sized arrays: for a network where nothing else reads a ReLU's input
    or the gradient handed to it (minialex's AlexNet, on one device or two). Backward needs only
    y, so nothing is lost (docs/layers/relu.md). Inside ``reference()`` the pure pair runs.
    """

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""

    def forward(self, x):
        """x (any shape) -> y = max(x, 0): relu_forward."""
        if not hasattr(x, "dtype") or x.dtype.kind != "f":
            check_float_input(self, x, getattr(x, "ndim", 0))
        return self.forward_with(RELU_INPLACE if self.inplace else RELU, x)

    def backward(self, dout):
        """dx = dout where y > 0, else 0 (same shape as dout)."""
        return self.backward_with(dout)
