"""Worker processes for the loader: samples decoded past the GIL, batches in shared memory.

Threads share one interpreter lock, and the Python part of every sample
(the generator, the transform's draws, Pillow's header parsing, NumPy call
overhead) holds it: docs/data.md measures where that caps a threaded
loader. Processes each have their own lock. Here ``n`` processes, started
once per loader from a fork server, each hold a copy of the dataset and the
transform and write finished samples straight into the batch's array, a
file in shared memory that the parent hands to the consumer as it is, so
no image array is ever pickled or copied; only the sample references go
out (an index, or a tar record's bytes) and the labels come back. The
per-sample work is sample.SampleLoader, the code the threads run, so both
give the same batches bit for bit. What each kind costs, measured:
docs/data.md, "The loader" and "Throughput".
"""

import atexit
import itertools
import mmap
import multiprocessing
import os
import pickle
import secrets
import signal
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import resource_tracker
from multiprocessing.reduction import ForkingPickler

import numpy as np

from . import jpeg
from .errors import CorruptImageError
from .sample import SampleLoader

SHM_FOLDER = "/dev/shm"  # POSIX shared memory on Linux: files here live in RAM
_names = itertools.count()
_live = {}  # name -> SharedBatch not freed yet, freed at exit if a loader was never closed
_worker = {}  # what a worker process holds, set once by _start_worker


def available():
    """Whether worker processes can be used here (they need POSIX shared memory as files)."""
    return os.path.isdir(SHM_FOLDER) and os.access(SHM_FOLDER, os.W_OK)


def _map(name, nbytes=None):
    """A shared-memory file mapped read-write, made with ``nbytes`` or opened whole when None;
    the mapping outlives the file descriptor."""
    flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if nbytes is not None else 0)
    fd = os.open(os.path.join(SHM_FOLDER, name), flags, 0o600)
    try:
        if nbytes is not None:
            os.ftruncate(fd, nbytes)
        return mmap.mmap(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


class SharedBatch:
    """A float32 array of one batch in shared memory, made by the parent, filled by the workers.

    ``images`` stays valid as long as anyone holds it (the mapping belongs to the
    array), so the consumer gets the very memory the workers wrote, with no copy.
    The loader reuses a batch's memory once the consumer has let go of it
    (loader._Recycler); the file's name is removed when the pool frees it
    (``free``), or, for a batch made outside the pool, as soon as the batch is
    complete (``done``). A parent that dies first leaves the files to
    multiprocessing's resource tracker, which removes them.
    """

    def __init__(self, shape, pooled=True):
        self.shape, self.pooled = tuple(shape), pooled
        self.nbytes = int(np.prod(self.shape)) * 4
        self.name = f"minialex-{os.getpid()}-{next(_names)}-{secrets.token_hex(4)}"
        try:
            m = _map(self.name, max(self.nbytes, 1))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot allocate a batch of {self.nbytes / 2**20:.0f} MB in "
                                     f"{SHM_FOLDER} for the data worker processes ({exc.strerror}); use "
                                     f"threads, or give the machine more shared memory "
                                     f"(docker run --shm-size)") from None
        resource_tracker.register("/" + self.name, "shared_memory")
        _live[self.name] = self
        self.images = np.frombuffer(m, np.float32, count=int(np.prod(self.shape))).reshape(self.shape)

    def done(self):
        """The workers have finished this batch: a batch outside the pool needs its name no more."""
        if not self.pooled:
            self.free()

    def free(self):
        """Remove the file's name (the memory lives on while mapped); idempotent."""
        name, self.name = self.name, None
        if name is not None:
            _live.pop(name, None)
            try:
                os.unlink(os.path.join(SHM_FOLDER, name))
            except FileNotFoundError:
                pass
            resource_tracker.unregister("/" + name, "shared_memory")


# A worker keeps the batches it has written into mapped: the loader reuses a few batches'
# memory over and over, and mapping a file afresh for every task cost a page fault per 4 KB
# written (0.07 ms per image). Names are never reused, so a kept mapping cannot go stale.
_KEEP_MAPPED = 16


def _mapped_rows(name, shape):
    """The first ``shape[0]`` rows of the shared batch ``name``, from a mapping kept across tasks."""
    maps = _worker.setdefault("maps", {})  # name -> mmap, oldest first
    m = maps.pop(name, None)
    if m is None:
        m = _map(name)
        while len(maps) >= _KEEP_MAPPED:
            old = maps.pop(next(iter(maps)))
            try:
                old.close()
            except BufferError:  # an exception's traceback still holds a row; unmapped when it goes
                pass
    maps[name] = m  # now the newest
    return np.frombuffer(m, np.float32, count=int(np.prod(shape))).reshape(shape)


@atexit.register
def _free_live_batches():
    """At exit, remove the files of batches whose loader was never closed (otherwise the
    resource tracker removes them, with a warning about leaked objects)."""
    for batch in list(_live.values()):
        batch.free()


def _start_worker(dataset, transform, seed, decoder):
    """Runs once in each worker process: keep the sample loader, leave Ctrl-C to the parent,
    decode JPEGs with the parent's decoder (jpeg.py; the fork server's may differ)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    jpeg.set_decoder(decoder)
    _worker["sample"] = SampleLoader(dataset, transform, seed)


def _load_chunk(name, shape, epoch, items):
    """Load ``items`` [(position, ref)] into the shared batch ``name``, the first ``shape[0]`` rows of
    its file; returns [(position, label, corrupt)].

    ``corrupt`` is None or (path, reason) of an image that could not be decoded
    (a CorruptImageError does not survive pickling with its fields, so it travels
    as a tuple). Any other exception propagates to the parent with its traceback.
    """
    sample, rows = _worker["sample"], _mapped_rows(name, shape)
    done = []
    for pos, ref in items:
        try:
            label, _ = sample.load(epoch, ref, rows[pos])
            done.append((pos, int(label), None))
        except CorruptImageError as exc:
            done.append((pos, -1, (exc.path, exc.reason)))
    return done


class WorkerProcesses:
    """``n`` worker processes, each holding the dataset and the transform; ``close()`` stops them."""

    def __init__(self, n, dataset, transform, seed):
        # A fork server: workers start from a clean process that has imported minialex.data,
        # never a fork of this one (which may hold threads, locks or a CUDA context).
        try:  # once here, rather than failing in the pool's own thread at the first batch
            ForkingPickler.dumps((dataset, transform))
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise ValueError(f"the dataset or transform cannot be sent to worker processes ({exc}); "
                             f"define it at module level, or use threads") from None
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["minialex.data"])
        self.pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_start_worker,
                                        initargs=(dataset, transform, seed, jpeg.decoder_name()))
        self.n = n

    def submit(self, name, shape, epoch, items):
        """Have a worker load ``items`` [(position, ref)] into the SharedBatch called ``name``
        (``shape``: the rows in use); returns the future."""
        return self.pool.submit(_load_chunk, name, shape, epoch, items)

    def close(self):
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __del__(self):
        if getattr(self, "pool", None) is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
