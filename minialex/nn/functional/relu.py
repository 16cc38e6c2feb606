"""relu: y = max(0, x), the readable reference pair. Derived in docs/layers/relu.md; tested in
tests/ops/test_relu.py. Fast version of the same pair: minialex/kernels/cpu/relu.py (with the
in-place variants the networks use to save memory)."""

from collections import namedtuple

from ... import backend

ReLUCache = namedtuple("ReLUCache", "y")
ReLUCache.__doc__ = "What relu_forward keeps: its output y, whose sign is the derivative."


def relu_forward(x):
    """y = max(0, x), elementwise; x any shape, y the same. Returns (y, cache)."""
    xp = backend.get_array_module(x)
    y = xp.maximum(x, 0)
    return y, ReLUCache(y)


def relu_backward(dout, cache):
    """dx = dout where x > 0, else 0 (we take the derivative at x = 0 to be 0: relu.md,
    "Derivative"). Since y > 0 exactly where x > 0, the output is all backward needs ("Backward
    needs only the output"). dout: the shape of x."""
    return dout * (cache.y > 0)
