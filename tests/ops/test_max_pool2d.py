"""max_pool2d: every implementation of the pair (minialex.nn.pool.MAX_POOL2D) and the MaxPool2d layer.

The pair ``max_pool2d_forward(x, kernel_size, stride) -> (y, cache)``,
``max_pool2d_backward(dout, cache) -> dx`` is checked in each implementation (tests/ops/conftest.py:
the reference of minialex/nn/functional/pool.py, the CPU kernel of minialex/kernels/cpu/pool.py, the
CUDA implementation of minialex/kernels/cuda/pool.py on its kernels' NumPy twins, and on a GPU under
the ``gpu`` marker), in float32 and float64:

* against the naive loops of minialex/nn/naive.py, with DISTINCT values in every window and with
  ties (the first maximum in row-major order wins and gets the gradient, in every implementation),
  overlapping windows (an input that wins several windows gets the sum of their gradients),
  strides larger than the window, rectangular windows, AlexNet's sizes; and bit for bit against
  the reference;
* against centred finite differences (float64, values 0.1 apart so no step changes an argmax);
* the CPU kernel on 1-3 threads with small and default blocks; an in-place ReLU after the pool;
* the CUDA kernels' twins (maxpool_forward_twin, maxpool_backward_twin), the CUDA functions'
  refusal of NumPy arrays outside ``twins()``, and the kernels on a GPU;
* the MaxPool2d layer (minialex/nn/pool.py): output sizes, input errors, dtypes.

The mathematics (the derivative of a max, routing, the tie rule) is derived in
docs/layers/maxpool2d.md.
"""

import functools

import numpy as np
import pytest

from minialex import backend
from minialex.gradcheck import check_layer, numerical_gradient, rel_error
from minialex.kernels.cuda import pool as cuda_pool
from minialex.kernels.cuda.elementwise import twins
from minialex.nn import MaxPool2d, ReLU, reference
from minialex.nn.naive import max_pool2d_backward_naive, max_pool2d_forward_naive
from minialex.nn.pool import MAX_POOL2D

from .conftest import TOL, Implementation, implementations

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["float32", "float64"]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def distinct(rng, shape):
    """Values at least 0.1 apart, so no finite-difference step can change a window's argmax
    (and float32 holds them exactly enough to stay distinct)."""
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.1


def tied(rng, shape):
    """A handful of distinct values: most windows hold several maxima."""
    return rng.integers(-2, 3, size=shape).astype(np.float64)


# (input shape, kernel, stride)
CASES = {
    "alexnet-3x3/2-odd": ((2, 3, 7, 7), (3, 3), (2, 2)),  # the paper's overlapping pooling
    "3x3/2-uneven": ((2, 3, 8, 6), (3, 3), (2, 2)),  # last row uncovered
    "gaps-2x2/3": ((2, 3, 8, 8), (2, 2), (3, 3)),  # stride > kernel: gaps between the windows
    "3x3/2-13": ((2, 3, 13, 13), (3, 3), (2, 2)),  # pool5's size
    "3x3/2-8x9": ((2, 2, 8, 9), (3, 3), (2, 2)),  # last row/column uncovered
    "gaps-2x2/3-9x10": ((1, 2, 9, 10), (2, 2), (3, 3)),
    "rect-2x3/1x2": ((2, 2, 7, 8), (2, 3), (1, 2)),  # rectangular, heavy overlap
    "one-window": ((1, 1, 5, 5), (5, 5), (1, 1)),
    "3x3/1": ((2, 3, 5, 4), (3, 3), (1, 1)),  # stride 1: every input in up to 9 windows
    "3x3/2-12x3": ((2, 3, 12, 3), (3, 3), (2, 2)),  # one column of windows
    "1x1/2": ((2, 3, 5, 6), (1, 1), (2, 2)),  # a window of one: every other input gets nothing
    "alexnet-pool1": ((1, 2, 55, 55), (3, 3), (2, 2)),  # 55 -> 27
    "alexnet-pool2": ((1, 2, 27, 27), (3, 3), (2, 2)),  # 27 -> 13
}


