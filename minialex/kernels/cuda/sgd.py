"""The paper's SGD update (minialex/optim/sgd.py, docs/optim.md) as one CUDA launch per
parameter, where the reference makes six (scale v, form wd*lr*w, subtract it, form lr*g,
subtract it, add v to w), with its NumPy twin. Conventions of this folder: elementwise.py."""

from ... import backend
from .elementwise import kernel

SGD = (
    "T g, T lr, T momentum, T wd_lr",
    "T w, T v",
    """
    // v <- momentum v - (wd lr) w - lr g;  w <- w + v   (the reference's order of operations)
    T vv = v * momentum;
    vv = vv - wd_lr * w;
    vv = vv - lr * g;
    v = vv;
    w = w + vv;
    """,
    "minialex_sgd",
)


def step(params, velocities, lr, momentum, decay_of):
    """Update every parameter in place, each with one launch on its own device."""
    for p, v in zip(params, velocities):
        t = p.data.dtype.type
        with backend.device_of(p.data):
            kernel(SGD)(p.grad, t(lr), t(momentum), t(decay_of(p) * lr), p.data, v)


def sgd_twin(g, lr, momentum, wd_lr, w, v):
    """Twin of SGD, in place on NumPy arrays w and v."""
    t = w.dtype.type
    vv = v * t(momentum)
    vv = vv - t(wd_lr) * w
    vv = vv - t(lr) * g
    v[...] = vv
    w[...] = w + vv
    return w, v

