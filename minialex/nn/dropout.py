"""Dropout: zero each unit with probability p while training (inverted scaling).
Derivation, and why it matches the paper's test-time x0.5, in docs/layers/dropout.md;
checked in tests/nn/test_dropout.py."""

import numpy as np

from .. import backend
from .checks import check_float_input
from .module import Module


class Dropout(Module):
    """Training: y = x * m / (1 - p) with m ~ Bernoulli(1 - p) per element. Evaluation: y = x.

    The paper multiplies outputs by 0.5 at test time instead ("dropout2" in
    cuda-convnet). Scaling the kept units by 1/(1-p) during training gives the
    same expectation, E[y] = x, and leaves the test-time network untouched.

    Masks come from a generator seeded with ``(seed, calls)``, where ``calls``
    counts the training forwards. The layer's whole random state is therefore
    two integers: a checkpoint stores them and a resumed run draws the very
    same masks.
    """

    def __init__(self, p=0.5, seed=0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p, self.seed, self.calls = p, int(seed), 0
        self._mask = None  # saved: the scaled mask m / (1 - p), or None in evaluation

    def extra_repr(self):
        return f"p={self.p}"

    def forward(self, x):
        if not hasattr(x, "dtype") or x.dtype.kind != "f":
            check_float_input(self, x, getattr(x, "ndim", 0))
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        xp = backend.get_array_module(x)
        rng = backend.default_rng(xp, np.random.SeedSequence([self.seed, self.calls]).generate_state(1)[0])
        self.calls += 1
        keep = rng.random(x.shape, dtype=np.float32) >= self.p
        self._mask = keep.astype(x.dtype)
        self._mask *= 1.0 / (1.0 - self.p)
        return x * self._mask

    def backward(self, dout):
        # y = x * mask, so dx = dout * mask (and dx = dout in evaluation)
        if self._mask is None:
            if self.training and self.p > 0.0:
                raise RuntimeError("Dropout.backward called without a training forward pass before it")
            return dout
        dx = dout * self._mask
        self._mask = None
        return dx
