"""Checkpoints: one .npz file of plain arrays plus a JSON header, written atomically.

Why this format: ``np.load(..., allow_pickle=False)`` can read it, so opening a
checkpoint from someone else never runs their code; and the write goes to a
temporary file that is renamed over the old one only when complete, so a crash
or Ctrl-C mid-write leaves the previous checkpoint intact. Explained in docs/training.md.
"""

import json
import os
import tempfile

import numpy as np

from ..backend import to_numpy

FORMAT_VERSION = 1
_META_KEY = "__meta__"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or does not fit the model it is loaded into."""


def save_checkpoint(path, arrays, meta):
    """Write ``{name: array}`` and a JSON-able ``meta`` dict to ``path`` atomically.

    Arrays may live on a GPU; they are copied to the host. The header stores
    the format version so a future layout can still read old files.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    header = dict(meta, format_version=FORMAT_VERSION)
    payload = {name: to_numpy(a) for name, a in arrays.items()}
    # JSON text as a uint8 array: no pickle needed to read it back.
    payload[_META_KEY] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a checkpoint is an ordinary file
        os.replace(tmp, path)  # atomic on POSIX and Windows: readers see old or new, never half
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path):
    """Read a checkpoint written by ``save_checkpoint``: returns ``(arrays, meta)``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    if _META_KEY not in arrays:
        raise CheckpointError(f"{path} is not a minialex checkpoint (no header)")
    try:
        meta = json.loads(arrays.pop(_META_KEY).tobytes().decode("utf-8"))
    except ValueError as exc:
        raise CheckpointError(f"{path}: corrupt header ({exc})") from None
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer minialex (format {meta['format_version']})")
    return arrays, meta
