"""The paper's model parallelism (section 3.2): column A's half of every layer on one device,
column B's on another, and activations crossing only where the table in
minialex/models/architecture.py says a layer reads both columns (conv3, fc6, fc7, fc8).
``AlexNet(devices=(a, b))`` uses this placement: it hands over the table's Layers and its
LayerMaker, so nothing here depends on minialex.models.
Explained in docs/two-gpu.md; tested in tests/parallel/test_two_device.py.
"""

from collections import Counter, OrderedDict

import numpy as np

from .. import backend
from ..backend import check_device, get_backend
from ..nn.functional import dropout_backward, dropout_forward
from ..nn.masks import MaskKey
from ..nn.module import Module, state_mismatches

COLUMNS = ("a", "b")  # column A runs on devices[0], column B on devices[1]


def check_devices(devices):
    """``devices`` as a pair of ids; ValueError for the wrong count, BackendError for an id that is
    not a non-negative integer.

    Whether an id exists is known only for a backend, so it is checked by ``to()``:
    ``to("cupy")`` against the GPUs that are there, and on NumPy, where both columns run
    on the one CPU, only 0 and 1 (they just label the columns).
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
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d < 0:
            raise backend.BackendError(f"device id must be a non-negative integer, got {d!r}")
    return tuple(int(d) for d in devices)


class ColumnPair(Module):
    """One layer of the network as two independent halves: ``a`` for column A, ``b`` for column B.

    ``where(col)`` is the placement's device context for a column, so each half
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

    Each column draws its half of the (N, F) mask of the single-device Dropout with the same
    seed and call count (``MaskKey(..., columns=...)``, minialex/nn/masks.py: the mask is a hash of the element's
    index in the full mask, so a half can be drawn alone, on its own device, and no mask
    crosses between devices). The two networks therefore compute the same function in
    training mode too.
    """

    def __init__(self, p, seed):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p, self.seed, self.calls = p, int(seed), 0  # the whole random state, as Dropout's
        self.first_row = 0  # as Dropout's: the rows of the global batch this batch is

    def extra_repr(self):
        return f"p={self.p}"

    def forward(self, hs, where):
        if not self.training or self.p == 0.0:
            self.keep(None)
            return hs
        n, half = hs[0].shape
        caches, out = [], []
        for col, h in enumerate(hs):
            with where(col):
                # (N, F/2): this column's units of the single-device (N, F) mask, drawn alone
                key = MaskKey(self.seed, self.calls, self.first_row, columns=(col * half, 2 * half))
                y, cache = dropout_forward(h, self.p, key)
                caches.append(cache)
                out.append(y)
        self.calls += 1
        self.keep(caches)
        return out

    def backward(self, douts, where):
        _, caches = self.take_cache()
        if caches is None:
            return douts
        out = []
        for col, (dout, cache) in enumerate(zip(douts, caches)):
            with where(col):
                out.append(dropout_backward(dout, cache))
        return out


class TwoColumns:
    """The placement of AlexNet(devices=(a, b)): layers in ColumnPairs, fc8 whole on column A.

    Parameters are per column: ``named_parameters()`` yields ``conv1.a.weight``
    (column A's half of ``conv1.weight``, on devices[0]), ``conv1.b.weight``, ...,
    and ``fc8.weight`` whole on devices[0], so SGD keeps each velocity on its
    parameter's device. ``state_dict()`` joins the halves into host NumPy arrays
    named ``conv1.weight`` ...; ``full_grads()`` does the same for gradients.

    Every activation or gradient that crosses between the columns goes through
    ``transfer``, which counts it in ``transfers["column"]``: 7 per forward, 7 per
    backward. Placing the input on the devices and gathering its gradient are
    counted under ``"input"``.
    """

    def __init__(self, devices):
        self.devices = check_devices(devices)
        self.transfers = Counter()
        self.plan = []  # ("exchange", None) | ("columns", name) | ("classifier", name), forward order
        self._xp = np  # the backend of the current pass, set by forward and backward

    @property
    def device_ids(self):
        return list(self.devices)

    # -- building ---------------------------------------------------------------------
    def build(self, table, make):
        """Yield (name, ColumnPair or layer) in forward order for the table's Layers, and write
        the plan that runs them."""
        self.weight_names = [layer.row.name for layer in table]
        for layer in table:
            row = layer.row
            if layer.flatten_before:
                self.plan.append(("columns", "flatten"))
                yield "flatten", ColumnPair(make.follower("flatten", 1), make.follower("flatten", 1))
            rng = make.rng(layer)  # drawn by A, then by B: the single-device rows in order
            if layer is table[-1]:
                # fc8 whole on column A's device, reading both fc7 halves, as cuda-convnet2 does:
                # the logits and the loss must end up in one place, and fc8 is small.
                self.plan.append(("classifier", row.name))
                yield row.name, make.weight_layer(layer, row.width, layer.in_maps, 1, rng)
                continue
            if layer.exchange_before:  # it reads both columns
                self.plan.append(("exchange", None))
            self.plan.append(("columns", row.name))
            yield row.name, ColumnPair(make.weight_layer(layer, row.width // 2, layer.column_in_maps, 1, rng),
                                       make.weight_layer(layer, row.width // 2, layer.column_in_maps, 1, rng))
            for kind, name in layer.followers:
                self.plan.append(("columns", name))
                if kind == "dropout":
                    yield name, ColumnDropout(make.cfg.dropout, make.dropout_seed(name))
                else:  # an LRN here sees one column's maps only: groups=1
                    yield name, ColumnPair(make.follower(kind, 1), make.follower(kind, 1))

    # -- devices ----------------------------------------------------------------------
    def xp(self, net):
        return backend.get_array_module(net.fc8.weight.data)

    def where(self, col):
        """The device context of column ``col`` (0 = A, 1 = B); a no-op on NumPy."""
        return backend.device(self._xp, self.devices[col])

    def transfer(self, x, dst, kind="column"):
        """Copy ``x`` to column ``dst``'s device: the one place where the columns exchange arrays.

        Always a real copy: with devices (0, 0) a plain ``cupy.asarray`` would return
        the very same array, and an in-place update on one side would silently change
        the other's input. Between two GPUs ``backend.transfer`` orders the copy with
        CUDA events (docs/gpu.md, "Transfers between devices").
        """
        self.transfers[kind] += 1
        return backend.to_backend(x, self._xp, self.devices[dst], copy=True)

    def to(self, net, xp, dtype, device_id):
        if device_id is not None:
            raise ValueError("AlexNet(devices=...) places its columns on its devices "
                             f"{self.devices}; choose them with AlexNet(devices=...), not to(device_id=...)")
        if xp is None:
            xp = self.xp(net)
        elif isinstance(xp, str):
            xp = get_backend(xp)
        for d in self.devices:
            check_device(xp, d)  # a GPU id that does not exist fails here, naming it
        for name, child in net.named_children():
            if isinstance(child, ColumnPair):
                child.a.to(xp, dtype, self.devices[0])
                child.b.to(xp, dtype, self.devices[1])
        net.fc8.to(xp, dtype, self.devices[0])

    # -- the two passes ---------------------------------------------------------------
    def _exchange(self, hs):
        """Both columns get (A's features, B's features) joined on axis 1: 2 transfers.

        The order is A then B on *both* devices, so conv3's, fc6's and fc7's
        per-column weights are row blocks of the single-device weights.
        """
        ha, hb = hs
        xp = self._xp
        with self.where(0):
            joined_a = xp.concatenate([ha, self.transfer(hb, 0)], axis=1)  # (N, 2k, ...)
        with self.where(1):
            joined_b = xp.concatenate([self.transfer(ha, 1), hb], axis=1)  # (N, 2k, ...)
        return [joined_a, joined_b]

    def _exchange_back(self, dhs):
        """Adjoint of _exchange: each column keeps the gradient of its own features and sends
        back the part that belongs to the other's: 2 transfers."""
        da, db = dhs
        k = da.shape[1] // 2
        with self.where(0):
            dha = da[:, :k] + self.transfer(db[:, :k], 0)
        with self.where(1):
            dhb = db[:, k:] + self.transfer(da[:, k:], 1)
        return [dha, dhb]

    def forward(self, net, x, upto=None):
        """x (N, C, S, S) -> logits (N, num_classes) on devices[0]; 7 column transfers.

        ``upto``: stop after the layer of that name and return its output with the two halves
        joined on column A's device, A's first (the single-device network's output there)."""
        self._xp = self.xp(net)
        # The batch goes to both devices (data placement, not a column transfer). No copy is
        # needed where it already is: neither column writes into its input.
        self.transfers["input"] += 2
        hs = [backend.to_backend(x, self._xp, d) for d in self.devices]  # another GPU: backend.transfer
        for step, name in self.plan:
            if step == "exchange":  # conv3, fc6 and fc7 read both columns
                hs = self._exchange(hs)
            elif step == "columns":
                hs = getattr(net, name).forward(hs, self.where)
                if name == upto:
                    with self.where(0):
                        return self._xp.concatenate([hs[0], self.transfer(hs[1], 0)], axis=1)
            else:  # the classifier: (N, F) on A, both fc7 halves
                with self.where(0):
                    h = self._xp.concatenate([hs[0], self.transfer(hs[1], 0)], axis=1)
                    return getattr(net, name).forward(h)
        raise RuntimeError("the two-column plan has no classifier")

    def backward(self, net, dlogits, grads_ready=None):
        """dlogits (N, num_classes) on devices[0] -> dx on devices[0] or None; 7 column transfers.
        ``grads_ready(name)`` after each layer whose gradients are then final (both columns')."""
        self._xp = self.xp(net)
        dhs = None
        for step, name in reversed(self.plan):
            if step == "classifier":
                with self.where(0):
                    dh = getattr(net, name).backward(dlogits)  # (N, F)
                    half = dh.shape[1] // 2
                    dhs = [dh[:, :half], None]
                dhs[1] = self.transfer(dh[:, half:], 1)  # B's half of fc7's output gradient goes home
            elif step == "exchange":
                dhs = self._exchange_back(dhs)
            else:
                dhs = getattr(net, name).backward(dhs, self.where)
            if grads_ready is not None and name is not None:
                grads_ready(name)
        dxa, dxb = dhs  # both columns read the image
        if dxa is None or dxb is None:  # conv1 skipped its input gradient (input_grad=False)
            return None
        self.transfers["input"] += 1
        dxb = backend.to_backend(dxb, self._xp, self.devices[0], copy=True)
        with self.where(0):
            return dxa + dxb

    # -- full-shape views -------------------------------------------------------------
    def _join(self, arrays):
        """{per-column name: array} -> {full name: host array}, halves joined on axis 0."""
        full = OrderedDict()
        for name in self.weight_names:
            for kind in ("weight", "bias"):
                if f"{name}.{kind}" in arrays:  # the classifier, whole
                    full[f"{name}.{kind}"] = backend.to_numpy(arrays[f"{name}.{kind}"]).copy()
                else:
                    halves = [backend.to_numpy(arrays[f"{name}.{c}.{kind}"]) for c in COLUMNS]
                    full[f"{name}.{kind}"] = np.concatenate(halves, axis=0)  # output units: A's, then B's
        return full

    def state_dict(self, net):
        return self._join({name: p.data for name, p in net.named_parameters()})

    def full_grads(self, net):
        return self.full_named(net, {name: p.grad for name, p in net.named_parameters()})

    def load_state_dict(self, net, state, strict):
        """Load a full-shape state: each array is cut into its column halves."""
        expected = OrderedDict()
        for row in net.cfg.layer_table():
            expected[row["name"] + ".weight"] = row["weight"]
            expected[row["name"] + ".bias"] = row["bias"]
        problems = state_mismatches(expected, state, strict)
        if problems:
            raise ValueError("AlexNet.load_state_dict: state does not match the model:\n  "
                             + "\n  ".join(problems))
        Module.load_state_dict(net, self.placed_named(net, state))

    def full_named(self, net, arrays):
        """{per-column parameter name: array} (velocities, say) -> {full name: host array}."""
        return self._join(arrays)

    def placed_named(self, net, state):
        """{full name: array} -> {per-column name: host array}: each array cut into its halves."""
        own = {name for name, _ in net.named_parameters()}
        per_column = OrderedDict()
        for name, value in state.items():
            layer, kind = name.split(".")
            arr = backend.to_numpy(value)
            if name in own:  # the classifier, whole
                per_column[name] = arr
                continue
            half = arr.shape[0] // 2
            per_column[f"{layer}.a.{kind}"] = arr[:half]
            per_column[f"{layer}.b.{kind}"] = arr[half:]
        return per_column
