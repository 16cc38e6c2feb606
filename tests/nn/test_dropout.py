"""Dropout: gradient with a fixed mask, inverted scaling, evaluation mode, reproducible masks."""

import numpy as np
import pytest

from minialex import backend
from minialex.gradcheck import check_layer
from minialex.nn import Dropout, dropout_mask


def test_gradient_matches_finite_differences(rng, xp):
    layer = Dropout(0.5, seed=3)
    assert check_layer(layer, backend.to_backend(rng.standard_normal((4, 6)), xp))["x"] < 1e-6


def test_inverted_scaling_and_expectation():
    layer = Dropout(0.5, seed=0)
    x = np.ones((200, 500), dtype=np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    assert set(np.unique(y)) == {0.0, 2.0}  # kept units are scaled by 1/(1-p)
    assert abs(y.mean() - 1.0) < 0.01  # so E[y] = x, as the paper's test-time x0.5 gives
    assert abs((y == 0).mean() - 0.5) < 0.01


def test_backward_uses_the_forward_mask():
    layer = Dropout(0.3, seed=1)
    x = np.arange(1.0, 101.0).reshape(10, 10)
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_allclose(dx, y / x)


def test_eval_is_identity():
    layer = Dropout(0.5).eval()
    x = np.ones((3, 3))
    assert layer.forward(x) is x
    assert layer.backward(x) is x
    with pytest.raises(RuntimeError, match="without a forward"):
        layer.backward(x)  # one backward per forward, in evaluation too


def test_public_mask_is_the_layers_mask():
    """dropout_mask(seed, call, ...) is what the layer's forward number ``call`` multiplies by:
    the two-column network draws its masks through it."""
    layer = Dropout(0.4, seed=11)
    x = np.ones((5, 6), dtype=np.float32)
    layer.forward(x)
    second = layer.forward(x)
    np.testing.assert_array_equal(second, dropout_mask(11, 1, (5, 6), 0.4, np, np.float32))
    assert dropout_mask(11, 1, (5, 6), 0.4).dtype == np.float32

def test_masks_repeat_from_seed_and_calls():
    a, b = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    x = np.ones((8, 8))
    first, second = a.forward(x), a.forward(x)
    assert not np.array_equal(first, second)  # a new mask each call
    b.calls = 1  # a layer resumed after one call draws what the original drew second
    np.testing.assert_array_equal(b.forward(x), second)
    assert not np.array_equal(Dropout(0.5, seed=8).forward(x), first)  # the seed matters


def test_bad_p():
    with pytest.raises(ValueError, match="p must be in"):
        Dropout(1.0)
