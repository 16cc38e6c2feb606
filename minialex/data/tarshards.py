"""ImageNet as tar shards in the WebDataset layout: read them as a stream, write them from a folder.

A shard is a plain tar file; the members of one sample share a key and are
adjacent (``n01440764/n01440764_10026.JPEG`` beside ``n01440764/n01440764_10026.cls``,
the class index as text), and a ``classes.txt`` or ``synset_words.txt`` beside
the shards names the classes. Reading is sequential, shard after shard, which is
what shared cluster storage does well. Layout, shuffling and determinism rules:
docs/data.md, "Tar shards". The command line is minialex/data/shards.py.
"""

import io
import itertools
import json
import os
import re
import shutil
import tarfile
from typing import NamedTuple

import numpy as np

from .errors import CorruptImageError, DataError
from .folder import IMG_EXTENSIONS, SYNSET_WORDS, ImageFolder, decode_image, read_synset_words
from .jpeg import decode_rgb
from .tarread import iter_members

CLASSES_TXT = "classes.txt"
INDEX_NAME = "minialex-shards.json"  # sample counts written with the shards, so opening needs no scan
INDEX_VERSION = 1
LIST_SEPARATOR = "::"  # WebDataset's separator for a list of shard patterns in one string
_IMAGE_EXTS = frozenset(e.lstrip(".") for e in IMG_EXTENSIONS)
_RANGE = re.compile(r"^(\d+)\.\.(\d+)$")
_BUFFER_TAG = 0x5AFF1E  # keeps the buffer's seed sequence apart from the per-sample ones


