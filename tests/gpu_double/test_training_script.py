"""The training script end to end on the CuPy code path, with the CuPy test double
(tests/gpu_double/cupy_double/): ``train_imagenet.py --backend cupy --devices 1,0`` for one
epoch on a tiny folder, then ``--test-only``. Nothing in minialex/nn, models, optim, parallel or
train may apply a NumPy function to a device array, work on another device than the current
one, or copy between devices without ordering; every batch goes up from pinned memory."""

import pytest

from minialex.train.cli import run

from ..train.conftest import tiny_args, tiny_folder  # noqa: F401  (a fixture)
from . import cupy_double


@pytest.mark.parametrize("devices", ["1,0", "1"])
def test_train_and_test_only_on_the_double(tiny_folder, tmp_path, devices):
    out = tmp_path / "run"
    with cupy_double.install(n_devices=2) as ledger:
        run(tiny_args(tiny_folder, out, "--backend", "cupy", "--devices", devices, "--epochs", "1"))
        print(f"\ntraining run, devices {devices}: {ledger.summary()}")
        assert ledger.numpy_on_device == [], ledger.numpy_on_device[:5]
        assert ledger.wrong_device == [], ledger.wrong_device[:5]
        assert ledger.unordered == [], ledger.unordered[:5]
        # every batch of images (and the labels of every step) went up from pinned memory; the
        # pageable copies are the weights going to the GPUs once, and the labels of the logged
        # steps and of validation, which read their results back anyway
        batch_bytes = 16 * 3 * 24 * 24 * 4
        pinned = [n for n, p in ledger.host_to_device if p]
        assert pinned.count(batch_bytes) >= 3
        assert max(n for n, p in ledger.host_to_device if not p) < batch_bytes
        ledger.reset()
        run(tiny_args(tiny_folder, out, "--backend", "cupy", "--devices", devices, "--test-only",
                      "--resume", str(out / "checkpoint.npz")))
        assert ledger.numpy_on_device == [] and ledger.wrong_device == [] and ledger.unordered == []
    assert (out / "checkpoint.npz").exists()
