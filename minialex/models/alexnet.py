"""AlexNet: the paper's network (Krizhevsky, Sutskever & Hinton 2012) as one Module on one device,
with both columns kept apart by grouped convolutions and per-column LRN.
Explained in docs/alexnet.md; tested in tests/models/test_alexnet.py and test_gradcheck.py.
The two-device version is minialex/models/two_column.py (docs/two-gpu.md).
"""

import numpy as np

from .. import backend
from ..nn import Conv2d, Dropout, Flatten, Linear, LocalResponseNorm, MaxPool2d, ReLU
from ..nn.module import Module, describe
from .config import AlexNetConfig, alexnet_config

# The weight layers in order; their index (1..8) seeds their initial weights.
WEIGHT_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
# The paper's bias initialisation (section 5): 1 in conv2, conv4, conv5, fc6 and fc7, which
# "accelerates the early stages of learning by providing the ReLUs with positive inputs"; 0 elsewhere.
INIT_BIAS = {"conv1": 0.0, "conv2": 1.0, "conv3": 0.0, "conv4": 1.0, "conv5": 1.0,
             "fc6": 1.0, "fc7": 1.0, "fc8": 0.0}


def layer_rng(seed, name):
    """The generator that draws the initial weights of one layer.

    One generator per layer (not one shared stream) means a layer's weights do
    not depend on how big the layers before it are, and the two-device model
    can draw column A's half and then column B's half from the same generator
    and get exactly the rows of the single-device weight.
    """
    return np.random.default_rng([int(seed), 0, WEIGHT_LAYERS.index(name) + 1])


def dropout_seed(seed, name):
    """A distinct Dropout seed for ``drop6`` and ``drop7``, derived from the model seed."""
    return int(np.random.SeedSequence([int(seed), 1, int(name[-1])]).generate_state(1)[0])


def _float_dtype(dtype):
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"AlexNet: dtype must be a floating type (float32 or float64), got {dt}")
    return dt


