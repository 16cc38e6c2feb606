"""Preparing ImageNet once at the paper's 256 x 256, as tar shards: ``minialex-prepare SOURCE OUT``.

Every image is decoded, its shorter side resized to ``size`` and the centre
``size`` x ``size`` square cut, exactly as the loader does on the fly, then
stored as a JPEG in the WebDataset layout ShardDataset reads. Epochs then
decode small files instead of full-size photographs. The run is spread over
processes, deterministic (same source and options, same bytes, whatever the
number of workers or interruptions) and resumable. Layout, manifest, resume
and errors: docs/data.md, "Preparing the data once".
"""

import argparse
import hashlib
import importlib.metadata
import io
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tarfile
import threading

import numpy as np
from PIL import Image

from ..atomic import WriteFailed, write_bytes, write_text
from .errors import CorruptImageError, DataError
from .folder import SYNSET_WORDS, ImageFolder, check_same_classes, decode_image
from .skips import SkipLog
from .sources import SPLITS, _has_tars, _split_of
from .tarshards import (CLASSES_TXT, INDEX_NAME, INDEX_VERSION, LIST_SEPARATOR, ShardDataset,
                        _add_member, _member_key, shard_paths, split_key)
from .transforms import center_crop

# The JPEG quality of the prepared images: the one place it is set (docs/data.md says how it was chosen).
DEFAULT_QUALITY = 90
# Pillow's documentation advises against qualities above 95: 100 turns parts of the
# compression off and files grow a lot for no visible gain. So 1..95 is accepted.
MAX_QUALITY = 95
SUBSAMPLING = "4:2:0"  # Pillow's default for RGB; written down so a Pillow change cannot alter it
RULE = ("shorter side to {size} (bilinear, JPEG draft decoding when the source is >= 2x), "
        "centre crop {size} x {size}")
PLAN_NAME = "plan.json"        # in the partial folder: what is being made, to check a resume against
JOURNAL_NAME = "journal.jsonl"  # in the partial folder: one line per finished, fsynced shard
PLAN_VERSION = 1
EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


def _minialex_version():
    """The installed minialex's version, for the manifest (the package root is not imported from
    here: imports flow downward)."""
    try:
        return importlib.metadata.version("minialex")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout without installing
        return "unknown"


