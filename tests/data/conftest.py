"""Shared fixtures for the data tests: a tiny ImageFolder of real image files."""

import numpy as np
import pytest
from PIL import Image

WNIDS = ["n003", "n001", "n002"]  # created out of order on purpose


def write_jpeg(path, rng, size=(40, 30), mode="RGB"):
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path, "JPEG", quality=90)


def make_folder(root, per_class=3, special=True, split="train", wnids=WNIDS, seed=0):
    """root/<split>/<wnid>/*.JPEG plus, with ``special``, a grayscale PNG, a CMYK
    JPEG and a corrupt file in n002, and a synset_words.txt at root."""
    rng = np.random.default_rng(seed)
    for wnid in wnids:
        d = root / split / wnid
        d.mkdir(parents=True)
        for i in range(per_class):
            write_jpeg(d / f"{wnid}_{i}.JPEG", rng, size=(40 + 4 * i, 30))
    if special:
        d = root / split / "n002"
        Image.fromarray(rng.integers(0, 256, (30, 36), dtype=np.uint8), "L").save(d / "gray.png")
        write_jpeg(d / "zcmyk.jpg", rng, size=(36, 36), mode="CMYK")
        (d / "broken.JPEG").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg at all" * 3)
        (d / "notes.txt").write_text("not an image")
    (root / "synset_words.txt").write_text(
        "n001 tench, Tinca tinca\nn002 goldfish, Carassius auratus\nn003 great white shark\n")
    return root


@pytest.fixture
def folder_root(tmp_path):
    return make_folder(tmp_path / "ds")
