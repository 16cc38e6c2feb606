"""ReLU: y = max(0, x). Backward derived in docs/layers/relu.md;
checked in tests/nn/test_relu.py. Fast version: minialex/kernels/cpu/relu.py."""

from .. import backend
from ..kernels.cpu import relu as cpu_relu
from .checks import check_float_input
from .dispatch import REFERENCE, fast_implementation
from .module import Module


class ReLU(Module):
    """y = max(0, x), elementwise; any shape.

    The derivative is 1 where x > 0 and 0 elsewhere (we take 0 at x = 0 exactly).
    Since y > 0 exactly where x > 0, backward needs only the output, which lets
    ``inplace=True`` overwrite x with y in forward without losing anything (as
    PyTorch's ``inplace``); the caller must not need x afterwards.

    ``backward(dout)`` returns a new array. ``backward(dout, out=dout)`` writes dx
    over dout instead, for a caller that will not read dout again (the AlexNet
    networks do this: it saves one activation-sized array per ReLU).
    """

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""

    def forward(self, x):
        """x (any shape) -> y = max(x, 0); saves y."""
        if not hasattr(x, "dtype") or x.dtype.kind != "f":
            check_float_input(self, x, getattr(x, "ndim", 0))
        if (fast := fast_implementation(x, cpu=cpu_relu)) is not None:
            return self.run_fast(fast, x)  # dispatch (minialex/nn/dispatch.py): a kernel unless reference()
        xp = backend.get_array_module(x)
        y = xp.maximum(x, 0, out=x if self.inplace else None)
        self.save_for_backward(REFERENCE, y=y)
        return y

    def backward(self, dout, out=None):
        """dx = dout where y > 0, else 0 (same shape as dout); into ``out`` when given."""
        saved = self.saved_for_backward()
        if saved.by is not REFERENCE:
            return saved.by.backward(self, saved, dout, out)  # the kernel that made the forward
        xp = backend.get_array_module(dout)
        return xp.multiply(dout, saved.y > 0, out=out)


def backward_reusing(layer, dout):
    """``layer.backward(dout)``, but a ReLU writes its dx over dout (``out=dout``).

    For a network whose every backward returns a fresh array that only the layer before
    it reads (minialex's AlexNet, on one device or two), that array is free once passed on,
    and this saves one activation-sized array per ReLU (conv1's gradient is 149 MB). A
    Sequential in general cannot assume it: a layer may hand its dout back unchanged.
    """
    if isinstance(layer, ReLU):
        return layer.backward(dout, out=dout)
    return layer.backward(dout)
