"""DataLoader: batches of preprocessed samples, prepared ahead by worker threads or processes.

Threads by default: Pillow releases the GIL while it decodes and resizes,
and threads share the dataset without pickling it. With many cores the
Python part of each sample, which holds the GIL, caps them; then worker
processes (workers.py) take over, writing into shared memory. Every
sample's randomness comes from (seed, epoch, index) alone (sample.py), so
batches are identical whatever the kind or number of workers and their
timing. Design, the determinism rule and the measurements behind the
choice: docs/data.md, "The loader" and "Throughput".
"""

import itertools
import queue
import sys
import threading
import time
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from ..parallel.data_parallel import batch_share
from .errors import CorruptImageError
from .sample import SampleLoader, sample_rng  # noqa: F401 - sample_rng is part of this module's API
from .skips import SkipLog
from .stats import subset_indices
from .workers import SharedBatch, WorkerProcesses
from .workers import available as processes_available

ON_ERROR = ("skip", "raise")
WORKER_KINDS = ("auto", "threads", "processes")
# 'auto' picks processes from this many workers on: below it threads are as fast (they scale
# linearly to the core count on the machines measured) and start instantly; from about four
# cores on, the GIL-held part of every sample caps threads (docs/data.md, "Throughput").
PROCESSES_FROM = 4


