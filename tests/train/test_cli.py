"""The example scripts as a user runs them: outputs of a tiny run, prediction, and
bad arguments ending in one line, a non-zero exit and no traceback."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from minialex.train import load_checkpoint

from .conftest import tiny_args

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join(ROOT, "examples", "train_imagenet.py")
PREDICT = os.path.join(ROOT, "examples", "predict.py")


def script(*args, env=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, **(env or {})), timeout=300)


def assert_one_line_error(proc, *words):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained(tiny_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    proc = script(TRAIN, *tiny_args(tiny_folder, out, "--epochs", "2"))
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_run_writes_every_output(trained):
    out, proc = trained
    assert "minialex: training AlexNet (tiny" in proc.stdout and "done in" in proc.stdout
    for name in ("checkpoint.npz", "metrics.csv", "args.json", "curves.png", "conv1_filters.png"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(0 <= float(r["val_top1_err"]) <= 100 and float(r["train_loss"]) > 0 for r in rows)
    assert json.load(open(out / "args.json"))["batch_size"] == 16
    arrays, meta = load_checkpoint(out / "checkpoint.npz")
    assert meta["classes"] == sorted(meta["classes"]) and len(meta["classes"]) == 10
    assert meta["names"][0] == "disc" and meta["epoch"] == 2
    assert "model/conv1.weight" in arrays and "momentum/conv1.weight" in arrays


def test_test_only_and_ten_crop(trained, tiny_folder):
    out, _ = trained
    ck = str(out / "checkpoint.npz")
    proc = script(TRAIN, *tiny_args(tiny_folder, out, "--test-only", "--resume", ck, "--ten-crop"))
    assert proc.returncode == 0, proc.stderr
    assert "Acc@1" in proc.stdout and "ten crops" in proc.stdout


def test_predict_prints_top5(trained, tiny_folder):
    out, _ = trained
    image = os.path.join(tiny_folder, "val", "s0000001", sorted(os.listdir(os.path.join(tiny_folder, "val", "s0000001")))[0])
    proc = script(PREDICT, image, "--checkpoint", str(out / "checkpoint.npz"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()[1:]
    assert len(lines) == 5 and lines[0].lstrip().startswith("1.")
    probs = [float(l.split("%")[0].split()[-1]) for l in lines]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 100.01


def test_missing_data_path(tmp_path):
    assert_one_line_error(script(TRAIN, "--data", str(tmp_path / "nope")), "not found", "nope")


def test_empty_data_folder(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    assert_one_line_error(script(TRAIN, "--data", str(tmp_path)), str(tmp_path))


def test_cupy_without_cupy_or_gpu(tiny_folder):
    try:
        from minialex import backend
        if backend.cupy_available():
            pytest.skip("this machine has a working CuPy")
    except Exception:
        pass
    assert_one_line_error(script(TRAIN, "--data", tiny_folder, "--backend", "cupy"), "CuPy")


def test_device_that_does_not_exist(tiny_folder):
    assert_one_line_error(script(TRAIN, "--data", tiny_folder, "--devices", "0,7"), "device 7 does not exist")


def test_bad_devices_text(tiny_folder):
    assert_one_line_error(script(TRAIN, "--data", tiny_folder, "--devices", "0,1,2"), "--devices")


def test_checkpoint_from_another_architecture(trained, tiny_folder, tmp_path):
    out, _ = trained
    proc = script(TRAIN, *tiny_args(tiny_folder, tmp_path, "--epochs", "1", "--model", "cifar10",
                                    "--resume", str(out / "checkpoint.npz")))
    assert_one_line_error(proc, "different network")


def test_corrupt_checkpoint_and_predict_errors(tmp_path, tiny_folder):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    proc = script(TRAIN, *tiny_args(tiny_folder, tmp_path, "--resume", str(bad)))
    assert_one_line_error(proc, "cannot read checkpoint")
    assert_one_line_error(script(PREDICT, str(tmp_path / "missing.jpg"), "--checkpoint", str(bad)), "not found")
    img = tmp_path / "x.jpg"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    assert_one_line_error(script(PREDICT, str(img), "--checkpoint", str(bad)), "cannot read checkpoint")


def test_train_cifar10_script(tmp_path):
    from tests.data.test_cifar10 import write_fake_cifar
    root = tmp_path / "cifar"
    write_fake_cifar(root, n=8)
    proc = script(os.path.join(ROOT, "examples", "train_cifar10.py"), "--data", str(root), "--epochs", "1",
                  "-b", "8", "--output-dir", str(tmp_path / "out"), "--no-progress", "--model", "tiny",
                  "--crop-size", "24")
    assert proc.returncode == 0, proc.stderr
    assert "CIFAR-10" in proc.stdout and (tmp_path / "out" / "checkpoint.npz").is_file()
    assert_one_line_error(script(os.path.join(ROOT, "examples", "train_cifar10.py"), "--data",
                                 str(tmp_path / "nope")), "nope")