@functools.lru_cache(maxsize=None)
def problem(name, kind):
    """(x, dout, y, dx) for CASES[name], values float32 holds exactly, with the naive loops' y and dx
    in float64: the truth for both dtypes. kind: 'distinct' or 'ties'."""
    shape, k, s = CASES[name]
    rng = np.random.default_rng(list(CASES).index(name))
    x = (distinct if kind == "distinct" else tied)(rng, shape).astype(np.float32).astype(np.float64)
    y = max_pool2d_forward_naive(x, k, s)
    dout = rng.standard_normal(y.shape).astype(np.float32).astype(np.float64)
    dx = max_pool2d_backward_naive(x, dout, k, s)
    for a in (x, dout, y, dx):
        a.setflags(write=False)  # an implementation that writes into its inputs fails loudly
    return x, dout, y, dx


# ---------------------------------------------------------------------------------------
# Every implementation against the naive loops and the reference
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["distinct", "ties"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("impl", implementations(MAX_POOL2D), indirect=True)
def test_forward_and_backward_equal_naive_loops(impl, name, dtype, kind):
    """y exactly the naive loops' (a maximum is exact); dx the naive loops' (float64: to 1e-12,
    float32: to the float32 tolerance), ties routed to the first maximum in row-major order; and
    y and dx bit for bit the reference's (each pixel sums the same windows, in the same order)."""
    shape, k, s = CASES[name]
    x64, dout64, want_y, want_dx = problem(name, kind)
    x, dout = x64.astype(dtype), dout64.astype(dtype)
    y, cache = impl.forward(x, k, s)
    assert y.dtype == dtype and y.shape == want_y.shape
    np.testing.assert_array_equal(y, want_y)
    dx = impl.backward(dout, cache)
    assert dx.dtype == dtype and dx.shape == shape
    if dtype == np.float64:
        np.testing.assert_allclose(dx, want_dx, rtol=1e-12)
    np.testing.assert_allclose(dx, want_dx, **TOL[np.dtype(dtype)])

    ref = Implementation(MAX_POOL2D, "reference")
    y_r, cache_r = ref.forward(x, k, s)
    np.testing.assert_array_equal(y, y_r)
    np.testing.assert_array_equal(dx, ref.backward(dout, cache_r))


def test_tie_cases_do_tie():
    """The 'ties' inputs above do put several maxima in windows, some of them overlapping."""
    x, _, y, _ = problem("alexnet-3x3/2-odd", "ties")
    windows = [x[0, 0, i:i + 3, j:j + 3] for i in range(0, 5, 2) for j in range(0, 5, 2)]
    assert sum((w == w.max()).sum() > 1 for w in windows) >= 3


@pytest.mark.parametrize("impl", implementations(MAX_POOL2D), indirect=True)
def test_ties_go_to_the_first_element_in_row_major_order(impl):
    # every element ties: the first offset (0) of each window wins and gets the gradient
    x = np.ones((1, 1, 3, 3))
    y, cache = impl.forward(x, (3, 3), (2, 2))
    dx = impl.backward(np.ones((1, 1, 1, 1)), cache)
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 0, 0] = 1.0
    np.testing.assert_array_equal(dx, expected)
    np.testing.assert_array_equal(dx, max_pool2d_backward_naive(np.ones((1, 1, 3, 3)), np.ones((1, 1, 1, 1)),
                                                                (3, 3), (2, 2)))
    # a constant 5x5 map in four overlapping 3x3/2 windows: each window's top-left corner
    x = np.ones((1, 1, 5, 5), np.float32)
    y, cache = impl.forward(x, (3, 3), (2, 2))
    dx = impl.backward(np.ones_like(y), cache)
    want = np.zeros_like(x)
    want[0, 0, 0:3:2, 0:3:2] = 1
    np.testing.assert_array_equal(dx, want)
    # later equal values never displace the first maximum; a strictly larger one does
    x = np.array([[[[1, 2, 2], [2, 0, 3], [3, 0, 0]]]], np.float64)
    y, cache = impl.forward(x, (3, 3), (1, 1))
    dx = impl.backward(np.ones_like(y), cache)
    want = np.zeros_like(x)
    want[0, 0, 1, 2] = 1
    np.testing.assert_array_equal(dx, want)


