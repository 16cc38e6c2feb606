"""The checkpoint format: one .npz file of plain arrays plus a JSON header, written atomically
(minialex/atomic.py). Whether a checkpoint fits a network is decided beside it, in compat.py.

Why this format: ``np.load(..., allow_pickle=False)`` can read it, so opening a
checkpoint from someone else never runs their code; and the write goes to a
temporary file that is renamed over the old one only when complete, so a crash
or Ctrl-C mid-write leaves the previous checkpoint intact. A run folder holds
two of them, the latest (``checkpoint.npz``) and the one with the lowest
validation error so far (``checkpoint_best.npz``). Explained in docs/training.md.
"""

import json
import os
import shutil
import zipfile

import numpy as np

from ..atomic import atomic_write
from ..backend import to_numpy

FORMAT_VERSION = 1
_META_KEY = "__meta__"

LATEST = "checkpoint.npz"  # rewritten after every epoch and on Ctrl-C
BEST = "checkpoint_best.npz"  # rewritten when an epoch beats every earlier one on val_top1_err
# Every file a training run writes into its folder: their presence marks a folder as
# holding a run, and --overwrite removes exactly these.
RUN_FILES = (LATEST, BEST, "metrics.csv", "args.json", "curves.png", "conv1_filters.png")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or does not fit the model it is loaded into."""


def save_checkpoint(path, arrays, meta):
    """Write ``{name: array}`` and a JSON-able ``meta`` dict to ``path`` atomically.

    Arrays may live on a GPU; they are copied to the host. The header stores
    the format version so a future layout can still read old files.
    """
    header = dict(meta, format_version=FORMAT_VERSION)
    payload = {name: to_numpy(a) for name, a in arrays.items()}
    # JSON text as a uint8 array: no pickle needed to read it back.
    payload[_META_KEY] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **payload))


def copy_checkpoint(src, dst):
    """Copy a checkpoint file to ``dst`` with the same all-or-nothing guarantee as a save."""
    def write(f):
        with open(src, "rb") as s:
            shutil.copyfileobj(s, f, 1 << 20)
    atomic_write(dst, write)


def _open(path):
    """``np.load`` of a checkpoint file, or CheckpointError in one line: not found, unreadable
    (the operating system's reason), or not an .npz archive at all (a text file, say). Never
    pickle: a checkpoint from someone else is data, and reading it runs none of their code."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if magic != b"PK\x03\x04":  # every .npz is a zip archive; np.load would talk of pickles here
        raise CheckpointError(f"{path} is not a minialex checkpoint (not an .npz archive)")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {' '.join(str(exc).split())}") from None


def _header(path, data):
    if _META_KEY not in data.files:
        raise CheckpointError(f"{path} is not a minialex checkpoint (an .npz archive without its header)")
    try:
        meta = json.loads(data[_META_KEY].tobytes().decode("utf-8"))
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path}: corrupt header ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: corrupt header (not a JSON object)")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer minialex (format {meta['format_version']})")
    return meta


def load_checkpoint(path):
    """Read a checkpoint written by ``save_checkpoint``: returns ``(arrays, meta)``."""
    with _open(path) as data:
        meta = _header(path, data)
        try:
            arrays = {name: data[name] for name in data.files if name != _META_KEY}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise CheckpointError(f"cannot read checkpoint {path}: {' '.join(str(exc).split())}") from None
    return arrays, meta


def read_meta(path):
    """The header of a checkpoint alone (np.load reads .npz members lazily, so the arrays stay on disk)."""
    with _open(path) as data:
        return _header(path, data)


def find_checkpoint(path, prefer):
    """The checkpoint file that ``path`` names: the file itself, or inside a run folder
    the best one (``prefer="best"``, what evaluation wants) or the latest
    (``prefer="latest"``, what resuming wants), falling back to the other for "best"."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        if not os.path.isfile(path):
            raise CheckpointError(f"checkpoint not found: {path}")
        return path
    order = (BEST, LATEST) if prefer == "best" else (LATEST,)
    for name in order:
        candidate = os.path.join(path, name)
        if os.path.isfile(candidate):
            return candidate
    raise CheckpointError(f"no checkpoint in {path} (looked for {' and '.join(order)})")


def split_state(arrays):
    """(model state, momentum state) of a checkpoint's arrays, without their prefixes."""
    model = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    momentum = {k[len("momentum/"):]: v for k, v in arrays.items() if k.startswith("momentum/")}
    return model, momentum


def describe_checkpoint(path, meta):
    """One phrase saying which checkpoint this is, e.g.
    ``runs/x/checkpoint_best.npz (best: epoch 12 of 16, val_top1_err 25.30%)``."""
    kind = meta.get("saved_as", "latest")
    epoch, step = int(meta.get("epoch", 0)), int(meta.get("step_in_epoch", 0))
    total = (meta.get("args") or {}).get("epochs")
    where = f"epoch {epoch}" + (f" of {total}" if total else "")
    if step:
        where = f"epoch {epoch + 1} step {step}, {epoch} epoch{'s' if epoch != 1 else ''} finished"
    history = meta.get("history") or []
    row = next((r for r in reversed(history) if r.get("epoch") == epoch), None)
    err = f", val_top1_err {row['val_top1_err']:.2f}%" if row and not step else ""
    return f"{path} ({kind}: {where}{err})"
