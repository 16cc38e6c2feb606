"""The NumPy twins of the CuPy kernels (minialex/kernels/twins.py) agree with the layers.

The twins run the kernels' index arithmetic on the CPU, so these tests check
the kernels' logic on machines without a GPU; tests/kernels/test_cuda.py then
checks each kernel against its twin on a GPU. Each layer is checked on both
NumPy paths: the plain reference (``fast.ENABLED = False``) and the fast one.
"""

import subprocess
import sys

import numpy as np
import pytest

from minialex import backend
from minialex.kernels import twins
from minialex.nn import LocalResponseNorm, MaxPool2d, fast
from minialex.nn.im2col import col2im, im2col

DTYPES = [np.float32, np.float64]

# (input shape, kernel, stride, padding)
CONV_CASES = [
    ((2, 3, 23, 23), (11, 11), (4, 4), (2, 2)),  # conv1-like: stride 4 with padding, overlap
    ((2, 3, 10, 9), (3, 3), (2, 2), (1, 1)),      # overlap, odd sizes
    ((1, 2, 8, 9), (3, 2), (2, 3), (0, 1)),       # rectangular; right/bottom borders left uncovered
    ((1, 2, 9, 9), (2, 2), (3, 3), (0, 0)),       # stride > kernel: gaps between windows
    ((2, 4, 5, 6), (3, 3), (1, 1), (2, 2)),       # padding as large as the kernel allows
    ((1, 3, 4, 4), (1, 1), (1, 1), (0, 0)),       # 1x1
    ((1, 1, 11, 11), (11, 11), (4, 4), (0, 0)),   # one window
]

# (input shape, kernel, stride)
POOL_CASES = [
    ((2, 3, 13, 13), (3, 3), (2, 2)),  # the paper's overlapping pooling
    ((2, 2, 8, 9), (3, 3), (2, 2)),    # last row/column uncovered
    ((1, 2, 9, 10), (2, 2), (3, 3)),   # stride > kernel: gaps
    ((2, 2, 7, 8), (2, 3), (1, 2)),    # rectangular, heavy overlap
    ((1, 1, 5, 5), (5, 5), (1, 1)),    # one window
]

# (C, size, groups)
LRN_CASES = [
    (8, 5, 1),
    (16, 5, 2),   # AlexNet's groups=2
    (3, 5, 1),    # fewer channels than the window
    (2, 5, 2),    # one channel per group
    (6, 3, 2),
    (12, 7, 1),   # window larger than the paper's
    (4, 1, 1),    # window of one
]


def _tol(dtype):
    return dict(rtol=2e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)


@pytest.fixture(params=[False, True], ids=["plain", "fast"])
def nn_path(request, monkeypatch):
    """Run the minialex.nn layers on their plain reference path, then on the fast CPU path."""
    monkeypatch.setattr(fast, "ENABLED", request.param)
    return request.param


