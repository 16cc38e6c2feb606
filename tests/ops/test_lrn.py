"""lrn, the paper's local response normalization (section 3.3): every implementation of the op
``minialex.nn.lrn.LRN`` (the reference of minialex/nn/functional/lrn.py, the CPU kernel of
minialex/kernels/cpu/lrn.py, the CUDA implementation of minialex/kernels/cuda/lrn.py on its NumPy
twins, and on a GPU under the ``gpu`` marker) against the naive loops of minialex/nn/naive.py,
against centred finite differences (float64) and against the reference; then the
LocalResponseNorm module: the paper's constants and alpha convention, windows that stop at group
boundaries, bad arguments, float32 staying float32, which implementation runs.

The mathematics is derived in docs/layers/lrn.md: the formula (section 1), its full derivative
(sections 2-3), groups (section 5), the alpha convention (section 6), and why these tests use
alpha near 1 (section 7: with the paper's alpha = 1e-4 the cross-channel term of the gradient is
too small for a missing or wrong window term to show).
"""

import functools

import numpy as np
import pytest

from minialex import backend
from minialex.gradcheck import check_layer, numerical_gradient, rel_error
from minialex.kernels.cpu import lrn as cpu_lrn
from minialex.kernels.cuda import lrn as cuda_lrn
from minialex.nn import LocalResponseNorm, naive, reference
from minialex.nn.functional.lrn import channel_window_sum
from minialex.nn.lrn import LRN

from .conftest import TOL, implementations

DTYPES = [np.float64, np.float32]
BETAS = [0.75, 0.5, 0.6]  # the CPU kernel has its own code for 0.75 and 0.5; 0.6 takes np.power

# (channels, size, groups): the edges of the channel windows
CASES = [
    (3, 5, 1),  # fewer channels than the window: every window clipped on both sides
    (4, 5, 1),
    (11, 5, 1),  # an odd channel count
    (12, 5, 2),  # AlexNet's groups=2
    (2, 5, 2),  # one channel per group: the window is the channel alone
    (6, 3, 2),
    (6, 3, 3),  # three groups of two
    (12, 7, 1),  # a window larger than the paper's
    (4, 7, 2),  # a window larger than the group
    (8, 1, 1),  # a window of one: only the channel's own square
    (96, 5, 2),  # the paper's lrn1: 96 maps in two groups
]
# the cases of the finite-difference checks (96 channels would be 1152 perturbed entries)
FD_CASES = [(3, 5, 1), (4, 5, 1), (11, 5, 1), (12, 5, 2), (6, 3, 2), (8, 1, 1), (2, 5, 2), (12, 7, 1)]

# alpha near 1, so the cross-channel term is as large as the direct one (docs/layers/lrn.md, section 7)
ALPHA, K = 0.9, 2.0

# implementation against the reference, in the same dtype: only the order of the float operations
# differs (the tolerance the CUDA twins were held to before the per-op tests)
SAME_DTYPE_TOL = {np.dtype(np.float32): dict(rtol=2e-6, atol=1e-7), np.dtype(np.float64): dict(rtol=1e-13, atol=1e-15)}
# the CUDA kernels on a GPU against their twins (the GPU may fuse multiply-adds and has its own pow)
GPU_TOL = {np.dtype(np.float32): dict(rtol=2e-5, atol=1e-6), np.dtype(np.float64): dict(rtol=1e-12, atol=1e-14)}
# the (channels, size, groups) cases of the twin and kernel comparisons, at alpha = 1e-2
TWIN_CASES = [(8, 5, 1), (16, 5, 2), (3, 5, 1), (2, 5, 2), (6, 3, 2), (12, 7, 1), (4, 1, 1)]


def ids(case):
    return "c{}-n{}-g{}".format(*case)


@functools.lru_cache(maxsize=None)
def naive_case(channels, size, groups, beta, dtype_name):
    """x and dout of ``dtype``, and the naive loops' y and dx in float64 on those very values."""
    rng = np.random.default_rng(100 * channels + 10 * size + groups)
    x = (1.5 * rng.standard_normal((2, channels, 3, 3))).astype(dtype_name)
    dout = rng.standard_normal(x.shape).astype(dtype_name)
    x64, d64 = x.astype(np.float64), dout.astype(np.float64)
    y = naive.lrn_forward_naive(x64, size, ALPHA, beta, K, groups)
    dx = naive.lrn_backward_naive(x64, d64, size, ALPHA, beta, K, groups)
    for a in (x, dout, y, dx):
        a.flags.writeable = False  # shared between tests
    return x, dout, y, dx