@pytest.mark.parametrize("impl", implementations(MAX_POOL2D), indirect=True)
def test_overlapping_windows_sum_their_gradients(impl):
    # One big value in the middle of a 5x5 map is the max of all four 3x3/2 windows.
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0
    _, cache = impl.forward(x, (3, 3), (2, 2))
    dx = impl.backward(np.array([[[[1.0, 2.0], [4.0, 8.0]]]]), cache)
    assert dx[0, 0, 2, 2] == 15.0 and dx.sum() == 15.0
    _, cache = impl.forward(x, (3, 3), (2, 2))
    dx = impl.backward(np.ones((1, 1, 2, 2)), cache)
    assert dx[0, 0, 2, 2] == 4.0 and dx.sum() == 4.0


@pytest.mark.parametrize("impl", implementations(MAX_POOL2D), indirect=True)
def test_alexnet_sizes(impl):
    x = np.zeros((1, 2, 55, 55), np.float32)
    for size, out in ((55, 27), (27, 13), (13, 6)):
        y, cache = impl.forward(x[:, :, :size, :size], (3, 3), (2, 2))
        assert y.shape == (1, 2, out, out)
        assert impl.backward(np.ones_like(y), cache).shape == (1, 2, size, size)


@pytest.mark.parametrize("impl", implementations(MAX_POOL2D), indirect=True)
def test_inplace_relu_after_the_pool_does_not_change_the_backward(impl):
    """A cache holds what backward needs, not y: rectifying y in place after the forward (an
    in-place ReLU after the pool) leaves dx as it was."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 7, 7)) - 1.5  # some windows' maxima negative
    dy = rng.standard_normal((2, 3, 3, 3))
    with impl.context():  # the pair called directly, so that y is the very array the forward returned
        y, cache = impl.pair.forward(impl.to(x), (3, 3), (2, 2))
        assert bool((y < 0).any()) and bool((y > 0).any())
        y[y < 0] = 0  # what ReLU(inplace=True) does to it
        dx_relu = impl.get(impl.pair.backward(impl.to(dy), cache))
        y[...] = 0  # and every output overwritten
        dx = impl.get(impl.pair.backward(impl.to(dy), cache))
    want = max_pool2d_backward_naive(x, dy, (3, 3), (2, 2))
    np.testing.assert_array_equal(dx_relu, want)
    np.testing.assert_array_equal(dx, want)


# ---------------------------------------------------------------------------------------
# Finite differences, float64
# ---------------------------------------------------------------------------------------
FD_CASES = [(3, 2, 7, 7), (3, 2, 8, 6), (2, 2, 6, 6), (3, 1, 5, 5), (2, 3, 8, 8)]  # (k, s, h, w)


@pytest.mark.parametrize("k, s, h, w", FD_CASES)
@pytest.mark.parametrize("impl", implementations(MAX_POOL2D), indirect=True)
def test_gradients_match_finite_differences(impl, k, s, h, w):
    rng = np.random.default_rng(1234)
    x = distinct(rng, (2, 3, h, w))
    upstream = rng.standard_normal(MaxPool2d(k, s).output_shape(x.shape))
    _, cache = impl.forward(x, (k, k), (s, s))
    dx = impl.backward(upstream, cache)

    def loss():
        return (impl.forward(x, (k, k), (s, s))[0] * upstream).sum()

    error = rel_error(dx, numerical_gradient(loss, x))
    assert error < 1e-6, error


@pytest.mark.parametrize("k, s, h, w", FD_CASES)
def test_layer_gradients_match_finite_differences(k, s, h, w, rng, xp):
    """check_layer (the reference, on NumPy and on CuPy)."""
    x = backend.to_backend(distinct(rng, (2, 3, h, w)), xp)
    errors = check_layer(MaxPool2d(k, s), x)
    assert errors["x"] < 1e-6, errors


# ---------------------------------------------------------------------------------------
# The CPU kernel on 1-3 threads, in small and default blocks
# ---------------------------------------------------------------------------------------
CPU_CASES = [(3, 2, 13, 13), (3, 2, 8, 9), (2, 2, 6, 6), (3, 1, 5, 4), (2, 3, 8, 8), (3, 2, 12, 3), (1, 2, 5, 6)]


@pytest.mark.parametrize("case", CPU_CASES, ids=lambda c: "-".join(map(str, c)))
def test_cpu_kernel_on_threads_and_blocks_equals_reference(case, threads, chunking):
    """Batches of 1 and 5, distinct values and ties, float32 and float64: the CPU kernel bit for bit
    the reference (max and routing are exact), twice in a row in one workspace (reused buffers)."""
    from minialex.kernels.cpu import runtime

    k, s, h, w = case
    cpu, ref = Implementation(MAX_POOL2D, "cpu"), Implementation(MAX_POOL2D, "reference")
    for dtype in DTYPES:
        for ties in (False, True):
            for batch in (1, 5):
                rng = np.random.default_rng(3)
                if ties:  # few distinct values: many windows have tied maxima (first offset wins)
                    x = rng.integers(-2, 3, size=(batch, 3, h, w)).astype(dtype)
                else:
                    x = rng.standard_normal((batch, 3, h, w)).astype(dtype)
                dy = rng.standard_normal(MaxPool2d(k, s).output_shape(x.shape)).astype(dtype)
                y_r, cache_r = ref.forward(x, (k, k), (s, s))
                dx_r = ref.backward(dy, cache_r)
                with runtime.workspace(cpu):
                    for _ in range(2):
                        y, cache = cpu.forward(x, (k, k), (s, s))
                        dx = cpu.backward(dy, cache)
                        for r, g in ((y_r, y), (dx_r, dx)):
                            assert g.dtype == r.dtype == np.dtype(dtype)
                            np.testing.assert_array_equal(g, r)


# ---------------------------------------------------------------------------------------
# The CUDA implementation: its twins, refusals, kernels
# ---------------------------------------------------------------------------------------
TWIN_TOL = {np.dtype(np.float32): dict(rtol=2e-6, atol=1e-7), np.dtype(np.float64): dict(rtol=1e-13, atol=1e-15)}
TWIN_CASES = ["3x3/2-13", "3x3/2-8x9", "gaps-2x2/3-9x10", "rect-2x3/1x2", "one-window"]


@pytest.mark.parametrize("kind", ["distinct", "ties"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", TWIN_CASES)
def test_maxpool_twins(name, dtype, kind):
    """The twins, called as functions, against the reference and the CPU kernel; the argmax is the
    reference's (the same offsets, ties included)."""
    shape, k, s = CASES[name]
    x64, dout64, _, _ = problem(name, kind)
    x, dout = x64.astype(dtype), dout64.astype(dtype)
    y, argmax = cuda_pool.maxpool_forward_twin(x, k, s)
    assert y.dtype == dtype and argmax.dtype == np.uint8
    dx = cuda_pool.maxpool_backward_twin(dout, argmax, shape, k, s)
    assert dx.dtype == dtype
    for name_ in ("reference", "cpu"):
        impl = Implementation(MAX_POOL2D, name_)
        y_want, cache = impl.forward(x, k, s)
        np.testing.assert_array_equal(y, y_want)
        np.testing.assert_allclose(dx, impl.backward(dout, cache), **TWIN_TOL[np.dtype(dtype)])
        if name_ == "reference":
            np.testing.assert_array_equal(argmax, cache.argmax)
    with twins():  # the launch wrappers, inside twins(), run exactly these twins
        y2, argmax2 = cuda_pool.maxpool_forward(x, k, s)
        np.testing.assert_array_equal(y2, y)
        np.testing.assert_array_equal(argmax2, argmax)
        np.testing.assert_array_equal(cuda_pool.maxpool_backward(dout, argmax, shape, k, s), dx)