def epoch_order(n, seed, epoch, shuffle):
    """The order of positions 0..n-1 in one epoch: a permutation seeded by (seed, epoch)."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


class DataLoader:
    """Iterate ``(images, labels)`` batches: float32 (N, 3, S, S) C-contiguous, int64 (N,).

    Args:
        dataset: has ``__len__`` and ``load(i, shorter=None) -> (uint8 HWC image, label)``
            (ImageFolder, ArrayDataset).
        transform: ``transform(img, rng) -> float32 array``; if it has a
            ``decode_size`` attribute the dataset is asked to decode at that
            shorter side (cheap JPEG draft decoding).
        batch_size, shuffle, drop_last: as in PyTorch.
        seed: a non-negative int; with the epoch it fixes the order and every augmentation.
        workers: how many threads or processes decode. prefetch: batches kept
            in preparation beyond the one the consumer holds.
        worker_kind: 'threads', 'processes' (each with its own interpreter,
            writing into shared memory; needs a transform with ``draw`` and
            ``finish`` such as TrainTransform), or 'auto': processes when
            ``workers >= PROCESSES_FROM`` and the transform allows, else threads.
            Either gives the same batches.
        on_error: what to do with an undecodable image: 'skip' drops it from
            its batch, notes it in ``skips`` and records its path in ``skipped``;
            'raise' raises the CorruptImageError (a DataError) naming the file.
        skips: the SkipLog that names each skipped file once (one line on stderr
            by default) and counts the skips; None makes one for this loader.
            Pass one SkipLog to every loader of a run so a file is named once.
        max_images: use only this many samples (an evenly spaced subset, so
            every class of a sorted folder appears), for smoke runs.
        share: ``(rank, size)`` for data-parallel training: ``batch_size`` is the
            global batch, and this process loads only its contiguous share of each
            one (rows ``batch_share(len(batch), rank, size)``) of the same seeded
            order, so the N processes together see what one process would. A share
            left empty (or all skipped) is yielded as an empty batch, not dropped:
            every process takes every step (docs/distributed.md).

    Epochs: ``iter(loader)`` runs epoch ``loader.epoch`` and then advances
    it, so a plain ``for`` loop per epoch sees a new order each time. Use
    ``set_epoch(e)`` to resume, or ``epoch_iter(e)`` for an explicit epoch.

    ``wait_time`` is the seconds the consumer spent blocked waiting for a
    batch in the current epoch (reset when an epoch starts); divide by the
    epoch's wall time to get the share of time the training step starved.
    A batch whose samples were all skipped is not yielded, so an epoch can
    be shorter than ``len(loader)``.
    """

    def __init__(self, dataset, transform, batch_size=128, shuffle=True, seed=0, workers=2,
                 drop_last=False, prefetch=2, on_error="skip", max_images=None, share=None,
                 skips=None, worker_kind="auto"):
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        if worker_kind not in WORKER_KINDS:
            raise ValueError(f"worker_kind must be one of {WORKER_KINDS}, got {worker_kind!r}")
        if batch_size < 1 or workers < 1 or prefetch < 0:
            raise ValueError("batch_size and workers must be >= 1 and prefetch >= 0")
        if int(seed) < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        self.dataset = dataset
        self.transform = transform
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = int(seed)
        self.workers = workers
        self.drop_last = drop_last
        self.prefetch = prefetch
        self.on_error = on_error
        self.max_images = max_images
        self.epoch = 0
        self.wait_time = 0.0
        self.skipped = []  # paths skipped so far in the current epoch
        self.skips = skips if skips is not None else SkipLog()  # names each file once, counts
        # A dataset with stream() (tar shards) is read in its own order, not indexed.
        self.streaming = hasattr(dataset, "stream")
        if share is not None:
            rank, size = share
            if not (0 <= rank < size):
                raise ValueError(f"share must be (rank, size) with 0 <= rank < size, got {share}")
            if self.streaming:
                raise ValueError("a streaming dataset gives each process its own shards (its rank and "
                                 "world_size); it takes no share")
        self.share = None if share is None or share[1] == 1 else (int(share[0]), int(share[1]))
        if self.streaming:
            self._subset = None
            self._num_samples = len(dataset) if max_images is None else min(len(dataset), max_images)
        else:
            self._subset = subset_indices(len(dataset), max_images)  # dataset indices in use
            self._num_samples = len(self._subset)
        self._active = None  # weak reference to the running epoch
        self._threads = None  # (thread pool, stream reader, process tasks) of that epoch, to stop on close
        self.sample = SampleLoader(dataset, transform, self.seed)  # the work for one sample
        if worker_kind == "processes" and not self.sample.in_place:
            raise ValueError("worker_kind='processes' needs a transform with draw(), finish() and "
                             "output_shape (TrainTransform, EvalTransform); use threads for this one")
        self.worker_kind = worker_kind
        if worker_kind == "processes" and not processes_available():
            raise ValueError("worker processes need POSIX shared memory (/dev/shm), which this system "
                             "lacks; use worker_kind='threads'")
        self.processes = worker_kind == "processes" or (
            worker_kind == "auto" and workers >= PROCESSES_FROM and self.sample.in_place
            and processes_available())
        self._procs = None  # the worker processes, started with the first epoch, kept across epochs
        self._memory = None  # the batches' arrays, reused (_Recycler)

    @property
    def num_samples(self):
        return self._num_samples

    def __len__(self):
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def indices(self, epoch):
        """The dataset indices of one epoch, in the order they will be batched."""
        if self.streaming:
            raise TypeError("a streaming dataset decides its own order while it reads (see its stream())")
        return self._subset[epoch_order(len(self._subset), self.seed, epoch, self.shuffle)]

    def set_epoch(self, epoch):
        """Make the next ``iter(loader)`` run epoch ``epoch``."""
        self.epoch = int(epoch)

    def __iter__(self):
        run = self.epoch_iter(self.epoch)
        self.epoch += 1
        return run

    def epoch_iter(self, epoch, start_batch=0):
        """An iterator over the batches of epoch ``epoch``; stops any epoch still running.

        ``start_batch`` skips the first batches of the epoch without loading them:
        a run resumed mid-epoch continues with exactly the batches it had not seen.
        """
        self._stop_epoch()
        self.wait_time = 0.0
        self.skipped = []
        run = _EpochRun(self, int(epoch), int(start_batch))
        self._active = weakref.ref(run)
        self._threads = (run.pool, run.reader, run.futures)
        return run

    def _stop_epoch(self):
        """Stop the running epoch, if any: pending work is cancelled, its threads exit."""
        run = self._active() if self._active is not None else None
        if run is not None:
            run.close()
        elif self._threads is not None:
            # The run was dropped (a ``for`` loop left with break) and its __del__ could only
            # ask the threads to stop; wait for them here, so stopping means they are gone
            # (and no process task still writes into a slot the next epoch will use).
            pool, reader, futures = self._threads
            if reader is not None:
                reader.stop()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            futures_wait([f for f in list(futures) if not f.cancel()])
        self._active = self._threads = None

    def _worker_processes(self):
        """The worker processes (started on first use), or None when threads do the work."""
        if not self.processes:
            return None
        if self._procs is None:
            try:
                self._procs = WorkerProcesses(self.workers, self.dataset, self.transform, self.seed)
            except ValueError:
                if self.worker_kind == "processes":
                    raise
                self.processes = False  # 'auto': what cannot go to a process stays on threads
        return self._procs

    def _drop_worker_processes(self):
        procs, self._procs = self._procs, None
        if procs is not None:
            procs.close()

    def _batch_memory(self, shared):
        """The recycler of batch arrays: in shared memory for worker processes, else plain."""
        kind = SharedBatch if shared else _Memory
        if self._memory is None or self._memory.make is not kind:
            self._free_memory()
            shape = (self.batch_size,) + self.sample.output_shape
            # In flight: ``prefetch + 1`` batches; the consumer holds the previous one while it asks
            # for the next.
            self._memory = _Recycler(kind, shape, self.prefetch + 3)
        return self._memory

    def _free_memory(self):
        memory, self._memory = self._memory, None
        if memory is not None:
            memory.free()

    def close(self):
        """Stop the running epoch, if any (pending work is cancelled, threads exit), and the
        worker processes; a later epoch starts them again."""
        self._stop_epoch()
        self._drop_worker_processes()
        self._free_memory()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        kind = "processes" if self.processes else "threads"
        return (f"DataLoader({len(self.dataset)} samples, batch_size={self.batch_size}, "
                f"workers={self.workers} {kind}, shuffle={self.shuffle}, seed={self.seed})")


class _Memory:
    """A batch's array in this process's own memory (the interface of workers.SharedBatch)."""

    def __init__(self, shape, pooled=True):
        self.images = np.empty(shape, np.float32)

    def done(self):
        pass

    def free(self):
        pass


class _Recycler:
    """Batch arrays handed out again once nobody holds them any more.

    A fresh array for every batch is paid in page faults when it is first written:
    measured 0.07 ms per 224 x 224 image here, 7 % of the whole budget on prepared
    data (docs/data.md, "Where the time goes"). So the loader keeps the arrays of
    its last ``size`` batches and gives one out again only when its reference count
    says that nothing but this pool refers to it: a batch the consumer still holds,
    or any view of it, is never written over. When every pooled array is in use a
    fresh one is made and not kept (``make(shape, pooled=False)``).
    """

    def __init__(self, make, shape, size):
        self.make, self.shape, self.size = make, tuple(shape), size
        self.items = []

    def get(self):
        for item in self.items:
            # Two references: the item's attribute and getrefcount's own argument.
            if sys.getrefcount(item.images) == 2:
                return item
        pooled = len(self.items) < self.size
        item = self.make(self.shape, pooled)
        if pooled:
            self.items.append(item)
        return item

    def free(self):
        for item in self.items:
            item.free()
        self.items = []


class _Batch:
    """One batch in preparation; whoever completes its last sample finishes it.

    With a transform that has ``draw``/``finish`` (TrainTransform, EvalTransform)
    the samples are written straight into ``images``: an array of this batch
    (threads) or its slot in shared memory (processes). Other transforms return
    arrays that are stacked at the end.
    """

    def __init__(self, refs, images, memory=None):
        self.refs = refs
        self.memory = memory  # where ``images`` lives: a _Memory or a workers.SharedBatch
        n = len(refs)
        self.images = images
        self.labels = np.empty(n, np.int64)
        self.results = [None] * n  # None when written in place, else an array or an error
        self.remaining = n
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.skipped = []   # CorruptImageErrors of dropped samples, in batch order
        self.error = None   # the exception to raise in the consumer


class _Failure:
    def __init__(self, exc):
        self.exc = exc


def _chunks(n, workers):
    """Positions 0..n-1 cut into runs of about n / (4 workers), at most 16: one task each.
    Fewer tasks than samples save the hand-off cost per sample; several per worker keep
    every worker busy until the batch is done."""
    size = max(1, min(16, -(-n // (4 * workers))))
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


class _EpochRun:
    """The iterator of one epoch. Owns a thread pool (and a reader thread for a streaming
    dataset), or hands its work to the loader's worker processes; close() stops it."""

    def __init__(self, loader, epoch, start_batch=0):
        self.loader = loader
        self.epoch = epoch
        b, n = loader.batch_size, loader.num_samples
        self.n_batches = n // b if loader.drop_last else -(-n // b)
        start = min(max(start_batch, 0), self.n_batches)
        self.sample = loader.sample
        self.shape = self.sample.output_shape
        self.pending = deque()  # submitted batches, oldest first
        self.next_submit = self.next_yield = start
        self.futures = {}  # process tasks not yet done -> (batch, positions), to wait for on close
        self.pool = self.reader = None
        self.closed = True  # until everything below is in place (a failure leaves nothing to stop)
        self.procs = loader._worker_processes()  # None: threads
        if self.procs is None:
            self.pool = ThreadPoolExecutor(loader.workers, thread_name_prefix="minialex-data")
        self.memory = loader._batch_memory(self.procs is not None) if self.shape is not None else None
        if loader.streaming:
            self.batches = None
            self.reader = _StreamReader(loader, epoch, start, self.n_batches)
        else:
            order = loader.indices(epoch)
            self.batches = [order[i:i + b] for i in range(0, self.n_batches * b, b)]
        self.closed = False

    # -- worker side ---------------------------------------------------------------
    def _note(self, ref, where="thread"):
        if self.reader is not None:
            return f"while loading {ref.name} (sample {ref.index}, epoch {self.epoch}) in a data-loader {where}"
        note = f"while loading sample {ref} (epoch {self.epoch}) in a data-loader {where}"
        path = getattr(self.loader.dataset, "samples", None)
        return note + (f", file {path[ref][0]}" if path is not None else "")

    def _work(self, batch, positions):
        """A thread's task: load the samples at ``positions`` of ``batch``."""
        if self.closed:  # cancelled: the consumer has gone
            return
        results = []
        for pos in positions:
            ref = batch.refs[pos]
            try:
                label, array = self.sample.load(self.epoch, ref, None if batch.images is None else batch.images[pos])
                batch.labels[pos] = label
                result = array
            except CorruptImageError as exc:
                result = exc
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
                if hasattr(exc, "add_note"):
                    exc.add_note(self._note(ref))
                result = _Failure(exc)
            results.append((pos, result))
        self._record(batch, results)

    def _processed(self, future):
        """Called when a worker process has done a task (in the pool's thread, or here)."""
        batch, positions = self.futures.pop(future)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            if hasattr(exc, "add_note"):
                exc.add_note(self._note(batch.refs[positions[0]], "worker process")
                             + (f" (or one of the {len(positions) - 1} after it in its task)"
                                if len(positions) > 1 else ""))
            self._record(batch, [(positions[0], _Failure(exc))] + [(p, None) for p in positions[1:]])
            return
        results = []
        for pos, label, corrupt in future.result():
            batch.labels[pos] = label
            results.append((pos, None if corrupt is None else CorruptImageError(*corrupt)))
        self._record(batch, results)

    def _record(self, batch, results):
        with batch.lock:
            for pos, result in results:
                batch.results[pos] = result
            batch.remaining -= len(results)
            last = batch.remaining == 0
        if last:
            self._finish(batch)

    def _finish(self, batch):
        try:
            keep = []
            for pos, r in enumerate(batch.results):  # batch order: the first error is deterministic
                if isinstance(r, _Failure):
                    batch.error = r.exc
                    return
                if isinstance(r, CorruptImageError):
                    if self.loader.on_error == "raise":
                        batch.error = r
                        return
                    batch.skipped.append(r)
                    continue
                keep.append(pos)
            if not keep and self.loader.share is not None:  # every process takes every step
                shape = self.shape if self.shape is not None else (0,)
                batch.images, batch.labels = np.empty((0,) + tuple(shape), np.float32), np.empty(0, np.int64)
            elif not keep:
                batch.images = batch.labels = None
            elif batch.images is None:
                # Stacking here, in a worker, keeps the copy off the training thread.
                batch.images = np.ascontiguousarray(
                    np.stack([batch.results[p] for p in keep]), dtype=np.float32)
                batch.labels = batch.labels[keep]
            elif len(keep) < len(batch.results):  # rare: drop the skipped rows (a copy)
                batch.images, batch.labels = batch.images[keep], batch.labels[keep]
        except BaseException as exc:  # noqa: BLE001 - e.g. samples of different shapes
            batch.error = exc
        finally:
            batch.results = None
            if batch.memory is not None:
                batch.memory.done()  # a shared batch outside the pool loses its file name here
            batch.ready.set()

    # -- consumer side -------------------------------------------------------------
    def _submit(self, batch):
        for positions in _chunks(len(batch.refs), self.loader.workers):
            if self.procs is None:
                self.pool.submit(self._work, batch, positions)
                continue
            future = self.procs.submit(batch.memory.name, batch.images.shape, self.epoch,
                                       [(p, batch.refs[p]) for p in positions])
            # The batch is found through this table, not held by the callback: a finished
            # future may linger in the pool's thread, and must not keep the batch's memory.
            self.futures[future] = (batch, positions)
            future.add_done_callback(self._processed)

    def _fill(self):
        """Submit batches up to ``prefetch`` beyond the one about to be consumed."""
        horizon = min(self.n_batches, self.next_yield + self.loader.prefetch + 1)
        while self.next_submit < horizon:
            if self.reader is not None:
                refs = self.reader.get()  # blocks until the reader has read this batch
                if refs is None:  # the stream ended early (it should not): end the epoch here
                    self.n_batches = self.next_submit
                    break
            else:
                refs = [int(i) for i in self.batches[self.next_submit]]
                if self.loader.share is not None:  # this process's rows of the global batch
                    lo, hi = batch_share(len(refs), *self.loader.share)
                    refs = refs[lo:hi]
            memory = None
            if self.shape is None:
                images = None
            elif refs:  # reused memory when the consumer has let go of an earlier batch's
                memory = self.memory.get()
                images = memory.images if len(refs) == len(memory.images) else memory.images[:len(refs)]
            else:
                images = np.empty((0,) + self.shape, np.float32)
            batch = _Batch(refs, images, memory)
            if not refs:  # an empty share: nothing to load
                self._finish(batch)
            self._submit(batch)
            self.pending.append(batch)
            self.next_submit += 1

    def __iter__(self):
        return self

    def __next__(self):
        while not self.closed and self.next_yield < self.n_batches:
            t0 = time.perf_counter()
            try:
                self._fill()
            except BaseException:
                self.close()
                raise
            if not self.pending:  # the stream ended early
                break
            batch = self.pending.popleft()
            self.next_yield += 1
            batch.ready.wait()
            self.loader.wait_time += time.perf_counter() - t0
            if batch.error is not None:
                self.close()
                if isinstance(batch.error, BrokenProcessPool):
                    self.loader._drop_worker_processes()
                raise batch.error
            # Noted here, in batch order, rather than in the workers: the lines
            # come out in the same order whatever the thread timing.
            for exc in batch.skipped:
                self.loader.skipped.append(exc.path)
                self.loader.skips.note(exc.path, exc.reason)
            if batch.images is None:  # every sample was skipped
                continue
            return batch.images, batch.labels
        self.close()
        raise StopIteration

    def __len__(self):
        return self.n_batches

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.reader is not None:
            self.reader.stop()
        if self.pool is not None:
            # Queued samples are cancelled; a sample being decoded finishes (milliseconds).
            self.pool.shutdown(wait=True, cancel_futures=True)
        else:
            # Cancel what has not started and wait for what has (a few samples).
            futures_wait([f for f in list(self.futures) if not f.cancel()])
        for batch in self.pending:
            if batch.memory is not None:
                batch.memory.done()
        self.pending.clear()

    def __del__(self):
        if not self.closed:
            self.closed = True
            if self.reader is not None:
                self.reader.stop(wait=False)
            if self.pool is not None:
                self.pool.shutdown(wait=False, cancel_futures=True)
            else:
                for f in list(self.futures):
                    f.cancel()


