"""Weights files by suffix: .npz (minialex's checkpoints), .safetensors and .onnx. One reader,
``read_weights(path) -> (arrays, meta)``, gives every format the shape of a checkpoint
(``model/<name>`` arrays, ``stats/mean_rgb``, a header with the model config, classes, names
and preprocessing sizes), so the training and prediction commands load them all through the
code that loads checkpoints. ``export_checkpoint`` writes the other way. docs/interop.md.
"""

import importlib
import json
import os

import numpy as np

from ..atomic import write_bytes
from ..models import AlexNetConfig
from ..weights.checkpoint import CheckpointError, describe_checkpoint, find_checkpoint, load_checkpoint, split_state

WEIGHT_SUFFIXES = (".npz", ".safetensors", ".onnx")  # what --weights reads
EXPORT_SUFFIXES = (".safetensors", ".onnx")  # what examples/export.py writes
FORMAT = "minialex-weights/1"  # the "format" entry of the metadata both exports carry
INSTALL = 'pip install -e ".[interop]"'


class MissingPackageError(CheckpointError):
    """An optional package (safetensors, onnx, onnxruntime) that this file format needs is missing."""


def require(module, package, why):
    """Import ``module`` or raise MissingPackageError, one line, naming what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingPackageError(f"{why} needs the {package} package, which is not installed: "
                                  f"pip install {package} (or {INSTALL})") from None


def suffix_of(path):
    return os.path.splitext(os.fspath(path))[1].lower()


# -- metadata: what an exported file says about its network ------------------------------------
def export_metadata(config, classes, names, preprocess, mean_rgb, source):
    """The text entries both exports carry (safetensors metadata, ONNX metadata_props).

    ``preprocess`` is the checkpoint's {"resize", "crop"}; ``mean_rgb`` the three channel means
    (0..255) that are subtracted from an RGB image before it enters the network. ``classes`` and
    ``names`` may be None (a file that came without them, like Caffe's ONNX graph): they are then
    written as JSON null, not made up, so a later import checks the class count only.
    """
    cfg = AlexNetConfig.from_dict(config)
    pre = {"resize": int(preprocess["resize"]), "crop": int(preprocess["crop"]),
           "mean_rgb": [float(v) for v in np.asarray(mean_rgb).reshape(3)],
           "channel_order": "RGB", "value_range": [0, 255], "layout": "NCHW",
           "steps": "shorter side to resize, centre square, centre crop, subtract mean_rgb per channel"}
    lrn = {"size": cfg.lrn_size, "k": cfg.lrn_k, "beta": cfg.lrn_beta,
           "alpha_on_sum": cfg.lrn_alpha_on_sum, "alpha_per_size": cfg.lrn_alpha_per_size,
           "per_column": cfg.lrn_per_column,
           "formula": "b = a / (k + alpha_on_sum * sum of a^2 over size channels) ** beta; PyTorch and ONNX "
                      "take alpha_per_size" + ("; windows stop at the boundary between the two columns' halves"
                                               if cfg.lrn_per_column else "; windows span all channels")}
    if not cfg.lrn:  # --no-lrn: the network has no LRN layer, its constants mean nothing
        lrn = {"present": False}
    # The ablation switches in plain words, for a reader of the file (model_config says them too,
    # where they differ from the paper's); docs/alexnet.md, "Switches".
    switches = {"activation": cfg.activation, "lrn": cfg.lrn, "pool_size": cfg.pool_size,
                "pool_stride": cfg.pool_stride, "dropout": cfg.dropout}
    listed = lambda values: None if values is None else list(values)  # noqa: E731
    return {"format": FORMAT, "model_config": json.dumps(cfg.to_dict()), "classes": json.dumps(listed(classes)),
            "names": json.dumps(listed(names)), "preprocess": json.dumps(pre), "lrn": json.dumps(lrn),
            "switches": json.dumps(switches), "source": str(source)}


def meta_from_export(md, path):
    """(extra arrays, meta) in checkpoint form from an exported file's metadata entries."""
    try:
        config = json.loads(md["model_config"])
        pre = json.loads(md["preprocess"])
        classes, names = json.loads(md["classes"]), json.loads(md["names"])
        AlexNetConfig.from_dict(config)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: its minialex metadata is incomplete or corrupt ({exc})") from None
    meta = {"model_config": config, "classes": classes, "names": names,
            "preprocess": {"resize": pre["resize"], "crop": pre["crop"], "mean": "channel"},
            "description": f"{path} (exported from {md.get('source', 'a minialex checkpoint')})"}
    return {"stats/mean_rgb": np.asarray(pre["mean_rgb"], np.float32)}, meta


def checked_state(config, state, path):
    """The weights as contiguous float32 arrays, refused in one line unless they are exactly the
    configuration's names and shapes."""
    cfg = AlexNetConfig.from_dict(config)
    expected = {}
    for row in cfg.layer_table():
        expected[row["name"] + ".weight"] = tuple(row["weight"])
        expected[row["name"] + ".bias"] = tuple(row["bias"])
    problems = [f"{n} {tuple(state[n].shape) if n in state else 'absent'} vs {shape}"
                for n, shape in expected.items() if n not in state or tuple(state[n].shape) != shape]
    problems += [f"{n} {tuple(state[n].shape)} vs absent" for n in state if n not in expected]
    if problems:
        raise CheckpointError(f"{path} does not hold the weights its config describes (file vs config): "
                              + ", ".join(problems))
    return {n: np.ascontiguousarray(state[n], dtype=np.float32) for n in expected}


# -- reading -----------------------------------------------------------------------------------
def read_weights(path):
    """``(arrays, meta)`` of a weights file, chosen by its suffix:

    - ``.npz``: a minialex checkpoint (``load_checkpoint``);
    - ``.safetensors``: the tensors as ``model/<name>``; with minialex's metadata also the
      config, classes, names, preprocessing sizes and ``stats/mean_rgb``; without it (a file
      written elsewhere) only the tensors, so the command's own network decides the shapes;
    - ``.onnx``: the initialisers of an AlexNet graph (``onnx_graph.read_onnx``).

    Exports carry the channel mean only: the per-pixel mean image stays in the checkpoint.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"weights file not found: {path}")
    suffix = suffix_of(path)
    if suffix == ".safetensors":
        return read_safetensors(path)
    if suffix == ".onnx":
        from .onnx_graph import read_onnx
        return read_onnx(path)
    return load_checkpoint(path)


def read_safetensors(path):
    st = require("safetensors", "safetensors", f"reading {path}")
    try:
        with st.safe_open(path, framework="np") as f:
            md = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as exc:  # noqa: BLE001  safetensors raises its own error types
        raise CheckpointError(f"cannot read {path}: {' '.join(str(exc).split())}") from None
    arrays = {f"model/{name}": t for name, t in tensors.items()}
    if md.get("format") != FORMAT:
        return arrays, {"description": f"{path} (safetensors without minialex metadata)"}
    extra, meta = meta_from_export(md, path)
    arrays.update(extra)
    return arrays, meta


# -- writing -----------------------------------------------------------------------------------
def write_safetensors(out, state, metadata):
    st = require("safetensors.numpy", "safetensors", f"writing {out}")
    # save_file writes only to a path: serialise in memory (a few hundred MB at most for the
    # paper's network) and let the atomic writer put the bytes in place
    write_bytes(out, st.save(state, metadata=metadata))


def export_checkpoint(source, out):
    """Write the weights of ``source`` (a checkpoint, a run folder for its best checkpoint, or a
    .safetensors/.onnx file) to ``out``, whose suffix picks the format. Returns
    ``(source file, config dict)``."""
    out = os.fspath(out)
    suffix = suffix_of(out)
    if suffix not in EXPORT_SUFFIXES:
        raise CheckpointError(f"--to {out}: the suffix chooses the format; use one of {', '.join(EXPORT_SUFFIXES)}")
    path = find_checkpoint(source, prefer="best")
    arrays, meta = read_weights(path)
    if not meta.get("model_config"):
        raise CheckpointError(f"{path} says nothing about its network (no minialex config); nothing to export")
    if "stats/mean_rgb" not in arrays:
        raise CheckpointError(f"{path} lacks the channel means (stats/mean_rgb) that its preprocessing needs")
    config = meta["model_config"]
    state = checked_state(config, split_state(arrays)[0], path)
    classes = meta.get("classes")
    names = meta.get("names") or classes
    pre = meta.get("preprocess") or {}
    if "resize" not in pre or "crop" not in pre:
        raise CheckpointError(f"{path} lacks its preprocessing sizes (resize, crop)")
    source_text = meta.get("description") or describe_checkpoint(path, meta)
    md = export_metadata(config, classes, names, pre, arrays["stats/mean_rgb"], source_text)
    if suffix == ".safetensors":
        write_safetensors(out, state, md)
    else:
        from .onnx_graph import write_onnx
        write_onnx(out, config, state, md)
    return path, config
