"""Data-parallel training on real processes, through ``mpiexec -n 2`` (docs/distributed.md).

- 2 processes train what 1 process trains with their global batch: the same weights after three
  SGD steps to 1e-12 in float64, with one column and with the two-column model in each process,
  with uneven and empty shares, across a stop asked for by one process in the middle of an epoch,
  and across a checkpoint resumed on another number of processes or another placement.
- The training script: processes started with different options stop at start-up with one
  line; a process that raises, or is killed with SIGKILL, ends the run within a bounded time
  with a non-zero code and leaves the last checkpoint intact; a stop signal (Ctrl-C where the
  launcher passes it on, SIGUSR1) saves one checkpoint that --resume continues.

Skipped, with the reason, where mpi4py or mpiexec is missing (``pip install -e ".[mpi]"``).
"""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "tests", "parallel", "mpi_worker.py")
CRASH = os.path.join(ROOT, "tests", "parallel", "mpi_crash.py")
SCRIPT = os.path.join(ROOT, "examples", "train_imagenet.py")
BOUND = 60  # seconds within which a run with a dead process must have ended


def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None, 'mpi4py is not installed (pip install -e ".[mpi]")'
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    exe = here if os.path.exists(here) else shutil.which("mpiexec")
    if exe is None:
        return None, 'no mpiexec on PATH (pip install -e ".[mpi]" brings MPICH)'
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in version or "OpenRTE" in version or "PRRTE" in version:
        return [exe, "--allow-run-as-root", "--oversubscribe"], None
    return [exe], None


MPIEXEC, WHY = _mpiexec()
if MPIEXEC is None and os.environ.get("MINIALEX_REQUIRE_MPI") == "1":  # CI installs the [mpi] extra
    pytest.fail(f"MINIALEX_REQUIRE_MPI=1 but {WHY}", pytrace=False)
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason=WHY or "")
OPEN_MPI = MPIEXEC is not None and "--oversubscribe" in MPIEXEC
ENV = dict(os.environ, MINIALEX_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
           PYTHONUNBUFFERED="1")


def mpirun(n, *args, timeout=120):
    return subprocess.run(MPIEXEC + ["-n", str(n), sys.executable, *args], capture_output=True, text=True,
                          env=ENV, timeout=timeout, cwd=ROOT)


def alone(*args, timeout=120):
    """One process, not started by a launcher."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=ENV, timeout=timeout,
                          cwd=ROOT)


def weights(folder):
    with np.load(os.path.join(folder, "weights.npz")) as z:
        return {k: z[k] for k in z.files}


def worst_difference(a, b):
    return max(float(np.abs(a[k] - b[k]).max() / max(np.abs(a[k]).max(), 1e-300)) for k in a)


def ok(result):
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


# -- the same training on 1 and on 2 processes ------------------------------------------------
@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: one process, global batch 12, three steps (three epochs of one step)."""
    out = tmp_path_factory.mktemp("one")
    ok(alone(WORKER, "--out", str(out)))
    return weights(out)


@pytest.mark.parametrize("columns", [False, True], ids=["one-column", "two-columns"])
def test_two_processes_train_the_one_process_model(tmp_path, one_process, columns):
    extra = ["--columns"] if columns else []
    ok(mpirun(2, WORKER, "--out", str(tmp_path), *extra))
    got = weights(tmp_path)
    assert worst_difference(one_process, got) < 1e-12
    assert worst_difference(initial_weights(), got) > 1e-3  # every layer moved: the check has teeth


def initial_weights():
    from minialex.models import AlexNet
    net = AlexNet(4, preset="tiny", input_size=24, dtype=np.float64, seed=5, init_std=0.2)  # as mpi_worker.py's
    return {k: np.asarray(v) for k, v in net.state_dict().items()}


def test_a_smaller_batch_gives_other_weights(tmp_path, one_process):
    """Each process alone with its own 6 images is not the same training: what the allreduce adds."""
    ok(alone(WORKER, "--out", str(tmp_path), "--global-batch", "6"))
    assert worst_difference(one_process, weights(tmp_path)) > 1e-6


