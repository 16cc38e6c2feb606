"""MaxPool2d: finite differences, naive loops, the tie rule, and input errors."""

import numpy as np
import pytest

from minialex import backend
from minialex.gradcheck import check_layer
from minialex.nn import MaxPool2d

from . import naive


def distinct(rng, shape):
    """Values at least 0.1 apart, so no finite-difference step can change a window's argmax."""
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.1


@pytest.mark.parametrize("k, s, h, w", [(3, 2, 7, 7), (3, 2, 8, 6), (2, 2, 6, 6), (3, 1, 5, 5), (2, 3, 8, 8)])
def test_gradients_match_finite_differences(k, s, h, w, rng, xp):
    x = backend.to_backend(distinct(rng, (2, 3, h, w)), xp)
    errors = check_layer(MaxPool2d(k, s), x)
    assert errors["x"] < 1e-6, errors


@pytest.mark.parametrize("k, s, h, w", [(3, 2, 7, 7), (3, 2, 8, 6), (2, 3, 8, 8)])
def test_forward_and_backward_equal_naive_loops(k, s, h, w, rng, xp):
    x = distinct(rng, (2, 3, h, w))
    pool = MaxPool2d(k, s)
    y = pool.forward(backend.to_backend(x, xp))
    np.testing.assert_array_equal(backend.to_numpy(y), naive.maxpool_forward(x, k, s))
    dout = rng.standard_normal(y.shape)
    dx = pool.backward(backend.to_backend(dout, xp))
    np.testing.assert_allclose(backend.to_numpy(dx), naive.maxpool_backward(x, dout, k, s), rtol=1e-12)


def test_overlapping_windows_sum_their_gradients():
    # One big value in the middle of a 5x5 map is the max of all four 3x3/2 windows.
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0
    pool = MaxPool2d(3, 2)
    pool.forward(x)
    dx = pool.backward(np.ones((1, 1, 2, 2)))
    assert dx[0, 0, 2, 2] == 4.0 and dx.sum() == 4.0


def test_ties_go_to_the_first_element_in_row_major_order(xp):
    x = backend.to_backend(np.ones((1, 1, 3, 3)), xp)  # every element ties
    pool = MaxPool2d(3, 2)
    pool.forward(x)
    dx = backend.to_numpy(pool.backward(backend.to_backend(np.ones((1, 1, 1, 1)), xp)))
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 0, 0] = 1.0
    np.testing.assert_array_equal(dx, expected)
    np.testing.assert_array_equal(dx, naive.maxpool_backward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 1, 1)), 3, 2))


def test_alexnet_sizes():
    pool = MaxPool2d(3, 2)
    assert [pool.output_shape((1, 1, s, s))[2] for s in (55, 27, 13)] == [27, 13, 6]


@pytest.mark.parametrize("shape, dtype, message", [
    ((3, 7, 7), np.float32, "(N, C, H, W)"),
    ((1, 1, 2, 2), np.float32, "larger than input"),
    ((1, 1, 7, 7), np.int32, "floating-point"),
])
def test_bad_input_is_named(shape, dtype, message):
    with pytest.raises(ValueError) as err:
        MaxPool2d(3, 2).forward(np.zeros(shape, dtype=dtype))
    assert "MaxPool2d" in str(err.value) and message in str(err.value)
