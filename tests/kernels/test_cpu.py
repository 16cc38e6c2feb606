"""The CPU kernels (minialex/kernels/cpu/) against the reference of each layer (minialex/nn/).

Every test runs the same layer twice on the same input, once inside
``minialex.nn.reference()`` (the readable code) and once with the kernels on,
checks which implementation ran each time, and compares outputs, input
gradients and parameter gradients in float32 and float64. Chunk and block sizes
are shrunk so that the batch is cut into several chunks, the last one partial,
and the thread count is varied. Nothing here is timed.
"""

import numpy as np
import pytest

from minialex.kernels.cpu import conv as cpu_conv
from minialex.kernels.cpu import linear as cpu_linear
from minialex.kernels.cpu import lrn as cpu_lrn
from minialex.kernels.cpu import pool as cpu_pool
from minialex.kernels.cpu import relu as cpu_relu
from minialex.kernels.cpu import sgd as cpu_sgd
from minialex.nn import Conv2d, Linear, LocalResponseNorm, MaxPool2d, ReLU, reference
from minialex.optim import SGD

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}
DTYPES = [np.float64, np.float32]


@pytest.fixture(params=["1", "2", "3"], ids=lambda t: f"threads{t}")
def threads(request, monkeypatch):
    """The kernels on 1-3 threads. The size rules (runtime.gemm_split, runtime.parallel_workers)
    would keep arrays this small on one thread, so here any work is worth a thread: the threaded
    paths are the ones compared (tests/kernels/test_size_rules.py tests the rules themselves)."""
    from minialex.kernels.cpu import runtime

    monkeypatch.setenv("MINIALEX_NUM_THREADS", request.param)
    monkeypatch.setattr(runtime, "GEMM_MIN_FLOPS", 1)
    monkeypatch.setattr(runtime, "PARALLEL_MIN_PASSES", 1)
    return int(request.param)


@pytest.fixture(params=["small", "default"])
def chunking(request, monkeypatch):
    """'small': chunks of 1-2 samples and blocks of a few positions, so batches split unevenly."""
    if request.param == "small":
        monkeypatch.setattr(cpu_conv, "CACHE_BYTES", 1)  # one sample per conv chunk
        monkeypatch.setattr(cpu_conv, "GEMM_MIN_COLUMNS", 1)
        monkeypatch.setattr(cpu_pool, "BLOCK_BYTES", 64)
        monkeypatch.setattr(cpu_lrn, "BLOCK_BYTES", 64)
        monkeypatch.setattr(cpu_lrn, "RUN_BYTES", 64)  # runs of 8 positions, the last partial
    return request.param


@pytest.fixture(params=["default", "small"])
def relu_pieces(request, monkeypatch):
    """'small': ReLU jobs of 4096 elements, so every test array is split up (threaded: see threads)."""
    if request.param == "small":
        monkeypatch.setattr(cpu_relu, "STEP", 4096)
    return request.param


def both_paths(monkeypatch, run):
    """run() inside reference(), then with the kernels; returns both results."""
    with reference():
        ref = run()
    got = run()
    return ref, got


def ran(layer, kernel):
    """Forward just ran: assert that ``kernel`` (or the reference, inside reference()) made it."""
    from minialex.nn.dispatch import describe_implementation, reference_enabled

    want = "reference" if reference_enabled() else describe_implementation(kernel)
    assert layer.saved_implementation() == want


def assert_close(ref, got, dtype):
    assert len(ref) == len(got)
    for r, g in zip(ref, got):
        if r is None:
            assert g is None
            continue
        assert g.dtype == r.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g, r, **TOL[dtype])


