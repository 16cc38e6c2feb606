"""relu, y = max(0, x): every implementation of the pure pair ``minialex.nn.relu.RELU`` (the
reference of minialex/nn/functional/relu.py and the CPU kernel of minialex/kernels/cpu/relu.py)
and of the in-place pair ``RELU_INPLACE`` (the CPU kernel's relu_forward_inplace /
relu_backward_inplace, the CUDA ones of minialex/kernels/cuda/relu.py on NumPy inside twins() and
on a GPU under the ``gpu`` marker; its reference is the pure pair): values, the zero gradient at
x = 0, centred finite differences (float64), which arrays are written over (x by forward, dout by
backward, in contiguous arrays and in column slices of wider ones), the CPU kernel on 1-3
threads in small and default pieces; then the ReLU module (in place or not, kernels on or
inside reference()).

The derivative, the choice of 0 at x = 0 and why backward needs only y (so that an in-place
forward loses nothing): docs/layers/relu.md.
"""

import numpy as np
import pytest

from minialex import backend
from minialex.gradcheck import check_layer, numerical_gradient, rel_error
from minialex.nn import ReLU, reference
from minialex.nn.relu import RELU, RELU_INPLACE

from .conftest import implementations

DTYPES = [np.float64, np.float32]
SHAPES = [(1,), (5, 7), (3, 4, 5, 6), (2, 300000)]


def renamed(params, prefix):
    """implementations(OP) with ids prefixed, so two ops' parameters can share one test."""
    return [pytest.param(*p.values, marks=p.marks, id=f"{prefix}-{p.id}") for p in params]


BOTH = renamed(implementations(RELU), "pure") + renamed(implementations(RELU_INPLACE), "inplace")


def is_inplace(impl):
    """True where the pair writes over its arguments: every RELU_INPLACE implementation but the
    reference (RELU_INPLACE's reference is the pure pair, as under reference())."""
    return impl.op is RELU_INPLACE and impl.name != "reference"


def inputs(shape, dtype, seed, zeros_every=7):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[::zeros_every] = 0.0  # exact zeros: zero gradient on every implementation
    dout = rng.standard_normal(shape).astype(dtype)
    return x, dout


def on_layout(impl, a, layout):
    """``a`` on impl's backend, contiguous or as column 0 of a (..., 2) array whose column 1 is
    a - 5; returns (the array, the wide array or None)."""
    if layout == "contiguous":
        return impl.to(a.copy()), None
    wide = impl.to(np.stack([a, a - 5], axis=-1))
    return wide[..., 0], wide


