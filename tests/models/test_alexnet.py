"""Tests for minialex/models/alexnet.py: the paper's layer shapes, parameter names and count,
initialisation, seeding, dtypes, configuration round trips and dropout state.
Explained in docs/alexnet.md."""

import json

import numpy as np
import pytest

from minialex import nn
from minialex.models import AlexNet
from minialex.models.architecture import forward_order
from minialex.optim import SGD

NAMES = [f"{layer}.{kind}" for layer in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
         for kind in ("weight", "bias")]


@pytest.fixture(scope="module")
def paper_net():
    return AlexNet(seed=0)  # the full 1000-class network: ~2 s to draw 61M weights


def test_parameter_names_shapes_and_count(paper_net):
    named = list(paper_net.named_parameters())
    assert [n for n, _ in named] == NAMES
    shapes = {n: p.shape for n, p in named}
    assert shapes["conv1.weight"] == (96, 3, 11, 11)
    assert shapes["conv2.weight"] == (256, 48, 5, 5)  # grouped: each filter sees its column's 48 maps
    assert shapes["conv3.weight"] == (384, 256, 3, 3)  # reads both columns
    assert shapes["conv4.weight"] == (384, 192, 3, 3)
    assert shapes["conv5.weight"] == (256, 192, 3, 3)
    assert shapes["fc6.weight"] == (4096, 9216)
    assert shapes["fc8.weight"] == (1000, 4096)
    assert paper_net.num_parameters() == 60_965_224
    assert all(p.dtype == np.float32 for _, p in named)


def test_paper_output_shapes_55_27_13_6(paper_net):
    x = np.zeros((1, 3, 224, 224), dtype=np.float32)
    shapes = {}
    paper_net.eval()
    names = [name for name, _ in paper_net.named_children()]
    assert tuple(names) == forward_order(paper_net.cfg)  # the network runs the table's order
    for name in names:
        x = getattr(paper_net, name).forward(x)
        shapes[name] = x.shape[1:]
    assert shapes["conv1"] == (96, 55, 55)
    assert shapes["pool1"] == (96, 27, 27)
    assert shapes["conv2"] == (256, 27, 27)
    assert shapes["pool2"] == (256, 13, 13)
    assert shapes["conv3"] == shapes["conv4"] == (384, 13, 13)
    assert shapes["conv5"] == (256, 13, 13)
    assert shapes["pool5"] == (256, 6, 6)
    assert shapes["flatten"] == (9216,)
    assert shapes["fc6"] == shapes["fc7"] == (4096,)
    assert shapes["fc8"] == (1000,)


def test_paper_initialisation(paper_net):
    sd = paper_net.state_dict()
    ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
    for layer in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        assert np.all(sd[f"{layer}.bias"] == (1.0 if layer in ones else 0.0)), layer
        w = sd[f"{layer}.weight"].reshape(-1)[:200_000]
        assert abs(float(w.std()) - 0.01) < 2e-4, layer  # std 0.01 in every layer, FC included
        assert abs(float(w.mean())) < 1e-4, layer
    lrns = [paper_net.lrn1, paper_net.lrn2]
    assert all((m.size, m.k, m.alpha, m.beta, m.groups) == (5, 2.0, 1e-4, 0.75, 2) for m in lrns)


def test_seeding():
    a, b, c = (AlexNet(preset="tiny", seed=s) for s in (1, 1, 2))
    for name in NAMES:
        assert np.array_equal(a.state_dict()[name], b.state_dict()[name])
    assert not np.array_equal(a.conv1.weight.data, c.conv1.weight.data)
    assert a.drop6.seed != a.drop7.seed  # each dropout layer draws its own masks
    assert a.drop6.seed != c.drop6.seed


