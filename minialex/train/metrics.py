"""Top-k error and the scores it ranks, for training logs and validation.

Why logs and not probabilities: a network that has diverged, or is merely very sure, gives
softmax probabilities that underflow to exactly 0 for most classes; ranked by probability those
classes all tie, and a tie counted in the label's favour turns chance (50% top-5 error on 10
classes) into 0%. Ranking by logits (one crop) or by the log of the crops' mean softmax (ten
crops) keeps every difference, and a tie that remains counts against the label."""

from .. import backend


def mean_log_softmax(logits):
    """log(mean over crops of softmax(logits)) for logits (N, crops, M) -> (N, M), computed without
    ever forming a probability that could underflow: log-softmax per crop, then a log-mean-exp
    over the crops, each shifted by its maximum (the usual log-sum-exp trick)."""
    xp = backend.get_array_module(logits)
    z = logits - logits.max(axis=-1, keepdims=True)
    log_p = z - xp.log(xp.exp(z).sum(axis=-1, keepdims=True))  # (N, crops, M) log-softmax per crop
    top = log_p.max(axis=1, keepdims=True)  # (N, 1, M)
    return (top + xp.log(xp.exp(log_p - top).mean(axis=1, keepdims=True)))[:, 0, :]


def topk_correct(scores, labels, ks=(1, 5)):
    """Number of samples whose label is among the k highest scores, for each k.

    scores (N, M) on any backend (logits, or log-probabilities), labels (N,) on the host. A
    class that scores the same as the label counts as beating it (a tie is never a success),
    and a row with a NaN is wrong. Returns host ints (this reads the result back from a GPU:
    call it once per logged step).
    """
    xp = backend.get_array_module(scores)
    with backend.device_of(scores):  # on the scores' GPU, whatever the current device is
        labels = xp.asarray(labels)
        label_score = scores[xp.arange(scores.shape[0]), labels][:, None]
        # rank of the label = how many other classes score at least as high (no sort needed:
        # the label is in the top k exactly when fewer than k others reach its score)
        rank = (scores >= label_score).sum(axis=1) - 1  # (N,)
        rank = xp.where((scores != scores).any(axis=1), scores.shape[1], rank)  # (NaN != NaN)
        return [int(backend.to_numpy((rank < k).sum())) for k in ks]


class Average:
    """Running mean of a quantity weighted by batch size."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def update(self, value, n=1):
        self.total += float(value) * n
        self.count += n

    @property
    def mean(self):
        return self.total / max(self.count, 1)
