"""Data parallelism: every process holds the whole network (on one device, or as the paper's
two columns), trains on its own share of each global batch, and the gradients are averaged
by an allreduce before the SGD update, so all processes take the same step. The design
follows PyTorch's DistributedDataParallel and ChainerMN; the math and the figures are in
docs/distributed.md.

Why the result is the single-process result: the loss of a global batch of M images is the
mean of their M losses, so its gradient is sum_r (m_r / M) * g_r, where process r saw m_r of
them and g_r is the gradient of the mean loss over its own images. Each process scales its
loss gradient by m_r / M and the allreduce sums: every process then holds the gradient of
the global batch, and the same SGD update keeps the weights equal everywhere.

Overlap: the gradients live in a few flat buffers ("buckets", about 25 MB each, filled in
the order backward produces them: fc8 first, conv1 last), and ``Parameter.grad`` is a view
into its bucket. As soon as backward has finished every layer of a bucket, its allreduce
starts, while backward goes on with the layers below. The engines:

- ``MpiAllreduce``: NumPy arrays, MPI_Allreduce in a communication thread (mpi4py lets go of
  Python's lock inside MPI, so backward keeps computing).
- ``NcclAllreduce``: CuPy arrays, NCCL on a stream of its own per device, ordered after the
  backward kernels by CUDA events; the host never waits.
- ``StagedMpiAllreduce``: CuPy arrays where NCCL is missing: each bucket is copied to the
  host, reduced by MPI in the communication thread and copied back.
"""

import importlib
import queue
import threading
import time
from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend

BUCKET_BYTES = 25 * 1024 * 1024  # PyTorch DDP's default bucket_cap_mb
ALIGN = 64  # each gradient starts on a multiple of 64 elements of its bucket (256 B in float32)


def batch_share(m, rank, size):
    """Rows [lo, hi) of a global batch of ``m`` samples that process ``rank`` of ``size`` takes:
    contiguous shares as equal as can be (b each when m = size * b)."""
    return (rank * m) // size, ((rank + 1) * m) // size


def layer_of(param_name):
    """``conv1.weight`` and ``conv1.a.weight`` belong to layer ``conv1``."""
    return param_name.split(".", 1)[0]


Span = namedtuple("Span", "start end")


