"""AlexNet: the paper's network (Krizhevsky, Sutskever & Hinton 2012), built from the table in
minialex/models/architecture.py, on one device or with its two columns on two devices.
Explained in docs/alexnet.md and docs/two-gpu.md; tested in tests/models/.

On one device (``devices=None``) every layer is whole and the columns are kept apart by
grouped convolutions and per-column LRN. With ``devices=(a, b)`` the layers come in column
pairs on two devices (minialex/parallel/two_column.py). Both compute the same function from the
same weights and have the same ``state_dict()``.
"""

from collections import Counter

import numpy as np

from .. import backend
from ..nn import Conv2d, Dropout, Flatten, Linear, LocalResponseNorm, MaxPool2d, ReLU, Sigmoid, Tanh
from ..nn.module import Module, describe
from ..parallel.two_column import TwoColumns
from . import architecture
from .architecture import IMAGE
from .config import AlexNetConfig, alexnet_config


def _float_dtype(dtype):
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"AlexNet: dtype must be a floating type (float32 or float64), got {dt}")
    return dt


class LayerMaker:
    """Builds the layers of one network from the table's Layers: the paper's initialisation
    from per-layer generators, the config's activation, LRN constants, pooling and dropout rate."""

    def __init__(self, cfg, seed, dtype, input_grad):
        self.cfg, self.seed, self.dtype, self.input_grad = cfg, int(seed), dtype, input_grad

    def rng(self, layer):
        """The generator that draws the initial weights of one layer.

        One generator per layer (not one shared stream) means a layer's weights do
        not depend on how big the layers before it are, and the two-column network
        can draw column A's half and then column B's half from the same generator
        and get exactly the rows of the single-device weight.
        """
        return np.random.default_rng([self.seed, 0, layer.index])

    def dropout_seed(self, name):
        """A distinct dropout seed for ``drop6`` and ``drop7``, derived from the model seed."""
        return int(np.random.SeedSequence([self.seed, 1, int(name[-1])]).generate_state(1)[0])

    def weight_layer(self, layer, out_width, in_maps, groups, rng):
        """Conv2d or Linear for a Layer, with ``out_width`` outputs reading ``in_maps`` inputs."""
        row, cfg = layer.row, self.cfg
        if row.kind == "conv":
            return Conv2d(in_maps, out_width, row.kernel, stride=row.stride, padding=row.padding, groups=groups,
                          init_std=cfg.init_std, init_bias=row.init_bias, rng=rng, dtype=self.dtype,
                          input_grad=self.input_grad or row.reads != IMAGE)  # the images need no gradient
        return Linear(in_maps, out_width, init_std=cfg.init_std, init_bias=row.init_bias, rng=rng, dtype=self.dtype)

    def follower(self, kind, lrn_groups):
        """The activation (ReLU, Tanh, Sigmoid), LRN (windows stop at the boundary of ``lrn_groups``
        blocks), max-pool or Flatten."""
        cfg = self.cfg
        if kind == "relu":
            return ReLU(inplace=True)  # its input, a conv or fc output, is needed by no one else
        if kind == "tanh":  # the saturating units of the paper's comparison (section 3.1, Figure 1)
            return Tanh()
        if kind == "sigmoid":
            return Sigmoid()
        if kind == "lrn":
            # LocalResponseNorm takes the paper's alpha, the one on the plain sum of squares; a
            # config written in Caffe's convention (alpha / size) is converted here.
            return LocalResponseNorm(cfg.lrn_size, cfg.lrn_alpha_on_sum, cfg.lrn_beta, cfg.lrn_k, groups=lrn_groups)
        if kind == "pool":
            return MaxPool2d(cfg.pool_size, cfg.pool_stride)  # 3/2 overlapping in the paper
        if kind == "flatten":
            return Flatten()  # (N, C, S, S) -> (N, C*S*S), channel-major like PyTorch
        raise ValueError(f"unknown layer kind {kind!r}")