def test_layer_weights_do_not_depend_on_other_layers():
    # One generator per layer: widening fc6 leaves conv1's weights as they were.
    a = AlexNet(preset="tiny", seed=5)
    b = AlexNet(preset="tiny", seed=5, fc_width=16)
    assert np.array_equal(a.conv1.weight.data, b.conv1.weight.data)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_train_step_in_each_dtype(dtype):
    model = AlexNet(preset="tiny", dtype=dtype, seed=0, input_grad=True)
    x = np.random.default_rng(0).standard_normal((3, 3, 24, 24)).astype(dtype)
    labels = np.array([0, 1, 3])
    loss_fn = nn.SoftmaxCrossEntropy()
    logits = model.forward(x)
    assert logits.shape == (3, 4) and logits.dtype == dtype
    loss = loss_fn.forward(logits, labels)
    assert abs(float(loss) - np.log(4)) < 0.05  # std-0.01 weights: logits start nearly equal
    dx = model.backward(loss_fn.backward())
    assert dx.shape == x.shape and dx.dtype == dtype
    assert all(p.grad.dtype == dtype for p in model.parameters())


def test_astype_keeps_dtype_attribute():
    model = AlexNet(preset="tiny").astype(np.float64)
    assert model.dtype == np.float64 and model.fc8.weight.dtype == np.float64
    model.forward(np.zeros((1, 3, 24, 24)))


def test_config_round_trip():
    model = AlexNet(num_classes=7, preset="cifar10", seed=4)
    cfg = json.loads(json.dumps(model.config))  # plain values only
    assert cfg["num_classes"] == 7 and cfg["input_size"] == 32
    again = AlexNet.from_config(cfg, seed=4)
    assert type(again) is AlexNet and again.config == model.config
    for name in NAMES:
        assert np.array_equal(again.state_dict()[name], model.state_dict()[name])
    two = AlexNet.from_config(cfg, seed=4, devices=(0, 0))
    assert type(two) is AlexNet and two.devices == (0, 0) and two.config == model.config


def test_wrong_input_shape_names_the_expected_one():
    model = AlexNet(preset="tiny")
    with pytest.raises(ValueError, match=r"\(N, 3, 24, 24\)"):
        model.forward(np.zeros((1, 3, 32, 32), dtype=np.float32))
    with pytest.raises(ValueError, match="floating"):
        AlexNet(preset="tiny", dtype=np.int32)


def _step(model, opt, x, labels):
    loss_fn = nn.SoftmaxCrossEntropy()
    opt.zero_grad()
    loss = loss_fn.forward(model.forward(x), labels)
    model.backward(loss_fn.backward())
    opt.step()
    return float(loss)


def test_dropout_state_resumes_exactly():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 24, 24))
    labels = rng.integers(0, 4, 4)
    ref = AlexNet(preset="tiny", dtype=np.float64, seed=2, init_std=0.2)
    opt = SGD(ref.named_parameters(), lr=0.05)
    for _ in range(2):
        _step(ref, opt, x, labels)
    saved = (ref.state_dict(), ref.dropout_state(), opt.state_dict())
    saved = tuple({k: np.array(v) if hasattr(v, "shape") else dict(v) for k, v in d.items()} for d in saved)
    assert saved[1]["drop6"]["calls"] == 2
    expected = [_step(ref, opt, x, labels) for _ in range(2)]

    resumed = AlexNet(preset="tiny", dtype=np.float64, seed=99, init_std=0.2)  # other seed: all restored
    resumed.load_state_dict(saved[0]).load_dropout_state(saved[1])
    opt2 = SGD(resumed.named_parameters(), lr=0.05)
    opt2.load_state_dict(saved[2])
    assert [_step(resumed, opt2, x, labels) for _ in range(2)] == expected
    with pytest.raises(ValueError, match="drop6"):
        resumed.load_dropout_state({"drop7": {"seed": 1, "calls": 0}})


def test_eval_is_deterministic_and_train_is_not():
    model = AlexNet(preset="tiny", dtype=np.float64, init_std=0.3)
    x = np.random.default_rng(1).standard_normal((2, 3, 24, 24))
    a, b = model.forward(x), model.forward(x)
    assert not np.array_equal(a, b)  # a fresh dropout mask each training forward
    model.eval()
    assert np.array_equal(model.forward(x), model.forward(x))
