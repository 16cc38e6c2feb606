"""The paper's network written once: one row per weight layer (section 3.5 and Figure 2 of the
paper), from which everything else is derived: the single-device AlexNet and the two-column
network (minialex/models/alexnet.py, minialex/parallel/two_column.py), the presets' sizes,
parameter and FLOP counts (minialex/models/config.py, docs/alexnet.md) and the benchmark's GEMM shapes.
Explained in docs/alexnet.md, "The architecture"; tested in tests/models/test_architecture.py.

Two columns, A and B, hold half of every layer's maps (the paper's two GPUs). A layer reads
the ``IMAGE`` (conv1: each column sees the whole input), its ``OWN`` column's maps (conv2, conv4,
conv5), or ``BOTH`` columns' maps (conv3, fc6, fc7, fc8): the only places where the two-GPU
network exchanges activations.
"""

from collections import namedtuple

IMAGE, OWN, BOTH = "image", "own", "both"
# The paper's overlapping pooling (section 3.4), after conv1, conv2 and conv5: 3x3 windows, stride 2.
# A config may choose another window and stride (cfg.pool_size, cfg.pool_stride; 2/2 is the
# paper's non-overlapping comparison); these are the defaults.
POOL_KERNEL, POOL_STRIDE = 3, 2
ACTIVATIONS = ("relu", "tanh", "sigmoid")  # cfg.activation: the paper's ReLU (section 3.1) or a saturating one

Row = namedtuple("Row", "name kind width kernel stride padding reads init_bias then")
Row.__doc__ = """One weight layer: ``width`` output maps or units (both columns together);
kernel/stride/padding for convolutions; which maps it ``reads``; its initial bias; and the
layers that ``then`` follow it (the activation, "relu", "tanh" or "sigmoid"; "lrn", "pool",
"dropout"), in order."""


def rows(cfg):
    """The table, for one configuration (sizes vary by preset; the pattern only by the switches:
    ``cfg.activation`` takes every ReLU's place and ``cfg.lrn=False`` drops the two LRN layers)."""
    c1, c2, c3, c4, c5 = cfg.channels
    fc, k1, s1, p1 = cfg.fc_width, cfg.conv1_kernel, cfg.conv1_stride, cfg.conv1_padding
    # The paper's biases (section 5): 1 in conv2, conv4, conv5, fc6 and fc7, which "accelerates the
    # early stages of learning by providing the ReLUs with positive inputs"; 0 elsewhere.
    table = (
        #    name     kind      width            kernel stride padding reads  bias  what follows
        Row("conv1", "conv", c1, k1, s1, p1, IMAGE, 0.0, ("relu", "lrn", "pool")),
        Row("conv2", "conv", c2, 5, 1, 2, OWN, 1.0, ("relu", "lrn", "pool")),
        Row("conv3", "conv", c3, 3, 1, 1, BOTH, 0.0, ("relu",)),
        Row("conv4", "conv", c4, 3, 1, 1, OWN, 1.0, ("relu",)),
        Row("conv5", "conv", c5, 3, 1, 1, OWN, 1.0, ("relu", "pool")),
        Row("fc6", "linear", fc, None, None, None, BOTH, 1.0, ("relu", "dropout")),
        Row("fc7", "linear", fc, None, None, None, BOTH, 1.0, ("relu", "dropout")),
        Row("fc8", "linear", cfg.num_classes, None, None, None, BOTH, 0.0, ()),
    )
    # The switches (docs/alexnet.md, "Switches"). The table above is the paper's; an ablation only
    # renames the activations (relu1 becomes tanh1) and drops lrn1 and lrn2; no weight changes shape.
    act = cfg.activation
    return tuple(row._replace(then=tuple(act if kind == "relu" else kind for kind in row.then
                                         if cfg.lrn or kind != "lrn"))
                 for row in table)


# The name of a layer that follows weight layer k: relu1, lrn1, pool1, ..., drop7 (tanh1 ... with
# activation="tanh").
FOLLOWER_PREFIX = dict({a: a for a in ACTIVATIONS}, lrn="lrn", pool="pool", dropout="drop")

