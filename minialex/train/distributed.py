"""What the training script does differently when ``mpiexec`` starts it as several processes:
which GPUs each process takes, the start-up check that all processes were started alike, and
how a failure in one process ends them all (with one message) instead of leaving the others
waiting. The training itself is in minialex/train/trainer.py and minialex/parallel/;
docs/distributed.md explains the whole.
"""

import os
import socket
import sys
import traceback

from ..parallel.world import world as make_world
from .config import flag
from .errors import UsageError

# Options that may differ between the processes: they change nothing in the training itself.
PER_PROCESS = ("workers", "worker_kind", "print_freq", "no_progress", "timeout")
RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK")


def launcher_rank(environ=None):
    """This process's rank as the launcher's environment says, before MPI is initialised (0 when
    not started by a launcher): who prints when MPI itself cannot be loaded."""
    environ = os.environ if environ is None else environ
    for name in RANK_VARIABLES:
        value = environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def distributed_flag(argv):
    """``--distributed`` / ``--no-distributed`` from the command line (the last wins), else None.
    Read before the parser runs: the parser's own errors must already know the world."""
    flag = None
    for a in argv:
        if a == "--distributed":
            flag = True
        elif a == "--no-distributed":
            flag = False
    return flag


def open_world(argv):
    """The processes of this run (minialex.parallel.world), or a DistributedError."""
    return make_world(distributed_flag(argv))


class Tail:
    """A text stream that keeps only the last few KB written to it: where a quiet process's output
    goes, so that its last error line can still be reported by process 0."""

    def __init__(self, keep=4096):
        self.keep, self.text = keep, ""

    def write(self, text):
        self.text = (self.text + text)[-self.keep:]
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False

    def last_line(self):
        lines = [line for line in self.text.splitlines() if line.strip()]
        return lines[-1] if lines else None


def quiet_unless_root(world):
    """Process 0 alone prints: the others' stdout and stderr are kept in a Tail, never shown (a
    crash message still reaches the terminal through sys.__stderr__, see ``report_crash``).
    Returns the Tail (None on process 0)."""
    if world.is_root:
        return None
    sys.stdout = sys.stderr = Tail()
    return sys.stderr


# -- which GPUs a process takes ---------------------------------------------------------------
def local_devices(ids, world):
    """The device ids of this process: the node's first process takes ``ids``; the process with
    local rank r takes them shifted by r times the number of distinct GPUs they name, so
    ``--devices 0`` gives GPU r and ``--devices 0,1`` (two columns) GPUs 2r and 2r+1."""
    step = len(set(ids))
    return tuple(i + world.local_rank * step for i in ids)


def check_gpu_count(ids, layout, world, available):
    """UsageError in one line if the node's processes need more GPUs than it has."""
    step = len(set(ids))
    highest = max(ids) + (world.local_size - 1) * step
    if highest >= available:
        per = "GPU" if step == 1 else f"{step} GPUs"
        raise UsageError(f"--devices {layout} with {world.local_size} processes on this node ({per} each) needs "
                         f"GPUs up to {highest}, but this node has {available}; start fewer processes per node "
                         f"or pass other --devices")


def hostname():
    return socket.gethostname()


def gpu_identities(xp, ids):
    """PCI bus ids of the GPUs ``ids`` (what tells two processes apart even when each sees its own
    CUDA_VISIBLE_DEVICES numbering)."""
    out = []
    for d in sorted(set(ids)):
        try:
            out.append(str(xp.cuda.Device(d).pci_bus_id))
        except Exception:  # noqa: BLE001 - a device without a bus id: its number will do
            out.append(f"device {d}")
    return out


def shared_gpus(owns):
    """Text naming two processes that would use one GPU, or None. ``owns``: per rank,
    {"host": name, "gpus": [bus id, ...]}."""
    seen = {}
    for rank, own in enumerate(owns):
        for gpu in own.get("gpus") or ():
            key = (own["host"], gpu)
            if key in seen:
                return f"processes {seen[key]} and {rank} would both use GPU {gpu} on {own['host']}"
            seen[key] = rank
    return None


