"""The processes of one data-parallel run: who am I (rank), how many are we (size), which of us
share my node (local rank), and the few collective operations the training loop needs.

``mpiexec -n N python examples/train_imagenet.py ...`` starts N processes; ``world()`` sees
from the environment the launcher sets that it was started that way and returns an ``MpiWorld``
over mpi4py's COMM_WORLD. Without a launcher (or with one process) it returns ``Solo``, whose
operations do nothing, so a single process runs exactly the code it ran before data
parallelism existed. No networking is written here: MPI (mpi4py and an MPI library, the
``[mpi]`` extra) moves every byte. Explained in docs/distributed.md.
"""

import os
import sys
import threading
import time

import numpy as np

# Variables an MPI launcher sets in every process it starts: Open MPI (and PMIx), MPICH and
# Intel MPI (Hydra's PMI), MVAPICH, Slurm's srun with PMI.
LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MV2_COMM_WORLD_SIZE",
                      "MPI_LOCALNRANKS")
ABORT_GRACE_S = 0.5  # seconds between a process's last message and MPI_Abort
MPI_INSTALL_HINT = 'pip install -e ".[mpi]"  (mpi4py and MPICH from the package index)'


class DistributedError(RuntimeError):
    """The processes cannot run together (no MPI, different arguments, a layout that cannot work)."""


def launched_by_mpi(environ=None):
    """True if a launcher such as mpiexec started this process (whatever the number of processes)."""
    environ = os.environ if environ is None else environ
    return any(name in environ for name in LAUNCHER_VARIABLES)


class Solo:
    """The world of a process that trains alone: rank 0 of 1; every collective returns its input."""

    rank, size, local_rank, local_size = 0, 1, 0, 1
    is_root = True
    name = "one process"

    def allgather(self, value):
        return [value]

    def bcast(self, value):
        return value

    def sum(self, values):
        """Element-wise sum over the processes of a short list of numbers (host floats)."""
        return [float(v) for v in values]

    def bcast_array(self, array):
        return array

    def barrier(self):
        pass

    def abort(self, code):
        raise SystemExit(code)


class MpiWorld:
    """N processes started by an MPI launcher, over mpi4py's COMM_WORLD.

    ``local_rank``/``local_size`` come from splitting COMM_WORLD by shared memory (the
    processes of one node). All operations here are collective: every process must call
    them, in the same order. The gradients have their own path
    (minialex/parallel/data_parallel.py); these are the small exchanges around them.
    """

    def __init__(self, mpi):
        self.MPI = mpi
        self.comm = mpi.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        local = self.comm.Split_type(mpi.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()
        self.is_root = self.rank == 0
        self.name = f"{self.size} processes"

    def allgather(self, value):
        """Every process's ``value`` (any picklable object of our own making), in rank order."""
        return self.comm.allgather(value)

    def bcast(self, value):
        """Process 0's ``value`` on every process."""
        return self.comm.bcast(value, root=0)

    def sum(self, values):
        """Element-wise sum over the processes of a short list of numbers (host floats)."""
        buf = np.asarray(values, dtype=np.float64)
        out = np.empty_like(buf)
        self.comm.Allreduce(buf, out, op=self.MPI.SUM)
        return [float(v) for v in out]

    def bcast_array(self, array):
        """Process 0's contents of a host array, copied into ``array`` on every process (in place)."""
        self.comm.Bcast(np.ascontiguousarray(array) if self.is_root else array, root=0)
        return array

    def barrier(self):
        self.comm.Barrier()

    def abort(self, code):
        """End every process of the run now, with exit code ``code`` (MPI_Abort): what a
        process does when it cannot go on, so that the others never wait for it forever."""
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            stream.flush()
        time.sleep(ABORT_GRACE_S)  # let the launcher pass our last lines on before it ends us all
        self.comm.Abort(int(code))


def import_mpi():
    """mpi4py's MPI module, or a DistributedError that says what to install."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise DistributedError(f"data-parallel training needs mpi4py and an MPI library, which are not "
                               f"installed ({exc}); install them with: {MPI_INSTALL_HINT}") from None
    return MPI


def world(distributed=None, environ=None):
    """The world of this process: ``MpiWorld`` when started by an MPI launcher with more than one
    process (or ``distributed=True``), else ``Solo``. ``distributed=False`` forces ``Solo``."""
    if distributed is False:
        return Solo()
    if distributed is None and not launched_by_mpi(environ):
        return Solo()
    mpi = import_mpi()
    if mpi.COMM_WORLD.Get_size() == 1 and distributed is None:
        return Solo()  # mpiexec -n 1: exactly the single-process run
    return MpiWorld(mpi)


class Watchdog:
    """Ends the whole run (``world.abort``) when this process has made no progress for
    ``timeout`` seconds: a peer that hangs, or a network that stops answering, then costs a
    bounded time and a message, never a job that waits forever. ``beat()`` marks progress
    (each training or validation batch). The trainer runs one while it fits, so the start-up
    (reading the data, computing the statistics) is not timed."""

    def __init__(self, world, timeout, what="training"):
        self.world, self.timeout, self.what = world, float(timeout), what
        self.last = time.monotonic()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="minialex-watchdog", daemon=True)
        self.thread.start()

    def beat(self):
        self.last = time.monotonic()

    def _run(self):
        while not self.stopped.wait(min(self.timeout / 10, 5.0)):
            if time.monotonic() - self.last > self.timeout:
                print(f"error: process {self.world.rank} of {self.world.size}: no progress in {self.timeout:.0f} s "
                      f"of {self.what} (another process may have died or hung, see --timeout); stopping every "
                      "process; the last checkpoint is kept", file=sys.__stderr__, flush=True)
                self.world.abort(1)

    def stop(self):
        self.stopped.set()


__all__ = ["world", "Solo", "MpiWorld", "DistributedError", "Watchdog", "launched_by_mpi", "import_mpi",
           "MPI_INSTALL_HINT"]