Layer = namedtuple("Layer", "row index in_maps in_side out_side pooled_side groups weight params macs "
                            "flatten_before followers column_in_maps exchange_before")
Layer.__doc__ = """A Row with its sizes worked out for one configuration: ``index`` (1..8) numbers it;
``in_maps`` maps (or features) of side ``in_side`` come in; ``out_side`` after the layer,
``pooled_side`` after its pool (or None); ``groups`` in the single-device network (2 for OWN);
the single-device weight shape, parameter count and forward multiply-adds per image; whether a
Flatten comes first; ``followers``, the (kind, name) pairs of the layers after it. For the
two-column network: ``column_in_maps``, what each column's half reads (half the maps for
OWN, all of them for IMAGE and BOTH), and ``exchange_before``, whether the columns swap their
maps first (BOTH)."""


def conv_side(side, kernel, stride, padding):
    return (side + 2 * padding - kernel) // stride + 1


def pool_side(side, kernel=POOL_KERNEL, stride=POOL_STRIDE):
    return (side - kernel) // stride + 1


def layers(cfg):
    """The table's rows with their sizes, in order (a list of Layer)."""
    out = []
    maps, side, flat = cfg.in_channels, cfg.input_size, False
    for index, row in enumerate(rows(cfg), start=1):
        followers = tuple((kind, f"{FOLLOWER_PREFIX[kind]}{index}") for kind in row.then)
        groups = 2 if row.reads == OWN else 1
        if row.kind == "conv":
            out_side = conv_side(side, row.kernel, row.stride, row.padding)
            pooled = pool_side(out_side, cfg.pool_size, cfg.pool_stride) if "pool" in row.then else None
            weight = (row.width, maps // groups, row.kernel, row.kernel)
            macs = out_side * out_side * row.width * (maps // groups) * row.kernel * row.kernel
            out.append(Layer(row, index, maps, side, out_side, pooled, groups, weight,
                             row.width * (maps // groups) * row.kernel ** 2 + row.width, macs, False, followers,
                             maps // groups, row.reads == BOTH))
            side = pooled if pooled is not None else out_side
        else:
            flatten = not flat
            features = maps * side * side if flatten else maps
            out.append(Layer(row, index, features, None, None, None, 1, (row.width, features),
                             features * row.width + row.width, features * row.width, flatten, followers,
                             features, row.reads == BOTH))
            flat, side = True, None
        maps = row.width
    return out


def weight_names(cfg):
    """conv1, ..., fc8: the weight layers in order."""
    return tuple(row.name for row in rows(cfg))


def fc7_activation(cfg):
    """The name of fc7's activation, the last hidden layer (Figure 4's features): "relu7" in the paper."""
    return f"{cfg.activation}7"


def forward_order(cfg):
    """The names of every layer of the single-device network, in the order forward runs them."""
    names = []
    for layer in layers(cfg):
        if layer.flatten_before:
            names.append("flatten")
        names.append(layer.row.name)
        names.extend(name for _, name in layer.followers)
    return tuple(names)


def gemm_shapes(cfg, batch):
    """[(name, M, K, N, count)] of every matrix product in one training step of the single-device
    network: forward y = W @ cols, dW = dy @ cols^T and dX = W^T @ dy per conv group (conv1, which
    reads the image, needs no dX), and the three products of each fully connected layer."""
    shapes = []
    for layer in layers(cfg):
        row, g = layer.row, layer.groups
        if row.kind == "conv":
            k = layer.in_maps // g * row.kernel * row.kernel
            fg, cols = row.width // g, batch * layer.out_side ** 2
            shapes.append((row.name + " fwd", fg, k, cols, g))
            shapes.append((row.name + " dW", fg, cols, k, g))
            if row.reads != IMAGE:
                shapes.append((row.name + " dX", k, fg, cols, g))
        else:
            fin, fout = layer.in_maps, row.width
            shapes.append((row.name + " fwd", batch, fin, fout, 1))
            shapes.append((row.name + " dW", fout, batch, fin, 1))
            shapes.append((row.name + " dX", batch, fout, fin, 1))
    return shapes
