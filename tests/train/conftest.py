"""Shared fixtures for the training tests: a tiny real-JPEG ImageFolder (made by the synthetic
generator, 10 classes of 32 px images), a 3-class folder of 72 px images, and helpers that
run the command-line scripts in a subprocess as a user would."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from minialex.data import ensure_synthetic_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join(ROOT, "examples", "train_imagenet.py")
TRAIN_CIFAR = os.path.join(ROOT, "examples", "train_cifar10.py")
PREDICT = os.path.join(ROOT, "examples", "predict.py")


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "tiny"
    return str(ensure_synthetic_dataset(root, image_size=32, train_per_class=6, val_per_class=3))


@pytest.fixture(scope="session")
def small_folder(tmp_path_factory):
    """3 classes of 72x72 JPEGs (8 train and 3 val each): the "tiny folder of small images" case."""
    root = tmp_path_factory.mktemp("data") / "flowers72"
    rng = np.random.default_rng(3)
    for split, n in (("train", 8), ("val", 3)):
        for wnid in ("n1", "n2", "n3"):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (72, 72, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{wnid}_{i}.JPEG", quality=90)
    return str(root)


def tiny_args(data, out, *extra):
    """CLI arguments for a seconds-long run of the tiny network on the tiny folder."""
    return ["--data", data, "--output-dir", str(out), "--model", "tiny", "--resize-size", "28",
            "--crop-size", "24", "-b", "16", "-j", "2", "--no-progress", "--stats-images", "60", *extra]


def script(*args, cwd=ROOT, env=None):
    """Run ``python *args`` the way a user would; returns the CompletedProcess."""
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=str(cwd),
                          env=dict(os.environ, PYTHONPATH=ROOT, **(env or {})), timeout=300)


def assert_one_line_error(proc, *words, code=2):
    """Exit code ``code``, no traceback, and stderr exactly one line starting with "error:"
    that contains every one of ``words``."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]
