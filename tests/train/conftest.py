"""A tiny real-JPEG ImageFolder (made by the synthetic generator) shared by the training tests."""

import pytest

from minialex.data import ensure_synthetic_dataset


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "tiny"
    return str(ensure_synthetic_dataset(root, image_size=32, train_per_class=6, val_per_class=3))


def tiny_args(data, out, *extra):
    """CLI arguments for a seconds-long run of the tiny network on the tiny folder."""
    return ["--data", data, "--output-dir", str(out), "--model", "tiny", "--resize-size", "28",
            "--crop-size", "24", "-b", "16", "-j", "2", "--no-progress", "--stats-images", "60", *extra]
