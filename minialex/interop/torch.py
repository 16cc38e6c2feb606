"""The same network as a torch.nn.Module, built from the one table in
minialex/models/architecture.py (never a second copy of the architecture), the switches included
(nn.ReLU, nn.Tanh or nn.Sigmoid; LRN or none; the pools' window and stride): grouped convolutions
where a layer reads its own column, the per-column LRN with PyTorch's alpha convention (alpha
divided by the window size), and the parameter names of minialex's ``state_dict()``, so the
weights move both ways unchanged. PyTorch is imported when a function here is called; without
it the call fails with one line saying what to install. docs/interop.md; tests/interop/.

    from minialex.interop.torch import load_safetensors
    module, meta = load_safetensors("alexnet.safetensors")   # eval mode, float32
    logits = module(images)            # (N, 3, S, S) RGB minus meta["preprocess"]["mean_rgb"]
"""

import importlib

import numpy as np

from ..models import AlexNet, AlexNetConfig, alexnet_config
from ..models import architecture

TORCH_PIN = "torch==2.13.0"
# PyTorch's own CPU wheel index: the plain PyPI wheel of torch pulls the CUDA libraries (about 2 GB)
TORCH_INSTALL = f"pip install {TORCH_PIN} --index-url https://download.pytorch.org/whl/cpu"
_classes = {}


def require_torch():
    """The torch module, or an ImportError in one line naming the pinned install command."""
    try:
        return importlib.import_module("torch")
    except ImportError:
        raise ImportError(f"minialex.interop.torch needs PyTorch, which is not installed: {TORCH_INSTALL} "
                          "(PyTorch's CPU build, which is enough)") from None


def _module_classes():
    """Define the nn.Module subclasses on first use (they need torch.nn to exist)."""
    if _classes:
        return _classes["AlexNet"], _classes["ColumnLRN"]
    torch = require_torch()
    nn = torch.nn

    class ColumnLRN(nn.Module):
        """nn.LocalResponseNorm on each of ``groups`` blocks of channels: windows stop at a block's
        edge, as when each of the paper's GPUs normalised its own half of the maps."""

        def __init__(self, groups, size, alpha, beta, k):
            super().__init__()
            self.groups = groups
            self.norm = nn.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)

        def forward(self, x):
            return torch.cat([self.norm(part) for part in torch.chunk(x, self.groups, dim=1)], dim=1)

        def extra_repr(self):
            return f"groups={self.groups}"

    class TorchAlexNet(nn.Module):
        """AlexNet as minialex builds it, in PyTorch. Children in forward order, named as in
        minialex (conv1, relu1, lrn1, pool1, ..., drop7, fc8); parameters conv1.weight ... fc8.bias."""

        def __init__(self, cfg):
            super().__init__()
            self.cfg = cfg
            self.order = architecture.forward_order(cfg)
            for layer in architecture.layers(cfg):
                row = layer.row
                if layer.flatten_before:
                    self.flatten = nn.Flatten()  # channel-major, as minialex's Flatten
                if row.kind == "conv":
                    conv = nn.Conv2d(layer.in_maps, row.width, row.kernel, stride=row.stride, padding=row.padding,
                                     groups=layer.groups)
                    setattr(self, row.name, conv)
                else:
                    setattr(self, row.name, nn.Linear(layer.in_maps, row.width))
                for kind, name in layer.followers:
                    setattr(self, name, _follower(nn, ColumnLRN, cfg, kind))
            built = tuple(name for name, _ in self.named_children())
            if built != self.order:  # the table and this loop must agree, or the weights would not line up
                raise RuntimeError(f"TorchAlexNet built {built}, the table says {self.order}")

        def forward(self, x):
            """x (N, C, S, S) float, RGB minus the mean -> logits (N, num_classes)."""
            for name in self.order:
                x = getattr(self, name)(x)
            return x

        def features(self, x, upto=None):
            """The output of layer ``upto`` (a name of ``order``; None: fc7's activation, "relu7" in the
            paper's net), as minialex's AlexNet.features."""
            upto = architecture.fc7_activation(self.cfg) if upto is None else upto
            if upto not in self.order:
                raise ValueError(f"no layer {upto!r}; the layers are {', '.join(self.order)}")
            for name in self.order[:self.order.index(upto) + 1]:
                x = getattr(self, name)(x)
            return x

    _classes.update(AlexNet=TorchAlexNet, ColumnLRN=ColumnLRN)
    return TorchAlexNet, ColumnLRN


