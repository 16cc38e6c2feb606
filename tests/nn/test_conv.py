"""Conv2d: finite-difference gradients, agreement with a naive loop, and input errors."""

import numpy as np
import pytest

from minialex import backend
from minialex.gradcheck import check_layer
from minialex.nn import Conv2d

from . import naive

# (in, out, kernel, stride, padding, groups, H, W): each case makes one term matter
CASES = [
    (3, 4, 11, 4, 2, 1, 23, 23),  # conv1-like: stride 4 with padding
    (4, 6, 3, 1, 1, 2, 6, 5),  # groups=2 and padding, non-square input
    (2, 2, 3, 4, 0, 1, 10, 10),  # stride 4 leaves rows/cols 7..9 uncovered: their gradient must be 0
    (4, 4, 5, 2, 2, 2, 9, 7),  # overlap (stride < kernel) plus groups plus padding
    (3, 2, 1, 1, 0, 1, 4, 4),  # 1x1 kernel
]


def make(case, rng, dtype=np.float64):
    cin, cout, k, s, p, g, h, w = case
    layer = Conv2d(cin, cout, k, stride=s, padding=p, groups=g, init_std=1.0, rng=rng, dtype=dtype)
    layer.bias.data[...] = rng.standard_normal(cout)
    x = rng.standard_normal((2, cin, h, w)).astype(dtype)
    return layer, x


@pytest.mark.parametrize("case", CASES)
def test_gradients_match_finite_differences(case, rng, xp):
    layer, x = make(case, rng)
    layer.to(xp)
    errors = check_layer(layer, backend.to_backend(x, xp))
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("case", CASES)
def test_forward_and_backward_equal_naive_loops(case, rng, xp):
    layer, x = make(case, rng)
    _, _, _, s, p, g, _, _ = case
    w, b = layer.weight.data.copy(), layer.bias.data.copy()
    layer.to(xp)
    y = layer.forward(backend.to_backend(x, xp))
    np.testing.assert_allclose(backend.to_numpy(y), naive.conv2d_forward(x, w, b, s, p, g), rtol=1e-10, atol=1e-10)

    dout = rng.standard_normal(y.shape)
    dx = layer.backward(backend.to_backend(dout, xp))
    dx_ref, dw_ref, db_ref = naive.conv2d_backward(x, w, dout, s, p, g)
    np.testing.assert_allclose(backend.to_numpy(dx), dx_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(backend.to_numpy(layer.weight.grad), dw_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(backend.to_numpy(layer.bias.grad), db_ref, rtol=1e-10, atol=1e-10)


def test_uncovered_border_gets_zero_gradient(rng):
    layer, x = make(CASES[2], rng)
    layer.forward(x)
    dx = layer.backward(np.ones(layer.output_shape(x.shape)))
    assert np.all(dx[:, :, 7:, :] == 0) and np.all(dx[:, :, :, 7:] == 0)
    assert np.any(dx[:, :, :7, :7] != 0)


def test_groups_do_not_mix(rng):
    # With groups=2, filters of group 0 must not depend on channels of group 1.
    layer, x = make(CASES[1], rng)
    y = layer.forward(x)
    x2 = x.copy()
    x2[:, 2:] += 1.0  # change only the second group's channels
    y2 = layer.forward(x2)
    np.testing.assert_array_equal(y[:, :3], y2[:, :3])
    assert not np.allclose(y[:, 3:], y2[:, 3:])


def test_float32_stays_float32(rng, xp):
    layer = Conv2d(3, 4, 3, padding=1, rng=rng).to(xp)
    x = backend.to_backend(rng.standard_normal((2, 3, 5, 5)).astype(np.float32), xp)
    y = layer.forward(x)
    assert y.dtype == np.float32 and layer.backward(y).dtype == np.float32
    assert layer.weight.grad.dtype == np.float32


def test_gradients_accumulate_until_zero_grad(rng):
    layer, x = make(CASES[1], rng)
    dout = rng.standard_normal(layer.output_shape(x.shape))
    layer.forward(x)
    layer.backward(dout)
    once = layer.weight.grad.copy()
    layer.forward(x)
    layer.backward(dout)
    np.testing.assert_allclose(layer.weight.grad, 2 * once)
    layer.zero_grad()
    assert not layer.weight.grad.any()


@pytest.mark.parametrize(
    "build, x_shape, dtype, words",
    [
        # every message names the layer, the problem, and what was given (the input's shape or dtype)
        (lambda: Conv2d(3, 4, 3), (2, 3, 5), np.float32, ["(N, C, H, W)", "(2, 3, 5)"]),  # wrong ndim
        (lambda: Conv2d(3, 4, 3), (2, 5, 8, 8), np.float32, ["3 input channels", "(2, 5, 8, 8)"]),
        (lambda: Conv2d(3, 4, 7, padding=1), (1, 3, 4, 4), np.float32,
         ["larger than the padded input", "(1, 3, 4, 4)"]),
        (lambda: Conv2d(3, 4, 3), (1, 3, 8, 8), np.int64, ["floating-point", "int64", "(1, 3, 8, 8)"]),
        # a float64 input with float32 weights: both dtypes, and how to fix it
        (lambda: Conv2d(3, 4, 3), (1, 3, 8, 8), np.float64, ["input dtype float64", "parameter dtype float32",
                                                             "astype"]),
    ],
)
def test_bad_input_is_named(build, x_shape, dtype, words):
    layer = build()
    with pytest.raises(ValueError) as err:
        layer.forward(np.zeros(x_shape, dtype=dtype))
    message = str(err.value)
    assert message.startswith("Conv2d"), message
    for word in words:
        assert word in message, (word, message)


def test_channels_not_divisible_by_groups():
    with pytest.raises(ValueError, match="divisible by groups=2"):
        Conv2d(3, 4, 3, groups=2)


def test_backward_without_forward_is_explained():
    with pytest.raises(RuntimeError, match="without a forward"):
        Conv2d(1, 1, 1).backward(np.zeros((1, 1, 1, 1), dtype=np.float32))
