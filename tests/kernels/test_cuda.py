"""The CUDA kernels (minialex/kernels/cuda/) agree with their NumPy twins and with the layers'
reference (minialex/nn/), which ``reference()`` runs on CuPy too.

Every test here carries the ``gpu`` marker (tests/conftest.py skips them with
the reason where CuPy or a GPU is missing). Run them with
``python -m pytest -m gpu -rs tests/kernels`` on a machine with a GPU.
"""

import numpy as np
import pytest

from minialex import backend
from minialex.nn import Conv2d, LocalResponseNorm, MaxPool2d, reference
from minialex.nn.im2col import col2im, im2col

from .test_cuda_twins import CONV_CASES, LRN_CASES, POOL_CASES, _pool_input, twins

pytestmark = pytest.mark.gpu

DTYPES = [np.float32, np.float64]


def _tol(dtype):
    # the GPU may fuse multiply-adds and uses its own pow: close, not always bit-equal
    return dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


@pytest.fixture(scope="module")
def cp():
    return backend.get_backend("cupy")


@pytest.fixture(scope="module")
def cuda():
    """The kernels' public functions under one name, as the tests call them."""
    from types import SimpleNamespace

    from minialex.kernels.cuda import im2col as k_im2col
    from minialex.kernels.cuda import lrn as k_lrn
    from minialex.kernels.cuda import pool as k_pool
    # the columns in the kernels' layout (C, KH, KW, N, OH, OW), viewed as the reference's
    def im2col(x, k, s, p, out=None):
        rows = k_im2col.im2col_rows(x, k, s, p)
        if out is not None:
            out[...] = rows.transpose(3, 0, 1, 2, 4, 5)
            return out
        return rows.transpose(3, 0, 1, 2, 4, 5)

    def col2im(cols, shape, k, s, p):
        return k_im2col.col2im_rows(cp.ascontiguousarray(cols.transpose(1, 2, 3, 0, 4, 5)), shape, k, s, p)

    return SimpleNamespace(im2col=im2col, col2im=col2im,
                           maxpool_forward=k_pool.maxpool_forward, maxpool_backward=k_pool.maxpool_backward,
                           lrn_forward=k_lrn.lrn_forward, lrn_backward=k_lrn.lrn_backward)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", CONV_CASES)
def test_im2col_kernel(cp, cuda, rng, dtype, shape, k, s, p):
    x = rng.standard_normal(shape).astype(dtype)
    got = cuda.im2col(cp.asarray(x), k, s, p)
    assert got.dtype == dtype
    np.testing.assert_array_equal(cp.asnumpy(got), im2col(x, k, s, p))
    np.testing.assert_array_equal(cp.asnumpy(got), cp.asnumpy(im2col(cp.asarray(x), k, s, p)))
    buf = cp.full(got.shape, np.nan, dtype=dtype)  # the out= buffer is filled completely
    assert cuda.im2col(cp.asarray(x), k, s, p, out=buf) is buf
    np.testing.assert_array_equal(cp.asnumpy(buf), cp.asnumpy(got))


