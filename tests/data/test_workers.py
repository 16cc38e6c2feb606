"""Worker processes (minialex/data/workers.py) give the threads' batches, bit for bit.

The determinism rule (docs/data.md, "The loader") says a sample's randomness
comes from (seed, epoch, index) alone; these tests hold the process pool to
it on files and on tar shards, with corrupt images among them, and check
what a user meets: errors with a note, the automatic choice, nothing left
in shared memory.
"""

import os

import numpy as np
import pytest

from minialex.data import (DataLoader, EvalTransform, ImageFolder, ShardDataset, SkipLog, TrainTransform,
                           compute_stats, write_shards)
from minialex.data import loader as loader_module
from minialex.data import workers

from .conftest import make_folder

pytestmark = pytest.mark.skipif(not workers.available(), reason="no POSIX shared memory (/dev/shm) here")


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = make_folder(tmp_path_factory.mktemp("procs") / "ds", per_class=6)
    folder = ImageFolder(root, "train")
    shards = tmp_path_factory.mktemp("procs-shards") / "out"
    write_shards(root, shards, shard_size=7)
    return folder, ShardDataset(shards, buffer_size=5), compute_stats(folder, size=24, workers=1)


def epoch(dataset, transform, kind, workers, epoch=1, **kw):
    lines = []
    with DataLoader(dataset, transform, batch_size=5, seed=4, workers=workers, worker_kind=kind,
                    skips=SkipLog(lines.append), **kw) as loader:
        batches = [(x.copy(), y.copy()) for x, y in loader.epoch_iter(epoch)]
        return batches, lines, loader.skipped


def assert_same(a, b):
    assert len(a) == len(b) and len(a) > 0
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xa.shape == xb.shape and np.array_equal(xa, xb) and np.array_equal(ya, yb)


@pytest.mark.parametrize("source", ["folder", "shards"])
def test_processes_give_the_threads_batches(sources, source):
    folder, shards, stats = sources
    ds = folder if source == "folder" else shards
    tf = TrainTransform(stats, size_crop=20, size_resize=24)
    threads, lines_t, skipped_t = epoch(ds, tf, "threads", 1)
    procs, lines_p, skipped_p = epoch(ds, tf, "processes", 2)
    assert_same(threads, procs)
    # The corrupt file is skipped the same way: one line, the same batch shorter.
    assert len(lines_t) == 1 and lines_p == lines_t and skipped_p == skipped_t
    ev = EvalTransform(stats, 20, 24, ten_crop=True)
    assert_same(epoch(ds, ev, "threads", 3)[0], epoch(ds, ev, "processes", 2)[0])


def test_processes_across_epochs_breaks_and_resumes(sources):
    folder, _, stats = sources
    tf = TrainTransform(stats, size_crop=20, size_resize=24)
    straight = epoch(folder, tf, "threads", 2, epoch=3)[0]
    with DataLoader(folder, tf, batch_size=5, seed=4, workers=2, worker_kind="processes",
                    skips=SkipLog(lambda line: None)) as loader:
        for x, _ in loader.epoch_iter(2):  # leave an epoch early: its work is cancelled
            break
        resumed = [(x.copy(), y.copy()) for x, y in loader.epoch_iter(3, start_batch=2)]
        procs = loader._procs
        assert procs is not None and loader.processes
    assert loader._procs is None and procs.pool is None  # close() stopped the processes
    assert_same(straight[2:], resumed)
    assert not [n for n in os.listdir(workers.SHM_FOLDER) if n.startswith(f"minialex-{os.getpid()}-")]


class Exploding(TrainTransform):
    def finish(self, window, draw, out):
        raise RuntimeError("boom")


def test_raise_and_other_errors_come_back_from_a_process(sources):
    folder, _, stats = sources
    tf = TrainTransform(stats, size_crop=20, size_resize=24)
    with pytest.raises(Exception, match="cannot decode image .*broken.JPEG"):
        epoch(folder, tf, "processes", 2, on_error="raise")

    with pytest.raises(RuntimeError, match="boom") as info:
        epoch(folder, Exploding(stats, size_crop=20, size_resize=24), "processes", 2)
    assert any("data-loader worker process" in n for n in getattr(info.value, "__notes__", []))


def test_the_automatic_choice(sources, monkeypatch):
    folder, _, stats = sources
    tf = TrainTransform(stats, size_crop=20, size_resize=24)
    few = loader_module.PROCESSES_FROM - 1
    assert not DataLoader(folder, tf, workers=few).processes
    assert DataLoader(folder, tf, workers=loader_module.PROCESSES_FROM).processes
    # A transform the loader cannot write in place runs on threads, and cannot be asked for processes.
    plain = lambda img, rng: np.zeros((3, 2, 2), np.float32)  # noqa: E731
    assert not DataLoader(folder, plain, workers=8).processes
    with pytest.raises(ValueError, match="needs a transform with draw"):
        DataLoader(folder, plain, worker_kind="processes")
    with pytest.raises(ValueError, match="worker_kind must be one of"):
        DataLoader(folder, tf, worker_kind="fibers")
    # What cannot be pickled cannot go to a process: threads, or one line saying why.
    local = type("Local", (TrainTransform,), {})(stats, size_crop=20, size_resize=24)
    auto = DataLoader(folder, local, workers=8, batch_size=5, skips=SkipLog(lambda line: None))
    assert sum(len(y) for _, y in auto) > 0 and not auto.processes
    with pytest.raises(ValueError, match="cannot be sent to worker processes"):
        next(iter(DataLoader(folder, local, worker_kind="processes")))
    monkeypatch.setattr(workers, "SHM_FOLDER", "/nonexistent-shm")
    assert not DataLoader(folder, tf, workers=8).processes  # auto falls back to threads
    with pytest.raises(ValueError, match="shared memory"):
        DataLoader(folder, tf, worker_kind="processes")


def test_a_loader_never_closed_leaves_nothing_behind_at_exit(tmp_path):
    """A script that exits with worker processes running: no shared-memory file stays, and the
    resource tracker has nothing to warn about."""
    import subprocess
    import sys
    root = tmp_path / "ds"
    make_folder(root, per_class=4, special=False)
    script = tmp_path / "script.py"
    script.write_text(
        "import os, sys\n"
        "from minialex.data import DataLoader, ImageFolder, TrainTransform\n"
        "if __name__ == '__main__':\n"
        f"    loader = DataLoader(ImageFolder({str(root)!r}, 'train'), TrainTransform(None, 20, 24),\n"
        "                        batch_size=3, workers=2, worker_kind='processes')\n"
        "    x, y = next(iter(loader))\n"
        "    print(os.getpid(), x.shape)\n")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=repo))
    assert proc.returncode == 0, proc.stderr
    pid = proc.stdout.split()[0]
    assert "(3, 3, 20, 20)" in proc.stdout
    assert "leaked" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not [n for n in os.listdir(workers.SHM_FOLDER) if n.startswith(f"minialex-{pid}-")]