# -- every implementation against the naive loops -----------------------------------------------------
@pytest.mark.parametrize("impl", implementations(LRN), indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_forward_and_backward_equal_the_naive_loops(impl, dtype, beta, case):
    """float64 to the naive loops' rounding (forward rtol 1e-12, as the paper-formula test had);
    float32 against the float64 loops on the same float32 values, to float32 rounding."""
    c, size, groups = case
    x, dout, y_naive, dx_naive = naive_case(c, size, groups, beta, np.dtype(dtype).name)
    y, cache = impl.forward(x.copy(), size, ALPHA, beta, K, groups)
    assert y.dtype == np.dtype(dtype) and y.shape == x.shape
    dx = impl.backward(dout.copy(), cache)
    assert dx.dtype == np.dtype(dtype) and dx.shape == x.shape
    tol = TOL[np.dtype(dtype)]
    np.testing.assert_allclose(y, y_naive, **(dict(rtol=1e-12, atol=0) if dtype == np.float64 else tol))
    np.testing.assert_allclose(dx, dx_naive, **tol)


@pytest.mark.parametrize("impl", implementations(LRN), indirect=True)
@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("case", FD_CASES, ids=ids)
def test_gradients_match_finite_differences(impl, beta, case, rng):
    """float64: dL/dx of L = sum(dout * y) by centred differences, against the backward; and the
    cross-channel term is large enough here that a backward without it would fail."""
    c, size, groups = case
    x = rng.standard_normal((2, c, 3, 2))
    dout = rng.standard_normal(x.shape)
    _, cache = impl.forward(x, size, ALPHA, beta, K, groups)
    dx = impl.backward(dout, cache)
    numeric = numerical_gradient(lambda: (impl.forward(x, size, ALPHA, beta, K, groups)[0] * dout).sum(), x)
    assert rel_error(dx, numeric) < 1e-6
    direct_only = dout * (K + ALPHA * channel_window_sum(x * x, size, groups)) ** -beta
    assert rel_error(direct_only, numeric) > 1e-2


# -- every implementation against the reference, in the same dtype ----------------------------------------
@pytest.mark.parametrize("impl", implementations(LRN), indirect=True)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", TWIN_CASES, ids=ids)
def test_equals_the_reference_in_the_same_dtype(impl, dtype, case, rng):
    """y, dx and the cache's scale and scale_pow of each implementation against the reference's, at
    alpha = 1e-2 on inputs large enough (3 x standard normal) for the window sum to matter (the
    CUDA kernels on a GPU to GPU_TOL, as they were held to their twins)."""
    c, size, groups = case
    x = (3 * rng.standard_normal((2, c, 3, 4))).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    args = (size, 1e-2, 0.75, 2.0, groups)
    assert impl.pair.by == {"reference": "reference", "cpu": "kernels.cpu.lrn"}.get(impl.name, "kernels.cuda.lrn")
    ref = LRN.pair("reference")
    y_ref, cache_ref = ref.forward(x, *args)
    dx_ref = ref.backward(dout, cache_ref)
    y, cache = impl.forward(x, *args)
    dx = impl.backward(dout, cache)
    tol = (GPU_TOL if impl.name == "cuda" else SAME_DTYPE_TOL)[np.dtype(dtype)]
    assert y.dtype == dx.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, y_ref, **tol)
    np.testing.assert_allclose(dx, dx_ref, **tol)
    for name in ("scale", "scale_pow"):
        kept = impl.get(getattr(cache, name))
        assert kept.dtype == np.dtype(dtype)
        np.testing.assert_allclose(kept, getattr(cache_ref, name), **tol)


