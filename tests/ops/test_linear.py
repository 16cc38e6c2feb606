"""linear: y = x W^T + b and its backward pass, every implementation through one interface.

The pair ``linear_forward(x, w, b) -> (y, cache)`` / ``linear_backward(dout, cache, dw=None,
db=None) -> (dx, dw, db)`` of the readable reference (minialex/nn/functional/linear.py) and of
the CPU kernel (minialex/kernels/cpu/linear.py; there is no CUDA kernel: on CuPy the reference
runs), in float32 and float64, against a plain einsum in float64 and against centred finite
differences (float64). The gradients ADD into dw and db when they are given (twice = double,
values written by hand are kept, strided windows of wider arrays), and start from zero when not.
Then the layer ``Linear``: which implementation ran, accumulation until zero_grad, PyTorch's
layout, float32 staying float32, and the messages for bad input.

The mathematics is derived in docs/layers/linear.md.
"""

import numpy as np
import pytest

from minialex import backend
from minialex.gradcheck import check_layer, numerical_gradient, rel_error
from minialex.kernels.cpu import linear as cpu_linear
from minialex.nn import Linear, reference
from minialex.nn.dispatch import REFERENCE, reference_enabled
from minialex.nn.linear import LINEAR

from .conftest import TOL, implementations

DTYPES = [np.float64, np.float32]
SHAPES = [(4, 7, 5), (1, 3, 2), (9, 13, 11)]  # (N, in, out)


def data(rng, shape, dtype):
    """x (N, in), w (out, in), b (out,), dout (N, out) of ``dtype``, all entries distinct."""
    n, fin, fout = shape
    x, w, b, dout = (rng.standard_normal(s).astype(dtype) for s in ((n, fin), (fout, fin), (fout,), (n, fout)))
    return x, w, b, dout


def plain(x, w, b, dout):
    """y, dx, dw, db by the index formulas of docs/layers/linear.md, in float64."""
    x, w, b, dout = (np.asarray(a, dtype=np.float64) for a in (x, w, b, dout))
    y = np.einsum("ni,ki->nk", x, w) + b  # y_nk = sum_i x_ni w_ki + b_k
    dx = np.einsum("nk,ki->ni", dout, w)  # dx_ni = sum_k dout_nk w_ki
    dw = np.einsum("nk,ni->ki", dout, x)  # dw_ki = sum_n dout_nk x_ni
    db = dout.sum(axis=0)  # db_k = sum_n dout_nk
    return y, dx, dw, db


def close(got, want, dtype):
    """got (of dtype) against want with the tolerance of dtype."""
    assert got.dtype == np.dtype(dtype)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, **TOL[np.dtype(dtype)])


def strided(a):
    """a as a non-contiguous view (every other element of a wider array): what BLAS cannot read as rows."""
    return np.stack([a, a + 100], axis=-1)[..., 0]


