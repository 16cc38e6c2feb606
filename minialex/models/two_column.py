"""TwoColumnAlexNet: the paper's model parallelism (section 3.2). Column A's half of every layer
lives on one device, column B's on another, and activations cross only where the paper's
layers read both columns (conv3, fc6, fc7, fc8). Explained in docs/two-gpu.md;
tested in tests/models/test_two_device.py. Selected by AlexNet(devices=(0, 1)).
"""

from collections import Counter, OrderedDict

import numpy as np

from .. import backend
from ..backend import check_device, get_backend
from ..nn import Conv2d, Dropout, Flatten, Linear, LocalResponseNorm, MaxPool2d, ReLU
from ..nn.module import Module, state_mismatches
from .alexnet import INIT_BIAS, WEIGHT_LAYERS, AlexNet, dropout_seed, layer_rng

COLUMNS = ("a", "b")  # column A runs on devices[0], column B on devices[1]


def check_devices(devices):
    """``devices`` as a pair of ids; ValueError for the wrong count, BackendError for a bad id.

    Whether an id exists is known only for a backend: NumPy accepts any
    non-negative id (both columns run on the one CPU); ``to("cupy")`` checks
    the ids against the GPUs that are there.
    """
    try:
        devices = tuple(devices)
    except TypeError:
        raise ValueError(f"devices must be a pair of device ids such as (0, 1), got {devices!r}") from None
    if len(devices) != 2:
        raise ValueError(
            f"devices must name exactly two device ids, one per column (A, B), got {len(devices)}: {devices!r}; "
            "use (0, 0) to run both columns on one GPU, or devices=None for the single-device AlexNet"
        )
    for d in devices:
        backend.check_device(np, d)  # type and sign
    return tuple(int(d) for d in devices)


class ColumnPair(Module):
    """One layer of the network as two independent halves: ``a`` for column A, ``b`` for column B.

    ``where(col)`` is the model's device context for a column, so each half
    runs (and allocates) on its own device.
    """

    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, xs, where):
        out = []
        for col, (layer, x) in enumerate(zip((self.a, self.b), xs)):
            with where(col):
                out.append(layer.forward(x))
        return out

    def backward(self, douts, where):
        out = []
        for col, (layer, dout) in enumerate(zip((self.a, self.b), douts)):
            with where(col):
                out.append(layer.backward(dout))
        return out


class ColumnDropout(Module):
    """Dropout over the two halves of an fc layer, with the single-device network's masks.

    Each column draws the *full* (N, F) mask from the same seeded Dropout (on
    its own device, so no mask crosses between devices) and keeps its half.
    The masks are therefore exactly those of AlexNet's ``drop6``/``drop7``,
    and the two networks compute the same function in training mode too. The
    cost is drawing the mask twice, which is small next to fc6's product.
    """

    def __init__(self, p, seed):
        super().__init__()
        self.dropout = Dropout(p, seed=seed)  # holds seed and calls, the whole random state
        self._masks = None  # saved: [mask A (N, F/2), mask B (N, F/2)], scaled by 1/(1-p)

    def forward(self, hs, where):
        drop = self.dropout
        if not drop.training or drop.p == 0.0:
            self._masks = None
            return hs
        n, half = hs[0].shape
        start = drop.calls
        masks, out = [], []
        for col, h in enumerate(hs):
            with where(col):
                drop.calls = start  # both columns replay the same draw
                xp = backend.get_array_module(h)
                full = drop.forward(xp.ones((n, 2 * half), dtype=h.dtype))  # (N, F): the scaled mask itself
                mask = full[:, col * half:(col + 1) * half]  # (N, F/2): this column's units
                masks.append(mask)
                out.append(h * mask)
        drop._mask = None  # the inner layer's copy is not needed for backward
        self._masks = masks
        return out

    def backward(self, douts, where):
        if self._masks is None:
            return douts
        out = []
        for col, (dout, mask) in enumerate(zip(douts, self._masks)):
            with where(col):
                out.append(dout * mask)
        self._masks = None
        return out


