"""softmax_cross_entropy: the mean over the batch of -log softmax(z)[label], and its gradient.

The pair ``softmax_cross_entropy_forward(z, labels) -> (loss, cache)`` /
``softmax_cross_entropy_backward(dloss, cache) -> dz`` of every implementation (there is only the
readable reference, minialex/nn/functional/loss.py, on NumPy and CuPy alike), in float32 and
float64: values worked by hand, a naive loop over the rows in Python floats, logits of +-1000
that stay finite, centred finite differences (float64), and the upstream scale dloss. Then the
module ``SoftmaxCrossEntropy``: the same values through it, and its label checks.

The mathematics (the log-sum-exp shift, softmax minus one-hot) is derived in
docs/layers/softmax-cross-entropy.md.
"""

import math

import numpy as np
import pytest

from minialex import backend
from minialex.gradcheck import numerical_gradient, rel_error
from minialex.nn import SoftmaxCrossEntropy, log_softmax, reference, softmax
from minialex.nn.loss import SOFTMAX_CROSS_ENTROPY

from .conftest import TOL, implementations

DTYPES = [np.float64, np.float32]
# worked by hand: float64 to the last bits, float32 to its precision
EXACT = {np.dtype(np.float64): 1e-14, np.dtype(np.float32): 1e-6}


def naive(z, labels, dloss=1.0):
    """(loss, dz) by a loop over the rows in Python floats (float64), from the formulas of
    docs/layers/softmax-cross-entropy.md: l_n = log sum_j e^{z_nj} - z_{n,t_n} (shifted by the
    row's maximum), dz_nk = dloss / N * (e^{z_nk} / sum_j e^{z_nj} - [k = t_n])."""
    n, k = z.shape
    total, dz = 0.0, np.zeros((n, k))
    for row in range(n):
        zr = [float(v) for v in z[row]]
        m = max(zr)
        lse = m + math.log(sum(math.exp(v - m) for v in zr))
        total += lse - zr[labels[row]]
        for j in range(k):
            dz[row, j] = dloss / n * (math.exp(zr[j] - lse) - (1.0 if j == labels[row] else 0.0))
    return total / n, dz


# -- every implementation ---------------------------------------------------------------------
@pytest.mark.parametrize("impl", implementations(SOFTMAX_CROSS_ENTROPY), indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
def test_known_values(impl, dtype):
    tol = EXACT[np.dtype(dtype)]
    # uniform logits over K classes: loss = log K, and dz = (1/K - onehot) / N
    loss, cache = impl.forward(np.zeros((3, 10), dtype), np.array([0, 5, 9]))
    assert np.ndim(loss) == 0 and loss.dtype == dtype
    assert float(loss) == pytest.approx(math.log(10), rel=tol)
    dz = impl.backward(1.0, cache)
    want = np.full((3, 10), 0.1)
    want[[0, 1, 2], [0, 5, 9]] -= 1.0
    assert dz.dtype == dtype
    np.testing.assert_allclose(dz, want / 3, rtol=tol)
    # one row, worked by hand: -log(e^2 / (e^0 + e^1 + e^2))
    loss, cache = impl.forward(np.array([[0.0, 1.0, 2.0]], dtype), np.array([2]))
    assert float(loss) == pytest.approx(-(2 - math.log(1 + math.e + math.e ** 2)), rel=tol)
    p = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    np.testing.assert_allclose(impl.backward(1.0, cache), [p - [0, 0, 1]], rtol=tol)


@pytest.mark.parametrize("impl", implementations(SOFTMAX_CROSS_ENTROPY), indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 7), (1, 2), (8, 3)])
def test_equals_the_naive_loop(impl, dtype, shape, rng):
    """Random logits (spread 3, so probabilities far from uniform), every class as a label."""
    n, k = shape
    z = (3 * rng.standard_normal(shape)).astype(dtype)
    labels = rng.integers(0, k, size=n)
    labels[: min(n, k)] = np.arange(min(n, k))
    want_loss, want_dz = naive(z, labels, dloss=0.7)
    loss, cache = impl.forward(z, labels)
    assert loss.dtype == dtype
    np.testing.assert_allclose(float(loss), want_loss, **TOL[np.dtype(dtype)])
    dz = impl.backward(0.7, cache)
    assert dz.dtype == dtype and dz.shape == shape
    np.testing.assert_allclose(dz, want_dz, **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("impl", implementations(SOFTMAX_CROSS_ENTROPY), indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_logits_stay_finite(impl, dtype):
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]], dtype=dtype)
    loss, cache = impl.forward(logits, np.array([1, 0]))
    assert np.isfinite(loss) and float(loss) == pytest.approx((2000.0 + 2000.0 + math.log(2)) / 2, rel=1e-6)
    d = impl.backward(1.0, cache)
    assert np.all(np.isfinite(d))
    np.testing.assert_allclose(d.sum(axis=1), 0.0, atol=1e-6)
    # the gradient itself: row 0 puts all its mass on class 0, row 1 splits it over classes 1 and 2
    np.testing.assert_allclose(d, np.array([[1.0, -1.0, 0.0], [-1.0, 0.5, 0.5]]) / 2, atol=1e-6)


@pytest.mark.parametrize("impl", implementations(SOFTMAX_CROSS_ENTROPY), indirect=True)
def test_gradient_matches_finite_differences(impl, rng):
    logits = rng.standard_normal((5, 7))
    labels = np.array([0, 6, 3, 3, 1])
    _, cache = impl.forward(logits, labels)
    analytic = impl.backward(1.0, cache)
    numeric = numerical_gradient(lambda: impl.forward(logits, labels)[0], logits)
    assert rel_error(analytic, numeric) < 1e-7