# -- every implementation ---------------------------------------------------------------------
@pytest.mark.parametrize("impl", implementations(LINEAR), indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_and_fresh_gradients_equal_the_formulas(impl, shape, dtype, rng):
    """y, dx, dw, db against the plain einsum; dw and db not given: fresh arrays, from zero
    (a second backward gives the same values again, not twice them)."""
    x, w, b, dout = data(rng, shape, dtype)
    want = plain(x, w, b, dout)
    y, cache = impl.forward(x, w, b)
    close(y, want[0], dtype)
    dx, dw, db = impl.backward(dout, cache)
    for got, ref in zip((dx, dw, db), want[1:]):
        close(got, ref, dtype)
    assert not np.shares_memory(dw, w) and not np.shares_memory(dx, x)
    dx2, dw2, db2 = impl.backward(dout, cache)
    assert dw2 is not dw and db2 is not db
    for got, ref in zip((dx2, dw2, db2), want[1:]):
        close(got, ref, dtype)


@pytest.mark.parametrize("impl", implementations(LINEAR), indirect=True)
def test_gradients_match_finite_differences(impl, rng):
    """float64: dx, dw and db against centred differences of sum(G * y)."""
    x, w, b, g = data(rng, (4, 7, 5), np.float64)
    _, cache = impl.forward(x, w, b)
    dx, dw, db = impl.backward(g, cache)

    def loss():
        return float((impl.forward(x, w, b)[0] * g).sum())

    for name, analytic, wrt in (("x", dx, x), ("w", dw, w), ("b", db, b)):
        err = rel_error(analytic, numerical_gradient(loss, wrt))
        assert err < 1e-6, (name, err)


@pytest.mark.parametrize("impl", implementations(LINEAR), indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_gradients_add_into_given_arrays(impl, dtype, layout, rng):
    """dw and db given: the gradients are ADDED into them, whatever they hold (zeros, an earlier
    backward's gradient, values written by hand), and those very arrays are returned. 'strided':
    dout and x are non-contiguous views and dw, db windows of wider arrays (the CPU kernel's GEMM
    with beta = 1 cannot take such a dout and falls back to two steps), and nothing outside the
    windows moves. Every result also equals the reference implementation's."""
    x, w, b, dout = data(rng, (4, 7, 5), dtype)
    want = plain(x, w, b, dout)
    big_w, big_b = np.full((9, 12), 7.0, dtype), np.full(13, 7.0, dtype)
    if layout == "strided":
        x, dout = strided(x), strided(dout)
        assert not dout.flags.c_contiguous and not x.flags.c_contiguous
        dw, db = big_w[2:7, 3:10], big_b[1:11:2]
    else:
        dw, db = np.empty_like(w), np.empty_like(b)
    dw[...], db[...] = 0, 0
    big_w0, big_b0 = big_w.copy(), big_b.copy()
    ref = LINEAR.pair(REFERENCE)

    y, cache = impl.forward(x, w, b)
    y_ref, cache_ref = ref.forward(x, w, b)
    close(y, want[0], dtype)
    close(y, y_ref, dtype)

    out = impl.backward(dout, cache, dw=dw, db=db)
    assert out[1] is dw and out[2] is db  # the given arrays, returned
    close(out[0], want[1], dtype)
    once_w, once_b = dw.copy(), db.copy()
    close(once_w, want[2], dtype)
    close(once_b, want[3], dtype)
    r = ref.backward(dout, cache_ref)
    for got, expected in zip((out[0], once_w, once_b), r):
        close(got, expected, dtype)

    impl.backward(dout, cache, dw=dw, db=db)  # accumulates: twice the first gradient
    np.testing.assert_allclose(dw, 2 * once_w, **TOL[np.dtype(dtype)])
    np.testing.assert_allclose(db, 2 * once_b, **TOL[np.dtype(dtype)])

    dw[...], db[...] = 1.0, -2.0  # written by hand: the next backward must add to it
    dx, dw_out, db_out = impl.backward(dout, cache, dw=dw, db=db)
    assert dw_out is dw and db_out is db
    close(dw, 1.0 + want[2], dtype)
    close(db, -2.0 + want[3], dtype)
    close(dx, want[1], dtype)

    if layout == "strided":  # nothing outside the windows moved
        outside_w = np.ones(big_w.shape, bool)
        outside_w[2:7, 3:10] = False
        outside_b = np.ones(big_b.shape, bool)
        outside_b[1:11:2] = False
        np.testing.assert_array_equal(big_w[outside_w], big_w0[outside_w])
        np.testing.assert_array_equal(big_b[outside_b], big_b0[outside_b])


# -- the CPU kernel's threads -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 7, 5), (9, 13, 11), (1, 3, 2)])  # (batch, in, out)
@pytest.mark.parametrize("split", ["calling-thread", "all-threads"])
def test_cpu_products_split_over_threads(shape, split, dtype, threads, monkeypatch):
    """The three products of the CPU kernel, on the calling thread (a small layer) or cut by
    features over the threads (runtime.gemm_split, forced here through GEMM_MIN_FLOPS), against the
    reference, two steps in a row so that dW and db accumulate into the same arrays."""
    from minialex.kernels.cpu import runtime

    monkeypatch.setattr(runtime, "GEMM_MIN_FLOPS", 1 if split == "all-threads" else 1e30)
    rng = np.random.default_rng(10)
    x, w, b, dout = data(rng, shape, dtype)
    fast = LINEAR.pick(x)
    assert fast.by == "kernels.cpu.linear" and fast.forward is cpu_linear.linear_forward
    ref = LINEAR.pair(REFERENCE)
    results = []
    for pair in (ref, fast):
        dw, db = np.zeros_like(w), np.zeros_like(b)
        out = []
        for _ in range(2):
            y, cache = pair.forward(x, w, b)
            dx, dw_out, db_out = pair.backward(dout, cache, dw=dw, db=db)
            assert dw_out is dw and db_out is db
            out += [y, dx]
        results.append(out + [dw, db])
    for r, g in zip(*results):
        close(g, r, dtype)


# -- the layer --------------------------------------------------------------------------------
def both_paths(run):
    """run() inside reference(), then with the kernels; returns both results."""
    with reference():
        ref = run()
    got = run()
    return ref, got


def ran(layer):
    """Forward just ran: the CPU kernel made it (the reference, inside reference())."""
    want = "reference" if reference_enabled() else "kernels.cpu.linear"
    assert layer.saved_implementation() == want


def assert_close(ref, got, dtype):
    assert len(ref) == len(got)
    for r, g in zip(ref, got):
        assert g.dtype == r.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g, r, **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("implementation", ["reference", "kernels"])
def test_layer_gradients_match_finite_differences(rng, xp, implementation):
    layer = Linear(7, 5, init_std=1.0, rng=rng, dtype=np.float64).to(xp)
    layer.bias.data[...] = backend.to_backend(rng.standard_normal(5), xp)
    errors = check_layer(layer, backend.to_backend(rng.standard_normal((4, 7)), xp), implementation=implementation)
    assert max(errors.values()) < 1e-6, errors
    kernel = "kernels.cpu.linear" if xp is np else "reference"  # no CUDA kernel: the reference on CuPy
    assert errors.implementation == ("reference" if implementation == "reference" else kernel)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_layer_accumulates_until_zero_grad(dtype, layout):
    """Linear's backward adds dW into weight.grad, whatever it held: zeros, an earlier backward's
    gradient, or values written by hand, on the kernel and on the reference alike. A strided dout
    (which BLAS cannot read as rows) takes the kernel's two-step fallback and must agree too."""
    rng = np.random.default_rng(6)
    layer = Linear(7, 5, init_std=1.0, rng=rng, dtype=dtype)
    x = rng.standard_normal((4, 7)).astype(dtype)
    dy = rng.standard_normal((4, 5)).astype(dtype)
    if layout == "strided":
        dy = np.stack([dy, dy], axis=-1)[..., 0]

    def run():
        layer.zero_grad()
        y = layer.forward(x)
        ran(layer)
        out = [y, layer.backward(dy), layer.weight.grad.copy()]
        layer.forward(x)
        layer.backward(dy)  # accumulates: twice the first gradient
        out.append(layer.weight.grad.copy())
        layer.weight.grad[...] = 1.0  # written by hand: the next backward must add to it
        layer.forward(x)
        layer.backward(dy)
        return out + [layer.weight.grad.copy(), layer.bias.grad.copy()]

    ref, got = both_paths(run)
    assert_close(ref, got, dtype)
    np.testing.assert_allclose(got[3], 2 * got[2], **TOL[np.dtype(dtype)])
    np.testing.assert_allclose(ref[3], 2 * ref[2], **TOL[np.dtype(dtype)])
    np.testing.assert_allclose(got[4], 1.0 + got[2], **TOL[np.dtype(dtype)])
    layer.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


def test_layer_keeps_float32():
    """No float64 upcast in a float32 forward and backward, on the kernel and the reference."""
    rng = np.random.default_rng(9)
    layer = Linear(6, 3, rng=rng)
    x = rng.standard_normal((4, 6)).astype(np.float32)

    def run():
        y = layer.forward(x)
        ran(layer)
        dx = layer.backward(np.ones_like(y))
        return [y, dx, layer.weight.grad, layer.bias.grad]

    for out in both_paths(run):
        assert all(a.dtype == np.float32 for a in out)


def test_pytorch_layout(rng):
    layer = Linear(3, 2, rng=rng, dtype=np.float64)
    assert layer.weight.shape == (2, 3) and layer.bias.shape == (2,)
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(layer.forward(x), x @ layer.weight.data.T + layer.bias.data)


@pytest.mark.parametrize("shape, dtype, message", [
    ((4, 3, 1), np.float32, "(N, features)"),
    ((4, 5), np.float32, "3 input channels/features"),
    ((4, 3), np.int16, "floating-point"),
])
def test_bad_input_is_named(shape, dtype, message):
    with pytest.raises(ValueError) as err:
        Linear(3, 2).forward(np.zeros(shape, dtype=dtype))
    assert "Linear" in str(err.value) and message in str(err.value) and str(shape) in str(err.value)


def test_input_dtype_must_match_the_parameters():
    with pytest.raises(ValueError, match="input dtype float64 differs from parameter dtype float32"):
        Linear(3, 2).forward(np.zeros((4, 3)))


def test_backward_without_forward_is_named():
    layer = Linear(3, 2)
    with pytest.raises(RuntimeError, match="Linear.backward called without a forward"):
        layer.backward(np.zeros((1, 2), np.float32))
