"""sgd_update: the paper's update rule (section 5) as one function over lists of arrays, the
readable reference. Explained, and compared with PyTorch's SGD, in docs/optim.md; tested in
tests/ops/test_sgd.py. Fast versions with the same signature: minialex/kernels/cpu/sgd.py (all
parameters in cache-sized blocks on all threads) and minialex/kernels/cuda/sgd.py (one launch
per parameter); minialex/optim/sgd.py picks one (minialex/nn/dispatch.py)."""

from .. import backend


def sgd_update(weights, grads, velocities, lr, momentum, weight_decays):
    """For every parameter w with gradient g (the batch mean), velocity v and weight decay wd:

        v <- momentum * v - wd * lr * w - lr * g
        w <- w + v

    in place on w and v. weights, grads, velocities: lists of arrays, pairwise of one shape;
    weight_decays: one number per parameter.
    """
    for w, g, v, wd in zip(weights, grads, velocities, weight_decays):
        with backend.device_of(w):  # each parameter on its own device (two columns: two GPUs)
            v *= momentum
            if wd:
                v -= (wd * lr) * w
            v -= lr * g
            w += v
