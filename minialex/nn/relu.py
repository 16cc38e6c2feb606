"""ReLU: y = max(0, x). Backward derived in docs/layers/relu-dropout.md;
checked in tests/nn/test_relu.py."""

from .. import backend
from . import fast
from .checks import check_float_input
from .module import Module


class ReLU(Module):
    """y = max(0, x), elementwise; any shape.

    The derivative is 1 where x > 0 and 0 elsewhere (we take 0 at x = 0 exactly).
    Since y > 0 exactly where x > 0, backward needs only the output, which lets
    a network overwrite x in place (``inplace=True``) without losing anything.
    """

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace
        self._y = None  # saved: the output, whose sign pattern is the derivative

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""

    def forward(self, x):
        if not hasattr(x, "dtype") or x.dtype.kind != "f":
            check_float_input(self, x, getattr(x, "ndim", 0))
        xp = backend.get_array_module(x)
        y = xp.maximum(x, 0, out=x if self.inplace else None)
        self._y = y
        return y

    def backward(self, dout):
        if self._y is None:
            raise RuntimeError("ReLU.backward called without a forward pass before it")
        if fast.use_fast(dout) and dout.shape == self._y.shape:
            dx = fast.relu_backward(self._y, dout)  # chunked on all cores, no full-size mask
        else:
            dx = dout * (self._y > 0)
        self._y = None
        return dx
