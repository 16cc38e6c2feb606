"""Shared fixtures for the interop tests: a tiny real-JPEG dataset and a run trained on it for one
epoch (through the training command, in this process), the paper's network built once, and the
skips that name the missing package (pip install -e ".[interop]", and PyTorch's CPU build:
pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu)."""

import importlib
import os

import numpy as np
import pytest

from minialex.data import ensure_synthetic_dataset
from minialex.interop.torch import TORCH_INSTALL
from minialex.models import AlexNet
from minialex.train import cli

INTEROP = 'pip install -e ".[interop]"'


def need(module, install=INTEROP):
    """The module, or a skip whose reason names what to install (a failure where
    MINIALEX_REQUIRE_INTEROP=1, as in CI, which installs them all)."""
    reason = f"needs {module.split('.')[0]}: {install}"
    if os.environ.get("MINIALEX_REQUIRE_INTEROP") == "1":
        try:
            return importlib.import_module(module)
        except ImportError:
            pytest.fail(f"MINIALEX_REQUIRE_INTEROP=1 but {reason}", pytrace=False)
    return pytest.importorskip(module, reason=reason)


def need_torch():
    return need("torch", TORCH_INSTALL)


def relative_error(a, b):
    """max |a - b| / max |b|: the error relative to the size of the reference's values."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def image_batch(cfg, n=2, dtype=np.float32, seed=0):
    """Inputs on the scale of mean-subtracted pixels (a few tens), where every layer matters."""
    s = cfg.input_size
    return (np.random.default_rng(seed).standard_normal((n, cfg.in_channels, s, s)) * 40).astype(dtype)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """10 classes of 32 px JPEGs, 6 training and 3 validation images each."""
    root = tmp_path_factory.mktemp("data") / "tiny"
    return str(ensure_synthetic_dataset(root, image_size=32, train_per_class=6, val_per_class=3))


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory):
    """A real run folder: the tiny network trained one epoch on ``tiny_data``."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    code = cli.main(["--data", tiny_data, "--output-dir", str(out), "--model", "tiny", "--resize-size", "28",
                     "--crop-size", "24", "-b", "16", "-j", "2", "--no-progress", "--stats-images", "60",
                     "--epochs", "1"])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def paper_net():
    """The paper's 61M-parameter network, float32, evaluation mode (about 3 s to draw)."""
    return AlexNet(seed=0).eval()