class OneDevice:
    """Every layer whole, on one device. The columns stay apart by ``groups=2`` in conv2, conv4
    and conv5 and by LocalResponseNorm(groups=2); conv3 and fc6-fc8 are dense."""

    devices = None

    def __init__(self):
        self.transfers = Counter()  # nothing crosses devices here; the two-column network counts
        self.device_id = None  # the GPU the parameters were moved to (None: the current one, or NumPy)

    @property
    def device_ids(self):
        return [0 if self.device_id is None else self.device_id]

    def build(self, table, make):
        """Yield (name, layer) in forward order for the table's Layers."""
        for layer in table:
            if layer.flatten_before:
                yield "flatten", make.follower("flatten", 1)
            row = layer.row
            yield row.name, make.weight_layer(layer, row.width, layer.in_maps, layer.groups, make.rng(layer))
            for kind, name in layer.followers:
                if kind == "dropout":
                    yield name, Dropout(make.cfg.dropout, seed=make.dropout_seed(name))
                else:
                    # groups=2: a window never crosses from column A's maps into column B's, exactly
                    # as when each GPU normalized its own half (docs/alexnet.md, "LRN per column");
                    # groups=1 for Caffe's LRN over all the channels (the caffe preset)
                    yield name, make.follower(kind, lrn_groups=2 if make.cfg.lrn_per_column else 1)

    def forward(self, net, x, upto=None):
        """The layers in order, stopping after the one named ``upto`` (None: all of them)."""
        for name, layer in net.named_children():
            x = layer.forward(x)
            if name == upto:
                break
        return x

    def backward(self, net, dout, grads_ready=None):
        for name, layer in reversed(list(net.named_children())):
            dout = layer.backward(dout)  # ReLU(inplace=True) writes over dout: only it reads it
            if grads_ready is not None:
                grads_ready(name)
        return dout

    def to(self, net, xp, dtype, device_id):
        Module.to(net, xp, dtype, device_id)
        if device_id is not None:
            self.device_id = int(device_id)

    def state_dict(self, net):
        return Module.state_dict(net)

    def load_state_dict(self, net, state, strict):
        return Module.load_state_dict(net, state, strict)

    def full_grads(self, net):
        return self.full_named(net, {name: p.grad for name, p in net.named_parameters()})

    def full_named(self, net, arrays):
        return {name: backend.to_numpy(a).copy() for name, a in arrays.items()}

    def placed_named(self, net, state):
        return {name: backend.to_numpy(a) for name, a in state.items()}


