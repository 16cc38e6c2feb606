"""Exact resume: 2 epochs straight equal 1 epoch + resume + 1 epoch, bitwise on NumPy;
and a run interrupted mid-epoch (Ctrl-C) continues from the very batch it stopped at, with the
best checkpoint kept consistent."""

import os
import signal

import numpy as np
from minialex.train import Trainer, load_checkpoint
from minialex.train.cli import main, run

from .conftest import tiny_args


def model_arrays(path):
    arrays, _ = load_checkpoint(path)
    return {k: v for k, v in arrays.items() if k.startswith(("model/", "momentum/"))}


def assert_bitwise_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_resume_between_epochs_is_bitwise_exact(tiny_folder, tmp_path):
    assert main(tiny_args(tiny_folder, tmp_path / "straight", "--epochs", "2")) == 0
    assert main(tiny_args(tiny_folder, tmp_path / "first", "--epochs", "1")) == 0
    assert main(tiny_args(tiny_folder, tmp_path / "second", "--epochs", "2",
                          "--resume", str(tmp_path / "first" / "checkpoint.npz"))) == 0
    straight = model_arrays(tmp_path / "straight" / "checkpoint.npz")
    assert_bitwise_equal(straight, model_arrays(tmp_path / "second" / "checkpoint.npz"))
    _, meta_a = load_checkpoint(tmp_path / "straight" / "checkpoint.npz")
    _, meta_b = load_checkpoint(tmp_path / "second" / "checkpoint.npz")
    for ra, rb in zip(meta_a["history"], meta_b["history"]):
        assert ra["train_loss"] == rb["train_loss"] and ra["val_top1_err"] == rb["val_top1_err"]
    assert meta_a["dropout"] == meta_b["dropout"]


def test_interrupt_mid_epoch_then_resume_is_bitwise_exact(tiny_folder, tmp_path, monkeypatch, capsys):
    assert main(tiny_args(tiny_folder, tmp_path / "straight", "--epochs", "2")) == 0

    original = Trainer.train_step
    calls = {"n": 0}

    def interrupted(self, images, labels):
        calls["n"] += 1
        if calls["n"] == 6:  # epoch 2 of 4 steps each: Ctrl-C during its second step
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, images, labels)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    capsys.readouterr()
    assert main(tiny_args(tiny_folder, tmp_path / "cut", "--epochs", "2")) == 130
    cut = str(tmp_path / "cut" / "checkpoint.npz")
    # the signal came before the step's exchange: the run stops there, 1 step of epoch 2 done;
    # the message gives the whole command, with this invocation's own flags
    err = capsys.readouterr().err
    assert f"interrupted (SIGINT) at epoch 2, step 1: saved {cut}; continue with: " in err
    assert err.strip().endswith(f"--resume {cut} --workers 2 --no-progress")
    monkeypatch.setattr(Trainer, "train_step", original)
    _, meta = load_checkpoint(cut)
    assert (meta["epoch"], meta["step_in_epoch"], meta["best"]["epoch"]) == (1, 1, 1)

    assert main(["--resume", cut, "--no-progress"]) == 0  # every other option comes from the checkpoint
    out = capsys.readouterr().out
    assert "at epoch 2, step 2 of 4: 3 steps of 16 left until epoch 2" in out  # 4 - 1 done
    assert_bitwise_equal(model_arrays(tmp_path / "straight" / "checkpoint.npz"), model_arrays(cut))
    for name in ("checkpoint.npz", "checkpoint_best.npz"):  # the same history and best as the straight run
        _, a = load_checkpoint(tmp_path / "straight" / name)
        _, b = load_checkpoint(tmp_path / "cut" / name)
        assert (a["epoch"], a["best"]) == (b["epoch"], b["best"]), name


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_folder, tmp_path, capsys, monkeypatch):
    out = tmp_path / "nan"
    assert main(tiny_args(tiny_folder, out, "--epochs", "1")) == 0
    good = model_arrays(out / "checkpoint.npz")

    original = Trainer.train_step

    def diverging(self, images, labels):
        loss, logits = original(self, images, labels)
        return (np.float32("nan") if self.step_in_epoch == 2 else loss), logits  # 3rd step of epoch 2

    monkeypatch.setattr(Trainer, "train_step", diverging)
    code = main(tiny_args(tiny_folder, out, "--epochs", "3", "--print-freq", "1",
                          "--resume", str(out / "checkpoint.npz")))
    err = capsys.readouterr().err
    assert code == 1
    assert "loss became nan at epoch 2, step 3" in err and "last good checkpoint" in err
    assert_bitwise_equal(good, model_arrays(out / "checkpoint.npz"))


def test_two_device_mode_trains_on_cpu(tiny_folder, tmp_path):
    one = run(tiny_args(tiny_folder, tmp_path / "one", "--epochs", "1"))
    two = run(tiny_args(tiny_folder, tmp_path / "two", "--epochs", "1", "--devices", "0,1"))
    assert one == two == 0
    a = model_arrays(tmp_path / "one" / "checkpoint.npz")
    b = model_arrays(tmp_path / "two" / "checkpoint.npz")
    for k in a:
        if k.startswith("model/"):
            np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-6, err_msg=k)