# -- the start-up check -----------------------------------------------------------------------
class PeerFailed(Exception):
    """Another process could not start (or was started differently): stop with its message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


def _show(value):
    return "unset" if value is None else (value if isinstance(value, str) else repr(value))


def differences(same):
    """One line naming how the processes' ``same`` dicts differ from process 0's, or None."""
    first = same[0]
    for rank, mine in enumerate(same[1:], start=1):
        for section in first:
            a, b = first[section], mine.get(section)
            if a == b:
                continue
            if section == "args":
                for key in sorted(set(a) | set(b)):
                    if a.get(key) != b.get(key):
                        return (f"process {rank} was started with {flag(key)} {_show(b.get(key))}, process 0 "
                                f"with {flag(key)} {_show(a.get(key))}")
            if section == "data":
                for split in sorted(a):
                    x, y = a[split], b.get(split) or {}
                    if x != y:
                        if x.get("images") != y.get("images"):
                            return (f"process {rank} sees {y.get('images')} {split} images in --data, process 0 "
                                    f"{x.get('images')}: the data differs between the processes")
                        return (f"process {rank} sees other {split} files in --data than process 0 (same count, other "
                                "names or sizes): the data differs between the processes")
            return f"process {rank} differs from process 0 in {section}: {_show(b)} vs {_show(a)}"
    return None


class Session:
    """The start-up check of a data-parallel run and what happens when it ends.

    ``check(same, own)`` is the first collective of the run: every process sends what must be
    equal (``same``: the resolved options, the data's fingerprint, the checkpoint) and what is
    its own (``own``: host, GPUs), or, from ``fail``, the error that stopped it before. All
    processes then know the same thing, so they all stop together, with process 0 printing one
    line, or all go on. Before that point a process never waits for another; after it, a
    process that fails ends the run (``abort``)."""

    def __init__(self, world):
        self.world = world
        self.started = False

    def _exchange(self, entry):
        entries = self.world.allgather(entry)
        failed = [(r, e["failure"]) for r, e in enumerate(entries) if "failure" in e]
        if failed:
            rank, (code, message) = failed[0]
            if len(failed) < len(entries):  # not everyone: say who, and never end with 0
                code = code or 2
                message = (message or f"error: stopped at start-up with exit code {code}").replace(
                    "error: ", f"error: process {rank}: ", 1)
            return PeerFailed(code, message)
        return entries

    def check(self, same, own):
        """Raise UsageError (one line) if the processes differ, PeerFailed if one could not start."""
        got = self._exchange({"same": same, "own": own})
        if isinstance(got, PeerFailed):
            raise got
        diff = differences([e["same"] for e in got]) or shared_gpus([e["own"] for e in got])
        if diff:
            raise UsageError(f"the processes cannot train together: {diff}")
        self.started = True

    def fail(self, code, message):
        """The check, from a process that stopped before reaching it: returns the run's exit code
        and message (the first failing process's)."""
        got = self._exchange({"failure": (code, message)})
        return got.code, got.message  # (every entry is a failure at least: this one)


def report_crash(world, message):
    """A failure after start-up: say which process, on the real stderr, then end every process."""
    text = message if message.startswith("error: ") else f"error: {message}"
    print(text.replace("error: ", f"error: process {world.rank} of {world.size}: ", 1), file=sys.__stderr__,
          flush=True)


def crash_text(exc):
    return "error: " + "".join(traceback.format_exception_only(type(exc), exc)).strip() + \
        "\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def start_up_fingerprint(resolved, train_set, val_set, meta):
    """What must be the same in every process of a data-parallel run: the options (but those
    of PER_PROCESS), the images (count and a digest of names and sizes) and the checkpoint."""
    from ..data.stats import dataset_fingerprint
    args = {k: v for k, v in resolved.items() if k not in PER_PROCESS}
    data = {split: {"images": len(ds), "digest": dataset_fingerprint(ds, 0, None)}
            for split, ds in (("train", train_set), ("val", val_set))}
    ckpt = None if meta is None else {"epoch": meta.get("epoch"), "step": meta.get("step_in_epoch")}
    return {"args": args, "data": data, "checkpoint": ckpt}


__all__ = ["start_up_fingerprint", "open_world", "launcher_rank", "quiet_unless_root", "local_devices", "check_gpu_count", "gpu_identities",
           "Session", "PeerFailed", "report_crash", "crash_text", "PER_PROCESS"]
