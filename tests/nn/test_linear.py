"""Linear: gradients, PyTorch layout, and input errors."""

import numpy as np
import pytest

from minialex import backend
from minialex.gradcheck import check_layer
from minialex.nn import Linear


def test_gradients_match_finite_differences(rng, xp):
    layer = Linear(7, 5, init_std=1.0, rng=rng, dtype=np.float64).to(xp)
    layer.bias.data[...] = backend.to_backend(rng.standard_normal(5), xp)
    errors = check_layer(layer, backend.to_backend(rng.standard_normal((4, 7)), xp))
    assert max(errors.values()) < 1e-6, errors


def test_pytorch_layout(rng):
    layer = Linear(3, 2, rng=rng, dtype=np.float64)
    assert layer.weight.shape == (2, 3) and layer.bias.shape == (2,)
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(layer.forward(x), x @ layer.weight.data.T + layer.bias.data)


@pytest.mark.parametrize("shape, dtype, message", [
    ((4, 3, 1), np.float32, "(N, features)"),
    ((4, 5), np.float32, "3 input channels/features"),
    ((4, 3), np.int16, "floating-point"),
])
def test_bad_input_is_named(shape, dtype, message):
    with pytest.raises(ValueError) as err:
        Linear(3, 2).forward(np.zeros(shape, dtype=dtype))
    assert "Linear" in str(err.value) and message in str(err.value) and str(shape) in str(err.value)
