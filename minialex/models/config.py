"""AlexNetConfig: the handful of numbers that decide an AlexNet's shape, and the named presets
(the paper's 224x224 ImageNet net, CIFAR-10, the embedded synthetic dataset, a tiny one for
gradient checks, and Caffe's bvlc_alexnet). Explained in docs/alexnet.md, "Configurations";
tested in tests/models/test_config.py.
"""

from dataclasses import asdict, dataclass, fields, replace

from . import architecture

# Channel counts of conv1..conv5 in the paper (section 3.5), each split 50/50 between the columns.
PAPER_CHANNELS = (96, 256, 384, 384, 256)


@dataclass(frozen=True)
class AlexNetConfig:
    """Everything that decides the network's layers and parameter shapes.

    The layer pattern is the table of architecture.py (five convolutions, LRN after conv1
    and conv2, 3x3/2 max-pools after conv1, conv2 and conv5, three fully connected layers,
    two columns); presets vary the sizes. The paper's ablations are switches whose defaults
    are the paper's network (docs/alexnet.md, "Switches"): ``activation`` (relu, tanh,
    sigmoid), ``lrn`` (off drops lrn1 and lrn2), ``pool_size``/``pool_stride`` (3/2
    overlapping, 2/2 not) and ``dropout`` (0 turns it off).

    Seed, dtype and devices are *not* part of it: they say how to build or
    where to run a network, not which network it is.
    """

    num_classes: int = 1000
    input_size: int = 224  # square inputs, (N, in_channels, input_size, input_size)
    in_channels: int = 3
    channels: tuple = PAPER_CHANNELS  # conv1..conv5 output maps, both columns together
    conv1_kernel: int = 11
    conv1_stride: int = 4
    conv1_padding: int = 2  # 224 + 2*2 gives 55 outputs; see docs/alexnet.md, "224 or 227"
    fc_width: int = 4096  # fc6 and fc7 outputs, both columns together
    dropout: float = 0.5
    lrn_size: int = 5  # the paper's n, k, alpha, beta (alpha multiplies the plain sum of squares)
    lrn_k: float = 2.0
    lrn_alpha: float = 1e-4
    lrn_beta: float = 0.75
    init_std: float = 0.01  # every weight starts as N(0, init_std^2)
    # Two ways other AlexNets differ from the paper's LRN (docs/alexnet.md, "The caffe preset"):
    # True: alpha is written in Caffe's, PyTorch's and ONNX's convention and divided by lrn_size
    # before it multiplies the sum of squares (bvlc_alexnet's alpha 1e-4 is 2e-5 on the sum).
    lrn_alpha_over_size: bool = False
    # True: each column normalises its own half of the maps (the paper's two GPUs); False: one
    # window slides over all the channels, as in Caffe, and the net runs on one device only.
    lrn_per_column: bool = True
    # The paper's ablations (docs/alexnet.md, "Switches"); the defaults are the paper's network.
    activation: str = "relu"  # after every conv and fc6, fc7: "relu" (section 3.1), "tanh" or "sigmoid"
    lrn: bool = True  # LRN after conv1 and conv2 (section 3.3); False removes both layers
    pool_size: int = 3  # max-pool window and stride after conv1, conv2, conv5: 3/2 overlaps (section 3.4),
    pool_stride: int = 2  # 2/2 is the "traditional" non-overlapping pooling it is compared with

    def __post_init__(self):
        # Accept lists (what JSON gives back) but store a tuple, so configs stay hashable.
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        self.validate()

    # -- checks ---------------------------------------------------------------------
    def validate(self):
        """Raise ValueError naming every problem, or return self."""
        problems = []
        if len(self.channels) != 5:
            problems.append(f"channels must list 5 counts (conv1..conv5), got {self.channels}")
        for i, c in enumerate(self.channels, start=1):
            if c < 2 or c % 2:
                problems.append(f"conv{i} has {c} channels; it must be a positive even number "
                                "so that the two columns get equal halves")
        if self.fc_width < 2 or self.fc_width % 2:
            problems.append(f"fc_width={self.fc_width} must be a positive even number (two columns)")
        if self.num_classes < 1:
            problems.append(f"num_classes must be at least 1, got {self.num_classes}")
        if self.in_channels < 1:
            problems.append(f"in_channels must be at least 1, got {self.in_channels}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.lrn_size < 1 or self.lrn_size % 2 == 0:
            problems.append(f"lrn_size must be a positive odd number, got {self.lrn_size}")
        if self.activation not in architecture.ACTIVATIONS:
            problems.append(f"activation must be one of {', '.join(architecture.ACTIVATIONS)}, got {self.activation!r}")
        if not (isinstance(self.pool_size, int) and isinstance(self.pool_stride, int)
                and 1 <= self.pool_stride <= self.pool_size):
            # a stride above the window would skip pixels that no window sees
            problems.append(f"pool_size and pool_stride must be integers with 1 <= pool_stride <= pool_size, "
                            f"got {self.pool_size!r} and {self.pool_stride!r}")
        elif self.pool_size * self.pool_size > 256:  # MaxPool2d's argmax is a uint8 offset
            problems.append(f"pool_size={self.pool_size} makes windows of more than 256 elements")
        for name in ("lrn_alpha_over_size", "lrn_per_column", "lrn"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not problems:
            problems += self._size_problems()
        if problems:
            raise ValueError("AlexNetConfig: " + "; ".join(problems))
        return self

    # -- the LRN constant in both conventions -----------------------------------------
    @property
    def lrn_alpha_on_sum(self):
        """The alpha that multiplies the plain sum of squares, as the paper writes it (and as
        minialex's LocalResponseNorm takes it): 1e-4 for the paper, 2e-5 for bvlc_alexnet."""
        return self.lrn_alpha / self.lrn_size if self.lrn_alpha_over_size else self.lrn_alpha

    @property
    def lrn_alpha_per_size(self):
        """The alpha of PyTorch's nn.LocalResponseNorm, ONNX's LRN and Caffe, which divide it by
        the window size: 5e-4 for the paper's net, 1e-4 for bvlc_alexnet."""
        return self.lrn_alpha if self.lrn_alpha_over_size else self.lrn_alpha * self.lrn_size

    # -- derived sizes: all from the one table in architecture.py ------------------
    def _size_problems(self):
        """A line if some layer's input is smaller than its window (the input is too small), the
        pools' windows (``pool_size``) included."""
        for layer in architecture.layers(self):
            row = layer.row
            if row.kind != "conv":
                continue
            padded = layer.in_side + 2 * row.padding
            if padded < row.kernel or layer.out_side < 1 or (
                    layer.pooled_side is not None and layer.out_side < self.pool_size):
                sides = [(l.row.name, l.pooled_side or l.out_side) for l in architecture.layers(self)
                         if l.row.kind == "conv"]
                return [f"input_size={self.input_size} is too small for {row.name} (kernel {row.kernel}, "
                        f"stride {row.stride}, padding {row.padding}) and the {self.pool_size}x{self.pool_size}/"
                        f"{self.pool_stride} max-pools: sides after "
                        "each conv (and its pool) would be " + ", ".join(f"{n} {s}" for n, s in sides)]
        return []

    def spatial_sizes(self):
        """Side lengths after conv1, pool1, pool2 and pool5: (55, 27, 13, 6) for the paper."""
        by_name = {layer.row.name: layer for layer in architecture.layers(self)}
        c1 = by_name["conv1"]
        return (c1.out_side, c1.pooled_side, by_name["conv2"].pooled_side, by_name["conv5"].pooled_side)

    @property
    def fc6_inputs(self):
        """Features entering fc6: conv5 maps x pool5 size^2 (256*6*6 = 9216 in the paper)."""
        return next(layer.in_maps for layer in architecture.layers(self) if layer.row.name == "fc6")

    def layer_table(self):
        """One dict per weight layer: name, output shape per image (C, H, W) or (F,),
        weight and bias shapes, parameter count and forward multiply-adds per image.

        Multiply-adds count the convolution and matrix products only; ReLU, LRN,
        pooling and dropout add well under 1% and are left out.
        """
        rows = []
        for layer in architecture.layers(self):
            row = layer.row
            if row.kind == "conv":
                output, pooled = (row.width, layer.out_side, layer.out_side), None
                if layer.pooled_side is not None:
                    pooled = (row.width, layer.pooled_side, layer.pooled_side)
            else:
                output, pooled = (row.width,), None
            rows.append(dict(name=row.name, output=output, pooled=pooled, weight=layer.weight,
                             bias=(row.width,), params=layer.params, macs=layer.macs))
        return rows

    def num_parameters(self):
        return sum(layer.params for layer in architecture.layers(self))

    def forward_flops(self):
        """Forward FLOPs per image, counting a multiply-add as 2."""
        return 2 * sum(layer.macs for layer in architecture.layers(self))

    # -- conversion -----------------------------------------------------------------
    def to_dict(self):
        """Plain values only (channels as a list), ready for JSON or a checkpoint.

        The switches added after the first checkpoints (the two LRN conventions of the caffe
        preset, the ablations) are written only when they differ from the paper's choice, so
        the dict of every network that existed before them (and so the config stored in its
        checkpoints) is unchanged and compares equal; from_dict gives a missing one the paper's.
        """
        d = asdict(self)
        d["channels"] = list(self.channels)
        for name, paper in _PAPER_SWITCHES.items():
            if d[name] == paper:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"AlexNetConfig: unknown field(s) {', '.join(unknown)}; "
                             f"known fields are {', '.join(sorted(known))}")
        return cls(**d)


_PAPER_SWITCHES = {"lrn_alpha_over_size": False, "lrn_per_column": True,
                   "activation": "relu", "lrn": True, "pool_size": 3, "pool_stride": 2}


def scale_channels(channels, width):
    """Multiply channel counts by ``width``, rounding to a multiple of 4 (at least 4), so each
    column keeps an even number of maps: 0.25 turns the paper's 96-256-384-384-256 into 24-64-96-96-64."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    return tuple(max(4, int(round(c * width / 4.0)) * 4) for c in channels)


# The named configurations. Each is built by the same AlexNet code; only sizes differ.
PRESETS = {
    # The paper's network: 224x224 input, conv1 11x11/4 with padding 2, 1000 classes.
    "imagenet": AlexNetConfig(),
    # CIFAR-10, 32x32: conv1 5x5/1 keeps the resolution so the pools give 32-15-7-3,
    # the same 4.5x / 2x / 2x shrinking as the paper's 55-27-13-6; quarter width.
    "cifar10": AlexNetConfig(num_classes=10, input_size=32, channels=scale_channels(PAPER_CHANNELS, 0.25),
                             conv1_kernel=5, conv1_stride=1, conv1_padding=2, fc_width=512),
    # The embedded synthetic dataset: 56x56 crops of 64x64 images, 10 classes, made to train in
    # a few ms per image on a laptop CPU: conv1 5x5/2 gives 28-13-6-2, quarter width, fc 256.
    # Weights start at std 0.05, not the paper's 0.01: with fan-ins 4 to 36 times smaller than
    # the paper's, std 0.01 shrinks the signal ~6x per layer and the loss sits at ln 10 for
    # epochs (measured: 90% val error after 3 epochs; 0.05 reaches 78%). docs/alexnet.md.
    "synthetic": AlexNetConfig(num_classes=10, input_size=56, channels=scale_channels(PAPER_CHANNELS, 0.25),
                               conv1_kernel=5, conv1_stride=2, conv1_padding=2, fc_width=256, init_std=0.05),
    # Gradient checks: every layer type and both columns, 24x24 input -> 24-11-5-2, a few maps.
    "tiny": AlexNetConfig(num_classes=4, input_size=24, channels=(4, 8, 8, 8, 8),
                          conv1_kernel=3, conv1_stride=1, conv1_padding=1, fc_width=8),
    # Caffe's bvlc_alexnet, the public weights with the paper's grouped columns: the same layers
    # and sizes, but a 227x227 input with conv1 unpadded (its deploy file), and LRN over all 96
    # (256) channels with k=1 and alpha 1e-4 divided by the window size. Its weights expect BGR
    # input minus Caffe's ImageNet mean; minialex.interop's ONNX import turns them to RGB
    # (docs/interop.md). Biases start as the table says, not at Caffe's 0.1: the preset is for
    # loading those weights, and for fine-tuning them.
    "caffe": AlexNetConfig(input_size=227, conv1_padding=0, lrn_k=1.0, lrn_alpha=1e-4,
                           lrn_alpha_over_size=True, lrn_per_column=False),
}
PRESETS["paper"] = PRESETS["imagenet"]


def alexnet_config(preset="imagenet", width=None, **overrides):
    """A validated AlexNetConfig: a preset, optionally scaled by ``width`` (conv channels and
    fc widths, rounded to multiples of 4), then with any field overridden.

    >>> alexnet_config("cifar10").spatial_sizes()
    (32, 15, 7, 3)
    """
    if isinstance(preset, AlexNetConfig):
        cfg = preset
    elif isinstance(preset, dict):
        cfg = AlexNetConfig.from_dict(preset)
    elif preset in PRESETS:
        cfg = PRESETS[preset]
    else:
        raise ValueError(f"unknown AlexNet preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}")
    if width is not None:
        cfg = replace(cfg, channels=scale_channels(cfg.channels, width),
                      fc_width=scale_channels((cfg.fc_width,), width)[0])
    if overrides:
        known = {f.name for f in fields(AlexNetConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown AlexNet option(s) {', '.join(unknown)}; "
                            f"configuration fields are {', '.join(sorted(known))}")
        cfg = replace(cfg, **overrides)
    return cfg
