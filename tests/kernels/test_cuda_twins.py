"""The NumPy twins of the CUDA kernels (minialex/kernels/cuda/*.py) agree with the layers, and
so do the layers' CUDA implementations run on NumPy arrays (where they launch the twins).

The twins run the kernels' index arithmetic on the CPU, so these tests check the kernels'
logic, and the whole CuPy code path of conv, pool and LRN, on machines without a GPU;
tests/kernels/test_cuda.py then checks each kernel against its twin on a GPU. Each layer is
checked on both NumPy paths: the reference (inside ``reference()``) and the CPU kernels.
"""

import contextlib
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from minialex.kernels.cuda import conv as cuda_conv
from minialex.kernels.cuda import im2col as cuda_im2col
from minialex.kernels.cuda import lrn as cuda_lrn
from minialex.kernels.cuda import pool as cuda_pool
from minialex.nn import Conv2d, LocalResponseNorm, MaxPool2d, reference
from minialex.nn.im2col import col2im, im2col

# the twins under the names the tests used before they moved beside their kernels
twins = SimpleNamespace(maxpool_forward=cuda_pool.maxpool_forward_twin,
                        maxpool_backward=cuda_pool.maxpool_backward_twin,
                        lrn_forward=cuda_lrn.lrn_forward_twin, lrn_backward=cuda_lrn.lrn_backward_twin)

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


@pytest.fixture(params=[False, True], ids=["reference", "cpu"])
def nn_path(request):
    """Run the minialex.nn layers on their reference, then on the CPU kernels (True)."""
    with (contextlib.nullcontext() if request.param else reference()):
        yield request.param


def test_importing_kernels_does_not_import_cupy():
    code = ("import sys, minialex, minialex.nn, minialex.models, minialex.kernels.cuda.conv, "
            "minialex.kernels.cuda.pool, minialex.kernels.cuda.lrn; "
            "assert 'cupy' not in sys.modules, 'cupy imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", CONV_CASES)
def test_rows_layout_twins(rng, dtype, shape, k, s, p):
    """The twins against the reference's im2col/col2im (minialex/nn/im2col.py): im2col_rows is
    im2col with the batch moved inside the rows, bit for bit; col2im_rows is its adjoint and adds
    in the reference's order."""
    x = rng.standard_normal(shape).astype(dtype)
    rows = cuda_im2col.im2col_rows_twin(x, k, s, p)
    np.testing.assert_array_equal(rows, im2col(x, k, s, p).transpose(1, 2, 3, 0, 4, 5))
    c = rng.standard_normal(rows.shape).astype(dtype)
    back = cuda_im2col.col2im_rows_twin(c, shape, k, s, p)
    assert back.dtype == dtype and back.shape == shape
    np.testing.assert_allclose(np.vdot(rows, c), np.vdot(x, back), rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(back, col2im(np.ascontiguousarray(c.transpose(3, 0, 1, 2, 4, 5)), shape, k, s, p))


def test_public_functions_run_the_twin_on_numpy(rng):
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(cuda_im2col.im2col_rows(x, (3, 3), (1, 1), (1, 1)),
                                  cuda_im2col.im2col_rows_twin(x, (3, 3), (1, 1), (1, 1)))
    with pytest.raises(TypeError, match="float32 or float64"):
        cuda_im2col.im2col_rows(x.astype(np.int32), (3, 3), (1, 1), (1, 1))


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

    if not nn_path:  # the reference saves its argmax: the same offsets, ties included
        pool.forward(x)
        np.testing.assert_array_equal(argmax, pool.saved_for_backward().argmax)


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
    saved = layer.saved_for_backward()
    scale_want, inv_want = saved.scale, saved.inv
    layer.forward(x)
    dx_want = layer.backward(dout)

    y, scale, inv = twins.lrn_forward(x, size, alpha, beta, k, groups)
    assert y.dtype == scale.dtype == inv.dtype == dtype
    tol = _tol(dtype)
    np.testing.assert_allclose(y, y_want, **tol)
    if not nn_path:  # the CPU kernel keeps scale/inv in reused buffers; compare the reference's
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


# ---------------------------------------------------------------------------------------
# The layers' CUDA implementations, run on NumPy arrays: every line of the CuPy path but
# the launches (which run the twins here), against the reference, float32 and float64.
# ---------------------------------------------------------------------------------------
def _both(layer, kernel, x, dout):
    """(reference y, dx, grads) and (kernel y, dx, grads) for one forward and backward."""
    out = []
    for use_kernel in (False, True):
        layer.zero_grad()
        if use_kernel:
            y = layer.run_fast(kernel, x)
            assert layer.saved_implementation() == kernel.__name__.replace("minialex.", "")
        else:
            with reference():
                y = layer.forward(x)
        dx = layer.backward(dout)
        out.append((y, dx, [p.grad.copy() for p in layer.parameters()]))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("shape,k,s,p", CONV_CASES[:5])
def test_cuda_conv_path_on_twins(rng, dtype, shape, k, s, p, input_grad):
    c = shape[1]
    groups = 1 if c % 2 else 2
    layer = Conv2d(c, 4, k, stride=s, padding=p, groups=groups, init_std=1.0, rng=rng, dtype=dtype,
                   input_grad=input_grad)
    x = rng.standard_normal(shape).astype(dtype)
    dout = rng.standard_normal(layer.output_shape(shape)).astype(dtype)
    (y_r, dx_r, g_r), (y_k, dx_k, g_k) = _both(layer, cuda_conv, x, dout)
    # one GEMM per group over the whole batch sums in another order than the reference's
    # per-sample products: float32 agrees to rounding, not bit for bit
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y_k, y_r, **tol)
    assert (dx_k is None) == (dx_r is None) == (not input_grad)
    if input_grad:
        np.testing.assert_allclose(dx_k, dx_r, **tol)
    for a, b in zip(g_k, g_r):
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s", POOL_CASES)
def test_cuda_pool_path_on_twins(rng, dtype, shape, k, s, ties):
    layer = MaxPool2d(k, s)
    x = _pool_input(rng, shape, dtype, ties)
    dout = rng.standard_normal(layer.output_shape(shape)).astype(dtype)
    (y_r, dx_r, _), (y_k, dx_k, _) = _both(layer, cuda_pool, x, dout)
    np.testing.assert_array_equal(y_k, y_r)
    np.testing.assert_array_equal(dx_k, dx_r)  # each pixel sums the same windows, in order


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c,size,groups", LRN_CASES)
def test_cuda_lrn_path_on_twins(rng, dtype, c, size, groups):
    layer = LocalResponseNorm(size=size, alpha=1e-2, beta=0.75, k=2.0, groups=groups)
    x = (3 * rng.standard_normal((2, c, 3, 4))).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    (y_r, dx_r, _), (y_k, dx_k, _) = _both(layer, cuda_lrn, x, dout)
    np.testing.assert_allclose(y_k, y_r, **_tol(dtype))
    np.testing.assert_allclose(dx_k, dx_r, **_tol(dtype))