class Bucket:
    """Gradients of consecutive layers (in backward order) on one device, in one flat buffer."""

    def __init__(self, index, device):
        self.index, self.device = index, device
        self.names, self.layers, self.sizes = [], [], []  # parameter names, their layers, element counts
        self.offsets = []
        self.elements = 0
        self.flat = None

    def add(self, name, size):
        self.offsets.append(self.elements)
        self.names.append(name)
        self.sizes.append(size)
        if layer_of(name) not in self.layers:
            self.layers.append(layer_of(name))
        self.elements += -(-size // ALIGN) * ALIGN


def plan_buckets(named_params, cap_bytes=BUCKET_BYTES):
    """Buckets for ``[(name, Parameter)]`` in forward order: walked backwards (the order backward
    fills the gradients), one open bucket per device, closed before it would pass ``cap_bytes`` (a larger
    gradient gets a bucket of its own); and
    the order in which they become complete during backward, the same on every process."""
    named = list(named_params)
    layers = list(OrderedDict.fromkeys(layer_of(n) for n, _ in named))  # forward order
    by_layer = OrderedDict((name, []) for name in layers)
    for n, p in named:
        by_layer[layer_of(n)].append((n, p))
    buckets, open_ = [], {}
    for layer in reversed(layers):
        per_device = OrderedDict()  # a layer's weight and bias (per column) travel together
        for n, p in reversed(by_layer[layer]):
            per_device.setdefault(getattr(backend.device_of(p.data), "id", None), []).append((n, p))
        for key, group in per_device.items():
            size = sum(int(p.data.size) for _, p in group)
            b = open_.get(key)
            if b is None or (b.elements and (b.elements + size) * group[0][1].data.itemsize > cap_bytes):
                b = open_[key] = Bucket(len(buckets), key)
                buckets.append(b)
            for n, p in group:
                b.add(n, int(p.data.size))
    # A bucket is complete when the last (lowest) of its layers has finished backward.
    position = {layer: i for i, layer in enumerate(reversed(layers))}
    order = sorted(buckets, key=lambda b: (max(position[name] for name in b.layers), b.index))
    return buckets, order


class DataParallel:
    """Averages a model's gradients over the processes of ``world`` after (and during) backward.

    ``DataParallel(model, world, engine)`` makes each ``Parameter.grad`` a view into a bucket
    (so build it after the model is placed on its devices). Each step::

        dp.zero_grad()                                         # one fill per bucket
        dp.begin_step()
        model.backward(dlogits, grads_ready=dp.grads_ready)   # starts buckets as they fill
        dp.finish()                                            # every gradient averaged
        optimizer.step()

    ``finish`` also starts any bucket backward did not reach (a process whose share of the
    batch was empty skips backward and contributes zeros). ``last`` holds the step's
    timing: seconds of allreduce, how many of them overlapped backward, and the wait after it.
    """

    def __init__(self, model, world, engine, cap_bytes=BUCKET_BYTES):
        self.model, self.world, self.engine = model, world, engine
        params = OrderedDict(model.named_parameters())
        self.buckets, self.order = plan_buckets(params.items(), cap_bytes)
        for b in self.buckets:
            first = params[b.names[0]].data
            xp = backend.get_array_module(first)
            with backend.device_of(first):
                b.flat = xp.zeros(b.elements, dtype=first.dtype)
            for name, off, size in zip(b.names, b.offsets, b.sizes):
                p = params[name]
                p.use_grad_buffer(b.flat[off:off + size].reshape(p.data.shape))  # (elements,) -> param shape
        self.layer_buckets = {}
        for b in self.buckets:
            for layer in b.layers:
                self.layer_buckets.setdefault(layer, []).append(b)
        self.last = {"allreduce_s": 0.0, "overlapped_s": 0.0, "wait_s": 0.0, "backward_s": 0.0}
        self._done, self._next, self._t0 = set(), 0, 0.0

    @property
    def num_buckets(self):
        return len(self.buckets)

    def broadcast_parameters(self):
        """Process 0's weights on every process (as DDP does at start): all start equal."""
        for name, p in self.model.named_parameters():
            host = backend.to_numpy(p.data).copy()
            self.world.bcast_array(host)
            if self.world.is_root:
                continue  # its own weights are what was sent
            if backend.is_cupy_array(p.data):
                with backend.device_of(p.data):
                    p.data[...] = backend.get_array_module(p.data).asarray(host)
            else:
                p.data[...] = host

    def zero_grad(self):
        """Every gradient set to zero with one fill per bucket (not one per parameter)."""
        for b in self.buckets:
            with backend.device_of(b.flat):
                b.flat.fill(0)

    def begin_step(self):
        self._done, self._next = set(), 0
        self._t0 = time.perf_counter()
        self.engine.begin()

    def grads_ready(self, layer):
        """Backward has finished layer ``layer``: start every bucket that is now complete, in
        the planned order (the same order on every process, as collectives require)."""
        self._done.add(layer)
        while self._next < len(self.order) and all(n in self._done for n in self.order[self._next].layers):
            self.engine.start(self.order[self._next])
            self._next += 1

    def finish(self):
        """Start what is left, wait until every bucket is reduced; record the step's timing."""
        t_backward = time.perf_counter()
        while self._next < len(self.order):
            self.engine.start(self.order[self._next])
            self._next += 1
        spans = self.engine.wait()
        t_end = time.perf_counter()
        busy = sum(s.end - s.start for s in spans)
        overlapped = sum(max(0.0, min(s.end, t_backward) - max(s.start, self._t0)) for s in spans)
        self.last = {"allreduce_s": busy, "overlapped_s": overlapped, "wait_s": t_end - t_backward,
                     "backward_s": t_backward - self._t0}
        return self.last

    def close(self):
        self.engine.close()


class MpiAllreduce:
    """Sums NumPy buckets over the processes with MPI_Allreduce, in a thread of its own so that
    backward goes on computing meanwhile. With an MPI that allows no calls from a second
    thread, the sums run in ``wait`` instead (correct, without overlap)."""

    def __init__(self, world):
        self.world, self.MPI, self.comm = world, world.MPI, world.comm
        self.threaded = self.MPI.Query_thread() >= self.MPI.THREAD_SERIALIZED
        self.queue = queue.Queue()
        self.spans, self.pending, self.error = [], [], None
        self.idle = threading.Condition()
        self.outstanding = 0
        self.thread = None
        if self.threaded:
            self.thread = threading.Thread(target=self._run, name="minialex-allreduce", daemon=True)
            self.thread.start()

    def begin(self):
        self.spans = []

    def _reduce(self, bucket):
        t0 = time.perf_counter()
        self.comm.Allreduce(self.MPI.IN_PLACE, bucket.flat, op=self.MPI.SUM)
        self.spans.append(Span(t0, time.perf_counter()))

    def _run(self):
        while True:
            bucket = self.queue.get()
            if bucket is None:
                return
            try:
                if self.error is None:
                    self._reduce(bucket)
            except BaseException as exc:  # noqa: BLE001 - handed to the training thread in wait()
                self.error = exc
            with self.idle:
                self.outstanding -= 1
                self.idle.notify_all()

    def start(self, bucket):
        if not self.threaded:
            self.pending.append(bucket)
            return
        with self.idle:
            self.outstanding += 1
        self.queue.put(bucket)

    def wait(self):
        if not self.threaded:
            for bucket in self.pending:
                self._reduce(bucket)
            self.pending = []
        else:
            with self.idle:
                while self.outstanding:
                    self.idle.wait()
        if self.error is not None:
            raise self.error
        return list(self.spans)

    def close(self):
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None


class NcclAllreduce:
    """Sums CuPy buckets with NCCL: one communicator per device this process uses (column A's
    and column B's gradients are reduced among the column-A and column-B GPUs of all
    processes), each with its own stream. ``start`` orders the allreduce after the backward
    kernels already queued (an event), ``wait`` orders the rest of the step after the
    allreduces: no host-device synchronisation anywhere. The communicators are built from
    unique ids made by process 0 and sent over MPI (ChainerMN's and CuPy's bootstrap)."""

    def __init__(self, world, devices):
        cp = backend.get_backend("cupy")
        nccl = nccl_module(cp)
        if nccl is None:
            raise RuntimeError("NcclAllreduce: this CuPy has no NCCL (see make_engine)")
        self.cp, self.nccl = cp, nccl
        self.types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}
        self.comms, self.streams = {}, {}
        for d in sorted(set(devices)):
            uid = world.bcast(nccl.get_unique_id() if world.is_root else None)
            with cp.cuda.Device(d):
                self.comms[d] = nccl.NcclCommunicator(world.size, uid, world.rank)
                self.streams[d] = cp.cuda.Stream(non_blocking=True)
        self.used = set()

    def begin(self):
        self.used = set()

    def start(self, bucket):
        cp, d = self.cp, bucket.device
        with cp.cuda.Device(d):
            ready = cp.cuda.Event(disable_timing=True)
            ready.record(cp.cuda.get_current_stream())  # after the backward kernels of this bucket
            stream = self.streams[d]
            stream.wait_event(ready)
            self.comms[d].allReduce(bucket.flat.data.ptr, bucket.flat.data.ptr, bucket.flat.size,
                                    self.types[bucket.flat.dtype], self.nccl.NCCL_SUM, stream.ptr)
        self.used.add(d)

    def wait(self):
        cp = self.cp
        for d in self.used:
            with cp.cuda.Device(d):
                done = cp.cuda.Event(disable_timing=True)
                done.record(self.streams[d])
                cp.cuda.get_current_stream().wait_event(done)  # the SGD update runs after the sums
        return []  # the GPU's time is not read on the host (that would be a sync)

    def close(self):
        self.comms = {}


