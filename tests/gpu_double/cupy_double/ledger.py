"""The Ledger: what the code under test asked of the pretend GPUs, and the counting helpers
that the rest of the double calls.

* **launches**: each elementwise operation, reduction, copy, fill, GEMM, fancy index and
  ElementwiseKernel call counts one (a batched matmul whose operand is broadcast counts 7: CuPy
  runs it as a pointer-array batched GEMM plus six helper kernels). Views count none.
* **syncs**: every read of device data by the host, which stalls the host until the GPU is done.
* **wrong_device**: an operation with an input on another device than the current one (CuPy
  would raise "peer access is unavailable" or read across the bus).
* **unordered**: a cross-device copy (or allreduce) whose stream has not waited for the last
  write of its source.
* **transfers**: copies between devices, as (source, destination, bytes).
* **numpy_on_device**: a NumPy function applied to a device array.
* **host_to_device**: copies from the host, as (bytes, whether the source was pinned).
* **streams_created**: every ``cuda.Stream`` constructed (each one a cudaStreamCreate).
* **allreduces**: each NCCL allreduce (with ``install(..., nccl=True)``): device, stream, whether
  it was ordered after its buffer's last write, the stream's count after it, and its buffers.
"""

from collections import Counter

from . import streams


class Ledger:
    def __init__(self):
        self.reset()

    def reset(self):
        self.launches = Counter()  # what -> count
        self.syncs = []  # descriptions
        self.wrong_device = []
        self.unordered = []
        self.numpy_on_device = []
        self.transfers = []  # (src, dst, nbytes)
        self.host_to_device = []  # (nbytes, pinned)
        self.streams_created = 0
        self.allreduces = []  # nccl.Allreduce, with install(..., nccl=True)

    @property
    def total_launches(self):
        return sum(self.launches.values())

    def summary(self):
        return (f"launches {self.total_launches}, syncs {len(self.syncs)}, transfers {len(self.transfers)}, "
                f"wrong-device ops {len(self.wrong_device)}, unordered copies {len(self.unordered)}, "
                f"numpy-on-device {len(self.numpy_on_device)}, host-to-device {len(self.host_to_device)} "
                f"({sum(1 for _, pinned in self.host_to_device if pinned)} pinned), "
                f"streams created {self.streams_created}")


def current():
    """The Ledger of the double installed now."""
    return streams.state().ledger


def launch(what, n=1, stream=None):
    """Count ``n`` launches of ``what`` on ``stream`` (default: the current stream of the current
    device, in this thread)."""
    current().launches[what] += n
    (stream if stream is not None else streams.current_stream()).ops += n


def sync(what):
    current().syncs.append(what)


def check_inputs(what, *arrays):
    """Record each array argument that lives on another device than the current one."""
    from .ndarray import ndarray

    device = streams.current_device()
    for a in arrays:
        if isinstance(a, ndarray) and a._dev != device:
            current().wrong_device.append(f"{what}: input on device {a._dev}, current device {device}")


def written(*arrays, stream=None):
    """Record that these arrays were written, now, by work on ``stream`` (default: the current
    stream of each array's device)."""
    from .ndarray import ndarray

    for a in arrays:
        if isinstance(a, ndarray):
            s = stream if stream is not None else streams.current_stream(a._dev)
            a._base_owner()._written_at = s.ops


def ordered_after_last_write(stream, array):
    """True when work queued now on ``stream`` runs after the last write of ``array``: the stream
    waited for an event recorded on the array's device after that write."""
    return stream.waited.get(array._dev, -1) >= array._base_owner()._written_at