def test_im2col_kernel_noncontiguous_input(cp, cuda, rng):
    x = rng.standard_normal((2, 6, 9, 9)).astype(np.float32)[:, ::2, :, ::-1]
    got = cuda.im2col(cp.asarray(x), (3, 3), (2, 2), (1, 1))
    np.testing.assert_array_equal(cp.asnumpy(got), im2col(x, (3, 3), (2, 2), (1, 1)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", CONV_CASES)
def test_col2im_kernel(cp, cuda, rng, dtype, shape, k, s, p):
    cols = rng.standard_normal(im2col(np.zeros(shape, dtype), k, s, p).shape).astype(dtype)
    got = cuda.col2im(cp.asarray(cols), shape, k, s, p)
    assert got.shape == shape and got.dtype == dtype
    got = cp.asnumpy(got)
    np.testing.assert_allclose(got, col2im(cols, shape, k, s, p), **_tol(dtype))


def test_col2im_kernel_is_deterministic(cp, cuda, rng):
    shape, k, s, p = (8, 16, 27, 27), (5, 5), (1, 1), (2, 2)
    cols = cp.asarray(rng.standard_normal(im2col(np.zeros(shape, np.float32), k, s, p).shape),
                      dtype=cp.float32)
    first = cp.asnumpy(cuda.col2im(cols, shape, k, s, p))
    for _ in range(3):
        np.testing.assert_array_equal(cp.asnumpy(cuda.col2im(cols, shape, k, s, p)), first)


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s", POOL_CASES)
def test_maxpool_kernels(cp, cuda, rng, dtype, shape, k, s, ties):
    x = _pool_input(rng, shape, dtype, ties)
    dout = rng.standard_normal(MaxPool2d(k, s).output_shape(shape)).astype(dtype)
    y, argmax = cuda.maxpool_forward(cp.asarray(x), k, s)
    assert y.dtype == dtype and argmax.dtype == np.uint8
    y_twin, argmax_twin = twins.maxpool_forward(x, k, s)
    np.testing.assert_array_equal(cp.asnumpy(y), y_twin)
    np.testing.assert_array_equal(cp.asnumpy(argmax), argmax_twin)

    pool = MaxPool2d(k, s)  # the layer's reference on CuPy saves its argmax
    with reference():
        np.testing.assert_array_equal(cp.asnumpy(pool.forward(cp.asarray(x))), y_twin)
        np.testing.assert_array_equal(cp.asnumpy(pool.saved_for_backward().argmax), argmax_twin)
        pool.forward(cp.asarray(x))
        dx_layer = cp.asnumpy(pool.backward(cp.asarray(dout)))
    assert pool.forward(cp.asarray(x)) is not None and pool.saved_implementation() == "kernels.cuda.pool"
    np.testing.assert_allclose(cp.asnumpy(pool.backward(cp.asarray(dout))), dx_layer, **_tol(dtype))

    dx = cuda.maxpool_backward(cp.asarray(dout), argmax, shape, k, s)
    assert dx.shape == shape and dx.dtype == dtype
    dx = cp.asnumpy(dx)
    np.testing.assert_allclose(dx, twins.maxpool_backward(dout, argmax_twin, shape, k, s), **_tol(dtype))
    np.testing.assert_allclose(dx, dx_layer, **_tol(dtype))
    numpy_pool = MaxPool2d(k, s)
    numpy_pool.forward(x)
    np.testing.assert_allclose(dx, numpy_pool.backward(dout), **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c,size,groups", LRN_CASES)
def test_lrn_kernels(cp, cuda, rng, dtype, c, size, groups):
    shape = (2, c, 3, 4)
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    alpha, beta, k = 1e-2, 0.75, 2.0
    tol = _tol(dtype)

    y, scale, inv = cuda.lrn_forward(cp.asarray(x), size, alpha, beta, k, groups)
    assert y.dtype == scale.dtype == inv.dtype == dtype
    for got, want in zip((y, scale, inv), twins.lrn_forward(x, size, alpha, beta, k, groups)):
        np.testing.assert_allclose(cp.asnumpy(got), want, **tol)
    dx = cuda.lrn_backward(cp.asarray(dout), cp.asarray(x), scale, inv, size, alpha, beta, groups)
    assert dx.dtype == dtype
    _, s_t, i_t = twins.lrn_forward(x, size, alpha, beta, k, groups)
    np.testing.assert_allclose(cp.asnumpy(dx), twins.lrn_backward(dout, x, s_t, i_t, size, alpha, beta, groups),
                               **tol)

    for data in (x, cp.asarray(x)):  # the layer's reference and kernels, on NumPy and on CuPy
        for ref in (True, False):
            xp_ = cp if isinstance(data, cp.ndarray) else np
            layer = LocalResponseNorm(size=size, alpha=alpha, beta=beta, k=k, groups=groups)
            with reference(ref):
                y_layer = layer.forward(data)
                dx_layer = layer.backward(xp_.asarray(dout))
            np.testing.assert_allclose(cp.asnumpy(y), cp.asnumpy(y_layer), **tol)
            np.testing.assert_allclose(cp.asnumpy(dx), cp.asnumpy(dx_layer), **tol)


def test_kernels_on_alexnet_shapes(cp, cuda, rng):
    """conv1, pool1 and lrn1 at the paper's sizes (batch 2), float32."""
    x = cp.asarray(rng.standard_normal((2, 3, 224, 224)), dtype=cp.float32)
    cols = cuda.im2col(x, (11, 11), (4, 4), (2, 2))
    assert cols.shape == (2, 3, 11, 11, 55, 55)
    np.testing.assert_array_equal(cp.asnumpy(cols), cp.asnumpy(im2col(x, (11, 11), (4, 4), (2, 2))))
    np.testing.assert_allclose(cp.asnumpy(cuda.col2im(cols, x.shape, (11, 11), (4, 4), (2, 2))),
                               cp.asnumpy(col2im(cols, x.shape, (11, 11), (4, 4), (2, 2))), rtol=1e-5, atol=1e-5)
    a = cp.asarray(rng.standard_normal((2, 96, 55, 55)), dtype=cp.float32)
    y, argmax = cuda.maxpool_forward(a, (3, 3), (2, 2))
    pool = MaxPool2d(3, 2)
    with reference():
        np.testing.assert_array_equal(cp.asnumpy(y), cp.asnumpy(pool.forward(a)))
        np.testing.assert_array_equal(cp.asnumpy(argmax), cp.asnumpy(pool.saved_for_backward().argmax))
        y_ref = LocalResponseNorm(groups=2).forward(a)
    y_l, _, _ = cuda.lrn_forward(a, 5, 1e-4, 0.75, 2.0, 2)
    np.testing.assert_allclose(cp.asnumpy(y_l), cp.asnumpy(y_ref), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("groups, input_grad", [(1, True), (2, True), (1, False)])
def test_conv_layer_kernel_path_equals_reference(cp, rng, dtype, groups, input_grad):
    """Conv2d on CuPy: the default (one-launch im2col/col2im) against reference() on CuPy."""
    layer = Conv2d(4, 6, 3, stride=2, padding=1, groups=groups, init_std=1.0, rng=rng, dtype=dtype,
                   input_grad=input_grad).to(cp)
    x = cp.asarray(rng.standard_normal((3, 4, 9, 8)).astype(dtype))
    dout = cp.asarray(rng.standard_normal(layer.output_shape(x.shape)).astype(dtype))
    results = []
    for ref in (True, False):
        layer.zero_grad()
        with reference(ref):
            y = layer.forward(x)
            assert layer.saved_implementation() == ("reference" if ref else "kernels.cuda.conv")
            dx = layer.backward(dout)
        results.append([y, dx, layer.weight.grad.copy(), layer.bias.grad.copy()])
    # one GEMM per group over the batch sums in another order than the reference
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for a, b in zip(*results):
        if a is None:
            assert b is None and not input_grad
            continue
        np.testing.assert_allclose(cp.asnumpy(b), cp.asnumpy(a), **tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", CONV_CASES)
def test_rows_layout_kernels(cp, rng, dtype, shape, k, s, p):
    from minialex.kernels.cuda import im2col as k_im2col
    x = rng.standard_normal(shape).astype(dtype)
    rows = k_im2col.im2col_rows(cp.asarray(x), k, s, p)
    np.testing.assert_array_equal(cp.asnumpy(rows), k_im2col.im2col_rows_twin(x, k, s, p))
    c = rng.standard_normal(rows.shape).astype(dtype)
    np.testing.assert_allclose(cp.asnumpy(k_im2col.col2im_rows(cp.asarray(c), shape, k, s, p)),
                               k_im2col.col2im_rows_twin(c, shape, k, s, p), **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, p, columns", [((128, 4096), 0.5, None), ((7, 10), 0.3, None),
                                               ((5, 6), 0.5, (6, 12)), ((3,), 0.9, None)])
def test_dropout_mask_kernel_is_the_reference_bit_for_bit(cp, dtype, shape, p, columns):
    """The same mask on a GPU as on the CPU: a resumed run replays it on any device."""
    from minialex.nn import dropout_mask, reference
    want = dropout_mask(11, 7, shape, p, np, dtype, columns=columns)
    got = dropout_mask(11, 7, shape, p, cp, dtype, columns=columns)  # the kernel
    with reference():
        ref_gpu = dropout_mask(11, 7, shape, p, cp, dtype, columns=columns)  # xp ops on CuPy
    np.testing.assert_array_equal(cp.asnumpy(got), want)
    np.testing.assert_array_equal(cp.asnumpy(ref_gpu), want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_kernel_equals_the_reference(cp, rng, dtype):
    from minialex.nn import Linear, reference
    from minialex.optim import SGD
    results = []
    for ref in (True, False):
        layer = Linear(6, 4, init_std=1.0, rng=np.random.default_rng(8), dtype=dtype).to(cp)
        opt = SGD(layer.named_parameters(), lr=0.1, momentum=0.9, weight_decay=0.01, decay_biases=False)
        r = np.random.default_rng(9)
        with reference(ref):
            for _ in range(3):
                for prm in layer.parameters():
                    prm.grad[...] = cp.asarray(r.standard_normal(prm.shape))
                opt.step()
        results.append([cp.asnumpy(a) for a in [layer.weight.data, layer.bias.data] + opt.velocities])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, **_tol(dtype))


def test_uploader_and_transfer_on_a_gpu(cp, rng):
    from minialex import backend
    up = backend.Uploader(cp, 0)
    for _ in range(4):
        batch = rng.standard_normal((8, 3, 16, 16)).astype(np.float32)
        np.testing.assert_array_equal(cp.asnumpy(up.upload(batch)), batch)
    x = cp.arange(12, dtype=cp.float32).reshape(3, 4)
    y = backend.transfer(x[:, 2:], cp.cuda.runtime.getDeviceCount() - 1)
    np.testing.assert_array_equal(cp.asnumpy(y), cp.asnumpy(x)[:, 2:])
