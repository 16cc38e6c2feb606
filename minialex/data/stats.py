"""Training-set statistics: the mean image subtracted from every input, and
the RGB covariance eigenpairs that drive PCA lighting.

Both are computed on the preprocessed images (shorter side -> size, centre
crop size x size), as in the paper. The math and the cache rule are in
docs/data.md, "Mean image" and "PCA lighting".
"""

import hashlib
import itertools
import os
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..atomic import WriteFailed, atomic_write
from .errors import CorruptImageError, DataError
from .skips import SkipLog
from .transforms import center_crop

STATS_VERSION = 1  # bump when the computation changes, so old caches are recomputed


@dataclass
class Stats:
    """Statistics of the preprocessed training images, pixels on the 0..255 scale.

    mean_image: (size, size, 3) float32, the per-pixel mean (HWC).
    mean_rgb:   (3,) float32, the per-channel mean (the mean image averaged over H, W).
    eigvals:    (3,) float32, eigenvalues of the 3x3 RGB pixel covariance, largest first.
    eigvecs:    (3, 3) float32, column k is the unit eigenvector of eigvals[k].
    count:      number of images the statistics were computed on.
    fingerprint: identifies the file list (and settings) they came from.
    """

    mean_image: np.ndarray
    mean_rgb: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray
    count: int
    fingerprint: str = ""

    @property
    def size(self):
        return self.mean_image.shape[0]


def subset_indices(n, max_images):
    """Evenly spaced indices, so a capped subset still covers every class of a sorted folder."""
    if max_images is None or max_images >= n:
        return np.arange(n)
    if max_images < 1:
        raise ValueError(f"max_images must be at least 1, got {max_images}")
    return (np.arange(max_images) * n) // max_images


def dataset_fingerprint(dataset, size, max_images):
    """A hex digest of what the statistics depend on.

    For a folder: the class names, the relative file paths and their byte
    sizes (not mtimes, so copying a dataset keeps its cache valid). For an
    in-memory dataset: the array bytes. Plus ``size``, ``max_images`` and
    STATS_VERSION.
    """
    h = hashlib.sha256()
    h.update(f"v{STATS_VERSION} size={size} max={max_images}\n".encode())
    h.update("\n".join(dataset.classes).encode() + b"\n")
    samples = getattr(dataset, "samples", None)
    if hasattr(dataset, "fingerprint_lines"):  # tar shards: names, byte sizes, sample counts
        h.update("\n".join(dataset.fingerprint_lines()).encode())
    elif samples is not None:
        base = getattr(dataset, "folder", "")
        for path, label in samples:
            rel = os.path.relpath(path, base) if base else path
            try:
                nbytes = os.path.getsize(path)
            except OSError:
                nbytes = -1
            h.update(f"{rel}\t{label}\t{nbytes}\n".encode())
    else:
        h.update(np.ascontiguousarray(dataset.images).tobytes())
        h.update(np.ascontiguousarray(dataset.labels).tobytes())
    return h.hexdigest()


