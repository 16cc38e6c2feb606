"""CIFAR-10 from its "python version" batches, and ArrayDataset, an in-memory
dataset with the same interface as ImageFolder.

The batches are Python pickles: only load files from a source you trust
(https://www.cs.toronto.edu/~kriz/cifar.html). See docs/data.md, "CIFAR-10".
"""

import os
import pickle
from typing import NamedTuple

import numpy as np

from .errors import DataError
from .transforms import resize_crop, resize_shorter

BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"

# The only globals a CIFAR batch needs: numpy's array reconstruction helpers
# (old and new module names) and the bytes codec Python 3 pickles use.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Refuses every global outside _ALLOWED_GLOBALS.

    This stops the classic "pickle runs arbitrary code" payloads, but it is a
    defence in depth, not a sandbox: still load only trusted files.
    """

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        if module.startswith("numpy.core.") and int(np.__version__.split(".")[0]) >= 2:
            module = "numpy._core." + module[len("numpy.core."):]  # avoid the deprecated alias
        return super().find_class(module, name)


def _unpickle(path):
    try:
        with open(path, "rb") as f:
            # latin1 turns the Python 2 byte strings of the original files into str.
            return _RestrictedUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"cannot read CIFAR-10 batch {path}: {type(exc).__name__}: {exc}") from None


def find_cifar10(root):
    """The cifar-10-batches-py folder: ``root`` itself or ``root/cifar-10-batches-py``."""
    root = os.fspath(root)
    for folder in (os.path.join(root, BATCH_DIR), root):
        if os.path.isfile(os.path.join(folder, TEST_BATCH)):
            return folder
    raise DataError(
        f"no CIFAR-10 batches under {root}: expected {os.path.join(root, BATCH_DIR, TEST_BATCH)} "
        f"or {os.path.join(root, TEST_BATCH)}. Download cifar-10-python.tar.gz from "
        f"{CIFAR10_URL} and extract it there")


def _read_batch(path):
    if not os.path.isfile(path):
        raise DataError(f"CIFAR-10 batch {path} is missing")
    d = _unpickle(path)
    try:
        data = np.asarray(d["data"], dtype=np.uint8)  # (N, 3072), planes R, G, B of 32x32
        labels = np.asarray(d["labels"], dtype=np.int64)
    except (KeyError, TypeError) as exc:
        raise DataError(f"CIFAR-10 batch {path} lacks 'data'/'labels' ({exc})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataError(f"CIFAR-10 batch {path}: data {data.shape}, labels {labels.shape}")
    # (N, 3, 32, 32) channel-planar -> (N, 32, 32, 3) like every other image here.
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels


class Cifar10(NamedTuple):
    train_images: np.ndarray  # (50000, 32, 32, 3) uint8
    train_labels: np.ndarray  # (50000,) int64
    test_images: np.ndarray   # (10000, 32, 32, 3) uint8
    test_labels: np.ndarray   # (10000,) int64
    classes: list             # ["airplane", ..., "truck"]


def load_cifar10(root):
    """Read all six batches and the label names from a trusted CIFAR-10 copy.

    ``root`` is the folder that contains ``cifar-10-batches-py`` or that
    folder itself. The files are pickles (read with a restricted unpickler
    and encoding='latin1'); a pickle can run code when loaded, so use only
    the official archive or a copy you made.
    """
    folder = find_cifar10(root)
    parts = [_read_batch(os.path.join(folder, name)) for name in TRAIN_BATCHES]
    train_images = np.concatenate([p[0] for p in parts])
    train_labels = np.concatenate([p[1] for p in parts])
    test_images, test_labels = _read_batch(os.path.join(folder, TEST_BATCH))
    meta_path = os.path.join(folder, META)
    if os.path.isfile(meta_path):
        classes = [str(n) for n in _unpickle(meta_path)["label_names"]]
    else:
        classes = [str(i) for i in range(int(train_labels.max()) + 1)]
    return Cifar10(train_images, train_labels, test_images, test_labels, classes)


class ArrayDataset:
    """Images held in memory, with ImageFolder's interface (load, classes, names, len).

    ``images`` is uint8 (N, H, W, 3), ``labels`` (N,) ints, ``classes`` the
    class names (index = label); ``names`` defaults to ``classes``.
    """

    def __init__(self, images, labels, classes, names=None):
        images = np.asarray(images)
        labels = np.asarray(labels, dtype=np.int64)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise DataError(f"ArrayDataset needs uint8 (N, H, W, 3) images, got "
                            f"{images.dtype} {images.shape}")
        if len(labels) != len(images):
            raise DataError(f"ArrayDataset: {len(images)} images but {len(labels)} labels")
        if len(images) == 0:
            raise DataError("ArrayDataset: no images")
        self.images = images
        self.labels = labels
        self.targets = labels
        self.classes = list(classes)
        self.names = list(names) if names is not None else list(self.classes)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def __len__(self):
        return len(self.images)

    supports_crop = True

    def load(self, i, shorter=None, crop=None):
        """(uint8 image (H, W, 3), label); resized when ``shorter`` differs from its size.

        ``crop=(top, left, size)``: only that window of the centre ``shorter`` square
        (transforms.resize_crop), as ImageFolder.load.
        """
        img = self.images[i]
        if crop is not None:
            return resize_crop(img, shorter, *crop), int(self.labels[i])
        if shorter is not None:
            img = resize_shorter(img, shorter)
        return img, int(self.labels[i])

    def __repr__(self):
        return f"ArrayDataset({len(self)} images {self.images.shape[1:]}, {len(self.classes)} classes)"


def cifar10_datasets(root):
    """(train, test) ArrayDatasets for CIFAR-10 under ``root``."""
    c = load_cifar10(root)
    return (ArrayDataset(c.train_images, c.train_labels, c.classes),
            ArrayDataset(c.test_images, c.test_labels, c.classes))