# -- values and gradients, every implementation ------------------------------------------------------
@pytest.mark.parametrize("impl", BOTH, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
def test_values(impl, dtype):
    """y = max(x, 0) and dx = dout * (x > 0), exactly, in the input's dtype."""
    for shape in SHAPES[:3]:
        x, dout = inputs(shape, dtype, seed=5)
        y, cache = impl.forward(x.copy())
        assert y.dtype == np.dtype(dtype) and y.shape == x.shape
        np.testing.assert_array_equal(y, np.maximum(x, 0))
        dx = impl.backward(dout.copy(), cache)
        assert dx.dtype == np.dtype(dtype) and dx.shape == x.shape
        np.testing.assert_array_equal(dx, dout * (x > 0))


@pytest.mark.parametrize("impl", BOTH, indirect=True)
def test_zero_input_gets_zero_gradient(impl):
    """The derivative at x = 0 is taken to be 0 (docs/layers/relu.md), also at -0.0."""
    _, cache = impl.forward(np.array([[-1.0, 0.0, 2.0, -0.0]]))
    np.testing.assert_array_equal(impl.backward(np.ones((1, 4)), cache), [[0.0, 0.0, 1.0, 0.0]])


@pytest.mark.parametrize("impl", BOTH, indirect=True)
def test_backward_matches_finite_differences(impl, rng):
    """float64; inputs kept away from the kink at 0, where the centred difference would give 1/2.
    The in-place variants get a fresh copy of x on every call."""
    x = rng.standard_normal((4, 3, 2, 2))
    x[np.abs(x) < 0.01] = 0.5
    dout = rng.standard_normal(x.shape)
    _, cache = impl.forward(x.copy())
    dx = impl.backward(dout.copy(), cache)
    numeric = numerical_gradient(lambda: (impl.forward(x.copy())[0] * dout).sum(), x)
    assert rel_error(dx, numeric) < 1e-6
    assert (numeric == 0).any() and (numeric != 0).any()  # both sides of the kink are tested


# -- which arrays are written over ------------------------------------------------------------------
@pytest.mark.parametrize("impl", implementations(RELU_INPLACE), indirect=True)
@pytest.mark.parametrize("layout", ["contiguous", "column-slice"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_inplace_pair_writes_over_x_and_dout(impl, layout, dtype):
    """relu_forward_inplace returns x itself, rectified; relu_backward_inplace returns dout
    itself, masked; in a column slice of a wider array (a column of the two-column network) the
    other column stays untouched. RELU_INPLACE's reference is the pure pair: it writes over
    neither."""
    for shape in [(1,), (3, 4, 5, 6), (2, 300000)]:
        x0, dy = inputs(shape, dtype, seed=8, zeros_every=5)
        x, wide_x = on_layout(impl, x0, layout)
        with impl.context():
            y, cache = impl.pair.forward(x)
        assert (y is x) == is_inplace(impl)
        np.testing.assert_array_equal(impl.get(y), np.maximum(x0, 0))
        np.testing.assert_array_equal(impl.get(x), np.maximum(x0, 0) if is_inplace(impl) else x0)
        if wide_x is not None:
            np.testing.assert_array_equal(impl.get(wide_x[..., 1]), x0 - 5)

        d, wide_d = on_layout(impl, dy, layout)
        with impl.context():
            dx = impl.pair.backward(d, cache)
        assert (dx is d) == is_inplace(impl)
        np.testing.assert_array_equal(impl.get(dx), dy * (x0 > 0))
        np.testing.assert_array_equal(impl.get(d), dy * (x0 > 0) if is_inplace(impl) else dy)
        if wide_d is not None:
            np.testing.assert_array_equal(impl.get(wide_d[..., 1]), dy - 5)


@pytest.mark.parametrize("impl", implementations(RELU), indirect=True)
@pytest.mark.parametrize("layout", ["contiguous", "column-slice"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_pure_pair_writes_over_nothing(impl, layout, dtype):
    """relu_forward and relu_backward return new arrays and leave x and dout as they were."""
    for shape in [(1,), (3, 4, 5, 6), (2, 300000)]:
        x0, dy = inputs(shape, dtype, seed=7, zeros_every=5)
        x, _ = on_layout(impl, x0, layout)
        d, _ = on_layout(impl, dy, layout)
        with impl.context():
            y, cache = impl.pair.forward(x)
            dx = impl.pair.backward(d, cache)
        assert y is not x and dx is not d
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(d, dy)
        np.testing.assert_array_equal(y, np.maximum(x0, 0))
        np.testing.assert_array_equal(dx, dy * (x0 > 0))


# -- the CPU kernel on 1-3 threads, in default and small pieces --------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_kernel_on_threads_and_pieces(dtype, threads, relu_pieces):
    """The CPU pair against the reference, bit for bit, on arrays from one element to 600K (cut
    into 4096-element jobs with relu_pieces='small'); dx is a new array."""
    cpu, ref = RELU.pair("cpu"), RELU.pair("reference")
    assert cpu.by == "kernels.cpu.relu"
    for shape in SHAPES:
        x, dy = inputs(shape, dtype, seed=5)
        y_ref, cache_ref = ref.forward(x)
        dx_ref = ref.backward(dy, cache_ref)
        y, cache = cpu.forward(x)
        dx = cpu.backward(dy, cache)
        assert dx is not dy
        for r, g in ((y_ref, y), (dx_ref, dx)):
            assert g.dtype == r.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(g, r)
        np.testing.assert_array_equal(dx, dy * (x > 0))


@pytest.mark.parametrize("layout", ["contiguous", "column-slice"])
def test_cpu_inplace_variants_on_threads_and_pieces(layout, threads, relu_pieces):
    """relu_forward_inplace / relu_backward_inplace of the CPU kernel write over x and dout on
    1-3 threads, in small and default pieces, contiguous or as a column slice (which must leave
    the other column of its base array alone)."""
    cpu = RELU_INPLACE.pair("cpu")
    assert cpu.by == "kernels.cpu.relu"
    for dtype in DTYPES:
        for shape in [(1,), (3, 4, 5, 6), (2, 300000)]:
            x0, dy = inputs(shape, dtype, seed=8, zeros_every=5)
            if layout == "contiguous":
                x, d = x0.copy(), dy.copy()
            else:
                wide_x, wide_d = np.stack([x0, x0 - 5], axis=-1), np.stack([dy, dy + 1], axis=-1)
                x, d = wide_x[..., 0], wide_d[..., 0]
            y, cache = cpu.forward(x)
            assert y is x
            np.testing.assert_array_equal(x, np.maximum(x0, 0))
            dx = cpu.backward(d, cache)
            assert dx is d
            np.testing.assert_array_equal(d, dy * (x0 > 0))
            if layout != "contiguous":
                np.testing.assert_array_equal(wide_x[..., 1], x0 - 5)
                np.testing.assert_array_equal(wide_d[..., 1], dy + 1)


def test_cuda_inplace_variants_refuse_numpy_outside_twins():
    with pytest.raises(TypeError, match="takes CuPy arrays"):
        RELU_INPLACE.pair("cuda").forward(np.ones(3))
    with pytest.raises(TypeError, match="takes CuPy arrays"):
        RELU_INPLACE.pair("cuda").backward(np.ones(3), RELU.pair("reference").forward(np.ones(3))[1])


# -- the ReLU module --------------------------------------------------------------------------------
@pytest.mark.parametrize("inplace", [False, True])
def test_module_gradient_matches_finite_differences(inplace, rng, xp):
    """check_layer on the module's reference and kernels (an in-place forward gets a copy of x on
    each call: it would otherwise rectify the input the differences perturb)."""
    x = rng.standard_normal((4, 3, 2, 2))
    x[np.abs(x) < 0.01] = 0.5  # away from the kink at 0
    x = backend.to_backend(x, xp)
    layer = ReLU(inplace=inplace)
    kernel = "kernels.cpu.relu" if xp is np else ("kernels.cuda.relu" if inplace else "reference")
    for implementation, ran in (("reference", "reference"), ("kernels", kernel)):
        errors = check_layer(layer, x, forward=lambda a: layer.forward(a.copy()), implementation=implementation)
        assert errors.implementation == ran
        assert errors["x"] < 1e-6


def test_module_zero_input_gets_zero_gradient():
    relu = ReLU()
    relu.forward(np.array([[-1.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(relu.backward(np.ones((1, 3))), [[0.0, 0.0, 1.0]])


def test_module_inplace_writes_over_x_and_dout(rng, xp):
    """ReLU(inplace=True) with the kernels on: forward returns x itself, rectified, and backward
    returns dout itself, masked (the AlexNet networks hand every ReLU a gradient nothing else
    reads)."""
    x = backend.to_backend(rng.standard_normal((3, 4)), xp)
    expected = backend.to_numpy(xp.maximum(x, 0))
    relu = ReLU(inplace=True)
    y = relu.forward(x)
    assert y is x
    assert relu.saved_implementation() == ("kernels.cpu.relu" if xp is np else "kernels.cuda.relu")
    np.testing.assert_array_equal(backend.to_numpy(x), expected)
    dout = xp.ones((3, 4))
    dx = relu.backward(dout)
    assert dx is dout
    np.testing.assert_array_equal(backend.to_numpy(dx), expected > 0)


def test_module_inplace_under_reference_writes_over_nothing(rng, xp):
    """Inside reference(), ReLU(inplace=True) runs the pure pair: x and dout are left alone."""
    x0 = rng.standard_normal((3, 4))
    x = backend.to_backend(x0.copy(), xp)
    relu = ReLU(inplace=True)
    with reference():
        y = relu.forward(x)
        assert relu.saved_implementation() == "reference"
        dout = xp.ones((3, 4))
        dx = relu.backward(dout)
    assert y is not x
    np.testing.assert_array_equal(backend.to_numpy(x), x0)
    np.testing.assert_array_equal(backend.to_numpy(y), np.maximum(x0, 0))
    assert dx is not dout and bool((dout == 1).all())
    np.testing.assert_array_equal(backend.to_numpy(dx), x0 > 0)


@pytest.mark.parametrize("ref", [False, True], ids=["kernels", "reference"])
def test_module_not_inplace_writes_over_nothing(ref, rng, xp):
    """ReLU() never writes over x or dout, on the kernels or the reference."""
    x0 = rng.standard_normal((3, 4))
    x = backend.to_backend(x0.copy(), xp)
    relu = ReLU()
    with reference(ref):
        y = relu.forward(x)
        dout = xp.ones((3, 4))
        dx = relu.backward(dout)
    assert y is not x and dx is not dout
    np.testing.assert_array_equal(backend.to_numpy(x), x0)
    assert bool((dout == 1).all())
    np.testing.assert_array_equal(backend.to_numpy(dx), x0 > 0)


def test_module_keeps_float32():
    """No float64 upcast in a float32 forward and backward, in place or not, kernels or reference."""
    x0 = np.random.default_rng(9).standard_normal((3, 4, 11, 11)).astype(np.float32)
    for ref in (False, True):
        for inplace in (False, True):
            with reference(ref):
                layer = ReLU(inplace=inplace)
                y = layer.forward(x0.copy())
                assert y.dtype == np.float32
                assert layer.backward(np.ones_like(y)).dtype == np.float32


def test_module_bad_input():
    with pytest.raises(ValueError, match="ReLU.*floating-point"):
        ReLU().forward(np.arange(3))
    with pytest.raises(ValueError, match="ReLU expects an array"):
        ReLU().forward([1.0, -1.0])
    with pytest.raises(RuntimeError, match="without a forward"):
        ReLU().backward(np.ones(3))
    relu = ReLU()
    relu.forward(np.ones(3))
    relu.backward(np.ones(3))
    with pytest.raises(RuntimeError, match="without a forward"):
        relu.backward(np.ones(3))  # one backward per forward