class TwoColumnAlexNet(AlexNet):
    """AlexNet split across two devices, as trained in the paper; ``AlexNet(devices=(0, 1))``.

    Same arguments, same function and same ``state_dict()`` (names and full
    shapes) as the single-device AlexNet; a checkpoint moves between the two.

    Parameters are per column: ``named_parameters()`` yields ``conv1.a.weight``
    (column A's half of ``conv1.weight``, on devices[0]), ``conv1.b.weight``, ...,
    and ``fc8.weight`` whole on devices[0]. So SGD keeps each velocity on its
    parameter's device. ``state_dict()`` joins the halves into host NumPy
    arrays named ``conv1.weight`` ...; ``full_grads()`` does the same for gradients.

    Every activation or gradient that crosses between the columns goes through
    ``_transfer``, which counts it in ``self.transfers["column"]``: 7 per
    forward, 7 per backward. Placing the input on the devices and gathering
    its gradient are counted under ``"input"``.
    """

    def __init__(self, num_classes=None, *, preset="imagenet", width=None, seed=0, dtype=np.float32,
                 devices=(0, 1), **fields):
        Module.__init__(self)  # not AlexNet.__init__: the layers here come in pairs
        self.devices = check_devices(devices)
        self._setup(num_classes, preset, width, seed, dtype, fields)
        self.transfers = Counter()
        cfg, dt = self.cfg, self.dtype
        c1, c2, c3, c4, c5 = cfg.channels

        def conv_pair(name, c_in, c_out, kernel, stride=1, padding=0):
            # One generator, drawn by A then by B: the rows of the single-device weight, in order.
            rng = layer_rng(seed, name)
            make = lambda: Conv2d(c_in, c_out // 2, kernel, stride=stride, padding=padding,  # noqa: E731
                                  init_std=cfg.init_std, init_bias=INIT_BIAS[name], rng=rng, dtype=dt)
            return ColumnPair(make(), make())

        def linear_pair(name, n_in, n_out):
            rng = layer_rng(seed, name)
            make = lambda: Linear(n_in, n_out // 2, init_std=cfg.init_std,  # noqa: E731
                                  init_bias=INIT_BIAS[name], rng=rng, dtype=dt)
            return ColumnPair(make(), make())

        def pair(make):
            return ColumnPair(make(), make())

        def lrn():
            return LocalResponseNorm(cfg.lrn_size, cfg.lrn_alpha, cfg.lrn_beta, cfg.lrn_k)  # one column's maps

        relu, pool = (lambda: ReLU(inplace=True)), (lambda: MaxPool2d(3, 2))
        self.conv1 = conv_pair("conv1", cfg.in_channels, c1, cfg.conv1_kernel, cfg.conv1_stride, cfg.conv1_padding)
        self.relu1, self.lrn1, self.pool1 = pair(relu), pair(lrn), pair(pool)
        self.conv2 = conv_pair("conv2", c1 // 2, c2, 5, padding=2)  # reads its own column only
        self.relu2, self.lrn2, self.pool2 = pair(relu), pair(lrn), pair(pool)
        self.conv3 = conv_pair("conv3", c2, c3, 3, padding=1)  # reads both columns (A's maps, then B's)
        self.relu3 = pair(relu)
        self.conv4 = conv_pair("conv4", c3 // 2, c4, 3, padding=1)
        self.relu4 = pair(relu)
        self.conv5 = conv_pair("conv5", c4 // 2, c5, 3, padding=1)
        self.relu5, self.pool5 = pair(relu), pair(pool)
        self.flatten = pair(Flatten)
        self.fc6 = linear_pair("fc6", cfg.fc6_inputs, cfg.fc_width)  # reads both columns
        self.relu6, self.drop6 = pair(relu), ColumnDropout(cfg.dropout, dropout_seed(seed, "drop6"))
        self.fc7 = linear_pair("fc7", cfg.fc_width, cfg.fc_width)  # reads both columns
        self.relu7, self.drop7 = pair(relu), ColumnDropout(cfg.dropout, dropout_seed(seed, "drop7"))
        # fc8 whole on column A's device, reading both fc7 halves, as cuda-convnet2 does:
        # the logits and the loss must end up in one place, and fc8 is small.
        self.fc8 = Linear(cfg.fc_width, cfg.num_classes, init_std=cfg.init_std, init_bias=INIT_BIAS["fc8"],
                          rng=layer_rng(seed, "fc8"), dtype=dt)

    # -- devices ----------------------------------------------------------------------
    @property
    def xp(self):
        return backend.get_array_module(self.fc8.weight.data)

    def where(self, col):
        """The device context of column ``col`` (0 = A, 1 = B); a no-op on NumPy."""
        return backend.device(self.xp, self.devices[col])

    def _transfer(self, x, dst, kind="column"):
        """Copy ``x`` to column ``dst``'s device: the one place where arrays change device.

        Always a real copy (``copy=True``): with devices (0, 0) a plain
        ``cupy.asarray`` would return the very same array, and an in-place
        update on one side would silently change the other's input.
        """
        self.transfers[kind] += 1
        xp = backend.get_array_module(x)
        if xp is not np and not x.flags.c_contiguous:
            with backend.device(xp, x.device.id):
                x = xp.ascontiguousarray(x)  # a column slice: make it one block before the copy
        return backend.to_backend(x, self.xp, self.devices[dst], copy=True)

    def to(self, backend=None, dtype=None, device_id=None):
        """Move column A's parameters (and fc8) to devices[0] and column B's to devices[1] of
        ``backend`` (``'numpy'``, ``'cupy'`` or the module), and/or cast them. Returns self."""
        if device_id is not None:
            raise ValueError("TwoColumnAlexNet places its columns on self.devices "
                             f"{self.devices}; choose them with AlexNet(devices=...), not to(device_id=...)")
        if backend is None:
            xp = self.xp
        else:
            xp = get_backend(backend) if isinstance(backend, str) else backend
        for d in self.devices:
            check_device(xp, d)  # a GPU id that does not exist fails here, naming it
        for name in WEIGHT_LAYERS[:-1]:
            pair = getattr(self, name)
            pair.a.to(xp, dtype, self.devices[0])
            pair.b.to(xp, dtype, self.devices[1])
        self.fc8.to(xp, dtype, self.devices[0])
        if dtype is not None:
            self.dtype = np.dtype(dtype)
        return self

    # -- the two passes ---------------------------------------------------------------
    def _run(self, names, hs):
        for name in names:
            hs = getattr(self, name).forward(hs, self.where)
        return hs

    def _run_back(self, names, dhs):
        for name in reversed(names):
            dhs = getattr(self, name).backward(dhs, self.where)
        return dhs

    def _exchange(self, hs):
        """Both columns get (A's features, B's features) joined on axis 1: 2 transfers.

        The order is A then B on *both* devices, so conv3's, fc6's and fc7's
        per-column weights are row blocks of the single-device weights.
        """
        ha, hb = hs
        xp = self.xp
        with self.where(0):
            joined_a = xp.concatenate([ha, self._transfer(hb, 0)], axis=1)  # (N, 2k, ...)
        with self.where(1):
            joined_b = xp.concatenate([self._transfer(ha, 1), hb], axis=1)  # (N, 2k, ...)
        return [joined_a, joined_b]

    def _exchange_back(self, dhs):
        """Adjoint of _exchange: each column keeps the gradient of its own features and sends
        back the part that belongs to the other's: 2 transfers."""
        da, db = dhs
        k = da.shape[1] // 2
        with self.where(0):
            dha = da[:, :k] + self._transfer(db[:, :k], 0)
        with self.where(1):
            dhb = db[:, k:] + self._transfer(da[:, k:], 1)
        return [dha, dhb]

    STAGE1 = ("conv1", "relu1", "lrn1", "pool1", "conv2", "relu2", "lrn2", "pool2")  # own column
    STAGE2 = ("conv3", "relu3", "conv4", "relu4", "conv5", "relu5", "pool5", "flatten")
    STAGE3 = ("fc6", "relu6", "drop6")
    STAGE4 = ("fc7", "relu7", "drop7")

    def forward(self, x):
        """x (N, C, S, S) -> logits (N, num_classes) on devices[0]; 7 column transfers."""
        self._check_input(x)
        # The batch goes to both devices (data placement, not a column transfer). No copy is
        # needed where it already is: neither column writes into its input.
        self.transfers["input"] += 2
        hs = [backend.to_backend(x, self.xp, d) for d in self.devices]
        hs = self._run(self.STAGE1, hs)  # 2 x (N, C2/2, S2, S2)
        hs = self._exchange(hs)  # conv3 reads all of conv2's maps: 2 x (N, C2, S2, S2)
        hs = self._run(self.STAGE2, hs)  # 2 x (N, C5/2 * S5 * S5), flattened channel-major
        hs = self._exchange(hs)  # fc6 reads both halves of pool5: 2 x (N, fc6_inputs)
        hs = self._run(self.STAGE3, hs)  # 2 x (N, F/2)
        hs = self._exchange(hs)  # fc7 reads all of fc6: 2 x (N, F)
        ha, hb = self._run(self.STAGE4, hs)  # 2 x (N, F/2)
        with self.where(0):
            h7 = self.xp.concatenate([ha, self._transfer(hb, 0)], axis=1)  # (N, F) on A: fc8's input
            return self.fc8.forward(h7)

    def backward(self, dlogits):
        """dlogits (N, num_classes) on devices[0] -> dx on devices[0]; 7 column transfers."""
        with self.where(0):
            dh7 = self.fc8.backward(dlogits)  # (N, F)
            half = dh7.shape[1] // 2
            dhs = [dh7[:, :half], None]
        dhs[1] = self._transfer(dh7[:, half:], 1)  # B's half of fc7's output gradient goes home
        dhs = self._run_back(self.STAGE4, dhs)  # 2 x (N, F)
        dhs = self._exchange_back(dhs)  # 2 x (N, F/2)
        dhs = self._run_back(self.STAGE3, dhs)  # 2 x (N, fc6_inputs)
        dhs = self._exchange_back(dhs)  # 2 x (N, C5/2 * S5 * S5)
        dhs = self._run_back(self.STAGE2, dhs)  # 2 x (N, C2, S2, S2)
        dhs = self._exchange_back(dhs)  # 2 x (N, C2/2, S2, S2)
        dxa, dxb = self._run_back(self.STAGE1, dhs)  # 2 x (N, C, S, S): both columns read the image
        if dxa is None or dxb is None:  # a conv1 told to skip its input gradient
            return None
        self.transfers["input"] += 1
        with self.where(0):
            return dxa + backend.to_backend(dxb, self.xp, self.devices[0], copy=True)

    # -- dropout ----------------------------------------------------------------------
    def _dropouts(self):
        return {"drop6": self.drop6.dropout, "drop7": self.drop7.dropout}

    # -- full-shape views -------------------------------------------------------------
    def _join(self, arrays):
        """{per-column name: array} -> {full name: host array}, halves joined on axis 0."""
        full = OrderedDict()
        for name in WEIGHT_LAYERS:
            for kind in ("weight", "bias"):
                if name == "fc8":
                    full[f"fc8.{kind}"] = backend.to_numpy(arrays[f"fc8.{kind}"]).copy()
                else:
                    halves = [backend.to_numpy(arrays[f"{name}.{c}.{kind}"]) for c in COLUMNS]
                    full[f"{name}.{kind}"] = np.concatenate(halves, axis=0)  # output units: A's, then B's
        return full

    def state_dict(self):
        """``{name: array}`` with the single-device names and full shapes (``conv1.weight`` ...).

        Unlike Module.state_dict these are new host NumPy arrays, not the
        parameters themselves: the halves live on two devices and must be joined.
        """
        return self._join({name: p.data for name, p in self.named_parameters()})

    def full_grads(self):
        return self._join({name: p.grad for name, p in self.named_parameters()})

    def load_state_dict(self, state, strict=True):
        """Load a full-shape state (from either network): each array is cut into its column halves."""
        expected = OrderedDict()
        for row in self.cfg.layer_table():
            expected[row["name"] + ".weight"] = row["weight"]
            expected[row["name"] + ".bias"] = row["bias"]
        problems = state_mismatches(expected, state, strict)
        if problems:
            raise ValueError("TwoColumnAlexNet.load_state_dict: state does not match the model:\n  "
                             + "\n  ".join(problems))
        per_column = OrderedDict()
        for name in expected:
            layer, kind = name.split(".")
            arr = backend.to_numpy(state[name])
            if layer == "fc8":
                per_column[name] = arr
                continue
            half = arr.shape[0] // 2
            per_column[f"{layer}.a.{kind}"] = arr[:half]
            per_column[f"{layer}.b.{kind}"] = arr[half:]
        return Module.load_state_dict(self, per_column)