def test_importing_kernels_does_not_import_cupy():
    code = ("import sys, minialex, minialex.kernels, minialex.kernels.cuda, minialex.kernels.twins; "
            "assert 'cupy' not in sys.modules, 'cupy imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_cuda_functions_need_cupy():
    if backend.cupy_available():
        pytest.skip("CuPy is usable here; tests/kernels/test_cuda.py covers the kernels")
    from minialex.kernels import cuda
    with pytest.raises(backend.BackendError):
        cuda.im2col(np.zeros((1, 1, 3, 3), np.float32), (2, 2), (1, 1), (0, 0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", CONV_CASES)
def test_im2col_twin(rng, dtype, shape, k, s, p):
    x = rng.standard_normal(shape).astype(dtype)
    got = twins.im2col(x, k, s, p)
    want = im2col(x, k, s, p)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)  # a pure copy: bit for bit


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", CONV_CASES)
def test_col2im_twin(rng, dtype, shape, k, s, p):
    cols_shape = im2col(np.zeros(shape, dtype), k, s, p).shape
    cols = rng.standard_normal(cols_shape).astype(dtype)
    got = twins.col2im(cols, shape, k, s, p)
    want = col2im(cols, shape, k, s, p)
    assert got.shape == want.shape == shape and got.dtype == want.dtype
    # same additions in the same order (kernel offsets in increasing row-major order)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape,k,s,p", CONV_CASES)
def test_col2im_twin_is_adjoint_of_im2col_twin(rng, shape, k, s, p):
    x = rng.standard_normal(shape)
    cols = twins.im2col(x, k, s, p)
    c = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(np.vdot(cols, c), np.vdot(x, twins.col2im(c, shape, k, s, p)),
                               rtol=1e-12)


def _pool_input(rng, shape, dtype, ties):
    if ties:  # a handful of distinct values: most windows hold several maxima
        return rng.integers(0, 3, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s", POOL_CASES)
def test_maxpool_twins(rng, nn_path, dtype, shape, k, s, ties):
    x = _pool_input(rng, shape, dtype, ties)
    dout = rng.standard_normal(MaxPool2d(k, s).output_shape(shape)).astype(dtype)
    pool = MaxPool2d(k, s)
    y_want = pool.forward(x)
    dx_want = pool.backward(dout)

    y, argmax = twins.maxpool_forward(x, k, s)
    assert y.dtype == dtype and argmax.dtype == np.uint8
    np.testing.assert_array_equal(y, y_want)
    dx = twins.maxpool_backward(dout, argmax, shape, k, s)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, dx_want, **_tol(dtype))

    if not nn_path:  # the plain path keeps its argmax: the same offsets, ties included
        pool.forward(x)
        np.testing.assert_array_equal(argmax, pool._argmax)


def test_maxpool_twin_tie_rule():
    # every window is constant: the first offset (0) wins everywhere and gets the gradient
    x = np.ones((1, 1, 5, 5), np.float32)
    y, argmax = twins.maxpool_forward(x, (3, 3), (2, 2))
    assert (argmax == 0).all()
    dx = twins.maxpool_backward(np.ones_like(y), argmax, x.shape, (3, 3), (2, 2))
    want = np.zeros_like(x)
    want[0, 0, 0:3:2, 0:3:2] = 1  # the top-left corner of each of the 2x2 windows
    np.testing.assert_array_equal(dx, want)
    # later equal values never displace the first maximum; a strictly larger one does
    x = np.array([[[[1, 2, 2], [2, 0, 3], [3, 0, 0]]]], np.float64)
    _, argmax = twins.maxpool_forward(x, (3, 3), (1, 1))
    assert argmax.item() == 1 * 3 + 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c,size,groups", LRN_CASES)
def test_lrn_twins(rng, nn_path, dtype, c, size, groups):
    shape = (2, c, 3, 4)
    x = (3 * rng.standard_normal(shape)).astype(dtype)  # large enough for the window sum to matter
    dout = rng.standard_normal(shape).astype(dtype)
    alpha, beta, k = 1e-2, 0.75, 2.0  # a larger alpha than the paper's, so the sum is visible
    layer = LocalResponseNorm(size=size, alpha=alpha, beta=beta, k=k, groups=groups)
    y_want = layer.forward(x)
    scale_want, inv_want = layer._scale, layer._inv
    dx_want = layer.backward(dout)

    y, scale, inv = twins.lrn_forward(x, size, alpha, beta, k, groups)
    assert y.dtype == scale.dtype == inv.dtype == dtype
    tol = _tol(dtype)
    np.testing.assert_allclose(y, y_want, **tol)
    if not nn_path:  # the fast path may keep scale/inv in another form; the plain path keeps these
        np.testing.assert_allclose(scale, scale_want, **tol)
        np.testing.assert_allclose(inv, inv_want, **tol)
    dx = twins.lrn_backward(dout, x, scale, inv, size, alpha, beta, groups)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, dx_want, **tol)


def test_lrn_twin_paper_constants(rng):
    x = rng.standard_normal((2, 96, 5, 5)).astype(np.float32) * 20
    dout = rng.standard_normal(x.shape).astype(np.float32)
    layer = LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0, groups=2)
    y_want = layer.forward(x)
    dx_want = layer.backward(dout)
    y, scale, inv = twins.lrn_forward(x, 5, 1e-4, 0.75, 2.0, 2)
    np.testing.assert_allclose(y, y_want, rtol=2e-6, atol=1e-7)
    dx = twins.lrn_backward(dout, x, scale, inv, 5, 1e-4, 0.75, 2)
    np.testing.assert_allclose(dx, dx_want, rtol=2e-6, atol=1e-7)