def test_maxpool_twin_tie_rule():
    # every window is constant: the first offset (0) wins everywhere and gets the gradient
    x = np.ones((1, 1, 5, 5), np.float32)
    y, argmax = cuda_pool.maxpool_forward_twin(x, (3, 3), (2, 2))
    assert (argmax == 0).all()
    dx = cuda_pool.maxpool_backward_twin(np.ones_like(y), argmax, x.shape, (3, 3), (2, 2))
    want = np.zeros_like(x)
    want[0, 0, 0:3:2, 0:3:2] = 1  # the top-left corner of each of the 2x2 windows
    np.testing.assert_array_equal(dx, want)
    # later equal values never displace the first maximum; a strictly larger one does
    x = np.array([[[[1, 2, 2], [2, 0, 3], [3, 0, 0]]]], np.float64)
    _, argmax = cuda_pool.maxpool_forward_twin(x, (3, 3), (1, 1))
    assert argmax.item() == 1 * 3 + 2


def test_cuda_functions_refuse_numpy_outside_twins(rng):
    """The CUDA functions take CuPy arrays: a NumPy array outside twins() is a TypeError that names
    twins(), never a silent run of the twin; inside twins() they take it."""
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    y_twin, argmax_twin = cuda_pool.maxpool_forward_twin(x, (3, 3), (2, 2))
    cuda = MAX_POOL2D.pair("cuda")
    assert cuda.by == "kernels.cuda.pool"
    with pytest.raises(TypeError, match=r"twins\(\)"):
        cuda_pool.maxpool_forward(x, (3, 3), (2, 2))
    with pytest.raises(TypeError, match=r"twins\(\)"):
        cuda_pool.maxpool_backward(np.ones_like(y_twin), argmax_twin, x.shape, (3, 3), (2, 2))
    with pytest.raises(TypeError, match=r"twins\(\)"):
        cuda.forward(x, (3, 3), (2, 2))
    with twins():
        y, cache = cuda.forward(x, (3, 3), (2, 2))
        np.testing.assert_array_equal(y, y_twin)
        np.testing.assert_array_equal(cache.argmax, argmax_twin)
        with pytest.raises(TypeError, match="float32 or float64"):
            cuda_pool.maxpool_forward(x.astype(np.int32), (3, 3), (2, 2))
    with pytest.raises(TypeError, match=r"twins\(\)"):  # a cache made inside twins() changes nothing
        cuda.backward(np.ones_like(y), cache)


