"""Whole-network gradient check of minialex/models (single- and two-device AlexNet) against
centred finite differences, in float64 on the "tiny" configuration, in training mode with the
dropout masks replayed. Why and how: docs/alexnet.md, "Tests", and docs/gradcheck.md."""

import contextlib

import numpy as np
import pytest

from minialex.gradcheck import rel_error
from minialex.models import AlexNet
from minialex.nn import reference

H = 3e-5  # round-off in L grows as h shrinks; the chance that h moves an activation across a
# ReLU or max-pool kink grows with h. 3e-5 keeps both below 1e-6 here (1e-4 crossed a kink in x).
SAMPLES = 24  # entries checked per tensor (all of them when the tensor is smaller)


def make_model(devices):
    # init_std 0.2 instead of the paper's 0.01 keeps activations O(1) through eight layers, and
    # lrn_alpha 0.5 makes LRN's cross-channel term large enough to be tested (at 1e-4 it is not).
    # input_grad=True: the gradient of the images is checked too (training skips it).
    return AlexNet(preset="tiny", dtype=np.float64, seed=1, devices=devices, init_std=0.2, lrn_alpha=0.5,
                   input_grad=True)


@pytest.mark.parametrize("code", ["reference", "kernels"])
@pytest.mark.parametrize("devices", [None, (0, 1)], ids=["one-device", "two-device"])
def test_whole_network_gradients(devices, code):
    with (reference() if code == "reference" else contextlib.nullcontext()):
        check_network(devices)


def test_training_network_returns_no_input_gradient():
    model = AlexNet(preset="tiny", dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 3, 24, 24))
    assert model.backward(np.ones(model.forward(x).shape)) is None
    assert not model.conv1.input_grad and model.conv2.input_grad


def check_network(devices):
    model = make_model(devices).train()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 24, 24))
    dropouts = [m for _, m in model.named_modules() if hasattr(m, "calls")]  # drop6, drop7
    start = [d.calls for d in dropouts]

    def logits():
        for d, c in zip(dropouts, start):
            d.calls = c  # the same dropout masks on every evaluation
        return model.forward(x)

    upstream = rng.standard_normal(logits().shape)  # L = sum(upstream * logits), dL/dlogits = upstream

    def loss():
        return float((logits() * upstream).sum())

    logits()
    model.zero_grad()
    dx = model.backward(upstream.copy())
    analytic = {"x": dx.copy()}
    analytic.update({name: np.array(p.grad) for name, p in model.named_parameters()})
    # A sanity check that dropout is really active in the replayed masks.
    assert any(d.p > 0 for d in dropouts) and model.training

    tensors = [("x", x)] + [(name, p.data) for name, p in model.named_parameters()]
    errors = {}
    for name, arr in tensors:
        flat = arr.reshape(-1)  # a view: writing to it perturbs the tensor the network reads
        idx = np.arange(flat.size) if flat.size <= SAMPLES else rng.choice(flat.size, SAMPLES, replace=False)
        numeric = np.empty(len(idx))
        for k, i in enumerate(idx):
            old = flat[i]
            flat[i] = old + H
            plus = loss()
            flat[i] = old - H
            minus = loss()
            flat[i] = old
            numeric[k] = (plus - minus) / (2 * H)
        errors[name] = rel_error(analytic[name].reshape(-1)[idx], numeric)
        assert np.abs(analytic[name]).max() > 0, f"{name}: all-zero gradient tests nothing"
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, f"largest relative error {errors[worst]:.2e} in {worst}: {errors}"
