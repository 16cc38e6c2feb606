import os

import numpy as np
import pytest

from minialex.data import CorruptImageError, DataError, ImageFolder, read_image

from .conftest import make_folder


def test_classes_sorted_names_and_samples(folder_root):
    ds = ImageFolder(folder_root, "train")
    assert ds.classes == ["n001", "n002", "n003"]
    assert ds.names == ["tench", "goldfish", "great white shark"]
    assert ds.class_to_idx["n003"] == 2
    files = [os.path.basename(p) for p, _ in ds.samples]
    # .txt is ignored, extensions matched case-insensitively, files sorted in each class
    assert "notes.txt" not in files
    assert files[3:9] == ["broken.JPEG", "gray.png", "n002_0.JPEG", "n002_1.JPEG",
                          "n002_2.JPEG", "zcmyk.jpg"]
    assert [l for _, l in ds.samples] == [0] * 3 + [1] * 6 + [2] * 3
    assert len(ds) == 12


def test_names_default_to_wnid(tmp_path):
    root = make_folder(tmp_path / "ds", special=False)
    os.remove(root / "synset_words.txt")
    assert ImageFolder(root).names == ImageFolder(root).classes


def test_grayscale_and_cmyk_become_rgb(folder_root):
    ds = ImageFolder(folder_root)
    for name in ("gray.png", "zcmyk.jpg", "n001_0.JPEG"):
        i = [os.path.basename(p) for p, _ in ds.samples].index(name)
        img, label = ds.load(i)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    gray = ds.load([os.path.basename(p) for p, _ in ds.samples].index("gray.png"))[0]
    assert gray.shape == (30, 36, 3)
    assert np.array_equal(gray[..., 0], gray[..., 1])


def test_load_with_shorter_side(folder_root):
    ds = ImageFolder(folder_root)
    img, _ = ds.load(2, shorter=15)  # 48x30 JPEG, drafted and resized
    assert img.shape == (15, 24, 3)


def test_corrupt_file_error_names_the_file(folder_root):
    ds = ImageFolder(folder_root)
    i = [os.path.basename(p) for p, _ in ds.samples].index("broken.JPEG")
    with pytest.raises(CorruptImageError, match="broken.JPEG") as info:
        ds.load(i)
    assert isinstance(info.value, DataError)
    with pytest.raises(DataError, match="broken.JPEG"):
        read_image(ds.samples[i][0], shorter=8)


def test_truncated_jpeg_is_corrupt(tmp_path, folder_root):
    good = (folder_root / "train" / "n001" / "n001_0.JPEG").read_bytes()
    bad = tmp_path / "cut.JPEG"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(CorruptImageError, match="cut.JPEG"):
        read_image(bad)


def test_missing_root_and_split(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nope")):
        ImageFolder(tmp_path / "nope")
    (tmp_path / "ds").mkdir()
    with pytest.raises(DataError, match="train"):
        ImageFolder(tmp_path / "ds", "train")


def test_empty_folders(tmp_path):
    (tmp_path / "ds" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no class folders"):
        ImageFolder(tmp_path / "ds")
    (tmp_path / "ds" / "train" / "a").mkdir()
    with pytest.raises(DataError, match="no images"):
        ImageFolder(tmp_path / "ds")


def test_a_class_without_images(tmp_path):
    root = make_folder(tmp_path / "ds", special=False)
    (root / "train" / "n004").mkdir()
    with pytest.raises(DataError, match="n004"):
        ImageFolder(root)


def test_val_classes_must_match_train(tmp_path):
    root = make_folder(tmp_path / "ds", special=False)
    make_folder(root, per_class=1, special=False, split="val", wnids=["n001", "n002", "n009"])
    train = ImageFolder(root, "train")
    with pytest.raises(DataError, match=r"missing 1: n003.*unexpected 1: n009") as info:
        ImageFolder(root, "val", classes=train.classes)
    assert str(root / "val") in str(info.value)
    make_folder(tmp_path / "ok", per_class=1, special=False, split="val", wnids=["n001", "n002", "n003"])
    assert ImageFolder(tmp_path / "ok", "val", classes=train.classes).classes == train.classes


def test_load_crop_is_the_window_of_the_square(folder_root):
    ds = ImageFolder(folder_root)
    for i in (0, 2):  # 40x30 and 48x30 JPEGs; 12 is under half of 30, so the decode is drafted
        square = ds.load(i, shorter=12)[0]
        w = square.shape[1]
        square = square[:, (w - 12) // 2:(w - 12) // 2 + 12].astype(int)
        window, label = ds.load(i, shorter=12, crop=(2, 1, 9))
        assert window.shape == (9, 9, 3) and label == ds.samples[i][1]
        assert np.abs(window - square[2:11, 1:10]).max() <= 1
