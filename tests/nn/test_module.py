"""Module base: parameter naming, state_dict round trips and mismatch reports, modes, dtype."""

import numpy as np
import pytest

from minialex import backend
from minialex.gradcheck import check_layer
from minialex.nn import Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential


def tiny(rng):
    return Sequential(
        ("conv", Conv2d(2, 4, 3, padding=1, rng=rng)), ("relu", ReLU()), ("pool", MaxPool2d(2, 2)),
        ("flat", Flatten()), ("drop", Dropout(0.5, seed=1)), ("fc", Linear(4 * 3 * 3, 3, rng=rng)),
    )


def test_named_parameters_and_count(rng):
    net = tiny(rng)
    assert [n for n, _ in net.named_parameters()] == ["conv.weight", "conv.bias", "fc.weight", "fc.bias"]
    assert net.num_parameters() == 4 * 2 * 9 + 4 + 3 * 36 + 3


def test_state_dict_round_trip(rng):
    a, b = tiny(rng), tiny(np.random.default_rng(99))
    b.load_state_dict(a.state_dict())
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
        assert pa.data is not pb.data  # loaded by copy, not by sharing


def test_load_state_dict_lists_every_mismatch(rng):
    net = tiny(rng)
    state = dict(net.state_dict())
    state["conv.weight"] = np.zeros((5, 2, 3, 3), dtype=np.float32)
    del state["fc.bias"]
    state["extra.weight"] = np.zeros(1)
    with pytest.raises(ValueError) as err:
        net.load_state_dict(state)
    text = str(err.value)
    assert "missing: fc.bias" in text and "unexpected: extra.weight" in text
    assert "conv.weight: checkpoint shape (5, 2, 3, 3) != model shape (4, 2, 3, 3)" in text


def test_train_eval_propagate(rng):
    net = tiny(rng).eval()
    assert not any(m.training for _, m in net.named_modules())
    assert all(m.training for _, m in net.train().named_modules())


def test_sequential_gradient_float64(rng, xp):
    net = tiny(rng).astype(np.float64).to(xp)
    assert all(p.data.dtype == np.float64 and p.grad.dtype == np.float64 for p in net.parameters())
    x = rng.standard_normal((2, 2, 6, 6))
    x += np.sign(x) * 0.05  # keep ReLU inputs away from 0
    errors = check_layer(net, backend.to_backend(x, xp))
    assert max(errors.values()) < 1e-6, errors
