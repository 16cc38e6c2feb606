"""minialex/nn/dispatch.py: the one switch between the readable reference and the kernels.

An ``Op`` names the implementations of one op (the reference pair, a CPU kernel, a CUDA kernel);
``op.pick(x)`` chooses one for an array: the kernel of x's backend, the reference for anything
else. Tested here: the reference() context and its nesting, the MINIALEX_REFERENCE variable (also
for a whole run), pick's rule (integers and backends without a kernel get the reference),
``op.pairs()``, a function replaced in its module being the one that runs, and the modules' rule
that backward runs the implementation that made the forward, once, whatever the switch says by
then. The design is explained in docs/backend.md."""

import os
import subprocess
import sys
import types

import numpy as np
import pytest

from minialex import backend
from minialex.kernels.cpu import conv as cpu_conv
from minialex.kernels.cpu import linear as cpu_linear
from minialex.kernels.cuda import conv as cuda_conv
from minialex.nn import (Conv2d, Dropout, Linear, LocalResponseNorm, MaxPool2d, ReLU, Sigmoid, Tanh, functional,
                         reference)
from minialex.nn.conv import CONV2D
from minialex.nn.dispatch import CPU, CUDA, REFERENCE, Op, Pair, implementation_name, reference_enabled
from minialex.nn.dropout import DROPOUT
from minialex.nn.linear import LINEAR
from minialex.nn.loss import SOFTMAX_CROSS_ENTROPY
from minialex.nn.lrn import LRN
from minialex.nn.masks import HASH_MASK
from minialex.nn.pool import MAX_POOL2D
from minialex.nn.relu import RELU, RELU_INPLACE
from minialex.nn.sigmoid import SIGMOID
from minialex.nn.tanh import TANH
from minialex.optim import functional as optim_functional
from minialex.optim.sgd import SGD_UPDATE

LAYERS = [
    (lambda: Conv2d(2, 4, 3, padding=1), "kernels.cpu.conv"),
    (lambda: MaxPool2d(3, 2), "kernels.cpu.pool"),
    (lambda: LocalResponseNorm(groups=2), "kernels.cpu.lrn"),
    (lambda: ReLU(), "kernels.cpu.relu"),
    (lambda: ReLU(inplace=True), "kernels.cpu.relu"),
    (lambda: Linear(5, 3), "kernels.cpu.linear"),
    (lambda: Tanh(), "kernels.cpu.tanh"),
    (lambda: Sigmoid(), "kernels.cpu.sigmoid"),
]

# every Op: {kind: the module (the .by of its Pair)} it must list
OPS = {
    CONV2D: {REFERENCE: "reference", CPU: "kernels.cpu.conv", CUDA: "kernels.cuda.conv"},
    MAX_POOL2D: {REFERENCE: "reference", CPU: "kernels.cpu.pool", CUDA: "kernels.cuda.pool"},
    LRN: {REFERENCE: "reference", CPU: "kernels.cpu.lrn", CUDA: "kernels.cuda.lrn"},
    RELU: {REFERENCE: "reference", CPU: "kernels.cpu.relu"},
    RELU_INPLACE: {REFERENCE: "reference", CPU: "kernels.cpu.relu", CUDA: "kernels.cuda.relu"},
    DROPOUT: {REFERENCE: "reference"},
    LINEAR: {REFERENCE: "reference", CPU: "kernels.cpu.linear"},
    SOFTMAX_CROSS_ENTROPY: {REFERENCE: "reference"},
    SGD_UPDATE: {REFERENCE: "reference", CPU: "kernels.cpu.sgd", CUDA: "kernels.cuda.sgd"},
    HASH_MASK: {REFERENCE: "reference", CUDA: "kernels.cuda.dropout"},
    TANH: {REFERENCE: "reference", CPU: "kernels.cpu.tanh", CUDA: "kernels.cuda.tanh"},
    SIGMOID: {REFERENCE: "reference", CPU: "kernels.cpu.sigmoid", CUDA: "kernels.cuda.sigmoid"},
}


@pytest.fixture(autouse=True)
def no_env_switch(monkeypatch):
    monkeypatch.delenv("MINIALEX_REFERENCE", raising=False)


@pytest.fixture
def fake_cupy(monkeypatch):
    """A stand-in for CuPy, as the backend module sees it: its module object and an array type
    with a float dtype. Lets pick's rule for CuPy arrays be tested without a GPU."""
    class FakeArray:
        dtype = np.dtype(np.float32)

    cp = types.SimpleNamespace(ndarray=FakeArray, __name__="cupy")
    monkeypatch.setattr(backend, "_cupy", cp)
    return cp


