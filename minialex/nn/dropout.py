"""Dropout: zero each unit with probability p while training (inverted scaling).
Derivation, and why it matches the paper's test-time x0.5, in docs/layers/dropout.md;
checked in tests/nn/test_dropout.py."""

import numpy as np

from .. import backend
from .checks import check_float_input
from .dispatch import REFERENCE
from .module import Module


def dropout_mask(seed, call, shape, p, xp=np, dtype=np.float32):
    """The scaled mask m / (1 - p), m ~ Bernoulli(1 - p), of training forward number ``call``.

    A pure function of (seed, call, shape, p) on a backend: the same arguments give the
    same mask, which is what makes resumed runs exact and lets the two-column network
    draw the single-device network's masks (each column draws the full mask and keeps
    its half).
    """
    rng = backend.default_rng(xp, np.random.SeedSequence([int(seed), int(call)]).generate_state(1)[0])
    mask = (rng.random(shape, dtype=np.float32) >= p).astype(dtype)
    mask *= 1.0 / (1.0 - p)
    return mask


class Dropout(Module):
    """Training: y = x * m / (1 - p) with m ~ Bernoulli(1 - p) per element. Evaluation: y = x.

    The paper multiplies outputs by 0.5 at test time instead ("dropout2" in
    cuda-convnet). Scaling the kept units by 1/(1-p) during training gives the
    same expectation, E[y] = x, and leaves the test-time network untouched.

    Masks come from ``dropout_mask(seed, calls, ...)``, where ``calls`` counts the
    training forwards. The layer's whole random state is therefore two integers,
    ``seed`` and ``calls``: a checkpoint stores them and a resumed run draws the very
    same masks.
    """

    def __init__(self, p=0.5, seed=0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p, self.seed, self.calls = p, int(seed), 0

    def extra_repr(self):
        return f"p={self.p}"

    def forward(self, x):
        """x (any shape) -> y; saves the scaled mask (None in evaluation: y = x)."""
        if not hasattr(x, "dtype") or x.dtype.kind != "f":
            check_float_input(self, x, getattr(x, "ndim", 0))
        if not self.training or self.p == 0.0:
            self.save_for_backward(REFERENCE, mask=None)
            return x
        mask = dropout_mask(self.seed, self.calls, x.shape, self.p, backend.get_array_module(x), x.dtype)
        self.calls += 1
        self.save_for_backward(REFERENCE, mask=mask)
        return x * mask

    def backward(self, dout):
        # y = x * mask, so dx = dout * mask (and dx = dout in evaluation)
        mask = self.saved_for_backward().mask
        return dout if mask is None else dout * mask