def test_uneven_and_empty_shares(tmp_path):
    """13 images in batches of 6: the last global batch has one image, so on 3 processes two
    shares are empty (they still take the step, with zero gradient)."""
    ok(alone(WORKER, "--out", str(tmp_path / "one"), "--global-batch", "6", "--images", "13", "--epochs", "2"))
    ok(mpirun(3, WORKER, "--out", str(tmp_path / "three"), "--global-batch", "6", "--images", "13",
              "--epochs", "2"))
    assert worst_difference(weights(tmp_path / "one"), weights(tmp_path / "three")) < 1e-12


@pytest.mark.parametrize("first,then", [(2, 1), (1, 2)], ids=["2-then-1", "1-then-2"])
def test_resume_on_another_number_of_processes(tmp_path, one_process, first, then):
    """One step on ``first`` processes, a checkpoint, two more steps on ``then`` of them."""
    out = tmp_path / "run"
    start = [WORKER, "--out", str(out), "--epochs", "1", "--columns"]
    ok(mpirun(first, *start) if first > 1 else alone(*start))
    more = [WORKER, "--out", str(out), "--resume", str(out / "checkpoint.npz"), "--columns"]
    ok(mpirun(then, *more) if then > 1 else alone(*more))
    assert worst_difference(one_process, weights(out)) < 1e-12


@pytest.mark.parametrize("first,then", [(2, 2), (2, 1)], ids=["2-then-2", "2-then-1"])
def test_stopped_mid_epoch_and_resumed(tmp_path, first, then):
    """Three steps in one epoch of 36 images; process 0 alone asks for a stop after the first
    step (as its Ctrl-C handler would): every process stops there, a checkpoint in the middle of
    the epoch, then --resume does the last two steps."""
    ok(alone(WORKER, "--out", str(tmp_path / "straight"), "--images", "36", "--epochs", "1"))
    out = tmp_path / "run"
    ok(mpirun(first, WORKER, "--out", str(out), "--images", "36", "--epochs", "1", "--stop-after", "1"))
    from minialex.weights.checkpoint import load_checkpoint
    _, meta = load_checkpoint(str(out / "checkpoint.npz"))
    assert (meta["epoch"], meta["step_in_epoch"]) == (0, 1)
    more = [WORKER, "--out", str(out), "--images", "36", "--epochs", "1", "--resume", str(out / "checkpoint.npz")]
    ok(mpirun(then, *more) if then > 1 else alone(*more))
    assert worst_difference(weights(tmp_path / "straight"), weights(out)) < 1e-12


def test_resume_on_another_layout(tmp_path, one_process):
    """Two processes with the two-column model each, then one process with the one-device model:
    the checkpoint's velocities carry the full names and shapes, so they fit either placement."""
    out = tmp_path / "run"
    ok(mpirun(2, WORKER, "--out", str(out), "--epochs", "1", "--columns"))
    ok(alone(WORKER, "--out", str(out), "--resume", str(out / "checkpoint.npz")))
    assert worst_difference(one_process, weights(out)) < 1e-12


# -- the training script under mpiexec --------------------------------------------------------
TINY = ["--model", "tiny", "--max-images", "64", "-b", "8", "--no-progress", "-j", "1", "--print-freq", "1"]


def test_processes_started_differently_stop_at_start_up(tmp_path):
    out = str(tmp_path / "run")
    base = [sys.executable, SCRIPT, *TINY, "--epochs", "1", "--output-dir", out]
    r = subprocess.run(MPIEXEC + ["-n", "1", *base, ":", "-n", "1", *base, "--seed", "1"], capture_output=True,
                       text=True, env=ENV, timeout=120, cwd=ROOT)
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert lines == ["error: the processes cannot train together: process 1 was started with --seed 1, "
                     "process 0 with --seed 0"], r.stderr
    assert not os.path.exists(out)  # nothing was written