def _log_stderr(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class PrepareInterrupted(KeyboardInterrupt):
    """Ctrl-C during prepare(): ``done`` of ``total`` shards are kept in ``partial`` for a rerun."""

    def __init__(self, partial, done, total):
        super().__init__(partial, done, total)
        self.partial, self.done, self.total = partial, done, total


# -- the source ---------------------------------------------------------------------
class _Source:
    """What SOURCE names: {split: ImageFolder or ShardDataset}, the classes, where class names live."""

    def __init__(self, splits, synset, regions):
        self.splits = splits      # {"train": ds, "val": ds}, one or both
        self.synset = synset      # a synset_words.txt to copy, or None
        self.regions = regions    # folders the source reads from (OUT must not overlap them)
        self.classes = next(iter(splits.values())).classes


def open_source(source):
    """The datasets SOURCE names, as ``--data`` reads them (sources.open_train_val), but a root
    with only train/ or only val/ is accepted too: what is there is prepared."""
    source = os.fspath(source)
    splits = {}
    if os.path.isdir(source) and any(os.path.isdir(os.path.join(source, s)) for s in SPLITS):
        for s in SPLITS:
            folder = os.path.join(source, s)
            if not os.path.isdir(folder):
                continue
            if _has_tars(folder):
                splits[s] = ShardDataset(folder, buffer_size=1)
            elif any(e.is_dir() for e in os.scandir(folder)):
                first = next(iter(splits.values()), None)
                splits[s] = ImageFolder(source, s, classes=first.classes if first else None)
            else:
                raise DataError(f"{folder} has no images: neither class folders nor .tar shards")
    elif os.path.isdir(source) and not _has_tars(source):
        if any(e.is_dir() for e in os.scandir(source)):  # class folders at the top: say where they go
            raise DataError(f"{source} has no train/ or val/ folder and no .tar shards; put class folders "
                            f"in {os.path.join(source, 'train')}/ (and val/)")
        raise DataError(f"{source} has no images: no train/ or val/ folder and no .tar shards "
                        f"(expected {source}/train/<class>/<image> or *train*.tar / *val*.tar shards)")
    elif os.path.isdir(source) or LIST_SEPARATOR in source or "{" in source or source.endswith(".tar"):
        paths = shard_paths(source)
        unnamed = [p for p in paths if _split_of(p) is None]
        if unnamed:  # preparing a subset silently would lose data
            raise DataError(f"{len(unnamed)} of the {len(paths)} shards in {source} have neither 'train' "
                            f"nor 'val' in their name, first {unnamed[0]}; the name says the split")
        for s in SPLITS:
            found = [p for p in paths if _split_of(p) == s]
            if found:
                splits[s] = ShardDataset(found, buffer_size=1)
    else:
        raise DataError(f"source not found: {source}")
    if "train" in splits and "val" in splits:
        check_same_classes(splits["train"].classes, splits["val"].classes, "the validation set")

    regions, synset = [], None
    for ds in splits.values():
        if isinstance(ds, ImageFolder):
            regions.append(os.path.abspath(ds.folder))
            candidates = [os.path.join(ds.root, SYNSET_WORDS)]
        else:
            folders = sorted({os.path.dirname(os.path.abspath(p)) for p in ds.shards})
            regions.extend(folders)
            # read_classes looks beside the shards, then in the folder above
            candidates = [os.path.join(f, SYNSET_WORDS) for f in folders]
            candidates += [os.path.join(os.path.dirname(f), SYNSET_WORDS) for f in folders]
        synset = synset or next((c for c in candidates if os.path.isfile(c)), None)
    return _Source(splits, synset, regions)


def _absolute(source):
    """SOURCE with every part of a ``::`` list made absolute, for the manifest."""
    return LIST_SEPARATOR.join(os.path.abspath(p) for p in os.fspath(source).split(LIST_SEPARATOR))


def _fingerprint(src):
    """sha256 of the source listing: classes, then per split the relative paths (or shard names)
    with their byte sizes. A changed, added or removed file changes it."""
    h = hashlib.sha256()
    h.update(("\n".join(src.classes) + "\n\n").encode())
    for split, ds in src.splits.items():
        if isinstance(ds, ImageFolder):
            for path, label in ds.samples:
                rel = os.path.relpath(path, ds.folder).replace(os.sep, "/")
                h.update(f"{split}\t{rel}\t{os.path.getsize(path)}\t{label}\n".encode())
        else:
            for path in ds.shards:
                h.update(f"{split}\t{os.path.basename(path)}\t{os.path.getsize(path)}\n".encode())
    return h.hexdigest()


def _tasks(src, shard_size, seed):
    """One task per output shard, in manifest order.

    An ImageFolder is written in a seeded random order (as write_shards does:
    buffer shuffling only mixes nearby samples, so shards must mix the
    classes); a shard source keeps its shards and their order (already mixed).
    """
    tasks = []
    for split, ds in src.splits.items():
        if isinstance(ds, ImageFolder):
            # Seeded by the split's fixed number, so train's order does not depend on val being there.
            order = np.random.default_rng([seed, SPLITS.index(split)]).permutation(len(ds))
            seen = set()
            items = []
            for i in order:
                path, label = ds.samples[int(i)]
                items.append((path, label, _member_key(os.path.relpath(path, ds.folder), seen)))
            for k, start in enumerate(range(0, len(items), shard_size)):
                tasks.append({"name": f"{split}-{k:06d}.tar", "split": split,
                              "files": items[start:start + shard_size]})
        else:
            for k in range(len(ds.shards)):
                tasks.append({"name": f"{split}-{k:06d}.tar", "split": split, "sid": k,
                              "expected": int(ds.counts[k])})
    return tasks


def _task_size(task):
    return len(task["files"]) if "files" in task else task["expected"]


# -- one output shard (runs in a worker process, or in-process with workers=1) -------------
_WORKER = {}


def _init_worker(shard_sources, partial, size, quality, ignore_sigint=True):
    if ignore_sigint:  # Ctrl-C reaches the whole process group; the parent alone handles it
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER.update(shards=shard_sources, partial=partial, size=size, quality=quality)


def encode_jpeg(arr, quality):
    """JPEG bytes of a uint8 RGB array: baseline, 4:2:0, no optimisation, no metadata (reproducible)."""
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, "JPEG", quality=quality, subsampling=SUBSAMPLING, optimize=False)
    return buf.getvalue()


