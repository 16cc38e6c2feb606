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


def test_inplace_overwrites_input_and_keeps_gradient(rng):
    x = rng.standard_normal((3, 4))
    expected = np.maximum(x, 0)
    relu = ReLU(inplace=True)
    y = relu.forward(x)
    assert y is x
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(relu.backward(np.ones((3, 4))), expected > 0)