def _follower(nn, column_lrn, cfg, kind):
    # The switches (docs/alexnet.md, "Switches") all have a PyTorch layer: the activation is
    # nn.ReLU, nn.Tanh or nn.Sigmoid, a network without LRN has no lrn children (the table says
    # so), and the pools take the config's window and stride.
    if kind in ("relu", "tanh", "sigmoid"):
        return {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[kind]()
    if kind == "pool":
        return nn.MaxPool2d(cfg.pool_size, cfg.pool_stride)
    if kind == "dropout":
        return nn.Dropout(cfg.dropout)  # inverted dropout, as minialex's: the identity in eval mode
    if kind == "lrn":
        # PyTorch divides alpha by the size: give it the alpha that does (5e-4 for the paper's 1e-4),
        # and k explicitly (its default is 1, the paper's is 2).
        return column_lrn(2 if cfg.lrn_per_column else 1, cfg.lrn_size, cfg.lrn_alpha_per_size, cfg.lrn_beta,
                          cfg.lrn_k)
    raise ValueError(f"no PyTorch layer for a {kind!r} layer")


def _config(config, **fields):
    if isinstance(config, AlexNetConfig) and not fields:
        return config
    return alexnet_config(config, **fields)


def build_module(config="imagenet", dtype=None, **fields):
    """A torch.nn.Module of the network a preset name, AlexNetConfig or ``model.config`` dict
    describes (fields override it), with PyTorch's default initialisation; load weights into it.
    Returned in evaluation mode."""
    module_class, _ = _module_classes()  # imports torch, or fails in one line
    module = module_class(_config(config, **fields))
    if dtype is not None:
        module = module.to(dtype)
    return module.eval()


def load_state(module, state):
    """Copy ``{name: array}`` (NumPy arrays or tensors, full shapes) into the module, strictly."""
    torch = require_torch()
    p = next(module.parameters())
    tensors = {k: torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v).to(p.dtype)
               for k, v in state.items()}
    module.load_state_dict(tensors, strict=True)
    return module


def from_minialex(model, dtype=None):
    """The PyTorch module of a minialex AlexNet, with its weights (either placement)."""
    torch = require_torch()
    dtype = dtype or {np.dtype(np.float64): torch.float64}.get(np.dtype(model.dtype), torch.float32)
    return load_state(build_module(model.cfg, dtype=dtype), model.state_dict())


SWITCH_FIELDS = ("activation", "lrn", "pool_size", "pool_stride")


def to_minialex(state, config, dtype=np.float32, **build):
    """A minialex AlexNet of ``config`` holding a PyTorch ``state_dict`` (tensors or arrays), or
    the weights of a module ``build_module`` made.

    A module records its switches (its ``cfg``): they must be ``config``'s, or a ValueError in
    one line names them. A bare state_dict cannot say them (the activation and LRN change no
    weight's shape, and 2/2 pooling does not at 224 px), so ``config`` decides."""
    cfg = _config(config)
    if hasattr(state, "state_dict") and hasattr(state, "cfg"):  # a TorchAlexNet
        theirs = state.cfg
        differ = [f"{k} {getattr(theirs, k)} vs {getattr(cfg, k)}" for k in SWITCH_FIELDS
                  if getattr(theirs, k) != getattr(cfg, k)]
        if differ:
            raise ValueError("to_minialex: the module was built with other switches than the config "
                             "(module vs config): " + ", ".join(differ))
        state = state.state_dict()
    arrays = {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in state.items()}
    return AlexNet.from_config(cfg, dtype=dtype, **build).load_state_dict(arrays).eval()


def load_safetensors(path, dtype=None):
    """(module, meta): the PyTorch module of an exported .safetensors file, built from the config
    in its metadata, weights loaded, in eval mode; ``meta`` holds the classes, names and
    preprocessing (minialex.interop.read_weights): ``meta["preprocess"]`` has the sizes
    (``resize``, ``crop``) and ``mean_rgb``, the three channel means (RGB, 0..255) to subtract
    from an image before it enters the module."""
    from ..weights.checkpoint import CheckpointError, split_state
    from .formats import read_weights
    arrays, meta = read_weights(path)
    if not meta.get("model_config"):
        raise CheckpointError(f"{path} has no minialex metadata saying which network it holds")
    if "stats/mean_rgb" not in arrays:
        raise CheckpointError(f"{path} lacks the channel means (stats/mean_rgb) that its preprocessing needs")
    # read_weights gives the means as an array beside the weights, in checkpoint form; a PyTorch
    # user wants them with the rest of the preprocessing, as plain numbers
    mean_rgb = [float(v) for v in np.asarray(arrays["stats/mean_rgb"]).reshape(3)]
    meta = dict(meta, preprocess=dict(meta.get("preprocess") or {}, mean_rgb=mean_rgb))
    module = build_module(meta["model_config"], dtype=dtype)
    return load_state(module, split_state(arrays)[0]), meta
