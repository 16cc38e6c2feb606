"""SoftmaxCrossEntropy: the module that checks the labels and calls the softmax_cross_entropy
pair, the mean over the batch of -log softmax(logits)[label]. The mathematics:
minialex/nn/functional/loss.py (derived in docs/layers/softmax-cross-entropy.md); tested in
tests/ops/test_softmax_cross_entropy.py."""

from .. import backend
from . import functional
from .checks import check_float_input
from .dispatch import Op
from .module import Module, describe

SOFTMAX_CROSS_ENTROPY = Op("softmax_cross_entropy", reference=functional.loss)


class SoftmaxCrossEntropy(Module):
    """loss = -(1/N) sum_n log softmax(z_n)[y_n]

    ``forward(logits (N, M), labels (N,) integers t) -> loss``, a 0-d array (not a
    Python float, so that on a GPU reading it is the caller's choice of sync).
    ``backward(dloss=1.0) -> dlogits (N, M) = (softmax(z) - onehot(t)) / N * dloss``.
    """

    def forward(self, logits, labels):
        check_float_input(self, logits, 2)
        n, k = logits.shape
        if not hasattr(labels, "dtype") or labels.dtype.kind not in "iu" or labels.shape != (n,):
            raise ValueError(
                f"SoftmaxCrossEntropy: labels must be integers of shape ({n},) for logits "
                f"{describe(logits)}; got {describe(labels) if hasattr(labels, 'shape') else type(labels).__name__}"
            )
        # Host labels (the loader's) are range-checked here. Labels already on a GPU
        # are not: reading their min and max back would stall the GPU every step.
        if not backend.is_cupy_array(labels) and labels.size:
            lo, hi = int(labels.min()), int(labels.max())
            if lo < 0 or hi >= k:
                raise ValueError(
                    f"SoftmaxCrossEntropy: labels must lie in [0, {k - 1}] for {k} classes, "
                    f"got range [{lo}, {hi}]"
                )
        return self.forward_with(SOFTMAX_CROSS_ENTROPY, logits, labels)

    def backward(self, dloss=1.0):
        return self.backward_with(dloss)