@pytest.mark.parametrize("kind", ["reference", "cpu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", TWIN_CASES, ids=ids)
def test_twin_functions_equal_the_numpy_implementations(kind, dtype, case, rng):
    """The CUDA kernels' array-returning twins (lrn_forward_twin, lrn_backward_twin), called
    directly, against the reference and the CPU kernel: y, scale, scale_pow and dx, and their dtypes."""
    c, size, groups = case
    x = (3 * rng.standard_normal((2, c, 3, 4))).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    alpha, beta, k = 1e-2, 0.75, 2.0
    pair = LRN.pair(kind)
    y_want, cache = pair.forward(x, size, alpha, beta, k, groups)
    scale_want, scale_pow_want = cache.scale.copy(), cache.scale_pow.copy()
    dx_want = pair.backward(dout, cache)

    y, scale, scale_pow = cuda_lrn.lrn_forward_twin(x, size, alpha, beta, k, groups)
    assert y.dtype == scale.dtype == scale_pow.dtype == dtype
    tol = SAME_DTYPE_TOL[np.dtype(dtype)]
    np.testing.assert_allclose(y, y_want, **tol)
    np.testing.assert_allclose(scale, scale_want, **tol)
    np.testing.assert_allclose(scale_pow, scale_pow_want, **tol)
    dx = cuda_lrn.lrn_backward_twin(dout, x, scale, scale_pow, size, alpha, beta, groups)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, dx_want, **tol)


@pytest.mark.parametrize("impl", implementations(LRN), indirect=True)
def test_paper_constants_in_float32(impl, rng):
    """lrn1 of the paper (96 maps, groups=2, n=5, alpha=1e-4, beta=0.75, k=2) on float32 inputs
    large enough (x20) for alpha=1e-4 to matter: each implementation against the reference and
    the CPU kernel (the layer's default on NumPy; a GPU to GPU_TOL), and the twin functions
    against both."""
    x = rng.standard_normal((2, 96, 5, 5)).astype(np.float32) * 20
    dout = rng.standard_normal(x.shape).astype(np.float32)
    args = (5, 1e-4, 0.75, 2.0, 2)
    tol = SAME_DTYPE_TOL[np.dtype(np.float32)]  # rtol=2e-6, atol=1e-7
    impl_tol = GPU_TOL[np.dtype(np.float32)] if impl.name == "cuda" else tol
    for want_pair in (LRN.pair("reference"), LRN.pair("cpu")):
        y_want, cache_want = want_pair.forward(x, *args)
        dx_want = want_pair.backward(dout, cache_want)
        y, cache = impl.forward(x, *args)
        np.testing.assert_allclose(y, y_want, **impl_tol)
        np.testing.assert_allclose(impl.backward(dout, cache), dx_want, **impl_tol)
        y_t, scale_t, inv_t = cuda_lrn.lrn_forward_twin(x, *args)
        np.testing.assert_allclose(y_t, y_want, **tol)
        np.testing.assert_allclose(cuda_lrn.lrn_backward_twin(dout, x, scale_t, inv_t, 5, 1e-4, 0.75, 2), dx_want,
                                   **tol)


# -- the CPU kernel on 1-3 threads, with small and default blocks ----------------------------------------
# (channels, size, groups, H, W)
CPU_CASES = [(96, 5, 2, 5, 7), (7, 5, 1, 3, 3), (6, 3, 3, 4, 2), (4, 7, 2, 3, 3), (10, 1, 1, 2, 3)]


@pytest.mark.parametrize("case", CPU_CASES, ids=lambda c: "c{}-n{}-g{}-{}x{}".format(*c))
def test_cpu_kernel_on_threads_and_blocks(case, threads, chunking, monkeypatch):
    """The CPU kernel against the reference on a batch of 5, for beta 0.75 / 0.5 / 0.6 (its three
    code paths), float64 and float32, with the block sizes of ``chunking`` and, with default
    chunking, also blocks of two whole samples (so the batch of 5 ends on a block of one)."""
    c, size, groups, h, w = case
    rng = np.random.default_rng(2)
    cpu, ref = LRN.pair("cpu"), LRN.pair("reference")
    assert cpu.by == "kernels.cpu.lrn"
    for dtype in DTYPES:
        x = (3 * rng.standard_normal((5, c, h, w))).astype(dtype)
        dy = rng.standard_normal(x.shape).astype(dtype)
        for beta in BETAS:
            args = (size, 0.05, beta, 2.0, groups)
            y_ref, cache_ref = ref.forward(x, *args)
            dx_ref = ref.backward(dy, cache_ref)
            for per_block in ([None, 2] if chunking == "default" else [None]):
                with monkeypatch.context() as m:
                    if per_block is not None:
                        m.setattr(cpu_lrn, "BLOCK_BYTES", per_block * c * h * w * np.dtype(dtype).itemsize)
                    y, cache = cpu.forward(x, *args)
                    dx = cpu.backward(dy, cache)
                for got, want in ((y, y_ref), (dx, dx_ref)):
                    assert got.dtype == want.dtype == np.dtype(dtype)
                    np.testing.assert_allclose(got, want, **TOL[np.dtype(dtype)])


# -- the paper's constants, the alpha convention and groups, on every implementation -----------------
@pytest.mark.parametrize("impl", implementations(LRN), indirect=True)
def test_paper_constants_and_alpha_convention(impl):
    """One non-zero channel: its own square is the whole window sum, and alpha is NOT divided by
    the window size (docs/layers/lrn.md, section 6). Its neighbours within two channels are 0 and
    stay 0, but they feel it in the denominator: at x_j = 0 the cross term of dy/dx_j vanishes,
    leaving dx_j = dout_j * scale_j^-beta with scale_j = k + alpha * 100 (without the window,
    alpha on the own square only, it would be k^-beta)."""
    x = np.zeros((1, 5, 1, 1))
    x[0, 2] = 10.0
    y, cache = impl.forward(x, 5, 1e-4, 0.75, 2.0, 1)
    assert y[0, 2, 0, 0] == pytest.approx(10.0 / (2.0 + 1e-4 * 100.0) ** 0.75, rel=1e-14)
    np.testing.assert_array_equal(y[0, [0, 1, 3, 4], 0, 0], 0.0)
    dx = impl.backward(np.ones_like(x), cache)
    np.testing.assert_allclose(dx[0, [0, 1, 3, 4], 0, 0], (2.0 + 1e-4 * 100.0) ** -0.75, rtol=1e-14)
    assert (2.0 + 1e-4 * 100.0) ** -0.75 != pytest.approx(2.0 ** -0.75, rel=1e-6)


@pytest.mark.parametrize("impl", implementations(LRN), indirect=True)
def test_window_stops_at_group_boundary(impl):
    """A big value in the second group: channel 1 (first group) would see channel 2 if windows
    crossed groups; with groups=1 it does, and is normalized more."""
    x = np.zeros((1, 4, 1, 1))
    x[0, 2] = 100.0
    y, _ = impl.forward(x + 1.0, 5, 1.0, 1.0, 1.0, 2)
    assert y[0, 1, 0, 0] == pytest.approx(1.0 / (1.0 + 2.0))  # window {0, 1}: 1 + 1
    assert y[0, 0, 0, 0] == pytest.approx(1.0 / (1.0 + 2.0))
    assert y[0, 3, 0, 0] == pytest.approx(1.0 / (1.0 + 101.0 ** 2 + 1.0))  # window {2, 3}
    y_one, _ = impl.forward(x + 1.0, 5, 1.0, 1.0, 1.0, 1)
    assert y_one[0, 1, 0, 0] < y[0, 1, 0, 0]
    assert y_one[0, 1, 0, 0] == pytest.approx(1.0 / (1.0 + 1.0 + 1.0 + 101.0 ** 2 + 1.0))  # window {0..3}


@pytest.mark.parametrize("size, groups", [(5, 1), (3, 2), (1, 1), (7, 3)])
def test_channel_window_sum(size, groups, rng):
    """The reference's window sum against the windows written out (clipped at each group's edges)."""
    a = rng.standard_normal((2, 6, 2, 3))
    want = np.zeros_like(a)
    cg = 6 // groups
    for c in range(6):
        lo = c // cg * cg
        for cc in range(max(lo, c - size // 2), min(lo + cg, c + size // 2 + 1)):
            want[:, c] += a[:, cc]
    np.testing.assert_allclose(channel_window_sum(a, size, groups), want, rtol=1e-14, atol=1e-15)


# -- the LocalResponseNorm module ----------------------------------------------------------------------
def test_module_paper_constants_and_alpha_convention():
    """The defaults are the paper's, and the module (CPU kernel by default, reference inside
    reference()) gives the single-channel values of test_paper_constants_and_alpha_convention."""
    layer = LocalResponseNorm()
    assert (layer.size, layer.alpha, layer.beta, layer.k, layer.groups) == (5, 1e-4, 0.75, 2.0, 1)
    x = np.zeros((1, 5, 1, 1))
    x[0, 2] = 10.0
    for ref in (False, True):
        with reference(ref):
            y = layer.forward(x)
            assert layer.saved_implementation() == ("reference" if ref else "kernels.cpu.lrn")
            dx = layer.backward(np.ones_like(x))
        assert y[0, 2, 0, 0] == pytest.approx(10.0 / (2.0 + 1e-4 * 100.0) ** 0.75, rel=1e-14)
        np.testing.assert_array_equal(y[0, [0, 1, 3, 4], 0, 0], 0.0)
        np.testing.assert_allclose(dx[0, [0, 1, 3, 4], 0, 0], (2.0 + 1e-4 * 100.0) ** -0.75, rtol=1e-14)


def test_module_window_stops_at_group_boundary():
    x = np.zeros((1, 4, 1, 1))
    x[0, 2] = 100.0  # a big value in the second group
    y = LocalResponseNorm(size=5, alpha=1.0, beta=1.0, k=1.0, groups=2).forward(x + 1.0)
    # channel 1 (first group) would see channel 2 if windows crossed groups
    assert y[0, 1, 0, 0] == pytest.approx(1.0 / (1.0 + 2.0))  # window {0, 1}: 1 + 1
    y_one = LocalResponseNorm(size=5, alpha=1.0, beta=1.0, k=1.0, groups=1).forward(x + 1.0)
    assert y_one[0, 1, 0, 0] < y[0, 1, 0, 0]


@pytest.mark.parametrize("channels, size, groups", FD_CASES[:6])
def test_module_gradients_match_finite_differences(channels, size, groups, rng, xp):
    """check_layer on the module, its reference and its kernels (CPU on NumPy, CUDA on CuPy)."""
    layer = LocalResponseNorm(size=size, alpha=ALPHA, beta=0.75, k=K, groups=groups)
    x = backend.to_backend(rng.standard_normal((2, channels, 3, 2)), xp)
    kernel = "kernels.cpu.lrn" if xp is np else "kernels.cuda.lrn"
    for implementation, ran in (("reference", "reference"), ("kernels", kernel)):
        errors = check_layer(layer, x, implementation=implementation)
        assert errors.implementation == ran
        assert errors["x"] < 1e-6, errors


@pytest.mark.parametrize("channels, groups", [(3, 1), (11, 1), (12, 2), (96, 2)])
def test_module_forward_equals_the_paper_formula(channels, groups, rng, xp):
    """The module with its default implementation (CPU kernel on NumPy, CUDA on CuPy) against the
    naive loop, at alpha = 0.5."""
    x = rng.standard_normal((2, channels, 3, 3))
    layer = LocalResponseNorm(size=5, alpha=0.5, beta=0.75, k=2.0, groups=groups)
    y = backend.to_numpy(layer.forward(backend.to_backend(x, xp)))
    np.testing.assert_allclose(y, naive.lrn_forward_naive(x, 5, 0.5, 0.75, 2.0, groups), rtol=1e-12)


def test_module_keeps_float32():
    """No float64 upcast in a float32 forward and backward, on the kernel and on the reference."""
    x = np.random.default_rng(9).standard_normal((3, 4, 11, 11)).astype(np.float32)
    for ref in (False, True):
        with reference(ref):
            layer = LocalResponseNorm(groups=2)
            y = layer.forward(x)
            assert y.dtype == np.float32
            assert layer.backward(np.ones_like(y)).dtype == np.float32


def test_module_backward_runs_the_implementation_of_its_forward(rng):
    """A forward on the kernel, then a backward inside reference(): the kernel's backward runs
    (it takes only its own cache), and the result is the kernel's."""
    x = rng.standard_normal((2, 6, 3, 3))
    dout = rng.standard_normal(x.shape)
    layer = LocalResponseNorm(size=3, alpha=ALPHA, groups=2)
    layer.forward(x)
    with reference():
        dx = layer.backward(dout)
    _, cache = LRN.pair("cpu").forward(x, 3, ALPHA, 0.75, 2.0, 2)
    np.testing.assert_array_equal(dx, LRN.pair("cpu").backward(dout, cache))


def test_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        LocalResponseNorm(size=4)
    with pytest.raises(ValueError, match="odd"):
        LocalResponseNorm(size=0)
    with pytest.raises(ValueError, match="groups=2"):
        LocalResponseNorm(groups=2).forward(np.zeros((1, 3, 2, 2)))
    with pytest.raises(ValueError, match="LocalResponseNorm.*floating-point"):
        LocalResponseNorm().forward(np.zeros((1, 3, 2, 2), dtype=np.int8))
    with pytest.raises(ValueError, match=r"LocalResponseNorm expects input of shape \(N, C, H, W\)"):
        LocalResponseNorm().forward(np.zeros((3, 2, 2)))
    with pytest.raises(RuntimeError, match="without a forward"):
        LocalResponseNorm().backward(np.zeros((1, 3, 2, 2)))
    for k in (0.0, -1.0):  # k = 0 would divide by zero on an all-zero channel (common after ReLU)
        with pytest.raises(ValueError, match="k must be > 0") as err:
            LocalResponseNorm(k=k)
        assert "\n" not in str(err.value)


def test_cuda_implementation_refuses_numpy_outside_twins():
    """The CUDA pair takes CuPy arrays; a NumPy array is a TypeError, never a silent twin."""
    with pytest.raises(TypeError, match="takes CuPy arrays"):
        LRN.pair("cuda").forward(np.ones((1, 2, 2, 2)), 5, 1e-4, 0.75, 2.0, 1)


# -- the CUDA kernels on a GPU against their twins and the module ---------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", TWIN_CASES, ids=ids)
def test_cuda_kernels_equal_their_twins(dtype, case, rng):
    """lrn_kernel_forward/backward on a GPU against lrn_forward_twin/backward_twin, and the module
    (reference and kernels, on NumPy and on CuPy) against the kernels."""
    cp = backend.get_backend("cupy")
    c, size, groups = case
    x = (3 * rng.standard_normal((2, c, 3, 4))).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    alpha, beta, k = 1e-2, 0.75, 2.0
    tol = GPU_TOL[np.dtype(dtype)]

    y, scale, scale_pow = cuda_lrn.lrn_kernel_forward(cp.asarray(x), size, alpha, beta, k, groups)
    assert y.dtype == scale.dtype == scale_pow.dtype == dtype
    y_t, s_t, i_t = cuda_lrn.lrn_forward_twin(x, size, alpha, beta, k, groups)
    for got, want in zip((y, scale, scale_pow), (y_t, s_t, i_t)):
        np.testing.assert_allclose(cp.asnumpy(got), want, **tol)
    dx = cuda_lrn.lrn_kernel_backward(cp.asarray(dout), cp.asarray(x), scale, scale_pow, size, alpha, beta, groups)
    assert dx.dtype == dtype
    np.testing.assert_allclose(cp.asnumpy(dx), cuda_lrn.lrn_backward_twin(dout, x, s_t, i_t, size, alpha, beta, groups),
                               **tol)

    for data in (x, cp.asarray(x)):  # the module's reference and kernels, on NumPy and on CuPy
        xp_ = cp if isinstance(data, cp.ndarray) else np
        for ref in (True, False):
            layer = LocalResponseNorm(size=size, alpha=alpha, beta=beta, k=k, groups=groups)
            with reference(ref):
                y_layer = layer.forward(data)
                dx_layer = layer.backward(xp_.asarray(dout))
            np.testing.assert_allclose(cp.asnumpy(y), backend.to_numpy(y_layer), **tol)
            np.testing.assert_allclose(cp.asnumpy(dx), backend.to_numpy(dx_layer), **tol)