def prepare_image(source, name, size):
    """The pixels the loader computes before its crop: shorter side to ``size``, centre ``size`` square."""
    return center_crop(decode_image(source, name, shorter=size), size)  # (size, size, 3) uint8


def _samples(task):
    """(key, label, encoded image source, name) of the task's input samples; corrupt ones have source None."""
    if "files" in task:
        for path, label, key in task["files"]:
            yield key, label, path, path, None
        return
    ds = _WORKER["shards"][task["split"]]
    path = ds.shards[task["sid"]]
    for rec in ds._read_shard(task["sid"]):
        if rec.error is not None:
            yield None, rec.label, None, rec.name, rec.error
            continue
        member = rec.name[len(path) + 1:]  # rec.name is "path:member"
        yield split_key(member)[0], rec.label, io.BytesIO(rec.data), rec.name, None


def _write_file(path, data):
    """``data`` to ``path`` via ``path.tmp``: written, fsynced, renamed; the folder entry fsynced too."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(os.path.dirname(path))


def _fsync_dir(folder):
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _run_task(task):
    """Make one output shard in the partial folder; its journal entry (with the corrupt samples skipped)."""
    size, quality = _WORKER["size"], _WORKER["quality"]
    buf, corrupt, samples = io.BytesIO(), [], 0
    # The shard is built in memory (about 30 MB for 1000 images at 256 x 256), so its sha256 is
    # that of exactly the bytes written, and a failed write leaves no partial tar behind.
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for key, label, source, name, error in _samples(task):
            if error is None:
                try:
                    data = encode_jpeg(prepare_image(source, name, size), quality)
                except CorruptImageError as exc:
                    error = exc.reason
            if error is not None:
                corrupt.append([name, error])
                continue
            _add_member(tar, key + ".jpg", data)
            _add_member(tar, key + ".cls", str(label).encode())
            samples += 1
    data = buf.getvalue()
    path = os.path.join(_WORKER["partial"], task["name"])
    try:
        _write_file(path, data)
    except OSError as exc:
        # A plain OSError crosses the process boundary intact; the parent words the message.
        raise OSError(exc.errno, exc.strerror or str(exc), path) from None
    return {"name": task["name"], "samples": samples, "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "corrupt": corrupt}


# -- the partial folder: plan, journal, verification ----------------------------------
def _file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _read_journal(partial):
    """{name: entry} of the journal; a line cut by a crash is ignored (its shard is redone)."""
    entries = {}
    try:
        with open(os.path.join(partial, JOURNAL_NAME), encoding="utf-8") as f:
            for line in f:
                try:
                    e = json.loads(line)
                    entries[e["name"]] = {k: e[k] for k in ("name", "samples", "bytes", "sha256", "corrupt")}
                except (ValueError, KeyError, TypeError):
                    continue
    except FileNotFoundError:
        pass
    return entries


def _verified(partial, journal, names):
    """The journalled shards whose file has the journalled size and sha256; others are deleted.
    Stray files (a ``.tmp`` of a shard cut short, a shard renamed but not journalled) go too."""
    good = {}
    for name in names:
        e, path = journal.get(name), os.path.join(partial, name)
        if (e and os.path.isfile(path) and os.path.getsize(path) == e["bytes"]
                and _file_sha256(path) == e["sha256"]):
            good[name] = e
    for entry in os.scandir(partial):
        if entry.name in (PLAN_NAME, JOURNAL_NAME) or entry.name in good:
            continue
        if entry.name.endswith((".tmp", ".tar")) or entry.name.startswith(".tmp-"):  # .tmp-: atomic_write's
            os.unlink(entry.path)
    return good


def _append_journal(partial, entry):
    with open(os.path.join(partial, JOURNAL_NAME), "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _write_json(path, obj):
    write_text(path, json.dumps(obj, indent=1) + "\n")


def _is_up_to_date(out, digest):
    """OUT holds a finished preparation of this plan, every shard of the manifest present with its size."""
    manifest = _read_json(os.path.join(out, INDEX_NAME))
    try:
        if manifest["prepared"]["plan"] != digest:
            return False
        return all(os.path.getsize(os.path.join(out, e["name"])) == e["bytes"] for e in manifest["shards"])
    except (OSError, KeyError, TypeError):
        return False


def partial_folder(out):
    """``.<out name>.partial`` beside ``out``, where the work happens (a fixed name, so a rerun finds it)."""
    out = os.path.abspath(os.fspath(out))
    return os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.partial")


# -- the whole run --------------------------------------------------------------------------
def _check_options(size, quality, shard_size, workers, seed):
    def positive(value, flag, what):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"{flag} must be a positive {what}, got {value}")
    positive(size, "--size", "number of pixels")
    positive(shard_size, "--shard-size", "number of samples per shard")
    if workers is not None:
        positive(workers, "--workers", "number of processes")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= MAX_QUALITY:
        raise DataError(f"--quality must be an integer from 1 to {MAX_QUALITY} (Pillow advises against "
                        f"more: files grow a lot for no visible gain), got {quality}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(f"--seed must be a non-negative integer, got {seed}")


def _summary(manifest, out, resumed=0, up_to_date=False):
    p = manifest["prepared"]
    return {"out": out, "counts": p["counts"], "shards": len(manifest["shards"]), "corrupt": p["corrupt"],
            "resumed": resumed, "up_to_date": up_to_date}


def prepare(source, out, size=256, quality=DEFAULT_QUALITY, shard_size=1000, workers=None, seed=0,
            overwrite=False, progress=False, skips=None, log=None):
    """Prepare SOURCE once into tar shards at ``out``; returns a summary dict.

    ``source`` is what ``--data`` accepts (a root with train/ and/or val/
    holding class folders or shards, or a folder, brace pattern or ``::`` list
    of *train* / *val* shards). Each image becomes the centre ``size`` square
    of the image resized so its shorter side is ``size``, stored as a JPEG of
    ``quality``. ``out`` receives ``train-000000.tar``, ..., ``val-...``,
    ``classes.txt``, ``synset_words.txt`` when the source has one, and
    ``minialex-shards.json``, the index ShardDataset reads and the manifest
    (its ``prepared`` entry). Unreadable images are skipped, named once in
    ``skips`` (a SkipLog) and listed in the manifest.

    The work happens in ``.<out name>.partial`` beside ``out`` and is resumed
    by a rerun with the same options; ``out`` appears only when complete.
    Raises DataError for bad input, atomic.WriteFailed when a file cannot be
    written (finished shards stay for the rerun), PrepareInterrupted on Ctrl-C.
    Summary keys: out, counts, shards, corrupt, resumed, up_to_date.
    """
    log = log or _log_stderr
    skips = skips if skips is not None else SkipLog()
    _check_options(size, quality, shard_size, workers, seed)
    src = open_source(source)
    out = os.path.abspath(os.fspath(out))
    parent, base = os.path.dirname(out), os.path.basename(out)
    partial = partial_folder(out)
    for region in src.regions:  # never write into the images being read, nor replace them
        if os.path.commonpath([out, region]) in (out, region):
            raise DataError(f"output folder {out} and the source in {region} overlap; choose another output")

    plan = {"version": PLAN_VERSION, "size": size, "quality": quality, "subsampling": SUBSAMPLING,
            "shard_size": shard_size, "seed": seed, "pillow": Image.__version__,
            "splits": list(src.splits), "source": _fingerprint(src)}
    digest = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()

    if os.path.lexists(out):
        if not os.path.isdir(out):
            raise DataError(f"output {out} exists and is not a folder")
        if os.listdir(out) and not overwrite:
            if _is_up_to_date(out, digest):
                manifest = _read_json(os.path.join(out, INDEX_NAME))
                return _summary(manifest, out, up_to_date=True)
            manifest = _read_json(os.path.join(out, INDEX_NAME))
            if isinstance(manifest, dict) and "prepared" in manifest:
                raise DataError(f"{out} holds a preparation made with other options or from another source; "
                                f"pass --overwrite to replace it")
            raise DataError(f"output folder {out} exists and is not empty; pass --overwrite to replace it")

    tasks = _tasks(src, shard_size, seed)
    names = [t["name"] for t in tasks]
    done = {}
    try:
        if os.path.isdir(partial):
            old_plan = _read_json(os.path.join(partial, PLAN_NAME))
            if old_plan is None:  # cut before its plan was written, so before any shard: start afresh
                shutil.rmtree(partial)
            elif old_plan != plan:
                if not overwrite:
                    raise DataError(f"{partial} holds an unfinished preparation with other options or of a "
                                    f"changed source; rerun with its options to resume it, or pass "
                                    f"--overwrite to discard it")
                shutil.rmtree(partial)
            else:
                done = _verified(partial, _read_journal(partial), names)
                log(f"resuming: {len(done)} of {len(tasks)} shards done and verified")
        elif os.path.lexists(partial):
            raise DataError(f"{partial} exists and is not a folder; remove it")
        if not os.path.isdir(partial):
            os.makedirs(partial)
            _write_json(os.path.join(partial, PLAN_NAME), plan)
        # Rewrite the journal with the verified entries only, so a damaged shard's old line
        # cannot outlive it.
        write_text(os.path.join(partial, JOURNAL_NAME),
                   "".join(json.dumps(done[n], sort_keys=True) + "\n" for n in names if n in done))

        todo = [t for t in tasks if t["name"] not in done]
        total = sum(map(_task_size, tasks))
        _run_all(todo, src, partial, size, quality, workers, done, skips, progress,
                 total=total, initial=total - sum(map(_task_size, todo)))

        entries = [done[n] for n in names]
        counts = {s: sum(e["samples"] for t, e in zip(tasks, entries) if t["split"] == s) for s in src.splits}
        empty = [s for s, n in counts.items() if n == 0]
        if empty:  # every image of a split was unreadable: nothing worth a manifest, or a resume
            shutil.rmtree(partial, ignore_errors=True)
            raise DataError(f"no image of the {empty[0]} split of {source} could be decoded "
                            f"(each unreadable file is named above)")
        manifest = {
            "version": INDEX_VERSION,
            "shards": [{k: e[k] for k in ("name", "samples", "bytes", "sha256")} for e in entries],
            "prepared": {"size": size, "rule": RULE.format(size=size), "quality": quality, "format": "jpeg",
                         "subsampling": SUBSAMPLING, "source": _absolute(source),
                         "counts": counts, "corrupt": [c[0] for e in entries for c in e["corrupt"]],
                         "pillow": Image.__version__, "minialex": _minialex_version(), "plan": digest},
        }
        write_text(os.path.join(partial, CLASSES_TXT), "".join(c + "\n" for c in src.classes))
        if src.synset:
            with open(src.synset, "rb") as f:
                write_bytes(os.path.join(partial, SYNSET_WORDS), f.read())
        _write_json(os.path.join(partial, INDEX_NAME), manifest)  # last: marks the folder complete

        old = None
        if os.path.isdir(out):
            if os.listdir(out):  # --overwrite: the old one goes only now that the new one is whole
                old = os.path.join(parent, f".{base}.old-{os.getpid()}")
                os.rename(out, old)
            else:
                os.rmdir(out)
        os.rename(partial, out)
        for name in (PLAN_NAME, JOURNAL_NAME):
            os.unlink(os.path.join(out, name))
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except KeyboardInterrupt:
        raise PrepareInterrupted(partial, len(done), len(tasks)) from None
    except WriteFailed:
        raise
    except OSError as exc:
        where = exc.filename or partial
        raise WriteFailed(where, exc.strerror or str(exc)) from None
    return _summary(manifest, out, resumed=len(tasks) - len(todo))


def _run_all(todo, src, partial, size, quality, workers, done, skips, progress, total, initial):
    """Make the ``todo`` shards, one task per shard over a pool of processes; fills ``done``."""
    shard_sources = {s: ds for s, ds in src.splits.items() if isinstance(ds, ShardDataset)}
    workers = min(workers or os.cpu_count() or 1, max(1, len(todo)))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=initial, unit="img", desc="preparing")
    sizes = {t["name"]: _task_size(t) for t in todo}
    pool = None
    try:
        if workers == 1:  # in-process: same bytes, simpler to debug and to test
            _init_worker(shard_sources, partial, size, quality, ignore_sigint=False)
            results = map(_run_task, todo)
        else:
            # spawn, not fork: the parent may hold threads (tqdm's monitor, a BLAS pool), and a
            # forked child inherits their locks in whatever state they were.
            ctx = multiprocessing.get_context("spawn")
            # A Ctrl-C while a worker is still importing would print its traceback: the workers
            # are started with SIGINT ignored, which a new process inherits from its parent
            # (and Python then leaves alone), before the initializer has run.
            main_thread = threading.current_thread() is threading.main_thread()
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None
            try:
                pool = ctx.Pool(workers, initializer=_init_worker,
                                initargs=(shard_sources, partial, size, quality))
            finally:
                if main_thread:
                    signal.signal(signal.SIGINT, previous)
            results = pool.imap_unordered(_run_task, todo)
        for entry in results:
            _append_journal(partial, entry)  # only after the shard is on disk under its name
            done[entry["name"]] = entry
            for name, reason in entry["corrupt"]:
                skips.note(name, reason)
            if bar is not None:
                bar.update(sizes[entry["name"]])
    finally:
        if pool is not None:
            pool.terminate()  # workers stop mid-shard; their .tmp files are removed by the rerun
            pool.join()
        if bar is not None:
            bar.close()
        _WORKER.clear()


# -- command line -----------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, as the other commands do
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


def build_parser(prog="minialex-prepare"):
    p = _Parser(prog=prog, description="Prepare an ImageNet-style dataset once at the paper's fixed "
                "resolution (shorter side to SIZE, centre crop SIZE x SIZE) as JPEG tar shards.")
    p.add_argument("source", help="what --data accepts: a root with train/ and/or val/ (class folders or "
                   ".tar shards), or a folder, {brace} pattern or '::' list of *train* / *val* shards")
    p.add_argument("out", help="output folder (must not exist or be empty, unless --overwrite)")
    p.add_argument("--size", type=int, default=256,
                   help="side of the square images (default 256, the paper's)")
    p.add_argument("--quality", type=int, default=DEFAULT_QUALITY,
                   help=f"JPEG quality, 1..{MAX_QUALITY} (default {DEFAULT_QUALITY})")
    p.add_argument("--shard-size", type=int, default=1000,
                   help="samples per shard for an image folder (default 1000); "
                   "shard sources keep their shards")
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    p.add_argument("--seed", type=int, default=0, help="seed of the order an image folder is written in")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty OUT (once the new one is complete), or discard an unfinished "
                   "preparation made with other options")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None, prog="minialex-prepare"):
    """The command line; returns the exit code (0 done, 2 bad input or a failed write, 130 Ctrl-C)."""
    try:
        args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:  # --help (0) or a usage error, already printed as one line (2)
        return e.code
    try:
        s = prepare(args.source, args.out, size=args.size, quality=args.quality, shard_size=args.shard_size,
                    workers=args.workers, seed=args.seed, overwrite=args.overwrite, progress=not args.quiet)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except WriteFailed as exc:
        partial = partial_folder(args.out)
        print(f"error: {exc} (finished shards are kept in {partial}; free some space or fix the cause, "
              f"then run the same command to resume)", file=sys.stderr)
        return EXIT_USAGE
    except PrepareInterrupted as exc:
        print(f"interrupted: {exc.done} of {exc.total} shards are finished and kept in {exc.partial}; "
              f"run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:  # before any work started
        print("interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    if s["up_to_date"]:
        print(f"{s['out']} is up to date (prepared with the same options from the same source); "
              f"nothing to do")
        return 0
    parts = ", ".join(f"{split}: {n} images" for split, n in s["counts"].items())
    skipped = f", {len(s['corrupt'])} unreadable skipped" if s["corrupt"] else ""
    print(f"wrote {s['out']} ({parts} in {s['shards']} shards{skipped})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
