"""SGD: the optimizer that holds the velocities and hyperparameters of the paper's update (section
5) and calls sgd_update (minialex/optim/functional.py, or its CPU or CUDA kernel). Compared with
PyTorch's SGD in docs/optim.md; checked in tests/optim/test_sgd.py and tests/ops/test_sgd.py."""

from collections import OrderedDict

from .. import backend
from ..kernels.cpu import sgd as cpu_sgd
from ..kernels.cuda import sgd as cuda_sgd
from ..nn.dispatch import Op
from ..nn.module import Parameter
from . import functional

SGD_UPDATE = Op("sgd_update", reference=functional, cpu=cpu_sgd, cuda=cuda_sgd, functions=("sgd_update",))


class SGD:
    """The paper's update, for every parameter w with gradient g (the batch mean):

        v <- momentum * v - weight_decay * lr * w - lr * g
        w <- w + v

    The learning rate sits *inside* the velocity. When lr is divided by 10,
    the momentum already stored in v keeps its old scale and fades out over
    the next steps. PyTorch's SGD stores v' = momentum * v' + g + wd * w and
    steps w <- w - lr * v', so there a change of lr rescales the stored
    momentum at once. The two agree exactly while lr is constant.

    ``params``: Parameters, or ``(name, Parameter)`` pairs from
    ``model.named_parameters()`` (then the velocities carry those names in
    ``state_dict()``, which makes checkpoints readable).
    Weight decay applies to every parameter, biases included, as the paper's
    rule is written; pass ``decay_biases=False`` to exempt 1-D parameters as
    cuda-convnet and Caffe do.
    """

    def __init__(self, params, lr, momentum=0.9, weight_decay=5e-4, decay_biases=True):
        params = list(params)
        if not params:
            raise ValueError("SGD: got an empty parameter list")
        if lr <= 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: need lr > 0, momentum >= 0, weight_decay >= 0; got {lr}, {momentum}, {weight_decay}")
        named = [p if isinstance(p, tuple) else (str(i), p) for i, p in enumerate(params)]
        for name, p in named:
            if not isinstance(p, Parameter):
                raise ValueError(f"SGD: parameter {name!r} is a {type(p).__name__}, not a Parameter")
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self.decay_biases = decay_biases
        self.velocities = []
        for p in self.params:
            xp = backend.get_array_module(p.data)
            with backend.device_of(p.data):
                self.velocities.append(xp.zeros_like(p.data))

    def step(self):
        """One update of every parameter: sgd_update (minialex/optim/functional.py), or its kernel."""
        update = SGD_UPDATE.pick(self.params[0].data).forward
        update([p.data for p in self.params], [p.grad for p in self.params], self.velocities, self.lr,
               self.momentum, [self._decay_of(p) for p in self.params])

    def _decay_of(self, p):
        return self.weight_decay if (self.decay_biases or p.data.ndim > 1) else 0.0

    def zero_grad(self):
        for p in self.params:
            with backend.device_of(p.grad):
                p.grad.fill(0)

    def state_dict(self):
        """``{name: velocity}`` (arrays themselves); lr and the rest are plain attributes."""
        return OrderedDict(zip(self.names, self.velocities))

    def load_state_dict(self, state):
        problems = [f"missing: {n}" for n in self.names if n not in state]
        problems += [f"{n}: shape {tuple(state[n].shape)} != {tuple(v.shape)}"
                     for n, v in zip(self.names, self.velocities) if n in state and state[n].shape != v.shape]
        if problems:
            raise ValueError("SGD.load_state_dict: velocities do not match:\n  " + "\n  ".join(problems))
        for n, v in zip(self.names, self.velocities):
            with backend.device_of(v):
                v[...] = backend.get_array_module(v).asarray(state[n]).astype(v.dtype, copy=False)