class AlexNet(Module):
    """The paper's AlexNet, or a scaled-down configuration of it.

    ``AlexNet(num_classes=None, *, preset="imagenet", width=None, seed=0,
    dtype=np.float32, devices=None, input_grad=False, **fields)``

    - ``preset``: ``"imagenet"`` (alias ``"paper"``), ``"cifar10"``, ``"synthetic"``,
      ``"tiny"``, ``"caffe"`` (bvlc_alexnet's function, one device only), an AlexNetConfig, or
      a dict from ``model.config``.
    - ``num_classes``, ``width`` and any AlexNetConfig field override the preset.
    - ``devices=(0, 1)``: column A on device 0 and column B on device 1, the paper's
      model parallelism (docs/two-gpu.md); ``(0, 0)`` puts both on one device. The same
      function and the same ``state_dict()`` as ``devices=None``.
    - ``input_grad``: whether ``backward`` computes the gradient of the images. Training
      needs none (as in PyTorch, where the input does not require grad), so by default
      conv1 skips it and ``backward`` returns None; pass True for saliency maps.

    ``forward(x)``: x (N, C, S, S) -> logits (N, num_classes).
    ``features(x, upto=None)``: the output of one layer; by default fc7's activation ("relu7" in
    the paper's net, "tanh7" with activation="tanh"), the features of Figure 4.
    ``backward(dlogits)``: dlogits (N, num_classes) -> dx (N, C, S, S) or None, and adds
    every parameter's gradient into ``param.grad``.
    """

    def __init__(self, num_classes=None, *, preset="imagenet", width=None, seed=0, dtype=np.float32,
                 devices=None, input_grad=False, **fields):
        super().__init__()
        if num_classes is not None:
            fields = dict(fields, num_classes=num_classes)
        self.cfg = alexnet_config(preset, width=width, **fields)
        self.seed = int(seed)
        self.dtype = _float_dtype(dtype)
        self.input_grad = bool(input_grad)
        if devices is not None and not self.cfg.lrn_per_column:
            raise ValueError("AlexNet: this configuration normalises (LRN) over the channels of both columns "
                             "at once (lrn_per_column=False, as Caffe does), which two devices cannot compute "
                             "column by column; build it with devices=None")
        self.placement = OneDevice() if devices is None else TwoColumns(devices)
        # Attribute order is registration order, so named_parameters() yields
        # conv1.weight, conv1.bias, ..., fc8.weight, fc8.bias (or conv1.a.weight, ... with columns).
        make = LayerMaker(self.cfg, self.seed, self.dtype, self.input_grad)
        for name, layer in self.placement.build(architecture.layers(self.cfg), make):
            setattr(self, name, layer)

    # -- description ------------------------------------------------------------------
    @property
    def config(self):
        """The architecture as a dict of plain values; ``AlexNet.from_config(d)`` rebuilds it."""
        return self.cfg.to_dict()

    @property
    def devices(self):
        """None on one device, else the (column A, column B) device ids."""
        return self.placement.devices

    @property
    def device_ids(self):
        """The GPU ids the parameters live on, in column order: one id on one device, two with two
        columns (on NumPy, [0]). What a data-parallel run makes a communicator for."""
        return list(self.placement.device_ids)

    @property
    def transfers(self):
        """Counter of arrays copied between devices: ``"column"`` (the paper's exchanges: 7 per
        forward, 7 per backward with two columns) and ``"input"`` (the batch and its gradient)."""
        return self.placement.transfers

    @classmethod
    def from_config(cls, config, **kwargs):
        """Build the network a ``model.config`` dict (or an AlexNetConfig) describes.

        ``kwargs`` are the build options: ``seed``, ``dtype``, ``devices``, ``input_grad``.
        The weights are new; load them with ``load_state_dict``.
        """
        if not isinstance(config, (dict, AlexNetConfig)):
            raise ValueError(f"from_config expects a dict or AlexNetConfig, got {type(config).__name__}")
        return cls(preset=config, **kwargs)

    def extra_repr(self):
        c = self.cfg
        return (f"num_classes={c.num_classes}, input_size={c.input_size}, channels={c.channels}, "
                f"fc_width={c.fc_width}" + ("" if self.devices is None else f", devices={self.devices}"))

    # -- the two passes ---------------------------------------------------------------
    def _check_input(self, x):
        c, s = self.cfg.in_channels, self.cfg.input_size
        if not hasattr(x, "shape") or x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"{type(self).__name__} was built for input (N, {c}, {s}, {s}), got {describe(x)}")

    def forward(self, x):
        """x (N, C, S, S) -> logits (N, num_classes); saves what backward needs in each layer."""
        self._check_input(x)
        return self.placement.forward(self, x)

    def backward(self, dlogits, grads_ready=None):
        """dlogits (N, num_classes) -> dx (N, C, S, S), or None unless ``input_grad``; adds into
        every ``param.grad``. ``grads_ready(name)``, if given, is called as soon as layer
        ``name``'s backward is done (its gradients are final): data parallelism starts summing
        them across processes there, while backward goes on below."""
        return self.placement.backward(self, dlogits, grads_ready)

    def features(self, x, upto=None):
        """What layer ``upto`` outputs for x (N, C, S, S), running only the layers up to it.

        ``upto`` is any name of ``architecture.forward_order``. The default, None, is fc7's
        activation (``"relu7"``; ``"tanh7"`` with activation="tanh"), the last hidden layer: the
        4096 numbers per image whose Euclidean distances the paper's Figure 4 compares; ``"pool5"``
        the last conv maps; ``"fc8"`` the logits. With two columns the halves are joined on column
        A's device, A's maps (or units) first, so the result is the single-device network's. In evaluation mode nothing is random; in training
        mode dropout draws its masks as in ``forward``.
        """
        names = architecture.forward_order(self.cfg)
        upto = architecture.fc7_activation(self.cfg) if upto is None else upto
        if upto not in names:
            raise ValueError(f"AlexNet.features: no layer {upto!r}; the layers are {', '.join(names)}")
        self._check_input(x)
        return self.placement.forward(self, x, upto=upto)

    # -- placement, dtype and state ---------------------------------------------------
    def to(self, backend=None, dtype=None, device_id=None):
        """Move the parameters to a backend (``'numpy'``, ``'cupy'`` or the module) and/or cast them.
        With two columns, column A goes to devices[0] and B to devices[1]. Returns self."""
        self.placement.to(self, backend, dtype, device_id)
        if dtype is not None:
            self.dtype = _float_dtype(dtype)
        return self

    def state_dict(self):
        """``{name: array}`` with the names and full shapes of the single-device network
        (``conv1.weight`` ...). With two columns these are new host arrays, the halves joined."""
        return self.placement.state_dict(self)

    def load_state_dict(self, state, strict=True):
        """Copy a full-shape state (from either placement) into the parameters, in place."""
        self.placement.load_state_dict(self, state, strict)
        return self

    def full_grads(self):
        """``{name: gradient}`` with the names and full shapes of ``state_dict()`` (host NumPy copies)."""
        return self.placement.full_grads(self)

    def full_named(self, arrays):
        """Arrays named like ``named_parameters()`` (SGD's velocities, say) -> host arrays with the
        names and full shapes of ``state_dict()``: what a checkpoint stores, whatever the placement."""
        return self.placement.full_named(self, arrays)

    def placed_named(self, state):
        """The inverse of ``full_named``: full-shape arrays -> this placement's names and pieces."""
        return self.placement.placed_named(self, state)

    # -- dropout state, for exact resumption ------------------------------------------
    def _dropouts(self):
        return {name: m for name, m in self.named_children() if name.startswith("drop")}

    def dropout_state(self):
        """``{"drop6": {"seed": s, "calls": c}, "drop7": ...}``: the whole random state of training.

        A Dropout's masks are a function of (seed, calls) alone, so storing these
        two integers per layer in a checkpoint and restoring them with
        ``load_dropout_state`` makes a resumed run draw the very same masks. The
        names and values are the same with one device and with two columns.
        """
        return {name: {"seed": int(d.seed), "calls": int(d.calls)} for name, d in self._dropouts().items()}

    def set_batch_rows(self, first_row):
        """This process's batch is rows ``first_row``.. of a larger global batch (data parallelism):
        dropout draws exactly those rows of the global batch's masks, so N processes draw what
        one process with the whole batch would."""
        for d in self._dropouts().values():
            d.first_row = int(first_row)

    def skip_batch(self):
        """Count a training forward that did not run (a process whose share of a global batch is
        empty): the dropout counters advance as the other processes' do."""
        for d in self._dropouts().values():
            d.calls += 1

    def load_dropout_state(self, state):
        layers = self._dropouts()
        if set(state) != set(layers):
            raise ValueError(f"dropout state has layers {sorted(state)}, expected {sorted(layers)}")
        for name, d in layers.items():
            d.seed, d.calls = int(state[name]["seed"]), int(state[name]["calls"])
        return self