class StagedMpiAllreduce(MpiAllreduce):
    """CuPy buckets summed by MPI through host copies, for a CuPy without NCCL. The copies and the
    sum run in the communication thread, which waits for the bucket's event; ``wait`` orders the
    rest of the step after the copies back. The training thread itself never synchronises, but
    each step ends only when the slowest bucket is home."""

    def __init__(self, world):
        super().__init__(world)
        self.cp = backend.get_backend("cupy")
        self.side, self.host, self.done = {}, {}, []

    def begin(self):
        super().begin()
        self.done = []

    def start(self, bucket):
        cp = self.cp
        with cp.cuda.Device(bucket.device):
            ready = cp.cuda.Event(disable_timing=True)
            ready.record(cp.cuda.get_current_stream())
        bucket.ready = ready
        super().start(bucket)

    def _reduce(self, bucket):
        cp = self.cp
        with cp.cuda.Device(bucket.device):
            side = self.side.get(bucket.device)
            if side is None:  # once per device (setdefault would build a new stream on every call)
                side = self.side[bucket.device] = cp.cuda.Stream(non_blocking=True)
            host = self.host.get(bucket.index)
            if host is None:
                host = self.host[bucket.index] = cp.cuda.alloc_pinned_memory(bucket.flat.nbytes)
            view = np.frombuffer(host, bucket.flat.dtype, bucket.flat.size)
            side.wait_event(bucket.ready)
            bucket.flat.get(stream=side, out=view)
            side.synchronize()  # this thread, not the training thread, waits for the GPU
            t0 = time.perf_counter()
            self.comm.Allreduce(self.MPI.IN_PLACE, view, op=self.MPI.SUM)
            self.spans.append(Span(t0, time.perf_counter()))
            bucket.flat.set(view, stream=side)
            done = cp.cuda.Event(disable_timing=True)
            done.record(side)
            self.done.append((bucket.device, done))
            side.synchronize()  # the pinned buffer is free again before the next step

    def wait(self):
        spans = super().wait()
        cp = self.cp
        for d, done in self.done:
            with cp.cuda.Device(d):
                cp.cuda.get_current_stream().wait_event(done)
        return spans


def nccl_module(cp):
    """CuPy's NCCL bindings (``cupy.cuda.nccl``), or None where this CuPy has none."""
    found = getattr(cp.cuda, "nccl", None)
    if found is None:
        try:
            found = importlib.import_module(cp.__name__ + ".cuda.nccl")
        except ImportError:
            return None
    return found if getattr(found, "available", True) else None


def make_engine(world, xp, devices):
    """The allreduce for this backend: MPI on NumPy; NCCL on CuPy, or MPI through host copies
    where CuPy has no NCCL (returned with a note saying so, else None)."""
    if xp is np:
        return MpiAllreduce(world), None
    if nccl_module(xp) is not None:
        return NcclAllreduce(world, devices), None
    return StagedMpiAllreduce(world), ("this CuPy has no NCCL: gradients are summed by MPI through host copies, "
                                       "which is slower (install NCCL, e.g. pip install nvidia-nccl-cu12)")


__all__ = ["DataParallel", "MpiAllreduce", "NcclAllreduce", "StagedMpiAllreduce", "make_engine", "batch_share",
           "plan_buckets", "BUCKET_BYTES"]