@pytest.mark.parametrize("impl", implementations(SOFTMAX_CROSS_ENTROPY), indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_scales_by_dloss(impl, dtype, rng):
    logits = rng.standard_normal((4, 6)).astype(dtype)
    _, cache = impl.forward(logits, np.array([0, 5, 2, 2]))
    one = impl.backward(1.0, cache)
    np.testing.assert_allclose(impl.backward(3.0, cache), 3 * one, **TOL[np.dtype(dtype)])
    np.testing.assert_allclose(impl.backward(1.0, cache), one, rtol=0, atol=0)  # the cache is not consumed
    np.testing.assert_allclose(impl.backward(0.0, cache), 0.0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_and_softmax(dtype):
    """The stable log_softmax the loss rests on: shifted rows give the same values, logits of
    +-1000 give finite values (log(softmax) would give log 0), softmax rows sum to one."""
    z = np.array([[1.0, 2.0, 3.0], [1000.0, -1000.0, 0.0]], dtype)
    lp = log_softmax(z)
    assert lp.dtype == dtype and np.all(np.isfinite(lp))
    lse = 3 + math.log(1 + math.exp(-1) + math.exp(-2))  # row 0: log sum_j e^{z_j}, shifted by its max 3
    want = np.array([[1 - lse, 2 - lse, 3 - lse], [0.0, -2000.0, -1000.0]])
    np.testing.assert_allclose(lp, want, **TOL[np.dtype(dtype)])
    np.testing.assert_allclose(log_softmax(z[:1] + dtype(50)), lp[:1], **TOL[np.dtype(dtype)])
    np.testing.assert_allclose(softmax(z).sum(axis=1), 1.0, **TOL[np.dtype(dtype)])


# -- the module -------------------------------------------------------------------------------
def test_module_known_values(xp):
    loss = SoftmaxCrossEntropy()
    # uniform logits over K classes: loss = log K
    value = loss.forward(backend.to_backend(np.zeros((3, 10)), xp), np.array([0, 5, 9]))
    assert float(value) == pytest.approx(math.log(10), rel=1e-14)
    # one row, worked by hand: -log(e^2 / (e^0 + e^1 + e^2))
    value = loss.forward(backend.to_backend(np.array([[0.0, 1.0, 2.0]]), xp), np.array([2]))
    assert float(value) == pytest.approx(-(2 - math.log(1 + math.e + math.e ** 2)), rel=1e-14)
    assert loss.saved_implementation() == "reference"  # no kernel: the reference, on every backend
    d = backend.to_numpy(loss.backward())
    p = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    np.testing.assert_allclose(d, [p - [0, 0, 1]], rtol=1e-14)


def test_module_extreme_logits_stay_finite():
    loss = SoftmaxCrossEntropy()
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]], dtype=np.float32)
    value = loss.forward(logits, np.array([1, 0]))
    assert np.isfinite(value) and float(value) == pytest.approx((2000.0 + 2000.0 + math.log(2)) / 2, rel=1e-6)
    assert value.dtype == np.float32  # float32 stays float32
    d = loss.backward()
    assert np.all(np.isfinite(d)) and d.dtype == np.float32
    np.testing.assert_allclose(d.sum(axis=1), 0.0, atol=1e-6)


def test_module_gradient_matches_finite_differences(rng, xp):
    logits = backend.to_backend(rng.standard_normal((5, 7)), xp)
    labels = np.array([0, 6, 3, 3, 1])
    loss = SoftmaxCrossEntropy()
    loss.forward(logits, labels)
    analytic = loss.backward()
    numeric = numerical_gradient(lambda: loss.forward(logits, labels), logits)
    assert rel_error(analytic, numeric) < 1e-7


def test_module_backward_scales_by_upstream():
    loss = SoftmaxCrossEntropy()
    logits = np.array([[0.5, -0.5]])
    loss.forward(logits, np.array([0]))
    one = loss.backward(1.0)
    loss.forward(logits, np.array([0]))
    np.testing.assert_allclose(loss.backward(3.0), 3 * one)


def test_module_same_under_reference_and_one_backward_per_forward():
    logits = np.array([[0.5, -0.5, 2.0]])
    loss = SoftmaxCrossEntropy()
    with reference():
        want = loss.forward(logits, np.array([2]))
        d_want = loss.backward()
    assert loss.forward(logits, np.array([2])) == want
    np.testing.assert_array_equal(loss.backward(), d_want)
    with pytest.raises(RuntimeError, match="SoftmaxCrossEntropy.backward called without a forward"):
        loss.backward()


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 3]), r"\[0, 2\]"),  # out of range
    (np.array([-1, 0]), r"\[0, 2\]"),  # negative
    (np.array([0.0, 1.0]), "integers"),  # float labels
    (np.array([0, 1, 2]), "shape"),  # wrong count
])
def test_bad_labels_are_rejected(labels, message):
    with pytest.raises(ValueError, match=message):
        SoftmaxCrossEntropy().forward(np.zeros((2, 3)), labels)


@pytest.mark.parametrize("logits, message", [
    (np.zeros((2, 3, 1)), r"\(N, features\)"),  # not (N, K)
    (np.zeros((2, 3), np.int32), "floating-point"),  # integer logits
])
def test_bad_logits_are_rejected(logits, message):
    with pytest.raises(ValueError, match="SoftmaxCrossEntropy") as err:
        SoftmaxCrossEntropy().forward(logits, np.array([0, 1]))
    err.match(message)