def _gpu_tol(dtype):
    # the GPU may fuse multiply-adds: close, not always bit-equal
    return dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["distinct", "ties"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", TWIN_CASES)
def test_maxpool_kernels(rng, name, dtype, kind):
    """The kernels on a GPU against their twins, the reference on CuPy and the layer on NumPy."""
    cp = backend.get_backend("cupy")
    shape, k, s = CASES[name]
    x = problem(name, kind)[0].astype(dtype)
    dout = rng.standard_normal(MaxPool2d(k, s).output_shape(shape)).astype(dtype)
    y, argmax = cuda_pool.maxpool_forward(cp.asarray(x), k, s)
    assert y.dtype == dtype and argmax.dtype == np.uint8
    y_twin, argmax_twin = cuda_pool.maxpool_forward_twin(x, k, s)
    np.testing.assert_array_equal(cp.asnumpy(y), y_twin)
    np.testing.assert_array_equal(cp.asnumpy(argmax), argmax_twin)

    ref = MAX_POOL2D.pair("reference")  # the reference on CuPy keeps its argmax
    y_ref, cache = ref.forward(cp.asarray(x), k, s)
    np.testing.assert_array_equal(cp.asnumpy(y_ref), y_twin)
    np.testing.assert_array_equal(cp.asnumpy(cache.argmax), argmax_twin)
    dx_layer = cp.asnumpy(ref.backward(cp.asarray(dout), cache))
    pool = MaxPool2d(k, s)
    assert pool.forward(cp.asarray(x)) is not None and pool.saved_implementation() == "kernels.cuda.pool"
    np.testing.assert_allclose(cp.asnumpy(pool.backward(cp.asarray(dout))), dx_layer, **_gpu_tol(dtype))

    dx = cuda_pool.maxpool_backward(cp.asarray(dout), argmax, shape, k, s)
    assert dx.shape == shape and dx.dtype == dtype
    dx = cp.asnumpy(dx)
    np.testing.assert_allclose(dx, cuda_pool.maxpool_backward_twin(dout, argmax_twin, shape, k, s),
                               **_gpu_tol(dtype))
    np.testing.assert_allclose(dx, dx_layer, **_gpu_tol(dtype))
    numpy_pool = MaxPool2d(k, s)
    numpy_pool.forward(x)
    np.testing.assert_allclose(dx, numpy_pool.backward(dout), **_gpu_tol(dtype))


# ---------------------------------------------------------------------------------------
# The MaxPool2d layer
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("k, s, h, w", [(3, 2, 7, 7), (3, 2, 8, 6), (2, 3, 8, 8)])
def test_layer_forward_and_backward_equal_naive_loops(k, s, h, w, rng, xp):
    """The layer as it runs by default (the CPU kernel; the CUDA one on CuPy) against the loops."""
    x = distinct(rng, (2, 3, h, w))
    pool = MaxPool2d(k, s)
    y = pool.forward(backend.to_backend(x, xp))
    np.testing.assert_array_equal(backend.to_numpy(y), max_pool2d_forward_naive(x, (k, k), (s, s)))
    dout = rng.standard_normal(y.shape)
    dx = pool.backward(backend.to_backend(dout, xp))
    np.testing.assert_allclose(backend.to_numpy(dx), max_pool2d_backward_naive(x, dout, (k, k), (s, s)),
                               rtol=1e-12)


def test_layer_overlapping_windows_sum_their_gradients():
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0
    pool = MaxPool2d(3, 2)
    pool.forward(x)
    dx = pool.backward(np.ones((1, 1, 2, 2)))
    assert dx[0, 0, 2, 2] == 4.0 and dx.sum() == 4.0


def test_layer_ties_go_to_the_first_element_in_row_major_order(xp):
    x = backend.to_backend(np.ones((1, 1, 3, 3)), xp)  # every element ties
    pool = MaxPool2d(3, 2)
    pool.forward(x)
    dx = backend.to_numpy(pool.backward(backend.to_backend(np.ones((1, 1, 1, 1)), xp)))
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 0, 0] = 1.0
    np.testing.assert_array_equal(dx, expected)
    np.testing.assert_array_equal(dx, max_pool2d_backward_naive(np.ones((1, 1, 3, 3)), np.ones((1, 1, 1, 1)),
                                                                (3, 3), (2, 2)))