# -- shard lists ----------------------------------------------------------------
def expand_braces(pattern):
    """Expand ``{a,b}`` alternatives and ``{000..146}`` numeric ranges, left to right.

    A range keeps the width of its first bound when that has a leading zero
    (``{000..012}`` -> 000, 001, ... 012). Braces may nest. Unbalanced braces or
    a descending range raise DataError.
    """
    start = pattern.find("{")
    if start < 0:
        if "}" in pattern:
            raise DataError(f"unbalanced '}}' in shard pattern {pattern!r}")
        return [pattern]
    depth, end, cuts = 0, -1, []
    for i in range(start, len(pattern)):
        c = pattern[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                end = i
                break
        elif c == "," and depth == 1:
            cuts.append(i)
    if end < 0:
        raise DataError(f"unbalanced '{{' in shard pattern {pattern!r}")
    head, body, tail = pattern[:start], pattern[start + 1:end], pattern[end + 1:]
    bounds = [start] + cuts + [end]
    parts = [pattern[a + 1:b] for a, b in zip(bounds[:-1], bounds[1:])]
    m = _RANGE.match(body) if not cuts else None
    if m:
        lo, hi = int(m[1]), int(m[2])
        if hi < lo:
            raise DataError(f"descending range {{{body}}} in shard pattern {pattern!r}")
        width = len(m[1]) if m[1].startswith("0") else 0
        parts = [str(k).zfill(width) for k in range(lo, hi + 1)]
    else:
        parts = [x for p in parts for x in expand_braces(p)]
    return [head + p + t for p in parts for t in expand_braces(tail)]


def shard_paths(spec):
    """The shard files named by ``spec``, in the order given.

    ``spec`` is a folder (its ``*.tar`` files, sorted), a brace pattern
    (``/data/train-{000000..000146}.tar``), several of those joined by ``::``,
    or a list of any of these. Every named file must exist.
    """
    items = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    paths = []
    for item in items:
        for part in os.fspath(item).split(LIST_SEPARATOR):
            if os.path.isdir(part):
                found = sorted(e.path for e in os.scandir(part) if e.is_file() and e.name.endswith(".tar"))
                if not found:
                    raise DataError(f"no .tar shards in {part}")
                paths.extend(found)
            else:
                paths.extend(expand_braces(part))
    if not paths:
        raise DataError(f"no shards in {spec!r}")
    missing = [p for p in paths if not os.path.isfile(p)]
    if len(paths) == 1 and missing:
        raise DataError(f"shard or shard folder {missing[0]} not found")
    if missing:
        raise DataError(f"{len(missing)} of {len(paths)} shards not found, first {missing[0]}")
    return paths


def split_key(name):
    """(key, extension) of a member name, WebDataset's rule: the key ends at the basename's first dot."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (folder + "/" + stem if folder else stem), (ext.lower() if dot else "")


def read_classes(folder):
    """(classes, names) from ``classes.txt`` (one per line) and/or ``synset_words.txt`` in ``folder``.

    classes.txt gives the label order; without it the wnids of synset_words.txt
    in file order do (Caffe's file is sorted, i.e. the usual ImageNet order).
    Returns None when neither file exists.
    """
    classes_txt, synset = os.path.join(folder, CLASSES_TXT), os.path.join(folder, SYNSET_WORDS)
    lookup = read_synset_words(synset) if os.path.isfile(synset) else None
    if os.path.isfile(classes_txt):
        with open(classes_txt, encoding="utf-8") as f:
            classes = [line.strip() for line in f if line.strip()]
    elif lookup is not None:
        classes = list(lookup)
    else:
        return None
    if not classes:
        raise DataError(f"{classes_txt if os.path.isfile(classes_txt) else synset} lists no classes")
    lookup = lookup or {}
    return classes, [lookup.get(c, c) for c in classes]


def _is_sample_member(name):
    """Whether a member's bytes are needed when reading samples: its image or its label."""
    ext = split_key(name)[1]
    return ext in _IMAGE_EXTS or ext == "cls"


def _parse_label(raw, where, num_classes):
    text = raw.decode("utf-8", "replace").strip()
    try:
        label = int(text)
    except ValueError:
        raise DataError(f"{where}: label {text[:20]!r} is not an integer class index") from None
    if not 0 <= label < num_classes:
        raise DataError(f"{where}: label {label} is out of range: there are {num_classes} classes "
                        f"(0..{num_classes - 1})")
    return label


def scan_shard(path, num_classes):
    """Count the samples of one shard, checking every label; reads headers and .cls members only.

    A sample is a run of adjacent members with one key; members without an
    image or a label (e.g. ``__meta__.json``) are not samples. A shard that is
    cut short is counted up to the cut, including the sample the cut falls in;
    reading it later reports that sample as unreadable.
    """
    count, key, has_image, has_label = 0, None, False, False

    def close_sample():
        nonlocal count
        if key is None or not (has_image or has_label):
            return
        if has_image and not has_label:
            raise DataError(f"{path}: sample {key} has an image but no label ({key}.cls)" if count else
                            f"{path} has no labels: expected a <key>.cls member holding the class "
                            f"index beside each image (WebDataset layout)")
        count += 1

    try:
        with tarfile.open(path, "r:") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                k, ext = split_key(m.name)
                if k != key:
                    close_sample()
                    key, has_image, has_label = k, False, False
                if ext in _IMAGE_EXTS:
                    has_image = True
                elif ext == "cls":
                    _parse_label(tar.extractfile(m).read(), f"{path}:{m.name}", num_classes)
                    has_label = True
                tar.members.clear()  # keep memory flat for big shards
    except (tarfile.ReadError, EOFError, OSError) as exc:
        if count == 0 and key is None:
            raise DataError(f"{path} is not a readable tar file: {exc}") from None
        if key is not None:  # the cut sample: counted, reported when read
            has_image = has_label = True
    close_sample()
    if count == 0:
        raise DataError(f"{path} holds no samples (<key>.jpg beside <key>.cls)")
    return count


def _read_index(folder):
    """({shard name: entry}, prepared size or None) from the index beside the shards.

    The prepared size is the side of the square images minialex-prepare wrote
    (its manifest is this index, with a ``prepared`` section); None for shards
    of original files.
    """
    path = os.path.join(folder, INDEX_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
        if index.get("version") != INDEX_VERSION:
            return {}, None
        size = (index.get("prepared") or {}).get("size")
        return {e["name"]: e for e in index["shards"]}, (int(size) if size else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}, None


class ShardRecord(NamedTuple):
    """One sample as read from a shard: not decoded yet."""
    index: int     # position in the whole shard set (shard offset + position in shard)
    name: str      # "shard.tar:member", for messages
    data: bytes    # the image member's bytes, or None when it could not be read
    label: int
    error: str     # why the sample is unreadable, or None


# -- reading ----------------------------------------------------------------------
class ShardDataset:
    """A set of tar shards read as a stream; the loader's counterpart of ImageFolder.

    Args:
        shards: a folder of .tar files, a brace pattern, ``::``-joined
            patterns, or a list (see shard_paths).
        classes: the class list; default from classes.txt / synset_words.txt
            beside the first shard (or in the folder above it).
        rank, world_size: this process's place among data-parallel processes;
            each reads only its own shards (the epoch's shard permutation,
            every world_size-th one starting at rank).
        buffer_size: samples held for shuffling (about 110 KB each for ImageNet).

    Every epoch yields exactly ``len(self)`` samples: all of them for one
    process; for several, the largest count every rank can reach in every
    epoch (ranks end together; a few samples of the largest shards wait for
    another epoch). Sample counts come from the index the writer leaves
    beside the shards, or from a scan of the tar headers at open.
    """

    supports_crop = True

    def __init__(self, shards, classes=None, rank=0, world_size=1, buffer_size=1000):
        self.shards = shard_paths(shards)
        self.root = os.path.dirname(os.path.abspath(self.shards[0]))
        if not (isinstance(world_size, int) and world_size >= 1 and 0 <= rank < world_size):
            raise DataError(f"rank must be in 0..world_size-1, got rank {rank} of {world_size}")
        if world_size > len(self.shards):
            raise DataError(f"{len(self.shards)} shards cannot give each of {world_size} processes "
                            f"its own; write more (smaller) shards")
        if buffer_size < 1:
            raise DataError(f"buffer_size must be at least 1, got {buffer_size}")
        self.rank, self.world_size, self.buffer_size = rank, world_size, buffer_size
        if classes is None:
            found = read_classes(self.root) or read_classes(os.path.dirname(self.root))
            if found is None:
                raise DataError(f"no {CLASSES_TXT} or {SYNSET_WORDS} beside the shards in {self.root}")
            self.classes, self.names = found
        else:
            self.classes, self.names = list(classes), list(classes)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

        indexes, counts, sizes = {}, [], set()
        for path in self.shards:
            folder = os.path.dirname(path)
            if folder not in indexes:
                indexes[folder] = _read_index(folder)
            entries, prepared = indexes[folder]
            entry = entries.get(os.path.basename(path))
            if entry and entry.get("bytes") == os.path.getsize(path):
                counts.append(int(entry["samples"]))
                sizes.add(prepared)
            else:
                counts.append(scan_shard(path, len(self.classes)))
                sizes.add(None)
        # Every shard listed by a manifest of minialex-prepare with one size: images are
        # prepared_size x prepared_size already, and decode() may skip the resize.
        self.prepared_size = sizes.pop() if len(sizes) == 1 else None
        self.counts = np.array(counts, np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.total = int(self.counts.sum())
        # The fewest samples a rank can get: the smallest shards, as many as the rank with fewer shards.
        fewest = len(self.shards) // world_size
        self.per_rank = self.total if world_size == 1 else int(np.sort(self.counts)[:fewest].sum())

    def __len__(self):
        return self.per_rank

    def epoch_shards(self, seed, epoch, shuffle=True):
        """Shard numbers this rank reads in epoch ``epoch``, in reading order."""
        order = np.arange(len(self.shards))
        if shuffle:  # the same permutation in every process, so the ranks' shares are disjoint
            order = np.random.default_rng([seed, epoch]).permutation(len(self.shards))
        return [int(s) for s in order[self.rank::self.world_size]]

    def stream(self, seed, epoch, shuffle=True, limit=None):
        """ShardRecords of one epoch: the shards in epoch_shards order, and with ``shuffle``
        mixed through a buffer of ``buffer_size`` samples that carries over from shard to
        shard. A function of (seed, epoch, rank, world_size) only. Yields exactly
        ``min(len(self), limit)`` records; unreadable ones carry an ``error``."""
        n = len(self) if limit is None else min(len(self), limit)
        records = (r for sid in self.epoch_shards(seed, epoch, shuffle) for r in self._read_shard(sid))
        if shuffle:
            rng = np.random.default_rng([seed, epoch, self.rank, self.world_size, _BUFFER_TAG])
            records = buffer_shuffle(records, self.buffer_size, rng)
        try:
            yield from itertools.islice(records, n)
        finally:
            records.close()  # closes the shard being read

    def stats_records(self, max_images=None):
        """Records for the training statistics: all, or ``max_images`` spread evenly over the
        shards as the first samples of each (so only the start of every shard is read)."""
        s = len(self.shards)
        m = self.total if max_images is None else min(max_images, self.total)
        for sid in range(s):
            take = min((m * (sid + 1)) // s - (m * sid) // s, int(self.counts[sid]))
            if take:
                yield from self._read_shard(sid, take)

    def fingerprint_lines(self):
        """What the cached statistics depend on: shard names, sizes and counts."""
        return [f"{os.path.basename(p)}\t{os.path.getsize(p)}\t{c}" for p, c in zip(self.shards, self.counts)]

    def _read_shard(self, sid, limit=None):
        """The records of shard ``sid`` in file order; exactly counts[sid] (or ``limit``) of them."""
        path, expected = self.shards[sid], int(self.counts[sid])
        want = expected if limit is None else min(limit, expected)
        base = int(self.offsets[sid])
        pos, key, data, label, name = 0, None, None, None, None
        error = None
        try:
            with open(path, "rb", buffering=1 << 20) as f:
                for member, raw in iter_members(f, _is_sample_member):
                    k, ext = split_key(member)
                    if k != key:
                        if key is not None and (data is not None or label is not None):
                            if pos >= want:
                                return
                            yield self._record(base + pos, path, name, key, data, label)
                            pos += 1
                        key, data, label, name = k, None, None, None
                    if ext in _IMAGE_EXTS and data is None:
                        data, name = raw, member
                    elif ext == "cls":
                        label = _parse_label(raw, f"{path}:{member}", len(self.classes))
        except (tarfile.ReadError, EOFError, OSError) as exc:
            error = f"shard truncated or damaged after sample {pos} of {expected} ({exc})"
            if data is None or label is None:
                key = None  # the sample being read when the shard broke is lost
        if key is not None and (data is not None or label is not None) and pos < want:
            yield self._record(base + pos, path, name, key, data, label)
            pos += 1
        if pos > expected:
            raise DataError(f"{path} holds more samples than its index says ({pos} > {expected}); "
                            f"delete {INDEX_NAME} beside it")
        while pos < want:  # lost to a cut or damaged shard: reported like corrupt images
            yield ShardRecord(base + pos, path, None, -1,
                              error or f"shard ends after {pos} of its {expected} samples")
            pos += 1

    def _record(self, index, path, name, key, data, label):
        if label is None:
            raise DataError(f"{path}: sample {key} has an image but no label ({key}.cls)")
        if data is None:
            return ShardRecord(index, f"{path}:{key}", None, label, "no image member in this sample")
        return ShardRecord(index, f"{path}:{name}", data, label, None)

    def decode(self, record, shorter=None, crop=None):
        """(uint8 RGB image, label) of a record, as ImageFolder.load does for a file.

        On prepared shards asked for their own size there is nothing to resize:
        the image is decoded (jpeg.decode_rgb, the fastest decoder installed) and
        the window is a slice of it. An image that is not the square the
        manifest promises takes the general path, which resizes.
        """
        if record.error is not None:
            raise CorruptImageError(record.name, record.error)
        if shorter is not None and shorter == self.prepared_size:
            img = decode_rgb(record.data, record.name)  # (R, R, 3) uint8
            if img.shape[0] == img.shape[1] == shorter:
                if crop is None:
                    return img, record.label
                top, left, s = crop
                return img[top:top + s, left:left + s], record.label
        return decode_image(io.BytesIO(record.data), record.name, shorter, crop), record.label

    def __repr__(self):
        part = f", rank {self.rank} of {self.world_size}" if self.world_size > 1 else ""
        return (f"ShardDataset({self.root!r}: {len(self.shards)} shards, {self.total} samples, "
                f"{len(self.classes)} classes{part})")


def buffer_shuffle(items, size, rng):
    """Yield ``items`` in a shuffled order using a buffer of ``size``: each new item
    replaces a random one of the buffer, which is yielded; the rest come out in a
    random order at the end. An item moves at most about ``size`` places early."""
    buf = []
    draws, k = rng.integers(0, size, 1024), 0
    try:
        for item in items:
            if len(buf) < size:
                buf.append(item)
                continue
            if k == len(draws):  # draw in blocks: one call per 1024 items
                draws, k = rng.integers(0, size, 1024), 0
            j = int(draws[k])
            k += 1
            yield buf[j]
            buf[j] = item
        for j in rng.permutation(len(buf)):
            yield buf[j]
    finally:
        if hasattr(items, "close"):
            items.close()


# -- writing ----------------------------------------------------------------------
def _member_key(rel, seen):
    """A WebDataset key for a file: its relative path without extension, no dots, unique."""
    key = os.path.splitext(rel.replace(os.sep, "/"))[0].replace(".", "_")
    unique, n = key, 1
    while unique in seen:
        unique, n = f"{key}_{n}", n + 1
    seen.add(unique)
    return unique


def _add_member(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o444, 0  # fixed metadata: same input, same bytes
    tar.addfile(info, io.BytesIO(data))


def write_shards(folder, out, shard_size=1000, overwrite=False, seed=0, progress=False):
    """Write the ImageFolder at ``folder`` as tar shards in ``out``; returns {split: (samples, shards)}.

    ``folder`` holds ``train/`` and/or ``val/`` (each with class folders), or
    class folders directly. Each split becomes ``out/<split>-000000.tar``, ...
    (``shard-000000.tar`` without splits) of ``shard_size`` samples, in a
    seeded random order so that every shard mixes all classes (buffer
    shuffling only mixes nearby samples). Image files are stored as they are,
    not re-encoded. ``classes.txt``, ``synset_words.txt`` (if the folder has
    one) and the sample-count index go beside them.

    Nothing is half-written: the shards are written into a hidden folder next
    to ``out`` that is renamed into place at the end, and removed on any error.
    An existing non-empty ``out`` is refused unless ``overwrite``.
    """
    if not isinstance(shard_size, int) or shard_size < 1:
        raise DataError(f"--shard-size must be a positive number of samples per shard, got {shard_size}")
    folder, out = os.fspath(folder), os.path.abspath(os.fspath(out))
    if not os.path.isdir(folder):
        raise DataError(f"image folder {folder} does not exist or is not a folder")
    splits = [s for s in ("train", "val") if os.path.isdir(os.path.join(folder, s))]
    datasets = {}
    for s in splits or [None]:
        classes = datasets["train"].classes if s == "val" and "train" in datasets else None
        datasets[s] = ImageFolder(folder, s, classes=classes)
    classes = next(iter(datasets.values())).classes
    if os.path.lexists(out):
        if not os.path.isdir(out):
            raise DataError(f"output {out} exists and is not a folder")
        if os.listdir(out) and not overwrite:
            raise DataError(f"output folder {out} exists and is not empty; pass --overwrite to replace it")
    # Never write into the images being read, nor replace a folder that holds them.
    for src in [os.path.join(folder, s) for s in splits] or [folder]:
        src = os.path.abspath(src)
        if os.path.commonpath([out, src]) in (out, src):
            raise DataError(f"output folder {out} and the images in {src} overlap; choose another output")

    parent, base = os.path.dirname(out), os.path.basename(out)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{base}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    summary, entries = {}, []
    try:
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=sum(len(d) for d in datasets.values()), unit="img", desc="writing shards")
        for number, (split, ds) in enumerate(datasets.items()):
            prefix = split or "shard"
            order = np.random.default_rng([seed, number]).permutation(len(ds))
            seen, n_shards = set(), 0
            for start in range(0, len(order), shard_size):
                name = f"{prefix}-{n_shards:06d}.tar"
                path = os.path.join(tmp, name)
                chunk = order[start:start + shard_size]
                with tarfile.open(path, "w") as tar:
                    for i in chunk:
                        src, label = ds.samples[int(i)]
                        rel = os.path.relpath(src, ds.folder)
                        key = _member_key(rel, seen)
                        with open(src, "rb") as f:
                            _add_member(tar, key + os.path.splitext(src)[1], f.read())
                        _add_member(tar, key + ".cls", str(label).encode())
                        if bar is not None:
                            bar.update(1)
                entries.append({"name": name, "samples": len(chunk), "bytes": os.path.getsize(path)})
                n_shards += 1
            summary[prefix] = (len(ds), n_shards)
        if bar is not None:
            bar.close()
        with open(os.path.join(tmp, CLASSES_TXT), "w", encoding="utf-8") as f:
            f.write("".join(c + "\n" for c in classes))
        synset = os.path.join(folder, SYNSET_WORDS)
        if os.path.isfile(synset):
            shutil.copyfile(synset, os.path.join(tmp, SYNSET_WORDS))
        with open(os.path.join(tmp, INDEX_NAME), "w", encoding="utf-8") as f:  # last: marks completion
            json.dump({"version": INDEX_VERSION, "shards": entries}, f, indent=0)
        old = None
        if os.path.isdir(out):
            old = os.path.join(parent, f".{base}.old-{os.getpid()}")
            os.rename(out, old)
        os.rename(tmp, out)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary
