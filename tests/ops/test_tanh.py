"""tanh, y = tanh(x): every implementation of ``minialex.nn.tanh.TANH`` (the reference of
minialex/nn/functional/tanh.py, the CPU kernel of minialex/kernels/cpu/tanh.py, the CUDA kernels of
minialex/kernels/cuda/tanh.py on their twins, their own source on the host, and on a GPU under the
``gpu`` marker), in float32 and float64: forward against np.tanh and a per-element math.tanh loop,
backward against a per-element loop and centred finite differences (float64), saturating inputs
(+-50, +-1000, the largest float) without a warning or a NaN, nothing written over, the CPU kernel
on 1-3 threads in small and default pieces; then the Tanh module.

The derivative from the output, 1 - y^2, and why it vanishes: docs/layers/tanh-sigmoid.md.
"""

import math

import numpy as np
import pytest

from minialex import backend
from minialex.gradcheck import numerical_gradient, rel_error
from minialex.nn import Tanh
from minialex.nn.tanh import TANH

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
    x.reshape(-1)[::9] = 0.0  # exact zeros: y = 0, slope 1
    return x, rng.standard_normal(shape).astype(dtype)


def naive_forward(x):
    """math.tanh per element, in float64."""
    return np.array([math.tanh(float(v)) for v in x.reshape(-1)]).reshape(x.shape)


def naive_backward(dout, x):
    """dout * (1 - tanh(x)^2) per element, in float64, from x (not from a cached y)."""
    flat = [float(g) * (1.0 - math.tanh(float(v)) ** 2) for g, v in zip(dout.reshape(-1), x.reshape(-1))]
    return np.array(flat).reshape(x.shape)


# -- values and gradients, every implementation ------------------------------------------------------
@pytest.mark.parametrize("impl", implementations(TANH), indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_matches_np_tanh_and_a_loop(impl, dtype):
    for shape in SHAPES:
        x, _ = inputs(shape, dtype, seed=3)
        y, cache = impl.forward(x.copy())
        assert y.dtype == np.dtype(dtype) and y.shape == x.shape
        np.testing.assert_allclose(y, np.tanh(x), **TOL[np.dtype(dtype)])
        np.testing.assert_allclose(y, naive_forward(x), **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("impl", implementations(TANH), indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_matches_a_loop(impl, dtype):
    """dx = dout (1 - tanh(x)^2), the loop computing tanh again from x, the pair from its cache."""
    for shape in SHAPES:
        x, dout = inputs(shape, dtype, seed=4)
        _, cache = impl.forward(x.copy())
        dx = impl.backward(dout.copy(), cache)
        assert dx.dtype == np.dtype(dtype) and dx.shape == x.shape
        np.testing.assert_allclose(dx, naive_backward(dout, x), **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("impl", implementations(TANH), indirect=True)
def test_backward_matches_finite_differences(impl, rng):
    """float64, x in [-3, 3]: slopes from 1 down to 1e-2 (further out the slope falls below the
    differences' rounding, a relative 1e-6 of a 1e-5 gradient: docs/gradcheck.md)."""
    x = rng.uniform(-3, 3, (4, 3, 2, 2))
    dout = rng.standard_normal(x.shape)
    _, cache = impl.forward(x.copy())
    dx = impl.backward(dout.copy(), cache)
    numeric = numerical_gradient(lambda: (impl.forward(x.copy())[0] * dout).sum(), x)
    assert rel_error(dx, numeric) < 1e-6


@pytest.mark.parametrize("impl", implementations(TANH), indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.filterwarnings("error")
def test_saturating_inputs_give_no_warning_nor_nan(impl, dtype):
    """+-50, +-1000 and the largest finite float give y = +-1 exactly and a zero gradient, with every
    floating-point error raising (np.errstate) and every warning an error (filterwarnings)."""
    big = float(np.finfo(dtype).max)
    x = np.array(LARGE + [-big, big], dtype=dtype)
    with np.errstate(all="raise"):
        y, cache = impl.forward(x.copy())
        dx = impl.backward(np.ones_like(x), cache)
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    far = np.abs(x) >= 50
    np.testing.assert_array_equal(y[far], np.sign(x[far]))
    np.testing.assert_array_equal(dx[far], 0.0)
    np.testing.assert_allclose(y, naive_forward(x), **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("impl", implementations(TANH), indirect=True)
def test_zero_and_slope_one_at_the_origin(impl):
    """tanh(0) = 0 with slope exactly 1 (also at -0.0), odd symmetry y(-x) = -y(x)."""
    x = np.array([[-0.0, 0.0, -0.5, 0.5, -3.0, 3.0]])
    y, cache = impl.forward(x.copy())
    dx = impl.backward(np.ones_like(x), cache)
    np.testing.assert_array_equal(y[0, :2], 0.0)
    np.testing.assert_array_equal(dx[0, :2], 1.0)
    np.testing.assert_array_equal(y[0, 2::2], -y[0, 3::2])


@pytest.mark.parametrize("impl", implementations(TANH), indirect=True)
@pytest.mark.parametrize("layout", ["contiguous", "column-slice"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_pair_writes_over_nothing(impl, layout, dtype):
    """tanh_forward and tanh_backward return new arrays and leave x and dout as they were, also
    when they are column slices of wider arrays (the other column untouched)."""
    check_pair_writes_over_nothing(impl, layout, dtype, inputs, np.tanh,
                                   lambda dy, x: dy * (1 - np.tanh(x) ** 2))


# -- the CPU kernel on 1-3 threads, in default and small pieces --------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_kernel_on_threads_and_pieces(dtype, threads, tanh_pieces):
    check_cpu_kernel_equals_reference(TANH, "tanh", dtype, inputs)


def test_cuda_pair_refuses_numpy_outside_twins():
    check_cuda_pair_refuses_numpy(TANH)


# -- the Tanh module ----------------------------------------------------------------------------------
def test_module_gradient_matches_finite_differences(rng, xp):
    check_module_gradient(Tanh, "tanh", backend.to_backend(rng.uniform(-3, 3, (4, 3, 2, 2)), xp), xp)


@pytest.mark.parametrize("ref", [False, True], ids=["kernels", "reference"])
def test_module_round_trip(ref, rng, xp):
    check_module_round_trip(Tanh, TANH, "tanh", ref, rng, xp)


def test_module_bad_input():
    check_module_bad_input(Tanh)
