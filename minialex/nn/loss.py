"""SoftmaxCrossEntropy: the mean over the batch of -log softmax(logits)[label].
Backward derived in docs/layers/softmax-cross-entropy.md; checked in tests/nn/test_loss.py."""

from .. import backend
from .checks import check_float_input
from .dispatch import REFERENCE
from .module import Module, describe


def log_softmax(logits):
    """log softmax along axis 1, stable for any finite logits.

    log p_k = z_k - log sum_j exp(z_j) = (z_k - m) - log sum_j exp(z_j - m) with m = max_j z_j:
    after the shift every exponent is <= 0, so nothing overflows, and the
    largest term is exp(0) = 1, so the log never sees 0.
    """
    xp = backend.get_array_module(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits):
    xp = backend.get_array_module(logits)
    return xp.exp(log_softmax(logits))


class SoftmaxCrossEntropy(Module):
    """loss = -(1/N) sum_n log softmax(z_n)[y_n]

    ``forward(logits (N, K), labels (N,) integers) -> loss``, a 0-d array (not a
    Python float, so that on a GPU reading it is the caller's choice of sync).
    ``backward(dloss=1.0) -> dlogits (N, K) = (softmax(z) - onehot(y)) / N * dloss``.
    """

    def forward(self, logits, labels):
        check_float_input(self, logits, 2)
        xp = backend.get_array_module(logits)
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
        logp = log_softmax(logits)  # (N, K)
        labels = xp.asarray(labels)
        loss = -logp[xp.arange(n), labels].mean()
        self.save_for_backward(REFERENCE, probs=xp.exp(logp), labels=labels)  # they give the gradient
        return loss

    def backward(self, dloss=1.0):
        saved = self.saved_for_backward()
        xp = backend.get_array_module(saved.probs)
        n = saved.probs.shape[0]
        # d/dz_k of -log softmax(z)[y] is softmax(z)_k - [k == y]; the mean divides by N.
        dlogits = saved.probs  # reuse the saved buffer: it is not needed afterwards
        dlogits[xp.arange(n), saved.labels] -= 1.0
        dlogits *= dloss / n
        return dlogits
