"""Exercise: softmax_cross_entropy, the loss: the mean over the batch of -log softmax(z)[label].

Read first: docs/layers/softmax-cross-entropy.md (the answer is minialex/nn/functional/loss.py).
Grade your file with:
    python -m minialex learn check softmax_cross_entropy softmax_cross_entropy.py

Shapes (docs/layers/README.md, "Notation"): z (N, M) logits for M classes, labels t (N,)
integers in [0, M), dz (N, M).
"""

import numpy as np  # noqa: F401 - you will need it


def softmax_cross_entropy_forward(z, labels):
    """loss = -(1/N) sum_n log softmax(z_n)[t_n], t = labels, a number. Returns (loss, cache).

    Must stay finite for any finite logits, large ones (+-1000) included: "The log-sum-exp
    shift, and why it is exact".
    """
    # ---- to write: the forward ----------------------------------------------------------------
    raise NotImplementedError("softmax_cross_entropy_forward is not written yet")
    # ---- end of the forward -------------------------------------------------------------------


def softmax_cross_entropy_backward(dloss, cache):
    """dz = dloss * (softmax(z) - onehot(t)) / N ("Gradient: softmax minus one-hot").

    dloss: the gradient arriving from above (1.0 when the loss is the end). Returns dz (N, M).
    """
    # ---- to write: the backward ---------------------------------------------------------------
    raise NotImplementedError("softmax_cross_entropy_backward is not written yet")
    # ---- end of the backward ------------------------------------------------------------------