def compute_stats(dataset, size=256, max_images=None, workers=2, on_error="skip", skips=None):
    """Mean image, channel mean and RGB covariance eigenpairs of ``dataset``.

    Every image is resized (shorter side ``size``) and centre-cropped to
    size x size first, exactly like the network's inputs before the random
    crop. ``max_images`` uses an evenly spaced subset for a quick estimate.
    Unreadable images are skipped and noted in ``skips`` (``on_error='skip'``;
    a SkipLog, which names each file once on stderr; None makes a fresh one)
    or re-raised (``'raise'``). Accumulation is in float64 and in index order,
    so the result does not depend on ``workers``.
    """
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    if skips is None:
        skips = SkipLog()
    if hasattr(dataset, "stream"):  # tar shards: the first samples of every shard, read in order
        items = dataset.stats_records(max_images)
        decode = dataset.decode
    else:
        items = subset_indices(len(dataset), max_images)

        def decode(i, shorter):
            return dataset.load(int(i), shorter=shorter)

    def preprocess(item):
        try:
            img, _ = decode(item, shorter=size)
        except CorruptImageError as exc:
            if on_error == "raise":
                raise
            return exc
        return center_crop(img, size)  # (size, size, 3) uint8

    pixel_sum = np.zeros((size, size, 3), np.float64)
    rgb_outer = np.zeros((3, 3), np.float64)  # sum over all pixels of x x^T
    count = 0
    with ThreadPoolExecutor(max(1, workers)) as pool:
        # map() yields in submission order, which keeps the float sums reproducible; it
        # submits all it is given, so give it chunks (shard records hold file bytes).
        results = (r for chunk in _chunks(items, 64 * max(1, workers)) for r in pool.map(preprocess, chunk))
        for result in results:
            if isinstance(result, CorruptImageError):
                skips.note(result.path, result.reason)
                continue
            x = result.astype(np.float64)
            pixel_sum += x
            flat = x.reshape(-1, 3)  # (size*size, 3)
            rgb_outer += flat.T @ flat
            count += 1
    if count == 0:
        raise DataError(f"compute_stats: no readable images in {dataset!r}")

    mean_image = pixel_sum / count
    mean_rgb = mean_image.reshape(-1, 3).mean(axis=0)
    n_pixels = count * size * size
    # cov = E[x x^T] - mu mu^T over every pixel of every image.
    cov = rgb_outer / n_pixels - np.outer(mean_rgb, mean_rgb)
    eigvals, eigvecs = np.linalg.eigh(cov)  # ascending
    order = np.argsort(eigvals)[::-1]
    eigvals = np.clip(eigvals[order], 0.0, None)  # tiny negatives are round-off
    eigvecs = eigvecs[:, order]
    return Stats(mean_image.astype(np.float32), mean_rgb.astype(np.float32),
                 eigvals.astype(np.float32), eigvecs.astype(np.float32), count,
                 dataset_fingerprint(dataset, size, max_images))


def _chunks(items, n):
    items = iter(items)
    while chunk := list(itertools.islice(items, n)):
        yield chunk


def save_stats(stats, path):
    """Write ``stats`` to an .npz (numeric and string arrays only), all or nothing
    (minialex/atomic.py). Raises WriteFailed, one line, if the file cannot be written."""
    def write(f):
        # Writing through a file object stops np.savez appending ".npz" to the name.
        np.savez(f, mean_image=stats.mean_image, mean_rgb=stats.mean_rgb,
                 eigvals=stats.eigvals, eigvecs=stats.eigvecs,
                 count=np.int64(stats.count), fingerprint=np.str_(stats.fingerprint),
                 version=np.int64(STATS_VERSION))
    atomic_write(path, write)


def load_stats(path):
    """Read an .npz written by save_stats; pickled objects are refused.

    A file that is not one raises ValueError (or OSError, zipfile.BadZipFile for
    a damaged archive) with a short reason."""
    # Opened here, not by np.load, so the file is closed even when the archive is damaged.
    with open(os.fspath(path), "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive; np.load would talk of pickles
            raise ValueError("not an .npz archive")
        f.seek(0)
        with np.load(f, allow_pickle=False) as z:
            missing = [k for k in ("mean_image", "mean_rgb", "eigvals", "eigvecs", "count", "fingerprint")
                       if k not in z.files]
            if missing:
                raise ValueError(f"an .npz archive without {', '.join(missing)}")
            return Stats(z["mean_image"], z["mean_rgb"], z["eigvals"], z["eigvecs"],
                         int(z["count"]), str(z["fingerprint"]))


def _warn(line):
    """One plain line on stderr (not a Python warning, which would show a source path)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def load_or_compute_stats(dataset, cache_path, size=256, max_images=None, skips=None, **kwargs):
    """Stats from ``cache_path`` if it matches this dataset, else compute and cache them.

    The cache is keyed by dataset_fingerprint: adding, removing, renaming or
    resizing a file, or changing ``size``/``max_images``, recomputes. A cache
    that cannot be read is recomputed, and one that cannot be written (a full
    disk, a read-only folder) costs only the next run's time: each is one
    warning line on stderr, the run goes on. ``skips`` and ``kwargs`` go to
    compute_stats.
    """
    fingerprint = dataset_fingerprint(dataset, size, max_images)
    if os.path.isfile(cache_path):
        try:
            cached = load_stats(cache_path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            reason = " ".join(reason.split())  # one line
            _warn(f"warning: ignoring unreadable statistics cache {cache_path}: {reason}; recomputing")
        else:
            if cached.fingerprint == fingerprint:
                return cached
    stats = compute_stats(dataset, size=size, max_images=max_images, skips=skips, **kwargs)
    try:
        save_stats(stats, cache_path)
    except WriteFailed as exc:
        _warn(f"warning: {exc}; the statistics will be computed again next time")
    return stats
