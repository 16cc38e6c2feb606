"""Nothing finished is ever overwritten, and the defaults fit the data; each case run in a
subprocess as a user would: the output-folder rule and --overwrite, --resume continuing in the
checkpoint's own folder, finished runs, class-count mismatches and --reset-classifier, the
network and crop chosen from the images, and a real Ctrl-C followed by the printed command."""

import csv
import json
import os
import re
import shlex
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from minialex.data import ImageFolder
from minialex.train import load_checkpoint
from minialex.train.build import model_for_images, typical_shorter_side

from .conftest import ROOT, TRAIN, assert_one_line_error, script, tiny_args
from .test_cli import tree


def tiny(data, *extra):
    """tiny_args without --output-dir, so the default folder is used."""
    return ["--data", data, "--model", "tiny", "--resize-size", "28", "--crop-size", "24", "-b", "16", "-j", "2",
            "--no-progress", "--stats-images", "60", *extra]


def epochs_in(folder):
    return [int(r["epoch"]) for r in csv.DictReader(open(os.path.join(folder, "metrics.csv")))]


@pytest.fixture(scope="module")
def one_epoch(tiny_folder, tmp_path_factory):
    """A finished 1-epoch run; tests copy it before changing it."""
    out = tmp_path_factory.mktemp("done") / "run"
    proc = script(TRAIN, *tiny_args(tiny_folder, out, "--epochs", "1"))
    assert proc.returncode == 0, proc.stderr
    return out


def copy_run(src, dst):
    os.makedirs(dst)
    for name in os.listdir(src):
        with open(os.path.join(src, name), "rb") as f, open(os.path.join(dst, name), "wb") as g:
            g.write(f.read())
    return dst


