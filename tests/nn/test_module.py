"""Module base (minialex/nn/module.py): parameter naming, state_dict round trips and mismatch
reports, modes, dtype, and the kernels' scratch buffers kept per layer (runtime.workspace)."""

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


def test_a_layer_keeps_its_kernels_scratch_buffers_between_calls(monkeypatch):
    """forward_with and backward_with run the kernel inside ``runtime.workspace(layer)``: its
    ``runtime.buffer(owner, ...)`` arrays are kept for the layer from call to call (two LRN
    forwards reuse one ``scale`` array), while the pure kernel called outside any workspace gets
    fresh arrays each time. The output itself is always a new array."""
    from minialex.kernels.cpu import lrn as cpu_lrn
    from minialex.kernels.cpu import runtime
    from minialex.nn import LocalResponseNorm

    seen = []
    real_forward, real_backward = cpu_lrn.lrn_forward, cpu_lrn.lrn_backward

    def forward(*args):
        seen.append(("forward", runtime.current_workspace()))
        return real_forward(*args)

    def backward(*args):
        seen.append(("backward", runtime.current_workspace()))
        return real_backward(*args)

    monkeypatch.setattr(cpu_lrn, "lrn_forward", forward)
    monkeypatch.setattr(cpu_lrn, "lrn_backward", backward)
    x = np.random.default_rng(0).standard_normal((2, 6, 3, 3)).astype(np.float32)
    layer, other = LocalResponseNorm(groups=2), LocalResponseNorm(groups=2)
    y1 = layer.forward(x)
    _, cache1 = layer.take_cache()
    y2 = layer.forward(x)
    _, cache2 = layer.take_cache()
    assert layer.forward(x) is not None and layer.saved_implementation() == "kernels.cpu.lrn"
    layer.backward(np.ones_like(x))
    assert seen == [("forward", layer)] * 3 + [("backward", layer)]
    assert runtime.current_workspace() is None  # the workspace ends with the call
    kept = runtime.buffer(layer, "scale", (2, 6, 9), np.float32)
    assert np.shares_memory(cache1.scale, kept) and np.shares_memory(cache2.scale, kept)
    assert not np.shares_memory(y1, y2)  # the output is the caller's: never a kept buffer
    np.testing.assert_array_equal(y1, y2)
    other.forward(x)  # another layer has buffers of its own
    _, cache_other = other.take_cache()
    assert not np.shares_memory(cache_other.scale, kept)

    # the pure kernel, outside any workspace (owner None): fresh arrays on every call
    assert runtime.current_workspace() is None
    _, c1 = real_forward(x, 5, 1e-4, 0.75, 2.0, 2)
    _, c2 = real_forward(x, 5, 1e-4, 0.75, 2.0, 2)
    assert not np.shares_memory(c1.scale, c2.scale) and not np.shares_memory(c1.scale_pow, c2.scale_pow)
    assert not np.shares_memory(c1.scale, kept)
    np.testing.assert_array_equal(c1.scale, cache1.scale)
    a = runtime.buffer(None, "scale", (3,), np.float32)
    assert runtime.buffer(None, "scale", (3,), np.float32) is not a
    with runtime.workspace(layer):
        assert runtime.current_workspace() is layer
        _, c3 = real_forward(x, 5, 1e-4, 0.75, 2.0, 2)  # inside the layer's workspace: its buffers
    assert np.shares_memory(c3.scale, kept)
