"""minialex/gradcheck.py: the checker checks what it says it checks. It must catch a broken
reference backward (the code a learner reads and may break on purpose), say which
implementation it checked, and its pieces must be right on functions with known gradients."""

import numpy as np
import pytest

from minialex import gradcheck
from minialex.gradcheck import check_layer, numerical_gradient, rel_error
from minialex.nn import Conv2d, Dropout, Linear, LocalResponseNorm, MaxPool2d, ReLU, Sequential, functional


def test_rel_error():
    a = np.array([1.0, 2.0, 0.0])
    assert rel_error(a, a) == 0.0
    assert rel_error(np.array([1.0]), np.array([1.1])) == pytest.approx(0.1 / 2.1)
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0  # no 0/0
    with pytest.raises(ValueError, match="shapes differ"):
        rel_error(np.zeros(2), np.zeros(3))


def test_numerical_gradient_of_a_known_function():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    grad = numerical_gradient(lambda: (x ** 3).sum(), x)
    np.testing.assert_allclose(grad, 3 * x ** 2, rtol=1e-8)
    np.testing.assert_array_equal(x, [[1.0, -2.0], [0.5, 3.0]])  # restored after perturbing


def _conv(rng):
    layer = Conv2d(2, 3, 3, stride=2, padding=1, init_std=1.0, rng=rng, dtype=np.float64)
    return layer, rng.standard_normal((2, 2, 7, 7))


def test_checks_the_reference_by_default_and_says_so(rng):
    layer, x = _conv(rng)
    errors = check_layer(layer, x)
    assert errors.implementation == "reference" and "reference" in repr(errors)
    assert set(errors) == {"x", "weight", "bias"} and max(errors.values()) < 1e-6
    errors = check_layer(layer, x, implementation="kernels")
    assert errors.implementation == "kernels.cpu.conv" and max(errors.values()) < 1e-6


def test_a_broken_reference_backward_is_caught(rng, monkeypatch):
    """Double dW in the reference's GEMM backward: the default check must fail on the weight,
    while the CPU kernel (untouched) still passes when asked for explicitly."""
    layer, x = _conv(rng)
    right = functional.conv.conv2d_backward

    def broken(dout, cache, dw=None, db=None, need_dx=True):
        before = dw.copy()
        dx, dw, db = right(dout, cache, dw, db, need_dx)
        dw += dw - before  # dW counted twice
        return dx, dw, db

    monkeypatch.setattr(functional.conv, "conv2d_backward", broken)
    errors = check_layer(layer, x)
    assert errors["weight"] > 0.1 and errors["x"] < 1e-6
    assert max(check_layer(layer, x, implementation="kernels").values()) < 1e-6


@pytest.mark.parametrize("make, shape, kernel", [
    (lambda: Linear(5, 3, init_std=1.0, dtype=np.float64), (4, 5), "kernels.cpu.linear"),
    (lambda: MaxPool2d(3, 2), (2, 2, 7, 7), "kernels.cpu.pool"),
    (lambda: LocalResponseNorm(size=3, alpha=0.5, groups=2), (2, 4, 3, 3), "kernels.cpu.lrn"),
    (lambda: Dropout(0.5, seed=2), (3, 4), "reference"),  # no kernel: the reference, and it says so
    (lambda: Sequential(Linear(4, 3, dtype=np.float64), ReLU()), (2, 4), "kernels.cpu.linear, kernels.cpu.relu"),
])
@pytest.mark.parametrize("implementation", ["reference", "kernels"])
def test_both_implementations_pass(make, shape, kernel, implementation, rng):
    errors = check_layer(make(), rng.standard_normal(shape), implementation=implementation)
    assert errors.implementation == ("reference" if implementation == "reference" else kernel)
    assert max(errors.values()) < 1e-6, errors


def test_input_without_gradient_has_no_x_entry(rng):
    layer = Conv2d(2, 3, 3, init_std=1.0, rng=rng, dtype=np.float64, input_grad=False)
    errors = check_layer(layer, rng.standard_normal((1, 2, 5, 5)))
    assert "x" not in errors and max(errors.values()) < 1e-6


def test_unknown_implementation():
    with pytest.raises(ValueError, match="'reference' or 'kernels'"):
        check_layer(Linear(2, 2), np.zeros((1, 2)), implementation="fast")
    assert gradcheck.GradCheck({"x": 0.0}, "kernels.cpu.conv").implementation == "kernels.cpu.conv"


def test_float32_is_warned_about(rng):
    """Centred differences in float32 are swamped by rounding: check_layer says so instead of
    quietly reporting a large error for a correct layer; float64 gives no warning."""
    layer = Conv2d(2, 3, 3, padding=1, init_std=1.0, rng=rng, dtype=np.float32)
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    with pytest.warns(UserWarning, match="float64"):
        check_layer(layer, x)
    layer64 = Conv2d(2, 3, 3, padding=1, init_std=1.0, rng=rng, dtype=np.float64)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_layer(layer64, rng.standard_normal((1, 2, 4, 4)))