def test_the_switch_and_its_nesting():
    x = np.zeros((2, 2), np.float32)
    assert implementation_name(x) == "cpu" and not reference_enabled()
    assert CONV2D.pick(x).by == "kernels.cpu.conv"
    with reference():
        assert implementation_name(x) == "reference" and reference_enabled()
        assert CONV2D.pick(x).by == "reference"
        with reference(False):
            assert implementation_name(x) == "cpu"
            assert CONV2D.pick(x).by == "kernels.cpu.conv"
        assert implementation_name(x) == "reference"
    assert implementation_name(x) == "cpu"
    assert CONV2D.pick(x).by == "kernels.cpu.conv"
    assert implementation_name(np.zeros(3, np.int64)) == "reference"  # no kernel for integers


def test_environment_variable(monkeypatch):
    monkeypatch.setenv("MINIALEX_REFERENCE", "1")
    assert implementation_name(np.zeros(2)) == "reference"
    assert LINEAR.pick(np.zeros((2, 2))).by == "reference"
    with reference(False):
        assert implementation_name(np.zeros(2)) == "cpu"
        assert LINEAR.pick(np.zeros((2, 2))).by == "kernels.cpu.linear"
    monkeypatch.setenv("MINIALEX_REFERENCE", "0")
    assert implementation_name(np.zeros(2)) == "cpu"
    assert LINEAR.pick(np.zeros((2, 2))).by == "kernels.cpu.linear"


