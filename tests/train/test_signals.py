"""A stop signal (Ctrl-C = SIGINT, or SIGTERM) wherever it lands: during a training step's forward,
its backward, its update, validation, or while a checkpoint is being written, the run saves one
consistent instant, and resuming it gives the straight run's weights, velocities, dropout
counters and history bit for bit (docs/training.md, "What a signal does").

The in-process tests send the signal to this very process from inside the chosen moment, so
the moment is exact; the subprocess test sends it from outside at moments the clock picks."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import minialex.train.state as state_module
from minialex.models import AlexNet
from minialex.optim import SGD
from minialex.train import load_checkpoint
from minialex.train.cli import main

from .conftest import ROOT, TRAIN, tiny_args

EPOCHS = 2  # of 4 steps each (60 images, -b 16) and 2 validation batches (30 images)


def state_of(path):
    """Everything a resumed run must reproduce: the arrays, and the header's training state."""
    arrays, meta = load_checkpoint(path)
    kept = {k: v for k, v in arrays.items() if k.startswith(("model/", "momentum/"))}
    history = [{k: r[k] for k in ("epoch", "lr", "train_loss", "train_top1_err", "val_loss", "val_top1_err")}
               for r in meta["history"]]
    return kept, (meta["epoch"], meta["step_in_epoch"], meta["dropout"], meta["schedule"], meta["best"], history)


def assert_same_run(a, b):
    (arrays_a, meta_a), (arrays_b, meta_b) = a, b
    assert arrays_a.keys() == arrays_b.keys()
    for k in arrays_a:
        assert np.array_equal(arrays_a[k], arrays_b[k]), k
    assert meta_a == meta_b


@pytest.fixture(scope="module")
def straight(tiny_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    assert main(tiny_args(tiny_folder, out, "--epochs", str(EPOCHS))) == 0
    return state_of(out / "checkpoint.npz")


def on_call(monkeypatch, owner, name, nth, signum, when=None):
    """Patch ``owner.name`` to send ``signum`` to this process during its ``nth`` call (counting
    only calls where ``when(self, *args)`` holds), between its start and its work."""
    original = getattr(owner, name)
    calls = {"n": 0}

    def patched(*args, **kwargs):
        if when is None or when(*args):
            calls["n"] += 1
            if calls["n"] == nth:
                os.kill(os.getpid(), signum)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, patched)
    return calls


def training(model, *args):
    return model.training


def evaluating(model, *args):
    return not model.training


# (where, which call): the moments the issue names, spread over both epochs
MOMENTS = {
    "forward, epoch 1 step 2": (AlexNet, "forward", 2, training),
    "forward, epoch 2 step 3": (AlexNet, "forward", 7, training),
    "backward, epoch 1 step 4": (AlexNet, "backward", 4, None),
    "backward, epoch 2 step 1": (AlexNet, "backward", 5, None),
    "update, epoch 1 step 1": (SGD, "step", 1, None),
    "update, epoch 2 step 4": (SGD, "step", 8, None),
    "validation, epoch 1 batch 1": (AlexNet, "forward", 1, evaluating),
    "validation, epoch 2 batch 1": (AlexNet, "forward", 3, evaluating),
    "writing the best checkpoint": (state_module, "save_checkpoint", 1, None),
    "writing the latest checkpoint": (state_module, "save_checkpoint", 2, None),
}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_stop_anywhere_then_resume_equals_the_straight_run(moment, signum, straight, tiny_folder, tmp_path,
                                                           monkeypatch, capsys):
    owner, name, nth, when = MOMENTS[moment]
    out = tmp_path / "cut"
    calls = on_call(monkeypatch, owner, name, nth, signum, when)
    code = main(tiny_args(tiny_folder, out, "--epochs", str(EPOCHS)))
    monkeypatch.undo()
    assert calls["n"] >= nth  # the signal was sent
    err = capsys.readouterr().err
    assert code == 130, err
    cut = out / "checkpoint.npz"
    assert f"interrupted ({signal.Signals(signum).name}) " in err and f"saved {cut}" in err
    assert "continue with: " in err and f"--resume {cut}" in err
    assert [f for f in os.listdir(out) if f.startswith(".tmp-")] == []
    assert main(["--resume", str(cut), "--no-progress"]) == 0
    assert_same_run(straight, state_of(cut))


def test_the_saved_instant_is_between_two_steps(tiny_folder, tmp_path, monkeypatch, capsys):
    """A signal during step 2's forward is taken once that step is whole: the checkpoint is
    "2 steps done" and its dropout counters count exactly 2 training forwards (the defect was
    a checkpoint of step 1 with the counters of step 2)."""
    on_call(monkeypatch, AlexNet, "forward", 2, signal.SIGINT, training)
    assert main(tiny_args(tiny_folder, tmp_path / "cut", "--epochs", "1")) == 130
    _, meta = load_checkpoint(tmp_path / "cut" / "checkpoint.npz")
    assert (meta["epoch"], meta["step_in_epoch"]) == (0, 2)
    assert {d["calls"] for d in meta["dropout"].values()} == {2}


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_checkpoint(tiny_folder, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cut"
    original = SGD.step
    calls = {"n": 0}

    def twice(self):
        calls["n"] += 1
        if calls["n"] == 6:  # epoch 2: the first Ctrl-C is noted, the second one insists
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return original(self)

    monkeypatch.setattr(SGD, "step", twice)
    assert main(tiny_args(tiny_folder, out, "--epochs", "2")) == 130
    assert "interrupted; no checkpoint was written by this command" in capsys.readouterr().err
    _, meta = load_checkpoint(out / "checkpoint.npz")  # epoch 1's, whole
    assert (meta["epoch"], meta["step_in_epoch"]) == (1, 0)
    assert [f for f in os.listdir(out) if f.startswith(".tmp-")] == []


def test_signals_from_outside_at_moments_the_clock_picks(tiny_folder, tmp_path):
    """The real thing: a process started as a user would, signalled from outside while it trains."""
    epochs = 12
    subprocess.run([sys.executable, TRAIN, *tiny_args(tiny_folder, tmp_path / "straight", "--epochs", str(epochs))],
                   check=True, capture_output=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    straight = state_of(tmp_path / "straight" / "checkpoint.npz")
    interrupted = 0
    for i, (delay, signum) in enumerate([(0.0, signal.SIGINT), (0.15, signal.SIGTERM), (0.35, signal.SIGINT),
                                         (0.6, signal.SIGTERM)]):
        out = tmp_path / f"cut{i}"
        proc = subprocess.Popen([sys.executable, TRAIN, *tiny_args(tiny_folder, out, "--epochs", str(epochs))],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                env=dict(os.environ, PYTHONPATH=ROOT))
        assert proc.stdout.readline().startswith("minialex: training")  # training has begun
        time.sleep(delay)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            continue  # finished before the signal came: nothing to resume
        assert proc.returncode == 130, err
        interrupted += 1
        cut = out / "checkpoint.npz"
        assert f"--resume {cut}" in err
        subprocess.run([sys.executable, TRAIN, "--resume", str(cut), "--no-progress"], check=True,
                       capture_output=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
        assert_same_run(straight, state_of(cut))
    assert interrupted >= 3