def test_layer_alexnet_sizes():
    pool = MaxPool2d(3, 2)
    assert [pool.output_shape((1, 1, s, s))[2] for s in (55, 27, 13)] == [27, 13, 6]


def test_layer_runs_the_implementation_the_switch_picks():
    """On NumPy the layer runs the CPU kernel; inside reference() the reference."""
    x = np.zeros((1, 2, 7, 7), np.float32)
    pool = MaxPool2d(3, 2)
    pool.forward(x)
    assert pool.saved_implementation() == MAX_POOL2D.pair("cpu").by == "kernels.cpu.pool"
    with reference():
        pool.forward(x)
        assert pool.saved_implementation() == "reference"


@pytest.mark.parametrize("use_reference", [False, True], ids=["kernels", "reference"])
def test_layer_keeps_float32(use_reference):
    """No float64 upcast anywhere in a float32 forward and backward (the old fast-path check)."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 4, 11, 11)).astype(np.float32)
    pool = MaxPool2d(3, 2)
    with reference(use_reference):
        y = pool.forward(x)
        assert y.dtype == np.float32
        assert pool.backward(np.ones_like(y)).dtype == np.float32


def test_layer_survives_inplace_relu_after_it():
    """The kernel's backward keeps its own copy of what it needs, so an in-place layer after the
    pool is safe: the kernels give the reference's dx."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 7, 7))
    dy = rng.standard_normal((2, 3, 3, 3))
    for shift in (0.0, 1.5):  # 1.5: some windows' maxima negative, so the ReLU does change y
        results = []
        for use_reference in (True, False):
            pool, relu = MaxPool2d(3, 2), ReLU(inplace=True)
            with reference(use_reference):
                relu.forward(pool.forward(x - shift))
                results.append(pool.backward(relu.backward(dy)))
        np.testing.assert_array_equal(results[1], results[0])


@pytest.mark.parametrize("shape, dtype, message", [
    ((3, 7, 7), np.float32, "(N, C, H, W)"),
    ((1, 1, 2, 2), np.float32, "larger than input"),
    ((1, 1, 7, 7), np.int32, "floating-point"),
])
def test_bad_input_is_named(shape, dtype, message):
    with pytest.raises(ValueError) as err:
        MaxPool2d(3, 2).forward(np.zeros(shape, dtype=dtype))
    assert "MaxPool2d" in str(err.value) and message in str(err.value)
