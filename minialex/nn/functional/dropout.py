"""dropout: zero each unit with probability p while training, scaling the kept ones by
1 / (1 - p); the readable reference pair. Derived in docs/layers/dropout.md, and why it matches
the paper's test-time x0.5; tested in tests/ops/test_dropout.py. Where the random mask comes
from (a counter-based hash, so a resumed run draws the same masks): minialex/nn/masks.py."""

from collections import namedtuple

from ... import backend

DropoutCache = namedtuple("DropoutCache", "mask")
DropoutCache.__doc__ = "What dropout_forward keeps: the scaled mask m / (1 - p), the shape of x."


def dropout_forward(x, p, key):
    """Training: y = x * m / (1 - p), m ~ Bernoulli(1 - p) elementwise (dropout.md, "Forward";
    evaluation is y = x).

    x: any shape. ``key`` (a MaskKey of minialex/nn/masks.py: the layer's seed and the number
    of this training forward) picks the mask. Returns (y, cache).
    """
    mask = key.draw(x.shape, p, x.dtype, backend.get_array_module(x))  # m / (1 - p), like x
    return x * mask, DropoutCache(mask)


def dropout_backward(dout, cache):
    """y = x * mask, so dx = dout * mask (dropout.md, "Backward"). dout: the shape of x."""
    return dout * cache.mask