def test_a_bad_value_in_one_process_is_reported_once(tmp_path):
    base = [sys.executable, SCRIPT, *TINY, "--epochs", "1", "--output-dir", str(tmp_path / "run")]
    r = subprocess.run(MPIEXEC + ["-n", "1", *base, ":", "-n", "1", *base, "--data", str(tmp_path / "nowhere")],
                       capture_output=True, text=True, env=ENV, timeout=120, cwd=ROOT)
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: process 1: ") and "nowhere" in errors[0], r.stderr


def test_a_failing_process_ends_the_run(tmp_path):
    out = tmp_path / "run"
    t0 = time.monotonic()
    r = mpirun(2, CRASH, "1", "6", "raise", *TINY, "--epochs", "3", "--output-dir", str(out), timeout=BOUND)
    assert r.returncode != 0 and time.monotonic() - t0 < BOUND
    assert "error: process 1 of 2: RuntimeError: failure made on purpose in step 6" in r.stdout + r.stderr
    from minialex.weights.checkpoint import load_checkpoint
    _, meta = load_checkpoint(str(out / "checkpoint.npz"))  # epoch 1's (4 steps an epoch), intact
    assert meta["epoch"] == 1 and meta["processes"] == 2


def test_a_process_that_hangs_ends_the_run_after_the_timeout(tmp_path):
    out = tmp_path / "run"
    t0 = time.monotonic()
    r = mpirun(2, CRASH, "1", "6", "hang", *TINY, "--epochs", "3", "--timeout", "3", "--output-dir", str(out),
               timeout=BOUND)
    assert r.returncode != 0 and time.monotonic() - t0 < BOUND
    assert "no progress in 3 s of training" in r.stdout + r.stderr


def _rank_pid(rank, marker):
    """The pid of the training process of ``rank`` whose command line contains ``marker``."""
    names = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
            if marker not in cmd or "python" not in cmd:
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(e.split("=", 1) for e in f.read().decode(errors="replace").split("\0") if "=" in e)
        except OSError:
            continue
        if any(env.get(n) == str(rank) for n in names):
            return int(pid)
    return None


def _start(out, epochs):
    return subprocess.Popen(MPIEXEC + ["-n", "2", sys.executable, SCRIPT, *TINY, "--epochs", str(epochs),
                                       "--output-dir", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)


def _wait_for(path, proc, limit=BOUND):
    t0 = time.monotonic()
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < limit, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the process through /proc")
def test_a_killed_process_ends_the_run(tmp_path):
    out = tmp_path / "run"
    proc = _start(out, epochs=400)
    try:
        _wait_for(out / "checkpoint.npz", proc)
        pid = _rank_pid(1, str(out))
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        said = "".join(proc.communicate(timeout=BOUND))
        assert proc.returncode != 0 and time.monotonic() - t0 < BOUND
        assert "signal 9" in said or "Killed" in said  # the launcher says which process died
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    from minialex.weights.checkpoint import load_checkpoint
    _, meta = load_checkpoint(str(out / "checkpoint.npz"))  # intact: written atomically
    assert meta["epoch"] >= 1


def test_a_stop_signal_saves_one_checkpoint_that_resumes(tmp_path):
    """Ctrl-C with MPICH's mpiexec (it passes SIGINT on to the processes); SIGUSR1 with Open
    MPI's, which ends the processes within half a second of a Ctrl-C but passes SIGUSR1 on."""
    out = tmp_path / "run"
    proc = _start(out, epochs=400)
    try:
        _wait_for(out / "checkpoint.npz", proc)
        proc.send_signal(signal.SIGUSR1 if OPEN_MPI else signal.SIGINT)
        _, err = proc.communicate(timeout=BOUND)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted (SIG" in err and "mpiexec -n 2 " in err and "--resume" in err
    from minialex.weights.checkpoint import load_checkpoint
    _, meta = load_checkpoint(str(out / "checkpoint.npz"))
    done = meta["epoch"]
    assert done < 400
    r = ok(mpirun(2, SCRIPT, "--resume", str(out / "checkpoint.npz"), "--epochs", str(done + 1), "--no-progress"))
    assert "resuming" in r.stdout
    _, meta = load_checkpoint(str(out / "checkpoint.npz"))
    assert meta["epoch"] == done + 1 and meta["step_in_epoch"] == 0
