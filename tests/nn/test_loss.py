"""SoftmaxCrossEntropy: known values, stability at +-1000, gradient, label checks."""

import math

import numpy as np
import pytest

from minialex import backend
from minialex.gradcheck import numerical_gradient, rel_error
from minialex.nn import SoftmaxCrossEntropy


def test_known_values(xp):
    loss = SoftmaxCrossEntropy()
    # uniform logits over K classes: loss = log K
    value = loss.forward(backend.to_backend(np.zeros((3, 10)), xp), np.array([0, 5, 9]))
    assert float(value) == pytest.approx(math.log(10), rel=1e-14)
    # one row, worked by hand: -log(e^2 / (e^0 + e^1 + e^2))
    value = loss.forward(backend.to_backend(np.array([[0.0, 1.0, 2.0]]), xp), np.array([2]))
    assert float(value) == pytest.approx(-(2 - math.log(1 + math.e + math.e ** 2)), rel=1e-14)
    d = backend.to_numpy(loss.backward())
    p = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    np.testing.assert_allclose(d, [p - [0, 0, 1]], rtol=1e-14)


def test_extreme_logits_stay_finite():
    loss = SoftmaxCrossEntropy()
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]], dtype=np.float32)
    value = loss.forward(logits, np.array([1, 0]))
    assert np.isfinite(value) and float(value) == pytest.approx((2000.0 + 2000.0 + math.log(2)) / 2, rel=1e-6)
    d = loss.backward()
    assert np.all(np.isfinite(d))
    np.testing.assert_allclose(d.sum(axis=1), 0.0, atol=1e-6)


def test_gradient_matches_finite_differences(rng, xp):
    logits = backend.to_backend(rng.standard_normal((5, 7)), xp)
    labels = np.array([0, 6, 3, 3, 1])
    loss = SoftmaxCrossEntropy()
    loss.forward(logits, labels)
    analytic = loss.backward()
    numeric = numerical_gradient(lambda: loss.forward(logits, labels), logits)
    assert rel_error(analytic, numeric) < 1e-7


def test_backward_scales_by_upstream():
    loss = SoftmaxCrossEntropy()
    logits = np.array([[0.5, -0.5]])
    loss.forward(logits, np.array([0]))
    one = loss.backward(1.0)
    loss.forward(logits, np.array([0]))
    np.testing.assert_allclose(loss.backward(3.0), 3 * one)


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 3]), r"\[0, 2\]"),  # out of range
    (np.array([-1, 0]), r"\[0, 2\]"),  # negative
    (np.array([0.0, 1.0]), "integers"),  # float labels
    (np.array([0, 1, 2]), "shape"),  # wrong count
])
def test_bad_labels_are_rejected(labels, message):
    with pytest.raises(ValueError, match=message):
        SoftmaxCrossEntropy().forward(np.zeros((2, 3)), labels)