# (in, out, kernel, stride, padding, groups, H, W)
CONV_CASES = [
    (3, 8, 11, 4, 2, 1, 31, 31),  # conv1-like: stride 4, padding
    (4, 6, 5, 1, 2, 2, 9, 7),  # conv2-like: groups, padding, non-square
    (4, 4, 3, 1, 1, 2, 6, 6),  # conv4-like
    (2, 2, 3, 4, 0, 1, 10, 10),  # stride 4 leaves rows/cols 7..9 uncovered
    (3, 2, 1, 1, 0, 1, 4, 5),  # 1x1 kernel
    (4, 4, 3, 2, 0, 4, 7, 8),  # depthwise-like groups = channels, stride 2
    # stride phases (kernels/cpu/conv.py keeps the padded input split by stride): padding not a multiple of
    # the stride, padded size not a multiple of it, different strides/paddings per axis
    (3, 4, 7, 3, 1, 1, 12, 17),
    (2, 6, (5, 3), (2, 3), (3, 0), 2, 11, 8),
    (3, 5, 11, 4, 2, 1, 27, 26),  # conv1 at a small odd size
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_fast_equals_plain(case, batch, dtype, threads, chunking, monkeypatch):
    cin, cout, k, s, p, g, h, w = case
    rng = np.random.default_rng(0)
    layer = Conv2d(cin, cout, k, stride=s, padding=p, groups=g, init_std=1.0, rng=rng, dtype=dtype)
    layer.bias.data[...] = rng.standard_normal(cout)
    x = rng.standard_normal((batch, cin, h, w)).astype(dtype)
    dy = rng.standard_normal(layer.output_shape(x.shape)).astype(dtype)

    def run():
        layer.zero_grad()
        y = layer.forward(x)
        ran(layer, cpu_conv)
        dx = layer.backward(dy)
        y2 = layer.forward(x)  # a second step: reused buffers, gradients accumulate
        dx2 = layer.backward(dy)
        return [y, dx, y2, dx2, layer.weight.grad.copy(), layer.bias.grad.copy()]

    assert_close(*both_paths(monkeypatch, run), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_without_input_grad(dtype, monkeypatch):
    rng = np.random.default_rng(1)
    layer = Conv2d(3, 4, 5, stride=2, padding=1, rng=rng, init_std=1.0, dtype=dtype, input_grad=False)
    x = rng.standard_normal((3, 3, 12, 12)).astype(dtype)
    dy = rng.standard_normal(layer.output_shape(x.shape)).astype(dtype)

    def run():
        layer.zero_grad()
        layer.forward(x)
        return [layer.backward(dy), layer.weight.grad.copy(), layer.bias.grad.copy()]

    ref, got = both_paths(monkeypatch, run)
    assert ref[0] is None and got[0] is None
    assert_close(ref, got, dtype)


# (channels, size, groups, H, W)
LRN_CASES = [(96, 5, 2, 5, 7), (7, 5, 1, 3, 3), (6, 3, 3, 4, 2), (4, 7, 2, 3, 3), (10, 1, 1, 2, 3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [0.75, 0.5, 0.6])
@pytest.mark.parametrize("case", LRN_CASES)
@pytest.mark.parametrize("per_block", [None, 2])
def test_lrn_fast_equals_plain(case, beta, dtype, per_block, threads, chunking, monkeypatch):
    """per_block=2: blocks of two whole samples, so the batch of 5 ends on a block of one."""
    c, size, groups, h, w = case
    if per_block is not None:
        if chunking == "small":
            pytest.skip("per_block sets the block size itself")
        monkeypatch.setattr(cpu_lrn, "BLOCK_BYTES", per_block * c * h * w * np.dtype(dtype).itemsize)
    rng = np.random.default_rng(2)
    layer = LocalResponseNorm(size, alpha=0.05, beta=beta, k=2.0, groups=groups)
    x = (3 * rng.standard_normal((5, c, h, w))).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)

    def run():
        y = layer.forward(x)
        ran(layer, cpu_lrn)
        return [y, layer.backward(dy)]

    assert_close(*both_paths(monkeypatch, run), dtype)


# (kernel, stride, H, W)
POOL_CASES = [(3, 2, 13, 13), (3, 2, 8, 9), (2, 2, 6, 6), (3, 1, 5, 4), (2, 3, 8, 8), (3, 2, 12, 3), (1, 2, 5, 6)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("case", POOL_CASES)
def test_maxpool_fast_equals_plain(case, batch, ties, dtype, threads, chunking, monkeypatch):
    k, s, h, w = case
    rng = np.random.default_rng(3)
    layer = MaxPool2d(k, s)
    if ties:  # few distinct values: many windows have tied maxima (first offset wins)
        x = rng.integers(-2, 3, size=(batch, 3, h, w)).astype(dtype)
    else:
        x = rng.standard_normal((batch, 3, h, w)).astype(dtype)
    dy = rng.standard_normal(layer.output_shape(x.shape)).astype(dtype)

    def run():
        y = layer.forward(x)
        ran(layer, cpu_pool)
        return [y, layer.backward(dy)]

    ref, got = both_paths(monkeypatch, run)
    for r, g in zip(ref, got):
        assert g.dtype == r.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(g, r)  # max and routing are exact


def test_maxpool_fast_survives_inplace_relu_after_it(monkeypatch):
    """The fast backward keeps its own copy of the output, so an in-place layer after the pool is safe."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 7, 7))
    dy = rng.standard_normal((2, 3, 3, 3))

    def run():
        pool, relu = MaxPool2d(3, 2), ReLU(inplace=True)
        relu.forward(pool.forward(x))
        return pool.backward(relu.backward(dy))

    ref, got = both_paths(monkeypatch, run)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (5, 7), (3, 4, 5, 6), (2, 300000)])
def test_relu_fast_equals_plain(shape, dtype, threads, relu_pieces, monkeypatch):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[::7] = 0.0  # exact zeros get zero gradient on both paths
    dy = rng.standard_normal(shape).astype(dtype)

    def run():
        layer = ReLU()
        y = layer.forward(x)
        ran(layer, cpu_relu)
        dx = layer.backward(dy)
        assert dx is not dy
        return [y, dx]

    ref, got = both_paths(monkeypatch, run)
    for r, g in zip(ref, got):
        assert g.dtype == r.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(g, r)
    np.testing.assert_array_equal(got[1], dy * (x > 0))


@pytest.mark.parametrize("layout", ["contiguous", "column-slice"])
@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (2, 300000)])
def test_relu_inplace_forward_overwrites_x(shape, layout, threads, relu_pieces, monkeypatch):
    """inplace=True: both paths return x itself, rectified; a strided x (a column slice of the
    two-column network) leaves the rest of its base array alone."""
    rng = np.random.default_rng(8)
    x0 = rng.standard_normal(shape).astype(np.float32)

    def run():
        if layout == "contiguous":
            x = x0.copy()
        else:
            wide = np.stack([x0, x0 - 5], axis=-1)
            x = wide[..., 0]
        y = ReLU(inplace=True).forward(x)
        assert y is x
        if layout != "contiguous":
            np.testing.assert_array_equal(wide[..., 1], x0 - 5)
        return y

    ref, got = both_paths(monkeypatch, run)
    np.testing.assert_array_equal(ref, np.maximum(x0, 0))
    np.testing.assert_array_equal(got, np.maximum(x0, 0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (3, 4, 5, 6), (2, 300000)])
@pytest.mark.parametrize("layout", ["contiguous", "column-slice"])
def test_relu_backward_into_out(shape, layout, dtype, threads, relu_pieces, monkeypatch):
    """backward(dout, out=dout) writes dx over dout and returns that very array, also when
    dout is a non-contiguous slice (the two-column model's halves); without ``out`` dout is
    left alone, inplace=True or not."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[::5] = 0.0
    dy = rng.standard_normal(shape).astype(dtype)
    expected = dy * (x > 0)

    def run():
        layer = ReLU(inplace=True)
        layer.forward(x.copy())
        fresh = dy.copy()
        assert layer.backward(fresh) is not fresh
        np.testing.assert_array_equal(fresh, dy)  # the public backward never overwrites dout
        layer.forward(x.copy())
        if layout == "contiguous":
            d = dy.copy()
        else:  # a strided view of a wider array, whose other columns must stay untouched
            wide = np.stack([dy, dy + 1], axis=-1)
            d = wide[..., 0]
        dx = layer.backward(d, out=d)
        assert dx is d
        if layout != "contiguous":
            np.testing.assert_array_equal(wide[..., 1], dy + 1)
        return dx

    ref, got = both_paths(monkeypatch, run)
    np.testing.assert_array_equal(ref, expected)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_linear_fast_grad_accumulation(dtype, layout, monkeypatch):
    """Linear's kernel adds dW into the gradient with one GEMM (beta = 1), whatever it held:
    zeros, an earlier backward's gradient, or values written by hand. A strided dout (which
    BLAS cannot read as rows) takes the two-step fallback and must agree too."""
    rng = np.random.default_rng(6)
    layer = Linear(7, 5, init_std=1.0, rng=rng, dtype=dtype)
    x = rng.standard_normal((4, 7)).astype(dtype)
    dy = rng.standard_normal((4, 5)).astype(dtype)
    if layout == "strided":
        dy = np.stack([dy, dy], axis=-1)[..., 0]

    def run():
        layer.zero_grad()
        y = layer.forward(x)
        ran(layer, cpu_linear)
        out = [y, layer.backward(dy), layer.weight.grad.copy()]
        layer.forward(x)
        layer.backward(dy)  # accumulates: twice the first gradient
        out.append(layer.weight.grad.copy())
        layer.weight.grad[...] = 1.0  # written by hand: the next backward must add to it
        layer.forward(x)
        layer.backward(dy)
        return out + [layer.weight.grad.copy(), layer.bias.grad.copy()]

    ref, got = both_paths(monkeypatch, run)
    assert_close(ref, got, dtype)
    np.testing.assert_allclose(got[3], 2 * got[2], **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 7, 5), (9, 13, 11), (1, 3, 2)])  # (batch, in, out)
@pytest.mark.parametrize("split", ["calling-thread", "all-threads"])
def test_linear_fast_products_split_over_threads(shape, split, dtype, threads, monkeypatch):
    """The three products of Linear's kernel, on the calling thread (a small layer) or cut by
    features over the threads (runtime.gemm_split, forced here through GEMM_MIN_FLOPS), against the
    reference, two steps in a row so that dW accumulates."""
    from minialex.kernels.cpu import runtime

    monkeypatch.setattr(runtime, "GEMM_MIN_FLOPS", 1 if split == "all-threads" else 1e30)
    n, fin, fout = shape
    rng = np.random.default_rng(10)
    layer = Linear(fin, fout, init_std=1.0, rng=rng, dtype=dtype)
    x = rng.standard_normal((n, fin)).astype(dtype)
    dy = rng.standard_normal((n, fout)).astype(dtype)

    def run():
        layer.zero_grad()
        out = []
        for _ in range(2):
            out.append(layer.forward(x))
            ran(layer, cpu_linear)
            out.append(layer.backward(dy))
        return out + [layer.weight.grad.copy(), layer.bias.grad.copy()]

    assert_close(*both_paths(monkeypatch, run), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("blas", ["openblas", "numpy"])
def test_runtime_gemm_on_windows_of_wider_matrices(trans_a, trans_b, beta, blas, dtype, monkeypatch):
    """runtime.gemm: c = op(a) @ op(b) + beta c on views with row strides wider than their rows
    (what the kernels hand it), through OpenBLAS's cblas_?gemm and through NumPy's fallback."""
    from minialex.kernels.cpu import runtime

    if blas == "numpy":
        monkeypatch.setattr(runtime, "blas", lambda: None)
    rng = np.random.default_rng(11)
    m, k, n = 5, 4, 6
    big_a = rng.standard_normal((9, 9)).astype(dtype)
    big_b = rng.standard_normal((9, 9)).astype(dtype)
    a = big_a[1:1 + k, 2:2 + m] if trans_a else big_a[1:1 + m, 2:2 + k]
    b = big_b[3:3 + n, 1:1 + k] if trans_b else big_b[3:3 + k, 1:1 + n]
    big_c = rng.standard_normal((8, 10)).astype(dtype)
    c0 = big_c.copy()
    c = big_c[1:1 + m, 3:3 + n]
    runtime.gemm(a, b, c, beta=beta, trans_a=trans_a, trans_b=trans_b)
    want = (a.T if trans_a else a) @ (b.T if trans_b else b) + beta * c0[1:1 + m, 3:3 + n]
    np.testing.assert_allclose(c, want, **TOL[dtype])
    outside = np.ones(big_c.shape, bool)
    outside[1:1 + m, 3:3 + n] = False
    np.testing.assert_array_equal(big_c[outside], c0[outside])  # nothing outside the window moved


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decay_biases", [True, False])
def test_sgd_fast_equals_plain(dtype, decay_biases, threads, monkeypatch):
    monkeypatch.setattr(cpu_sgd, "BLOCK", 5)  # parameters span several blocks, the last partial

    def run():
        r = np.random.default_rng(8)
        layer = Linear(6, 4, init_std=1.0, rng=r, dtype=dtype)
        opt = SGD(layer.named_parameters(), lr=0.1, momentum=0.9, weight_decay=0.01,
                  decay_biases=decay_biases)
        for _ in range(3):
            for p in layer.parameters():
                p.grad[...] = r.standard_normal(p.shape)
            opt.step()
        return [layer.weight.data, layer.bias.data] + opt.velocities

    assert_close(*both_paths(monkeypatch, run), dtype)


def test_fast_paths_keep_float32():
    """No float64 upcast anywhere in a float32 forward and backward."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 4, 11, 11)).astype(np.float32)
    for layer in (Conv2d(4, 6, 3, padding=1, groups=2, rng=rng), LocalResponseNorm(groups=2),
                  MaxPool2d(3, 2), ReLU()):
        y = layer.forward(x)
        assert y.dtype == np.float32
        assert layer.backward(np.ones_like(y)).dtype == np.float32
