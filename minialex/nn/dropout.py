"""Dropout: the layer that holds dropout's rate and random state and calls the dropout pair.
The mathematics: minialex/nn/functional/dropout.py (derived in docs/layers/dropout.md); where
its masks come from: minialex/nn/masks.py; tested in tests/ops/test_dropout.py."""

from . import functional
from .checks import check_float_input
from .dispatch import Op
from .masks import MaskKey
from .module import Module

DROPOUT = Op("dropout", reference=functional.dropout)


class Dropout(Module):
    """Training: y = x * m / (1 - p) with m ~ Bernoulli(1 - p) per element. Evaluation: y = x.

    The paper multiplies outputs by 0.5 at test time instead ("dropout2" in
    cuda-convnet). Scaling the kept units by 1/(1-p) during training gives the
    same expectation, E[y] = x, and leaves the test-time network untouched.

    The layer's whole random state is two integers, ``seed`` and ``calls`` (the number of
    training forwards so far): training forward number ``calls`` multiplies by the mask of
    ``MaskKey(seed, calls)`` (minialex/nn/masks.py), so a checkpoint stores them and a resumed
    run draws the very same masks. ``first_row`` (0 unless data parallel) says which rows of
    the global batch's mask this process's batch is.
    """

    def __init__(self, p=0.5, seed=0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p, self.seed, self.calls = p, int(seed), 0
        self.first_row = 0

    def extra_repr(self):
        return f"p={self.p}"

    def forward(self, x):
        """x (any shape) -> y: dropout_forward while training, the identity in evaluation."""
        if not hasattr(x, "dtype") or x.dtype.kind != "f":
            check_float_input(self, x, getattr(x, "ndim", 0))
        if not self.training or self.p == 0.0:
            self.keep(None)
            return x
        y = self.forward_with(DROPOUT, x, self.p, MaskKey(self.seed, self.calls, self.first_row))
        self.calls += 1
        return y

    def backward(self, dout):
        """dout (same shape as x) -> dx (same shape): dout times the forward's scaled mask,
        m / (1 - p), while training (dropout_backward); dout itself in evaluation."""
        pair, cache = self.take_cache()
        return dout if cache is None else pair.backward(dout, cache)
