"""sigmoid, y = 1 / (1 + exp(-x)): every implementation of ``minialex.nn.sigmoid.SIGMOID`` (the
reference of minialex/nn/functional/sigmoid.py, the CPU kernel of minialex/kernels/cpu/sigmoid.py,
the CUDA kernels of minialex/kernels/cuda/sigmoid.py on their twins, their own source on the host,
and on a GPU under the ``gpu`` marker), in float32 and float64: forward against a per-element loop
of the safe formula in math.exp, backward against a per-element loop and centred finite differences
(float64), saturating inputs (+-50, +-1000, the largest float) without a warning or a NaN (the
textbook formula warns on the same inputs), relative accuracy in the far negative tail, nothing
written over, the CPU kernel on 1-3 threads in small and default pieces; then the Sigmoid module.

Why exp(-|x|), the derivative from the output, y (1 - y), and why it vanishes:
docs/layers/tanh-sigmoid.md.
"""

import math

import numpy as np
import pytest

from minialex import backend
from minialex.gradcheck import numerical_gradient, rel_error
from minialex.nn import Sigmoid
from minialex.nn.sigmoid import SIGMOID

from .activation_checks import (SHAPES, check_cpu_kernel_equals_reference, check_cuda_pair_refuses_numpy,
                                check_module_bad_input, check_module_gradient, check_module_round_trip,
                                check_pair_writes_over_nothing)
from .conftest import TOL, implementations

DTYPES = [np.float64, np.float32]
LARGE = [-1000.0, -50.0, -20.0, -10.0, 10.0, 20.0, 50.0, 1000.0]


def inputs(shape, dtype, seed, scale=3.0):
    """x spread over the curved part and the start of saturation, and an upstream gradient."""
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal(shape)).astype(dtype)
    x.reshape(-1)[::9] = 0.0  # exact zeros: y = 1/2, slope 1/4
    return x, rng.standard_normal(shape).astype(dtype)


def naive_sigmoid(v):
    """1 / (1 + e^-v) for one Python float, safely: math.exp(-v) raises OverflowError for v < -709,
    so for v < 0 the same function multiplied through by e^v, e^v / (1 + e^v)."""
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def naive_forward(x):
    """The sigmoid per element, in float64."""
    return np.array([naive_sigmoid(float(v)) for v in x.reshape(-1)]).reshape(x.shape)


def naive_backward(dout, x):
    """dout * y (1 - y) per element, in float64, from x (not from a cached y)."""
    flat = [float(g) * naive_sigmoid(float(v)) * (1.0 - naive_sigmoid(float(v)))
            for g, v in zip(dout.reshape(-1), x.reshape(-1))]
    return np.array(flat).reshape(x.shape)


