"""ReLU: gradient, the derivative at 0, and in-place mode."""

import numpy as np

from minialex import backend
from minialex.gradcheck import check_layer
from minialex.nn import ReLU


def test_gradient_matches_finite_differences(rng, xp):
    # keep inputs away from the kink at 0, where the finite difference is undefined
    x = rng.standard_normal((4, 3, 2, 2))
    x[np.abs(x) < 0.01] = 0.5
    assert check_layer(ReLU(), backend.to_backend(x, xp))["x"] < 1e-6


def test_zero_input_gets_zero_gradient():
    relu = ReLU()
    relu.forward(np.array([[-1.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(relu.backward(np.ones((1, 3))), [[0.0, 0.0, 1.0]])


def test_inplace_overwrites_input_and_keeps_gradient(rng, xp):
    x = backend.to_backend(rng.standard_normal((3, 4)), xp)
    expected = backend.to_numpy(xp.maximum(x, 0))
    relu = ReLU(inplace=True)
    y = relu.forward(x)
    assert y is x
    np.testing.assert_array_equal(backend.to_numpy(x), expected)
    dout = xp.ones((3, 4))
    dx = relu.backward(dout)
    assert dx is not dout and bool((dout == 1).all())  # inplace is about forward: dout is left alone
    np.testing.assert_array_equal(backend.to_numpy(dx), expected > 0)


def test_backward_into_out(rng, xp):
    """backward(dout, out=dout): the internal option the networks use, on every implementation."""
    x = backend.to_backend(rng.standard_normal((3, 4)), xp)
    relu = ReLU()
    relu.forward(x)
    dout = xp.ones((3, 4))
    assert relu.backward(dout, out=dout) is dout
    np.testing.assert_array_equal(backend.to_numpy(dout), backend.to_numpy(x) > 0)
