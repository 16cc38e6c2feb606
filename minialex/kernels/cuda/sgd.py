"""sgd_update on CuPy: the reference of minialex/optim/functional.py (docs/optim.md) with the
same signature, as one CUDA launch per parameter, where the reference makes six (scale v, form
wd*lr*w, subtract it, form lr*g, subtract it, add v to w), with its NumPy twin. Conventions of
this folder: elementwise.py. Tested with every implementation in tests/ops/test_sgd.py."""

from ... import backend
from .elementwise import kernel, require_gpu, twin

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


def sgd_update(weights, grads, velocities, lr, momentum, weight_decays):
    """Update every parameter in place, each with one launch on its own device."""
    for w, g, v, wd in zip(weights, grads, velocities, weight_decays):
        require_gpu(w, "sgd.sgd_update")
        t = w.dtype.type
        with backend.device_of(w):
            kernel(SGD)(g, t(lr), t(momentum), t(wd * lr), w, v)


def sgd_twin(g, lr, momentum, wd_lr, w, v):
    """Twin of SGD, in place on NumPy arrays w and v."""
    t = w.dtype.type
    vv = v * t(momentum)
    vv = vv - t(wd_lr) * w
    vv = vv - t(lr) * g
    v[...] = vv
    w[...] = w + vv
    return w, v


@twin(SGD)
def _(p):
    sgd_twin(p["g"], p["lr"], p["momentum"], p["wd_lr"], p["w"], p["v"])