# -- values and gradients, every implementation ------------------------------------------------------
@pytest.mark.parametrize("impl", implementations(SIGMOID), indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_matches_a_loop(impl, dtype):
    for shape in SHAPES:
        x, _ = inputs(shape, dtype, seed=3)
        y, cache = impl.forward(x.copy())
        assert y.dtype == np.dtype(dtype) and y.shape == x.shape
        np.testing.assert_allclose(y, naive_forward(x), **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("impl", implementations(SIGMOID), indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_matches_a_loop(impl, dtype):
    """dx = dout y (1 - y), the loop computing y again from x, the pair from its cache."""
    for shape in SHAPES:
        x, dout = inputs(shape, dtype, seed=4)
        _, cache = impl.forward(x.copy())
        dx = impl.backward(dout.copy(), cache)
        assert dx.dtype == np.dtype(dtype) and dx.shape == x.shape
        np.testing.assert_allclose(dx, naive_backward(dout, x), **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("impl", implementations(SIGMOID), indirect=True)
def test_backward_matches_finite_differences(impl, rng):
    """float64, x in [-4, 4]: slopes from 1/4 down to 2e-2 (further out the slope falls below the
    differences' rounding, a relative 1e-6 of a 1e-5 gradient: docs/gradcheck.md)."""
    x = rng.uniform(-4, 4, (4, 3, 2, 2))
    dout = rng.standard_normal(x.shape)
    _, cache = impl.forward(x.copy())
    dx = impl.backward(dout.copy(), cache)
    numeric = numerical_gradient(lambda: (impl.forward(x.copy())[0] * dout).sum(), x)
    assert rel_error(dx, numeric) < 1e-6


@pytest.mark.parametrize("impl", implementations(SIGMOID), indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.filterwarnings("error")
def test_saturating_inputs_give_no_warning_nor_nan(impl, dtype):
    """+-50, +-1000 and the largest finite float: y in [0, 1], exactly 1 for x >= 50, exactly 0 for
    x <= -1000 (below the smallest float), finite gradients, zero where y is 0 or 1; with every
    floating-point error but underflow raising (np.errstate) and every warning an error
    (filterwarnings). Underflow to 0 is the right answer here, and NumPy's default ignores it."""
    big = float(np.finfo(dtype).max)
    x = np.array(LARGE + [-big, big], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y, cache = impl.forward(x.copy())
        dx = impl.backward(np.ones_like(x), cache)
    assert np.isfinite(y).all() and np.isfinite(dx).all() and (y >= 0).all() and (y <= 1).all()
    np.testing.assert_array_equal(y[x >= 50], 1.0)
    np.testing.assert_array_equal(y[x <= -1000], 0.0)
    np.testing.assert_array_equal(dx[(y == 0) | (y == 1)], 0.0)
    np.testing.assert_allclose(y, naive_forward(x), **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_textbook_formula_would_warn(dtype):
    """The control of the test above: 1 / (1 + np.exp(-x)) on the same inputs overflows, and warns."""
    x = np.array(LARGE, dtype=dtype)
    with pytest.warns(RuntimeWarning, match="overflow"):
        1 / (1 + np.exp(-x))


@pytest.mark.parametrize("impl", implementations(SIGMOID), indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
def test_relative_accuracy_in_the_negative_tail(impl, dtype):
    """For x from -80 to -20, y is 2e-35 to 2e-9: tiny, but a float holds it to full relative
    precision, and the safe formula keeps it (0.5 (1 + tanh(x / 2)) would give 0 from x = -20 in
    float32). Compared relatively, with no absolute tolerance to hide behind; so is the gradient."""
    x = np.linspace(-80, -20, 61).astype(dtype)  # y(-80) = 1.8e-35: still a normal float32
    y, cache = impl.forward(x.copy())
    dx = impl.backward(np.ones_like(x), cache)
    want = naive_forward(x)
    assert (y > 0).all()
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(y, want, rtol=rtol, atol=0)
    np.testing.assert_allclose(dx, want * (1 - want), rtol=rtol, atol=0)


@pytest.mark.parametrize("impl", implementations(SIGMOID), indirect=True)
def test_one_half_and_slope_one_quarter_at_the_origin(impl):
    """y(0) = 1/2 with slope exactly 1/4, the largest it has (also at -0.0), and y(-x) = 1 - y(x)
    (both halves of the safe formula agree at the seam)."""
    x = np.array([[-0.0, 0.0, -0.5, 0.5, -3.0, 3.0]])
    y, cache = impl.forward(x.copy())
    dx = impl.backward(np.ones_like(x), cache)
    np.testing.assert_array_equal(y[0, :2], 0.5)
    np.testing.assert_array_equal(dx[0, :2], 0.25)
    np.testing.assert_allclose(y[0, 2::2], 1 - y[0, 3::2], rtol=0, atol=1e-15)
    assert (dx[0, 2:] < 0.25).all()


@pytest.mark.parametrize("impl", implementations(SIGMOID), indirect=True)
def test_nan_stays_nan(impl):
    """A NaN input gives a NaN output and gradient, not 0 or 1, in every implementation (the CPU
    kernel's branch-free numerator max(z, [x >= 0]) keeps the NaN of z)."""
    x = np.array([np.nan, -1.0, 1.0])
    y, cache = impl.forward(x.copy())
    dx = impl.backward(np.ones_like(x), cache)
    assert np.isnan(y[0]) and np.isnan(dx[0]) and np.isfinite(y[1:]).all()


@pytest.mark.parametrize("impl", implementations(SIGMOID), indirect=True)
@pytest.mark.parametrize("layout", ["contiguous", "column-slice"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_pair_writes_over_nothing(impl, layout, dtype):
    """sigmoid_forward and sigmoid_backward return new arrays and leave x and dout as they were, also
    when they are column slices of wider arrays (the other column untouched)."""
    check_pair_writes_over_nothing(impl, layout, dtype, inputs, naive_forward,
                                   lambda dy, x: dy * naive_forward(x) * (1 - naive_forward(x)))


# -- the CPU kernel on 1-3 threads, in default and small pieces --------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_kernel_on_threads_and_pieces(dtype, threads, tanh_pieces):
    check_cpu_kernel_equals_reference(SIGMOID, "sigmoid", dtype, inputs)


def test_cuda_pair_refuses_numpy_outside_twins():
    check_cuda_pair_refuses_numpy(SIGMOID)


# -- the Sigmoid module ----------------------------------------------------------------------------------
def test_module_gradient_matches_finite_differences(rng, xp):
    check_module_gradient(Sigmoid, "sigmoid", backend.to_backend(rng.uniform(-4, 4, (4, 3, 2, 2)), xp), xp)


@pytest.mark.parametrize("ref", [False, True], ids=["kernels", "reference"])
def test_module_round_trip(ref, rng, xp):
    check_module_round_trip(Sigmoid, SIGMOID, "sigmoid", ref, rng, xp)


def test_module_bad_input():
    check_module_bad_input(Sigmoid)