class AlexNet(Module):
    """The paper's AlexNet, or a scaled-down configuration of it.

    ``AlexNet(num_classes=None, *, preset="imagenet", width=None, seed=0,
    dtype=np.float32, devices=None, **fields)``

    - ``preset``: ``"imagenet"`` (alias ``"paper"``), ``"cifar10"``, ``"synthetic"``,
      ``"tiny"``, an AlexNetConfig, or a dict from ``model.config``.
    - ``num_classes``, ``width`` and any AlexNetConfig field override the preset.
    - ``devices=(0, 1)`` builds a TwoColumnAlexNet instead: the same function
      with column A on device 0 and column B on device 1 (docs/two-gpu.md).

    ``forward(x)``: x (N, C, S, S) -> logits (N, num_classes).
    ``backward(dlogits)``: dlogits (N, num_classes) -> dx (N, C, S, S), and adds
    every parameter's gradient into ``param.grad``.
    """

    # The order forward runs the layers in; backward runs it reversed.
    LAYERS = ("conv1", "relu1", "lrn1", "pool1", "conv2", "relu2", "lrn2", "pool2",
              "conv3", "relu3", "conv4", "relu4", "conv5", "relu5", "pool5", "flatten",
              "fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8")

    def __new__(cls, *args, devices=None, **kwargs):
        # AlexNet(devices=(0, 1)) gives the two-device network: same arguments, same function.
        if cls is AlexNet and devices is not None:
            from .two_column import TwoColumnAlexNet
            cls = TwoColumnAlexNet
        return super().__new__(cls)

    def __init__(self, num_classes=None, *, preset="imagenet", width=None, seed=0, dtype=np.float32,
                 devices=None, **fields):
        super().__init__()
        if devices is not None:
            raise ValueError("AlexNet: devices= selects TwoColumnAlexNet; build it with AlexNet(devices=...)")
        self._setup(num_classes, preset, width, seed, dtype, fields)
        cfg, dt = self.cfg, self.dtype
        c1, c2, c3, c4, c5 = cfg.channels

        def conv(name, c_in, c_out, kernel, stride=1, padding=0, groups=1):
            return Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, groups=groups,
                          init_std=cfg.init_std, init_bias=INIT_BIAS[name], rng=layer_rng(seed, name), dtype=dt)

        def linear(name, n_in, n_out):
            return Linear(n_in, n_out, init_std=cfg.init_std, init_bias=INIT_BIAS[name],
                          rng=layer_rng(seed, name), dtype=dt)

        def lrn():
            # groups=2: a window never crosses from column A's maps into column B's,
            # exactly as when each GPU normalized its own half (docs/alexnet.md, "LRN per column").
            return LocalResponseNorm(cfg.lrn_size, cfg.lrn_alpha, cfg.lrn_beta, cfg.lrn_k, groups=2)

        # Attribute order is registration order, so named_parameters() yields
        # conv1.weight, conv1.bias, ..., fc8.weight, fc8.bias and nothing else.
        self.conv1 = conv("conv1", cfg.in_channels, c1, cfg.conv1_kernel, cfg.conv1_stride, cfg.conv1_padding)
        self.relu1, self.lrn1, self.pool1 = ReLU(inplace=True), lrn(), MaxPool2d(3, 2)
        self.conv2 = conv("conv2", c1, c2, 5, padding=2, groups=2)  # each column reads its own maps
        self.relu2, self.lrn2, self.pool2 = ReLU(inplace=True), lrn(), MaxPool2d(3, 2)
        self.conv3 = conv("conv3", c2, c3, 3, padding=1)  # groups=1: reads both columns
        self.relu3 = ReLU(inplace=True)
        self.conv4 = conv("conv4", c3, c4, 3, padding=1, groups=2)
        self.relu4 = ReLU(inplace=True)
        self.conv5 = conv("conv5", c4, c5, 3, padding=1, groups=2)
        self.relu5, self.pool5 = ReLU(inplace=True), MaxPool2d(3, 2)
        self.flatten = Flatten()  # (N, C5, S5, S5) -> (N, C5*S5*S5), channel-major like PyTorch
        self.fc6 = linear("fc6", cfg.fc6_inputs, cfg.fc_width)
        self.relu6, self.drop6 = ReLU(inplace=True), Dropout(cfg.dropout, seed=dropout_seed(seed, "drop6"))
        self.fc7 = linear("fc7", cfg.fc_width, cfg.fc_width)
        self.relu7, self.drop7 = ReLU(inplace=True), Dropout(cfg.dropout, seed=dropout_seed(seed, "drop7"))
        self.fc8 = linear("fc8", cfg.fc_width, cfg.num_classes)

    # -- construction shared with TwoColumnAlexNet ------------------------------------
    def _setup(self, num_classes, preset, width, seed, dtype, fields):
        if num_classes is not None:
            fields = dict(fields, num_classes=num_classes)
        self.cfg = alexnet_config(preset, width=width, **fields)
        self.seed = int(seed)
        self.dtype = _float_dtype(dtype)

    @property
    def config(self):
        """The architecture as a dict of plain values; ``AlexNet.from_config(d)`` rebuilds it."""
        return self.cfg.to_dict()

    @classmethod
    def from_config(cls, config, **kwargs):
        """Build the network a ``model.config`` dict (or an AlexNetConfig) describes.

        ``kwargs`` are the build options: ``seed``, ``dtype``, ``devices``.
        The weights are new; load them with ``load_state_dict``.
        """
        if not isinstance(config, (dict, AlexNetConfig)):
            raise ValueError(f"from_config expects a dict or AlexNetConfig, got {type(config).__name__}")
        return cls(preset=config, **kwargs)

    def to(self, backend=None, dtype=None, device_id=None):
        """Module.to, keeping ``self.dtype`` in step with the parameters."""
        super().to(backend, dtype, device_id)
        if dtype is not None:
            self.dtype = _float_dtype(dtype)
        return self

    def extra_repr(self):
        c = self.cfg
        return (f"num_classes={c.num_classes}, input_size={c.input_size}, channels={c.channels}, "
                f"fc_width={c.fc_width}")

    # -- the two passes ---------------------------------------------------------------
    def _check_input(self, x):
        c, s = self.cfg.in_channels, self.cfg.input_size
        if not hasattr(x, "shape") or x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"{type(self).__name__} was built for input (N, {c}, {s}, {s}), got {describe(x)}")

    def forward(self, x):
        """x (N, C, S, S) -> logits (N, num_classes); saves what backward needs in each layer."""
        self._check_input(x)
        for name in self.LAYERS:
            x = getattr(self, name).forward(x)
        return x

    def backward(self, dlogits):
        """dlogits (N, num_classes) -> dx (N, C, S, S); adds into every ``param.grad``."""
        dout = dlogits
        for name in reversed(self.LAYERS):
            dout = getattr(self, name).backward(dout)
        return dout

    # -- dropout state, for exact resumption ------------------------------------------
    def _dropouts(self):
        return {"drop6": self.drop6, "drop7": self.drop7}

    def dropout_state(self):
        """``{"drop6": {"seed": s, "calls": c}, "drop7": ...}``: the whole random state of training.

        A Dropout's masks are a function of (seed, calls) alone, so storing these
        two integers per layer in a checkpoint and restoring them with
        ``load_dropout_state`` makes a resumed run draw the very same masks. The
        names and values are the same in the single- and two-device networks.
        """
        return {name: {"seed": int(d.seed), "calls": int(d.calls)} for name, d in self._dropouts().items()}

    def load_dropout_state(self, state):
        layers = self._dropouts()
        if set(state) != set(layers):
            raise ValueError(f"dropout state has layers {sorted(state)}, expected {sorted(layers)}")
        for name, d in layers.items():
            d.seed, d.calls = int(state[name]["seed"]), int(state[name]["calls"])
        return self

    def full_grads(self):
        """``{name: gradient}`` with the names and full shapes of ``state_dict()`` (host NumPy copies).

        For this single-device network these are just the parameters' gradients;
        TwoColumnAlexNet joins its columns' halves, so the two can be compared.
        """
        return {name: backend.to_numpy(p.grad).copy() for name, p in self.named_parameters()}
