"""Top-k error and running averages for training logs."""

from .. import backend


def topk_correct(logits, labels, ks=(1, 5)):
    """Number of samples whose label is among the k highest logits, for each k.

    logits (N, K) on any backend, labels (N,) on the host. Returns host ints
    (this reads the result back from a GPU: call it once per logged step).
    """
    xp = backend.get_array_module(logits)
    with backend.device_of(logits):  # on the logits' GPU, whatever the current device is
        labels = xp.asarray(labels)
        label_score = logits[xp.arange(logits.shape[0]), labels][:, None]
        # rank of the label = how many classes score strictly higher (ties count in its favour)
        # (no sort needed: the label is in the top k exactly when fewer than k classes beat it)
        rank = (logits > label_score).sum(axis=1)  # (N,)
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
