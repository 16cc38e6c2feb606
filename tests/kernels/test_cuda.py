"""The CUDA kernels (minialex/kernels/cuda/) on a GPU, beyond the per-op tests: conv1's columns,
pool1 and lrn1 at the paper's sizes against the readable reference run on CuPy, and the host-to-GPU
uploader and the transfer between devices (minialex/backend.py).

Each op's kernels against its reference, naive loop and NumPy twin are tested in tests/ops/
(test_<op>.py, the "cuda" and "cuda-twin" implementations). Every test here carries the ``gpu``
marker (tests/conftest.py skips them with the reason where CuPy or a GPU is missing). Run them with
``python -m pytest -m gpu -rs tests/kernels tests/ops`` on a machine with a GPU.
"""

import numpy as np
import pytest

from minialex import backend
from minialex.nn import LocalResponseNorm, MaxPool2d, reference
from minialex.nn.functional.im2col import col2im, im2col

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cp():
    return backend.get_backend("cupy")


def test_kernels_on_alexnet_shapes(cp, rng):
    """conv1, pool1 and lrn1 at the paper's sizes (batch 2), float32: each kernel against the
    readable reference on CuPy, and the layers on CuPy running the kernels by default."""
    from minialex.kernels.cuda import im2col as k_im2col
    from minialex.kernels.cuda import lrn as k_lrn
    from minialex.kernels.cuda import pool as k_pool

    x = cp.asarray(rng.standard_normal((2, 3, 224, 224)), dtype=cp.float32)
    kernel, stride, padding = (11, 11), (4, 4), (2, 2)
    rows = k_im2col.im2col_rows(x, kernel, stride, padding)  # the kernels' layout (C, KH, KW, N, OH, OW)
    cols = rows.transpose(3, 0, 1, 2, 4, 5)  # viewed as the reference's (N, C, KH, KW, OH, OW)
    assert cols.shape == (2, 3, 11, 11, 55, 55)
    np.testing.assert_array_equal(cp.asnumpy(cols), cp.asnumpy(im2col(x, kernel, stride, padding)))
    np.testing.assert_allclose(cp.asnumpy(k_im2col.col2im_rows(rows, x.shape, kernel, stride, padding)),
                               cp.asnumpy(col2im(cols, x.shape, kernel, stride, padding)), rtol=1e-5, atol=1e-5)

    a = cp.asarray(rng.standard_normal((2, 96, 55, 55)), dtype=cp.float32)
    y, argmax = k_pool.maxpool_forward(a, (3, 3), (2, 2))
    pool = MaxPool2d(3, 2)
    with reference():
        np.testing.assert_array_equal(cp.asnumpy(y), cp.asnumpy(pool.forward(a)))
        _, cache = pool.take_cache()  # the reference's cache, on CuPy: the argmax of every window
        np.testing.assert_array_equal(cp.asnumpy(argmax), cp.asnumpy(cache.argmax))
        y_ref = LocalResponseNorm(groups=2).forward(a)
    np.testing.assert_array_equal(cp.asnumpy(pool.forward(a)), cp.asnumpy(y))
    assert pool.saved_implementation() == "kernels.cuda.pool"
    y_l, _, _ = k_lrn.lrn_kernel_forward(a, 5, 1e-4, 0.75, 2.0, 2)
    np.testing.assert_allclose(cp.asnumpy(y_l), cp.asnumpy(y_ref), rtol=1e-5, atol=1e-6)
    lrn = LocalResponseNorm(groups=2)
    np.testing.assert_allclose(cp.asnumpy(lrn.forward(a)), cp.asnumpy(y_ref), rtol=1e-5, atol=1e-6)
    assert lrn.saved_implementation() == "kernels.cuda.lrn"


def test_uploader_and_transfer_on_a_gpu(cp, rng):
    up = backend.Uploader(cp, 0)
    for _ in range(4):
        batch = rng.standard_normal((8, 3, 16, 16)).astype(np.float32)
        np.testing.assert_array_equal(cp.asnumpy(up.upload(batch)), batch)
    x = cp.arange(12, dtype=cp.float32).reshape(3, 4)
    y = backend.transfer(x[:, 2:], cp.cuda.runtime.getDeviceCount() - 1)
    np.testing.assert_array_equal(cp.asnumpy(y), cp.asnumpy(x)[:, 2:])
