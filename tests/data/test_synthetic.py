import os

import numpy as np
import pytest

from minialex.data import (SYNTHETIC_CLASSES, DataError, ImageFolder, ensure_synthetic_dataset,
                           render_sample)

SMALL = dict(image_size=32, train_per_class=4, val_per_class=2)


def test_generated_once_and_readable(tmp_path):
    root = ensure_synthetic_dataset(tmp_path / "syn", **SMALL)
    marker = os.path.join(root, "minialex-synthetic.json")
    first = os.stat(marker).st_mtime_ns
    some = os.path.join(root, "train", "s0000001", "s0000001_00000.JPEG")
    some_mtime = os.stat(some).st_mtime_ns
    assert ensure_synthetic_dataset(tmp_path / "syn", **SMALL) == root
    assert os.stat(marker).st_mtime_ns == first and os.stat(some).st_mtime_ns == some_mtime
    assert not [p for p in os.listdir(tmp_path) if "tmp" in p]

    train = ImageFolder(root, "train")
    val = ImageFolder(root, "val", classes=train.classes)
    assert train.classes == [w for w, _ in SYNTHETIC_CLASSES]
    assert train.names[0] == "disc" and train.names[9] == "dots"
    assert np.bincount(train.targets).tolist() == [4] * 10
    assert np.bincount(val.targets).tolist() == [2] * 10
    img, label = train.load(len(train) - 1)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8 and label == 9


def test_deterministic(tmp_path):
    a = ensure_synthetic_dataset(tmp_path / "a", **SMALL)
    b = ensure_synthetic_dataset(tmp_path / "b", **SMALL)
    for split in ("train", "val"):
        for wnid, _ in SYNTHETIC_CLASSES:
            files = sorted(os.listdir(os.path.join(a, split, wnid)))
            for name in files:
                with open(os.path.join(a, split, wnid, name), "rb") as fa, \
                        open(os.path.join(b, split, wnid, name), "rb") as fb:
                    assert fa.read() == fb.read()


def test_incomplete_copy_is_regenerated(tmp_path):
    root = ensure_synthetic_dataset(tmp_path / "syn", **SMALL)
    victim = os.path.join(root, "val", "s0000004", "s0000004_00001.JPEG")
    os.remove(victim)
    ensure_synthetic_dataset(root, **SMALL)
    assert os.path.isfile(victim)
    ensure_synthetic_dataset(root, **dict(SMALL, val_per_class=3))  # new settings -> rebuilt
    assert len(ImageFolder(root, "val")) == 30


def test_refuses_to_overwrite_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="refusing"):
        ensure_synthetic_dataset(tmp_path / "mine", **SMALL)


def test_classes_are_distinguishable_but_varied():
    # Same class, different draws: different pictures; the colour is not the label.
    rng = np.random.default_rng(0)
    a, b = render_sample(0, 32, rng), render_sample(0, 32, rng)
    assert a.shape == (32, 32, 3) and not np.array_equal(a, b)
    means = [render_sample(k % 10, 32, rng).reshape(-1, 3).mean(0) for k in range(200)]
    per_class = np.array(means).reshape(20, 10, 3).mean(0)  # (class, rgb)
    assert per_class.std(axis=0).max() < 30  # no class owns a colour
