"""The trainer's promises, each as a user meets it: options on --resume mean what they say (one rule,
option by option), OS errors are one line with the previous checkpoint intact, a failure before
the first checkpoint names no file that does not exist and blocks no retry, --max-images cannot
make "best" compare errors on different image sets, logs carry no progress bars, metrics.csv is
a proper text file."""

import json
import os
import subprocess

import pytest

from minialex.train import load_checkpoint
from minialex.train.config import RESUME_RULE

from .conftest import TRAIN, assert_one_line_error, script, tiny_args


@pytest.fixture(scope="module")
def two_epochs(tiny_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    proc = script(TRAIN, *tiny_args(tiny_folder, out, "--epochs", "2"))
    assert proc.returncode == 0, proc.stderr
    return out


def copy_run(src, dst):
    dst.mkdir()
    for name in os.listdir(src):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst / "checkpoint.npz"


# -- options on --resume ---------------------------------------------------------------------
def test_lr_given_on_resume_is_used_and_recorded(two_epochs, tmp_path):
    ckpt = copy_run(two_epochs, tmp_path / "run")
    proc = script(TRAIN, "--resume", ckpt, "--epochs", "3", "--lr", "0.0007", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    _, meta = load_checkpoint(ckpt)
    assert meta["history"][2]["lr"] == pytest.approx(0.0007)  # epoch 3 trained at the given rate
    assert meta["lr"] == pytest.approx(0.0007) or meta["lr"] == pytest.approx(0.00007)
    assert json.loads((tmp_path / "run" / "args.json").read_text())["lr"] == 0.0007
    assert "epoch 3/3  lr 0.0007" in proc.stdout


def test_step_schedule_restarts_from_the_given_rate(two_epochs, tmp_path):
    ckpt = copy_run(two_epochs, tmp_path / "run")
    proc = script(TRAIN, "--resume", ckpt, "--epochs", "5", "--lr", "0.2", "--lr-schedule", "step",
                  "--lr-step-size", "2", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    _, meta = load_checkpoint(ckpt)
    assert [round(r["lr"], 6) for r in meta["history"][2:]] == [0.2, 0.2, 0.02]  # counted from epoch 3


@pytest.mark.parametrize("flag,value", [("--momentum", "0.5"), ("--wd", "0.001"), ("-j", "1"),
                                        ("--print-freq", "1"), ("--on-corrupt", "raise")])
def test_applied_options_on_resume_are_recorded_as_used(two_epochs, tmp_path, flag, value):
    ckpt = copy_run(two_epochs, tmp_path / "run")
    proc = script(TRAIN, "--resume", ckpt, "--epochs", "3", flag, value, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    key = {"--wd": "weight_decay", "-j": "workers"}.get(flag, flag[2:].replace("-", "_"))
    recorded = json.loads((tmp_path / "run" / "args.json").read_text())[key]
    assert str(recorded) == value or recorded == pytest.approx(float(value))


@pytest.mark.parametrize("flag,value,saved", [("--model", "cifar10", "tiny"), ("--resize-size", "32", "28"),
                                              ("--crop-size", "20", "24"), ("--seed", "3", "0"),
                                              ("--stats-images", "10", "60"), ("--max-images", "20", None),
                                              ("--ten-crop", None, "off")])
def test_options_that_define_the_run_are_refused_on_resume(two_epochs, tmp_path, flag, value, saved):
    ckpt = copy_run(two_epochs, tmp_path / "run")
    before = sorted(os.listdir(tmp_path / "run"))
    proc = script(TRAIN, "--resume", ckpt, "--epochs", "3", flag, *([value] if value else []))
    if saved is None:
        saved = "None"
    assert_one_line_error(proc, f"{flag} cannot change on --resume", f"trained with {flag} {saved}", "--weights")
    assert sorted(os.listdir(tmp_path / "run")) == before


def test_the_same_value_of_a_run_option_is_not_a_change(two_epochs, tmp_path):
    ckpt = copy_run(two_epochs, tmp_path / "run")
    proc = script(TRAIN, "--resume", ckpt, "--epochs", "3", "--seed", "0", "--crop-size", "24", "--no-progress")
    assert proc.returncode == 0, proc.stderr


def test_batch_size_changes_only_at_an_epoch_boundary(two_epochs, tmp_path):
    ckpt = copy_run(two_epochs, tmp_path / "run")
    proc = script(TRAIN, "--resume", ckpt, "--epochs", "3", "-b", "8", "--no-progress")
    assert proc.returncode == 0, proc.stderr  # at an epoch boundary: applied
    assert json.loads((tmp_path / "run" / "args.json").read_text())["batch_size"] == 8
    arrays, meta = load_checkpoint(ckpt)
    meta["step_in_epoch"] = 2  # the same run, as if stopped mid-epoch
    from minialex.train import save_checkpoint
    mid = tmp_path / "mid" / "checkpoint.npz"
    save_checkpoint(mid, arrays, meta)
    assert_one_line_error(script(TRAIN, "--resume", mid, "--epochs", "4", "-b", "16"),
                          "-b can change on --resume only at an epoch boundary", "step 2")


def test_every_option_has_a_resume_rule():
    from minialex.train.arguments import build_parser
    dests = {a.dest for a in build_parser("imagenet")._actions if a.dest not in ("help",)}
    assert dests - {"resume", "weights", "reset_classifier", "test_only"} <= set(RESUME_RULE)


# -- OS errors ---------------------------------------------------------------------------------
def test_output_dir_under_proc_is_one_line(tiny_folder):
    proc = script(TRAIN, *tiny_args(tiny_folder, "/proc/x/run", "--epochs", "1"))
    assert_one_line_error(proc, "/proc/x/run", "cannot create the folder")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_disk_while_a_checkpoint_is_written(tiny_folder, tmp_path):
    """A real full disk: a tmpfs just big enough for epoch 1's files, then the run grows."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        out = disk / "run"
        proc = script(TRAIN, *tiny_args(tiny_folder, out, "--epochs", "1"))
        assert proc.returncode == 0, proc.stderr
        _, first = load_checkpoint(out / "checkpoint.npz")
        (disk / "filler").write_bytes(b"\0" * (disk_free(disk) - 4096))  # leave too little for a checkpoint
        proc = script(TRAIN, "--resume", out / "checkpoint.npz", "--epochs", "3", "--no-progress")
        assert_one_line_error(proc, "cannot write", "No space left on device", str(out / "checkpoint.npz"), code=1)
        _, after = load_checkpoint(out / "checkpoint.npz")  # the previous checkpoint, intact
        assert after["epoch"] == first["epoch"] == 1
        assert [f for f in os.listdir(out) if f.startswith(".tmp-")] == []
        (disk / "filler").unlink()
        proc = script(TRAIN, "--resume", out / "checkpoint.npz", "--epochs", "2", "--no-progress")
        assert proc.returncode == 0, proc.stderr  # and it resumes
    finally:
        subprocess.run(["umount", str(disk)])


def disk_free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


# -- a failure before the first checkpoint ------------------------------------------------------
def test_nan_before_the_first_checkpoint_names_no_missing_file(tiny_folder, tmp_path):
    out = tmp_path / "run"
    proc = script(TRAIN, *tiny_args(tiny_folder, out, "--epochs", "1", "--lr", "1e30", "--print-freq", "1"))
    line = assert_one_line_error(proc, "loss became", "no checkpoint was written", code=1)
    assert "checkpoint.npz" not in line
    assert not (out / "checkpoint.npz").exists()
    proc = script(TRAIN, *tiny_args(tiny_folder, out, "--epochs", "1"))  # the retry into the same folder
    assert proc.returncode == 0, proc.stderr


# -- like with like -----------------------------------------------------------------------------
def test_max_images_cannot_shrink_the_validation_set_on_resume(tiny_folder, tmp_path):
    out = tmp_path / "run"
    assert script(TRAIN, *tiny_args(tiny_folder, out, "--epochs", "1")).returncode == 0
    proc = script(TRAIN, "--resume", out / "checkpoint.npz", "--epochs", "2", "--max-images", "10")
    assert_one_line_error(proc, "--max-images cannot change on --resume")
    _, meta = load_checkpoint(out / "checkpoint.npz")
    assert meta["epoch"] == 1


# -- logs -----------------------------------------------------------------------------------------
def test_no_progress_bars_in_a_redirected_log_and_metrics_csv_is_text(tiny_folder, tmp_path):
    out = tmp_path / "run"
    proc = script(TRAIN, *[a for a in tiny_args(tiny_folder, out, "--epochs", "2") if a != "--no-progress"])
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "it/s" not in proc.stderr and "|" not in proc.stderr, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == ["minialex:", "epoch", "epoch", "done"]
    text = (out / "metrics.csv").read_bytes()
    assert text.endswith(b"\n") and b"\r" not in text and len(text.splitlines()) == 3
