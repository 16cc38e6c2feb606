"""ReLU: y = max(0, x). Backward derived in docs/layers/relu.md;
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

    With ``inplace=True`` the backward pass is in place too: the incoming
    gradient array ``dout`` is overwritten with dx and returned (when it has the
    output's shape and a float dtype). Every layer's backward returns a fresh
    array that its caller owns, so inside a network nothing else reads it
    afterwards; a caller that needs its ``dout`` later must pass a copy.
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
        if fast.use_fast(x) and x.flags.c_contiguous:
            y = fast.relu_forward(x, self.inplace)  # chunked on all cores
        else:
            y = self._forward_plain(x)
        self._y = y
        return y

    def _forward_plain(self, x):
        xp = backend.get_array_module(x)
        return xp.maximum(x, 0, out=x if self.inplace else None)

    def backward(self, dout):
        if self._y is None:
            raise RuntimeError("ReLU.backward called without a forward pass before it")
        y = self._y
        inplace = self.inplace and dout.shape == y.shape and dout.dtype.kind == "f"
        if fast.use_fast(dout) and dout.shape == y.shape and (dout.flags.c_contiguous or not inplace):
            dx = fast.relu_backward(y, dout, inplace)  # chunked on all cores, no full-size mask
        else:
            dx = self._backward_plain(dout, inplace)
        self._y = None
        return dx

    def _backward_plain(self, dout, inplace):
        """dx = dout where y > 0, else 0; written into dout itself when ``inplace``."""
        xp = backend.get_array_module(dout)
        if inplace:
            return xp.multiply(dout, self._y > 0, out=dout)
        return dout * (self._y > 0)