class _StreamReader:
    """Reads a streaming dataset's records in a thread and hands them over one batch at a time.

    One reader per epoch, so the order is the stream's own (a function of seed
    and epoch), whatever the timing. It stays at most ``prefetch + 1`` batches
    ahead of the consumer; an exception ends the stream and is re-raised by get().
    """

    def __init__(self, loader, epoch, start, n_batches):
        self.queue = queue.Queue(maxsize=loader.prefetch + 1)
        self.stopped = threading.Event()
        limit = min(loader.num_samples, n_batches * loader.batch_size)  # max_images, drop_last
        args = (loader.dataset, loader.seed, epoch, loader.shuffle, loader.batch_size, start, n_batches, limit)
        self.thread = threading.Thread(target=self._run, args=args, name="minialex-reader", daemon=True)
        self.thread.start()

    def _put(self, item):
        while not self.stopped.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, dataset, seed, epoch, shuffle, batch_size, start, n_batches, limit):
        records = None
        try:
            records = dataset.stream(seed, epoch, shuffle, limit=limit)
            for k in range(n_batches):
                refs = list(itertools.islice(records, batch_size))
                if not refs or self.stopped.is_set():
                    break
                if k >= start and not self._put(refs):  # batches before ``start`` are read, not decoded
                    return
            self._put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            self._put(_Failure(exc))
        finally:
            if records is not None:
                records.close()

    def get(self):
        item = self.queue.get()
        if isinstance(item, _Failure):
            raise item.exc
        return item

    def stop(self, wait=True):
        self.stopped.set()
        if wait and self.thread is not threading.current_thread():
            self.thread.join()
