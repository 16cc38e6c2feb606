"""Winograd F(2x2, 3x3) (minialex/nn/winograd.py) against the plain im2col reference."""

import numpy as np
import pytest

from minialex.nn import Conv2d, fast, winograd


@pytest.mark.parametrize("case", [(4, 6, 2, 13, 13, 1, 5), (3, 5, 1, 6, 7, 0, 3), (4, 4, 2, 5, 4, 2, 2),
                                  (2, 3, 1, 3, 3, 1, 1), (6, 4, 2, 8, 9, 1, 4)])
@pytest.mark.parametrize("input_grad", [True, False])
def test_winograd_equals_plain(case, input_grad, monkeypatch):
    cin, cout, groups, h, w, pad, n = case
    monkeypatch.setattr(winograd, "TILE_BYTES", 1)  # one sample per chunk: partial chunks too
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, cin, h, w))
    results = []
    for enabled in (False, True):
        monkeypatch.setattr(fast, "ENABLED", enabled)
        conv = Conv2d(cin, cout, 3, 1, pad, groups, init_std=1.0, rng=np.random.default_rng(1), dtype=np.float64)
        conv.input_grad = input_grad
        y = conv.forward(x)
        dy = np.random.default_rng(2).standard_normal(y.shape)
        dx = conv.backward(dy)
        results.append((y, dx, conv.weight.grad.copy(), conv.bias.grad.copy()))
    for ref, got in zip(*results):
        if ref is None:
            assert got is None
            continue
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
