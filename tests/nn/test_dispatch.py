"""minialex/nn/dispatch.py: the one switch between the readable reference and the kernels.
The reference() context, the MINIALEX_REFERENCE variable, and the rule that backward runs the
implementation that made the forward, whatever the switch says by then."""

import os
import subprocess
import sys

import numpy as np
import pytest

from minialex.nn import Conv2d, Dropout, Linear, LocalResponseNorm, MaxPool2d, ReLU, reference
from minialex.nn.dispatch import implementation_name, reference_enabled

LAYERS = [
    (lambda: Conv2d(2, 4, 3, padding=1), "kernels.cpu.conv"),
    (lambda: MaxPool2d(3, 2), "kernels.cpu.pool"),
    (lambda: LocalResponseNorm(groups=2), "kernels.cpu.lrn"),
    (lambda: ReLU(), "kernels.cpu.relu"),
]


@pytest.fixture(autouse=True)
def no_env_switch(monkeypatch):
    monkeypatch.delenv("MINIALEX_REFERENCE", raising=False)


def test_the_switch_and_its_nesting():
    x = np.zeros((2, 2), np.float32)
    assert implementation_name(x) == "cpu" and not reference_enabled()
    with reference():
        assert implementation_name(x) == "reference"
        with reference(False):
            assert implementation_name(x) == "cpu"
        assert implementation_name(x) == "reference"
    assert implementation_name(x) == "cpu"
    assert implementation_name(np.zeros(3, np.int64)) == "reference"  # no kernel for integers


def test_environment_variable(monkeypatch):
    monkeypatch.setenv("MINIALEX_REFERENCE", "1")
    assert implementation_name(np.zeros(2)) == "reference"
    with reference(False):
        assert implementation_name(np.zeros(2)) == "cpu"
    monkeypatch.setenv("MINIALEX_REFERENCE", "0")
    assert implementation_name(np.zeros(2)) == "cpu"


def test_environment_variable_for_a_whole_run():
    code = ("import numpy as np; from minialex.nn import Conv2d; c = Conv2d(1, 1, 1); "
            "c.forward(np.ones((1, 1, 2, 2), np.float32)); print(c.saved_implementation())")
    env = dict(os.environ, MINIALEX_REFERENCE="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "reference"


@pytest.mark.parametrize("make, kernel", LAYERS)
def test_forward_labels_what_it_saved(make, kernel):
    layer = make()
    x = np.random.default_rng(0).standard_normal((2, 2 if kernel.endswith("conv") else 4, 5, 5))
    x = x.astype(np.float32)
    assert layer.saved_implementation() is None
    layer.forward(x)
    assert layer.saved_implementation() == kernel
    layer.backward(np.ones(layer.forward(x).shape, np.float32))
    assert layer.saved_implementation() is None  # handed over to backward
    with reference():
        layer.forward(x)
        assert layer.saved_implementation() == "reference"


@pytest.mark.parametrize("switch_to_reference", [True, False])
def test_backward_follows_the_forward_not_the_switch(switch_to_reference):
    """A forward under one setting and its backward under the other: the result is the one
    implementation's, never a mix (a mix would fail: the saved arrays differ)."""
    rng = np.random.default_rng(1)
    layer = Conv2d(3, 4, 3, stride=2, padding=1, init_std=1.0, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 3, 7, 7))
    dy = rng.standard_normal(layer.output_shape(x.shape))
    with reference():
        layer.forward(x)
        want = layer.backward(dy)
    outer = reference(not switch_to_reference)
    with outer:
        layer.forward(x)
        made_by = layer.saved_implementation()
        with reference(switch_to_reference):
            got = layer.backward(dy)
    assert made_by == ("kernels.cpu.conv" if switch_to_reference else "reference")
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_one_backward_per_forward():
    for layer in (Linear(3, 2), Dropout(0.5), ReLU()):
        with pytest.raises(RuntimeError, match="without a forward"):
            layer.backward(np.zeros((1, 2)))
        y = layer.forward(np.zeros((1, 3), np.float32))
        layer.backward(np.zeros_like(y))
        with pytest.raises(RuntimeError, match="without a forward"):
            layer.backward(np.zeros_like(y))
