"""The backend switch: names, CuPy being optional, copies, RNG."""

import subprocess
import sys

import numpy as np
import pytest

from minialex import backend


def test_numpy_by_name():
    assert backend.get_backend("numpy") is np
    assert backend.get_array_module(np.zeros(2)) is np


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        backend.get_backend("tpu")


def test_import_does_not_import_cupy():
    code = "import sys, minialex; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(backend.cupy_available(), reason="this machine has a working CuPy")
def test_cupy_without_gpu_says_what_to_install():
    with pytest.raises(backend.BackendError) as err:
        backend.get_backend("cupy")
    assert "minialex[cuda12]" in str(err.value) or "GPU" in str(err.value)


def test_numpy_device_context_is_a_no_op():
    with backend.device(np, 3):
        assert backend.to_backend([1, 2], np).tolist() == [1, 2]


def test_copy_true_never_aliases():
    a = np.arange(4.0)
    b = backend.to_backend(a, np, device_id=0, copy=True)
    assert b is not a and not np.shares_memory(a, b)


def test_seeded_rng_repeats(xp):
    a = backend.to_numpy(backend.default_rng(xp, 5).random(4))
    b = backend.to_numpy(backend.default_rng(xp, 5).random(4))
    np.testing.assert_array_equal(a, b)


def test_check_device():
    backend.check_device(np, 0)
    backend.check_device(np, 1)  # the second column's label
    with pytest.raises(backend.BackendError, match="non-negative"):
        backend.check_device(np, -1)
    with pytest.raises(backend.BackendError, match="device 7 does not exist"):
        backend.check_device(np, 7)


@pytest.mark.gpu
def test_missing_gpu_id_is_named():
    import cupy
    n = cupy.cuda.runtime.getDeviceCount()
    with pytest.raises(backend.BackendError, match=f"GPU {n} does not exist"):
        backend.check_device(cupy, n)
