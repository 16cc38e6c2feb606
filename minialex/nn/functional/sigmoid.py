"""sigmoid: y = 1 / (1 + exp(-x)), the readable reference pair. Derived in
docs/layers/tanh-sigmoid.md; tested in tests/ops/test_sigmoid.py. Fast versions of the same pair:
minialex/kernels/cpu/sigmoid.py (in cache-sized pieces, no temporaries) and
minialex/kernels/cuda/sigmoid.py (one launch per pass)."""

from collections import namedtuple

from ... import backend

SigmoidCache = namedtuple("SigmoidCache", "y")
SigmoidCache.__doc__ = "What sigmoid_forward keeps: its output y, from which the derivative y (1 - y) follows."


def sigmoid_forward(x):
    """y = 1 / (1 + exp(-x)), elementwise; x any shape, y the same (and dtype). Returns (y, cache).

    Computed from z = exp(-|x|), which lies in (0, 1] and so can neither overflow nor divide by
    zero: y = 1 / (1 + z) where x >= 0, and y = z / (1 + z) (the same function, multiplied through
    by exp(x)) where x < 0. The textbook form exp(-x) overflows for x < -88 in float32 (-709 in
    float64) and warns; it still ends at the right limit 0, but a warning in every step hides the
    ones that matter. 0.5 * (1 + tanh(x / 2)) cannot overflow either, but 1 + tanh(x / 2) cancels
    to 0 from x = -20 in float32 (-38 in float64), where y is still 2e-9: this form keeps y's
    relative accuracy in both tails (docs/layers/tanh-sigmoid.md, "Computing the sigmoid safely")."""
    xp = backend.get_array_module(x)
    z = xp.exp(-xp.abs(x))  # in (0, 1]: exp of a number <= 0 underflows to 0 at worst, silently
    denom = 1 + z  # in (1, 2]
    y = xp.where(x >= 0, 1 / denom, z / denom)
    return y, SigmoidCache(y)


def sigmoid_backward(dout, cache):
    """dx = dout * y (1 - y), with y the forward's output (tanh-sigmoid.md, "sigmoid"): the
    derivative from the output, so backward computes no exponential. dout: the shape of y."""
    y = cache.y
    return dout * (y * (1 - y))
