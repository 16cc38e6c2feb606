"""LocalResponseNorm: the paper's formula, its gradient, window clipping and groups."""

import numpy as np
import pytest

from minialex import backend
from minialex.gradcheck import check_layer
from minialex.nn import LocalResponseNorm

from . import naive


# alpha near 1 makes the cross-channel term as large as the direct one, so a
# wrong or missing window term cannot hide behind alpha=1e-4.
@pytest.mark.parametrize("channels, size, groups", [(3, 5, 1), (4, 5, 1), (11, 5, 1), (12, 5, 2), (6, 3, 2), (8, 1, 1)])
def test_gradients_match_finite_differences(channels, size, groups, rng, xp):
    layer = LocalResponseNorm(size=size, alpha=0.9, beta=0.75, k=2.0, groups=groups)
    x = backend.to_backend(rng.standard_normal((2, channels, 3, 2)), xp)
    errors = check_layer(layer, x)
    assert errors["x"] < 1e-6, errors


@pytest.mark.parametrize("channels, groups", [(3, 1), (11, 1), (12, 2), (96, 2)])
def test_forward_equals_the_paper_formula(channels, groups, rng, xp):
    x = rng.standard_normal((2, channels, 3, 3))
    layer = LocalResponseNorm(size=5, alpha=0.5, beta=0.75, k=2.0, groups=groups)
    y = backend.to_numpy(layer.forward(backend.to_backend(x, xp)))
    np.testing.assert_allclose(y, naive.lrn_forward(x, 5, 0.5, 0.75, 2.0, groups), rtol=1e-12)


def test_paper_constants_and_alpha_convention():
    layer = LocalResponseNorm()
    assert (layer.size, layer.alpha, layer.beta, layer.k) == (5, 1e-4, 0.75, 2.0)
    # One non-zero channel: its own square is the whole window sum, alpha is NOT divided by 5.
    x = np.zeros((1, 5, 1, 1))
    x[0, 2] = 10.0
    y = layer.forward(x)
    assert y[0, 2, 0, 0] == pytest.approx(10.0 / (2.0 + 1e-4 * 100.0) ** 0.75, rel=1e-14)
    # Its neighbours within two channels are 0 and stay 0, but they feel it in the denominator:
    # at x_j = 0 the cross term of dy/dx_j vanishes, leaving dx_j = dout_j * scale_j^-beta with
    # scale_j = k + alpha * 100. Without the window (alpha on the own square only) it would be k^-beta.
    np.testing.assert_array_equal(y[0, [0, 1, 3, 4], 0, 0], 0.0)
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_allclose(dx[0, [0, 1, 3, 4], 0, 0], (2.0 + 1e-4 * 100.0) ** -0.75, rtol=1e-14)
    assert (2.0 + 1e-4 * 100.0) ** -0.75 != pytest.approx(2.0 ** -0.75, rel=1e-6)


def test_window_stops_at_group_boundary():
    x = np.zeros((1, 4, 1, 1))
    x[0, 2] = 100.0  # a big value in the second group
    y = LocalResponseNorm(size=5, alpha=1.0, beta=1.0, k=1.0, groups=2).forward(x + 1.0)
    # channel 1 (first group) would see channel 2 if windows crossed groups
    assert y[0, 1, 0, 0] == pytest.approx(1.0 / (1.0 + 2.0))  # window {0, 1}: 1 + 1
    y_one = LocalResponseNorm(size=5, alpha=1.0, beta=1.0, k=1.0, groups=1).forward(x + 1.0)
    assert y_one[0, 1, 0, 0] < y[0, 1, 0, 0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        LocalResponseNorm(size=4)
    with pytest.raises(ValueError, match="groups=2"):
        LocalResponseNorm(groups=2).forward(np.zeros((1, 3, 2, 2)))
    with pytest.raises(ValueError, match="LocalResponseNorm.*floating-point"):
        LocalResponseNorm().forward(np.zeros((1, 3, 2, 2), dtype=np.int8))