# -- one rule for existing folders -------------------------------------------------------------
def test_a_new_run_refuses_a_folder_that_holds_a_run(tiny_folder, tmp_path):
    first = script(TRAIN, *tiny(tiny_folder, "--epochs", "2"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = tmp_path / "runs" / "alexnet-tiny-tiny"  # data folder "tiny", model "tiny"
    assert f"output in {os.path.join('runs', 'alexnet-tiny-tiny')}" in first.stdout
    before = tree(tmp_path)
    again = script(TRAIN, *tiny(tiny_folder, "--epochs", "1"), cwd=tmp_path)  # the README smoke-run mistake
    assert_one_line_error(again, "already holds a run", os.path.join("runs", "alexnet-tiny-tiny"), "--overwrite",
                          "--output-dir")
    assert tree(tmp_path) == before  # not one file touched, not even args.json
    assert epochs_in(out) == [1, 2]


def test_overwrite_replaces_the_old_run_entirely(tiny_folder, tmp_path, one_epoch):
    out = copy_run(one_epoch, tmp_path / "run")
    (out / "notes.txt").write_text("mine")  # not a run file: left alone
    proc = script(TRAIN, *tiny_args(tiny_folder, out, "--epochs", "2", "--seed", "1", "--overwrite"))
    assert proc.returncode == 0, proc.stderr
    assert epochs_in(out) == [1, 2] and json.load(open(out / "args.json"))["seed"] == 1
    for name in ("checkpoint.npz", "checkpoint_best.npz"):
        assert load_checkpoint(out / name)[1]["args"]["seed"] == 1, name
    assert (out / "notes.txt").read_text() == "mine"


# -- --resume ------------------------------------------------------------------------------------
def test_resume_continues_in_the_checkpoints_folder(tiny_folder, tmp_path, one_epoch):
    run = copy_run(one_epoch, tmp_path / "x")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    other = script(TRAIN, *tiny(tiny_folder, "--epochs", "1", "--seed", "5"), cwd=elsewhere)
    assert other.returncode == 0, other.stderr
    before = tree(elsewhere)
    # the command the Ctrl-C message prints, given from a folder that holds another run in the default place
    proc = script(TRAIN, "--resume", run / "checkpoint.npz", "--epochs", "2", "--no-progress", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert f"output in {run} (the checkpoint's folder)" in proc.stdout
    assert "resuming" in proc.stdout and "4 steps of 16 left until epoch 2" in proc.stdout
    assert epochs_in(run) == [1, 2] and load_checkpoint(run / "checkpoint.npz")[1]["epoch"] == 2
    assert json.load(open(run / "args.json"))["epochs"] == 2
    assert tree(elsewhere) == before  # the other run is untouched


def test_resume_into_another_folder_is_honoured_and_said(tiny_folder, tmp_path, one_epoch):
    run = copy_run(one_epoch, tmp_path / "x")
    before = tree(run)
    branch = tmp_path / "branch"
    proc = script(TRAIN, "--resume", run, "--epochs", "2", "--output-dir", branch, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert f"output in {branch} (--output-dir; the checkpoint's own folder {run} is left as it is)" in proc.stdout
    assert tree(run) == before
    assert epochs_in(branch) == [1, 2]
    _, best = load_checkpoint(branch / "checkpoint_best.npz")  # the branch has its own best checkpoint
    _, latest = load_checkpoint(branch / "checkpoint.npz")
    assert best["epoch"] == latest["best"]["epoch"]


def test_resuming_the_best_checkpoint_in_place_is_refused(tiny_folder, tmp_path, one_epoch):
    run = copy_run(one_epoch, tmp_path / "x")
    before = tree(run)
    proc = script(TRAIN, "--resume", run / "checkpoint_best.npz", "--epochs", "3")
    assert_one_line_error(proc, "checkpoint_best.npz", "holds another checkpoint", "--output-dir", "--overwrite")
    assert tree(run) == before
    proc = script(TRAIN, "--resume", run / "checkpoint_best.npz", "--epochs", "2", "--overwrite", "--no-progress")
    assert proc.returncode == 0, proc.stderr  # allowed when asked for: the later checkpoint is replaced
    assert epochs_in(run) == [1, 2] and load_checkpoint(run / "checkpoint.npz")[1]["epoch"] == 2


def test_resuming_a_finished_run_says_how_to_train_further(tiny_folder, tmp_path, one_epoch):
    run = copy_run(one_epoch, tmp_path / "x")
    before = tree(run)
    assert_one_line_error(script(TRAIN, "--resume", run), "finished all 1 epochs", "--epochs N with N > 1")
    assert_one_line_error(script(TRAIN, "--resume", run, "--epochs", "1"), "--epochs 1 is not more than",
                          "N > 1")
    assert tree(run) == before


def test_ctrl_c_then_the_printed_command(tiny_folder, tmp_path):
    run = tmp_path / "x"
    args = [sys.executable, TRAIN, *tiny_args(tiny_folder, run, "--epochs", "20", "-b", "60")]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    for line in proc.stdout:  # wait until training is under way: after the first epoch line
        if line.startswith("epoch 1/20"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    message = lines[0]
    match = re.search(r"continue with: (.+)$", message)
    assert match and f"saved {run / 'checkpoint.npz'}" in message, message
    _, meta = load_checkpoint(run / "checkpoint.npz")
    assert 1 <= meta["epoch"] < 20
    command = shlex.split(match.group(1))  # the whole command, as a user would paste it
    assert command[:2] == ["python", TRAIN] and command[2:4] == ["--resume", str(run / "checkpoint.npz")], command
    resumed = script(*command[1:], cwd=tmp_path)  # exactly what it said (python: this interpreter)
    assert resumed.returncode == 0, resumed.stderr
    assert epochs_in(run) == list(range(1, 21))
    assert sorted(os.listdir(tmp_path)) == ["x"]  # nothing written anywhere else


# -- other classes -------------------------------------------------------------------------------
def test_class_count_mismatch_names_the_shapes(small_folder, tmp_path, one_epoch):
    proc = script(TRAIN, "--data", small_folder, "--resume", one_epoch, "--epochs", "4",
                  "--output-dir", tmp_path / "out")
    line = assert_one_line_error(proc, "num_classes 10 vs 3", "fc8.weight (10, 8) vs (3, 8)",
                                 "fc8.bias (10,) vs (3,)", "--reset-classifier")
    assert len(line) < 400
    proc = script(TRAIN, "--data", small_folder, "--weights", one_epoch, "--output-dir", tmp_path / "out")
    assert_one_line_error(proc, "10 classes", "this data has 3", "fc8.weight (10, 8) vs (3, 8)",
                          "--reset-classifier")
    assert not (tmp_path / "out").exists()


def test_weights_with_reset_classifier_start_from_all_but_fc8(small_folder, tmp_path, one_epoch):
    out = tmp_path / "fine"
    proc = script(TRAIN, "--data", small_folder, "--weights", one_epoch, "--reset-classifier", "--epochs", "1",
                  "--lr", "1e-9", "--output-dir", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert f"from the weights of {one_epoch / 'checkpoint_best.npz'} (all layers but fc8)" in proc.stdout
    source, _ = load_checkpoint(one_epoch / "checkpoint_best.npz")
    tuned, meta = load_checkpoint(out / "checkpoint.npz")
    assert meta["model_config"]["num_classes"] == 3 and tuned["model/fc8.weight"].shape == (3, 8)
    assert meta["args"]["model"] == "tiny" and meta["args"]["crop_size"] == 24  # the checkpoint's
    for name in ("conv1.weight", "conv5.bias", "fc7.weight"):  # one tiny step at lr 1e-9 from the source
        np.testing.assert_allclose(tuned[f"model/{name}"], source[f"model/{name}"], atol=1e-6, err_msg=name)


# -- the network fits the data -------------------------------------------------------------------
def test_small_images_get_the_small_preset_a_warning_and_no_top5(small_folder, tmp_path):
    proc = script(TRAIN, "--data", small_folder, "--epochs", "1", "--no-progress", "--stats-images", "24",
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "synthetic preset" in proc.stdout and "56x56 crops of 64x64 images" in proc.stdout
    assert "images of about 72 px" in proc.stdout
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "per training image (24 images" in warnings[0]
    out = tmp_path / "runs" / "alexnet-flowers72-synthetic"
    args = json.load(open(out / "args.json"))
    assert (args["model"], args["crop_size"], args["resize_size"]) == ("synthetic", 56, 64)
    assert "val_top5_err" not in open(out / "metrics.csv").readline()  # 3 classes: no top-5
    assert "top5" not in proc.stdout


def test_the_preset_follows_the_image_size(tmp_path, tiny_folder):
    assert model_for_images(None) == "paper"  # unknown: assume ImageNet
    assert [model_for_images(s) for s in (500, 224, 223, 72, 48, 47, 32)] == \
        ["paper", "paper", "synthetic", "synthetic", "synthetic", "cifar10", "cifar10"]
    for wnid in ("a", "b"):
        (tmp_path / "train" / wnid).mkdir(parents=True)
        for i, size in enumerate([(300, 260), (400, 350), (200, 180)]):
            Image.new("RGB", size).save(tmp_path / "train" / wnid / f"{i}.jpg")
    assert typical_shorter_side(ImageFolder(tmp_path, "train")) == 260
    assert typical_shorter_side(ImageFolder(tiny_folder, "train")) == 32

    class Streamed:  # like tar shards: a length, no random access
        def __len__(self):
            return 10

    assert typical_shorter_side(Streamed()) is None  # -> the paper's net, as for unknown sizes

    class Prepared(Streamed):  # tar shards whose minialex-prepare manifest gives the size
        prepared_size = 64

    assert model_for_images(typical_shorter_side(Prepared())) == "synthetic"
