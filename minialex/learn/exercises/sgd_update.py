"""Exercise: sgd_update, the paper's update rule (section 5) over lists of parameters.

Read first: docs/optim.md, "The paper's rule" (the answer is minialex/optim/functional.py).
Grade your file with:   python -m minialex learn check sgd_update sgd_update.py
"""

import numpy as np  # noqa: F401 - you will need it


def sgd_update(weights, grads, velocities, lr, momentum, weight_decays):
    """For every parameter w with gradient g (the batch mean), velocity v and weight decay wd,
    exactly the paper's order:

        v <- momentum * v - wd * lr * w - lr * g
        w <- w + v

    (wd * w is the gradient of (wd / 2) ||w||^2.) IN PLACE on w and v: the caller keeps the
    arrays. weights, grads, velocities: lists of arrays, pairwise of one shape; weight_decays:
    one number per parameter. Returns nothing.
    """
    # ---- to write: the update -----------------------------------------------------------------
    # In-place means w += ..., v *= ..., or w[...] = ...; "w = w + v" only rebinds a local name.
    raise NotImplementedError("sgd_update is not written yet")
    # ---- end of the update --------------------------------------------------------------------