def test_environment_variable_for_a_whole_run():
    code = ("import numpy as np; from minialex.nn import Conv2d; c = Conv2d(1, 1, 1); "
            "c.forward(np.ones((1, 1, 2, 2), np.float32)); print(c.saved_implementation())")
    env = dict(os.environ, MINIALEX_REFERENCE="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "reference"


# -- pick and pairs ---------------------------------------------------------------------------
@pytest.mark.parametrize("x", [np.zeros(3, np.int64), np.zeros((2, 2), np.uint8), np.zeros(2, bool), [1.0, 2.0], 3.0],
                         ids=["int64", "uint8", "bool", "list", "float"])
def test_pick_gives_the_reference_for_anything_but_floating_arrays(x):
    for op in OPS:
        pair = op.pick(x)
        assert pair.by == "reference"
        assert pair.forward is op.pair(REFERENCE).forward


def test_pick_gives_the_reference_where_the_backend_has_no_kernel():
    """Floating NumPy arrays: the CPU kernel where the op has one, else its reference."""
    for dtype in (np.float32, np.float64):
        x = np.zeros((2, 2), dtype)
        for op, kinds in OPS.items():
            assert op.pick(x).by == kinds.get(CPU, "reference"), op
            assert op.pick(np).by == kinds.get(CPU, "reference"), op  # the array module itself


def test_pick_on_cupy_arrays(fake_cupy):
    """CuPy arrays (and the CuPy module): the CUDA kernel where the op has one, else its reference
    (Linear, ReLU's pure pair, dropout and the loss run their reference on the GPU)."""
    for x in (fake_cupy.ndarray(), fake_cupy):
        for op, kinds in OPS.items():
            assert op.pick(x).by == kinds.get(CUDA, "reference"), op
        assert implementation_name(x) == "cuda"
        with reference():
            assert all(op.pick(x).by == "reference" for op in OPS)
    assert CONV2D.pick(fake_cupy.ndarray()).forward is cuda_conv.conv2d_forward


def test_pairs_list_every_implementation():
    for op, kinds in OPS.items():
        pairs = op.pairs()
        assert set(pairs) == set(kinds) == set(op.modules), op
        for kind, pair in pairs.items():
            assert isinstance(pair, Pair) and pair.by == kinds[kind]
            assert callable(pair.forward)
            assert op.pair(kind) == pair
            if op.name in ("sgd_update", "hash_mask"):  # single functions
                assert pair.backward is None and pair.forward.__name__ == op.name
            else:
                assert "forward" in pair.forward.__name__ and "backward" in pair.backward.__name__
    assert CONV2D.pairs()[CPU] == Pair(cpu_conv.conv2d_forward, cpu_conv.conv2d_backward, "kernels.cpu.conv")
    assert CONV2D.pairs()[REFERENCE].forward is functional.conv2d_forward
    assert SGD_UPDATE.pairs()[REFERENCE].forward is optim_functional.sgd_update
    assert "kernels.cpu.linear" in repr(LINEAR) and "cuda" not in repr(LINEAR)


def test_an_op_with_only_a_reference_runs_it_everywhere(fake_cupy):
    op = Op("linear", reference=functional.linear)
    assert set(op.pairs()) == {REFERENCE}
    for x in (np.zeros((2, 2)), np.zeros((2, 2), np.float32), fake_cupy.ndarray()):
        pair = op.pick(x)
        assert pair.by == "reference" and pair.forward is functional.linear_forward


def test_a_function_replaced_in_its_module_is_the_one_that_runs(monkeypatch):
    """Op looks the functions up at each call: a learner's experiment, or a test's deliberate bug,
    replaces a function in its module and the layers run it (the kernel by default, the
    reference inside reference())."""
    calls = []

    def spy(which, real):
        def run(*args, **kwargs):
            calls.append(which)
            return real(*args, **kwargs)
        return run

    monkeypatch.setattr(cpu_linear, "linear_forward", spy("cpu forward", cpu_linear.linear_forward))
    monkeypatch.setattr(cpu_linear, "linear_backward", spy("cpu backward", cpu_linear.linear_backward))
    monkeypatch.setattr(functional.linear, "linear_forward", spy("ref forward", functional.linear.linear_forward))
    layer = Linear(3, 2)
    x = np.ones((4, 3), np.float32)
    layer.backward(layer.forward(x))
    assert calls == ["cpu forward", "cpu backward"]
    with reference():
        layer.backward(layer.forward(x))
    assert calls[2:] == ["ref forward"]  # the reference backward was not replaced
    assert LINEAR.pick(x).forward.__name__ == "run"

    def broken(x, w, b):  # a deliberate bug: the layer returns what the replaced function makes
        return np.full((x.shape[0], w.shape[0]), 7.0, x.dtype), functional.LinearCache(x, w)

    with monkeypatch.context() as m:
        m.setattr(cpu_linear, "linear_forward", broken)
        assert LINEAR.pick(x).forward is broken
        np.testing.assert_array_equal(layer.forward(x), 7.0)
    assert not np.any(layer.forward(x) == 7.0)  # put back: the real kernel (through the spy) again


# -- the layers: forward labels its cache, backward follows it ----------------------------------
@pytest.mark.parametrize("make, kernel", LAYERS)
def test_forward_labels_what_it_saved(make, kernel):
    layer = make()
    rng = np.random.default_rng(0)
    if isinstance(layer, Linear):
        x = rng.standard_normal((2, 5))
    else:
        x = rng.standard_normal((2, 2 if kernel.endswith("conv") else 4, 5, 5))
    x = x.astype(np.float32)
    assert layer.saved_implementation() is None
    layer.forward(x.copy())
    assert layer.saved_implementation() == kernel
    layer.backward(np.ones(layer.forward(x.copy()).shape, np.float32))
    assert layer.saved_implementation() is None  # handed over to backward
    with reference():
        layer.forward(x.copy())
        assert layer.saved_implementation() == "reference"


@pytest.mark.parametrize("switch_to_reference", [True, False])
def test_backward_follows_the_forward_not_the_switch(switch_to_reference):
    """A forward under one setting and its backward under the other: the result is the one
    implementation's, never a mix (a mix would fail: the caches differ, the CPU conv's holds x
    where the reference's holds the columns)."""
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


def test_a_backward_gets_its_forwards_pair(monkeypatch):
    """The Pair kept with the cache is the one backward runs: a forward by the kernel, then the
    switch turned to the reference, runs the kernel's backward (counted), not the reference's."""
    called = []
    real = cpu_conv.conv2d_backward
    monkeypatch.setattr(cpu_conv, "conv2d_backward", lambda *a, **k: called.append(1) or real(*a, **k))
    layer = Conv2d(2, 3, 3)
    y = layer.forward(np.ones((1, 2, 5, 5), np.float32))
    with reference():
        layer.backward(np.ones_like(y))
    assert called == [1]


def test_one_backward_per_forward():
    for layer in (Linear(3, 2), Dropout(0.5), ReLU()):
        with pytest.raises(RuntimeError, match="without a forward"):
            layer.backward(np.zeros((1, 2)))
        y = layer.forward(np.zeros((1, 3), np.float32))
        layer.backward(np.zeros_like(y))
        with pytest.raises(RuntimeError, match="without a forward"):
            layer.backward(np.zeros_like(y))
