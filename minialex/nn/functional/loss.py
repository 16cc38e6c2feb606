"""softmax_cross_entropy: the mean over the batch of -log softmax(logits)[label], the readable
reference pair, and the stable log_softmax it rests on. Derived in
docs/layers/softmax-cross-entropy.md; tested in tests/ops/test_softmax_cross_entropy.py."""

from collections import namedtuple

from ... import backend

SoftmaxCrossEntropyCache = namedtuple("SoftmaxCrossEntropyCache", "probs labels")
SoftmaxCrossEntropyCache.__doc__ = "What the forward keeps: softmax(z) (N, M) and the labels t (N,); M classes."


def log_softmax(z):
    """log softmax along axis 1, stable for any finite logits z (N, M) -> (N, M)
    (softmax-cross-entropy.md, "The log-sum-exp shift, and why it is exact").

    log p_k = z_k - log sum_j exp(z_j) = (z_k - a) - log sum_j exp(z_j - a) with a = max_j z_j:
    after the shift every exponent is <= 0, so nothing overflows, and the largest term is
    exp(0) = 1, so the log never sees 0.
    """
    xp = backend.get_array_module(z)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


def softmax(z):
    xp = backend.get_array_module(z)
    return xp.exp(log_softmax(z))


def softmax_cross_entropy_forward(z, labels):
    """loss = -(1/N) sum_n log softmax(z_n)[t_n], t = labels (softmax-cross-entropy.md, "Forward").

    z: (N, M) logits, labels: (N,) integers in [0, M). Returns (loss, cache); loss is a 0-d
    array (on a GPU, reading it to the host is the caller's choice of sync).
    """
    xp = backend.get_array_module(z)
    n = z.shape[0]
    logp = log_softmax(z)  # (N, M)
    labels = xp.asarray(labels)
    loss = -logp[xp.arange(n), labels].mean()
    return loss, SoftmaxCrossEntropyCache(xp.exp(logp), labels)


def softmax_cross_entropy_backward(dloss, cache):
    """d/dz_k of -log softmax(z)[t] is softmax(z)_k - [k == t] for a label t; the mean divides by N
    (softmax-cross-entropy.md, "Gradient: softmax minus one-hot").

    dloss: the upstream gradient (1.0 when the loss is the end). Returns dz (N, M).
    """
    xp = backend.get_array_module(cache.probs)
    n = cache.probs.shape[0]
    dz = cache.probs.copy()  # softmax(z) ...
    dz[xp.arange(n), cache.labels] -= 1.0  # ... minus one-hot(t), t = labels
    dz *= dloss / n
    return dz
