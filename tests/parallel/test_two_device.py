"""Tests for minialex/parallel/two_column.py (AlexNet(devices=...)): the two-device network computes
the single-device function (logits, loss, gradients, in training mode), crosses devices exactly
14 times per step, shares checkpoints both ways, and never aliases. Explained in docs/two-gpu.md."""

import numpy as np
import pytest

from minialex import backend, nn
from minialex.backend import BackendError
from minialex.models import AlexNet
from minialex.parallel.two_column import ColumnPair
from minialex.optim import SGD

TOL = dict(rtol=1e-10, atol=1e-13)  # float64; only the order of some sums differs


def pair(devices, seed=1, **fields):
    # init_std 0.2 instead of the paper's 0.01: with the tiny preset's few maps, 0.01 shrinks the
    # signal to nothing within a few layers and every logit is fc8's bias, so a wrong exchange
    # would still give equal logits. lrn_alpha 0.5 makes LRN's cross-channel term large enough
    # that a window crossing the column boundary would change the result (at 1e-4 it would not).
    # input_grad=True: the gradient of the images is compared too.
    kw = dict(preset="tiny", dtype=np.float64, seed=seed, init_std=0.2, lrn_alpha=0.5, input_grad=True, **fields)
    return AlexNet(**kw), AlexNet(devices=devices, **kw)


def batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, 24, 24)), rng.integers(0, 4, n)


def test_selection_and_names():
    one, two = pair((0, 1))
    assert type(one) is AlexNet and type(two) is AlexNet  # one class; the placement differs
    assert one.devices is None and two.devices == (0, 1)
    assert isinstance(two.conv1, ColumnPair) and not isinstance(one.conv1, ColumnPair)
    names = [n for n, _ in two.named_parameters()]
    assert names[:4] == ["conv1.a.weight", "conv1.a.bias", "conv1.b.weight", "conv1.b.bias"]
    assert names[-2:] == ["fc8.weight", "fc8.bias"]
    assert list(two.state_dict()) == list(one.state_dict())
    assert two.num_parameters() == one.num_parameters()


def test_same_seed_same_weights():
    one, two = pair((0, 1), seed=7)
    for name, w in one.state_dict().items():
        np.testing.assert_array_equal(two.state_dict()[name], w, err_msg=name)


def test_paper_sizes_of_the_halves():
    two = AlexNet(devices=(0, 1), fc_width=8, num_classes=10)  # full conv widths, small fc
    assert two.conv1.a.weight.shape == (48, 3, 11, 11)
    assert two.conv2.a.weight.shape == (128, 48, 5, 5)
    assert two.conv3.b.weight.shape == (192, 256, 3, 3)  # reads both columns
    assert two.conv4.b.weight.shape == (192, 192, 3, 3)
    assert two.conv5.a.weight.shape == (128, 192, 3, 3)
    assert two.fc6.a.weight.shape == (4, 9216)
    assert two.fc8.weight.shape == (10, 8)


@pytest.mark.parametrize("devices", [(0, 1), (0, 0)])
def test_same_function_and_gradients_in_training_mode(devices):
    one, two = pair(devices)
    two.load_state_dict(one.state_dict())  # the same weights, whatever the seeds
    x, labels = batch()
    opt_one = SGD(one.named_parameters(), lr=0.05)
    opt_two = SGD(two.named_parameters(), lr=0.05)
    for step in range(2):  # the second step uses new dropout masks and updated weights
        results = []
        for model, opt in ((one, opt_one), (two, opt_two)):
            loss_fn = nn.SoftmaxCrossEntropy()
            opt.zero_grad()
            logits = model.forward(x)
            loss = loss_fn.forward(logits, labels)
            dx = model.backward(loss_fn.backward())
            results.append((logits, float(loss), dx, model.full_grads()))
            opt.step()
        (l1, loss1, dx1, g1), (l2, loss2, dx2, g2) = results
        np.testing.assert_allclose(l2, l1, **TOL)
        assert abs(loss2 - loss1) < 1e-12
        np.testing.assert_allclose(dx2, dx1, **TOL)
        assert list(g2) == list(g1)
        for name in g1:
            assert g2[name].shape == g1[name].shape
            np.testing.assert_allclose(g2[name], g1[name], err_msg=f"step {step} {name}", **TOL)
        assert one.drop6.calls == two.drop6.calls == step + 1  # training mode: masks were drawn
    for name, w in one.state_dict().items():  # SGD kept both models equal
        np.testing.assert_allclose(two.state_dict()[name], w, err_msg=name, **TOL)
    assert two.dropout_state() == one.dropout_state()


def test_eval_mode_is_the_same_function():
    one, two = pair((0, 1))
    x, _ = batch(2, seed=3)
    np.testing.assert_allclose(two.eval().forward(x), one.eval().forward(x), **TOL)


def test_fourteen_column_transfers_per_training_step():
    _, two = pair((0, 1))
    x, labels = batch()
    loss_fn = nn.SoftmaxCrossEntropy()
    two.transfers.clear()
    loss_fn.forward(two.forward(x), labels)
    assert two.transfers["column"] == 7  # conv3 x2, fc6 x2, fc7 x2, fc8 (B -> A)
    two.backward(loss_fn.backward())
    assert two.transfers["column"] == 14  # the same seven, gradients flowing back
    assert two.transfers["input"] == 3  # the batch to both devices, its gradient back to A


def test_transfers_never_alias():
    _, two = pair((0, 0))
    a = np.arange(12.0).reshape(3, 4)
    b = two.placement.transfer(a, 1)
    assert b is not a and not np.shares_memory(a, b)
    a += 100.0  # an in-place update on one side ...
    assert b[0, 0] == 0.0  # ... does not reach the other
    view = a[:, 2:]  # a column half, as the backward pass sends it
    c = two.placement.transfer(view, 0)
    assert not np.shares_memory(view, c) and np.array_equal(c, view)


def test_state_dict_round_trips_both_ways():
    one, two = pair((0, 1), seed=3)
    other_one, other_two = pair((1, 0), seed=11)
    # single -> two -> single
    two.load_state_dict(one.state_dict())
    other_one.load_state_dict(two.state_dict())
    # two -> single -> two
    one.load_state_dict(other_two.state_dict())
    two.load_state_dict(one.state_dict())
    for name, w in other_one.state_dict().items():
        assert w.shape == two.state_dict()[name].shape
    for name, w in other_two.state_dict().items():
        np.testing.assert_array_equal(two.state_dict()[name], w, err_msg=name)
    # the halves land in the right column
    sd = one.state_dict()
    np.testing.assert_array_equal(two.conv3.b.weight.data, sd["conv3.weight"][4:])
    np.testing.assert_array_equal(two.fc8.weight.data, sd["fc8.weight"])


def test_load_state_dict_reports_every_problem():
    one, two = pair((0, 1))
    state = dict(one.state_dict())
    del state["fc7.bias"]
    state["conv2.weight"] = np.zeros((8, 4, 3, 3))
    state["extra"] = np.zeros(1)
    with pytest.raises(ValueError) as info:
        two.load_state_dict(state)
    msg = str(info.value)
    assert "fc7.bias" in msg and "conv2.weight" in msg and "extra" in msg


@pytest.mark.parametrize("devices, error, words", [
    ((0,), ValueError, "exactly two"),
    ((0, 1, 2), ValueError, "exactly two"),
    (3, ValueError, "pair of device ids"),
    ((0, -1), BackendError, "non-negative"),
    ((0, "1"), BackendError, "non-negative integer"),
])
def test_bad_devices(devices, error, words):
    with pytest.raises(error, match=words):
        AlexNet(preset="tiny", devices=devices)


def test_to_keeps_columns_apart():
    _, two = pair((0, 1))
    with pytest.raises(ValueError, match="devices"):
        two.to(device_id=1)
    two.to("numpy", dtype=np.float32)
    assert two.dtype == np.float32 and two.conv1.b.weight.dtype == np.float32
    x, _ = batch(1)
    assert two.forward(x.astype(np.float32)).dtype == np.float32


@pytest.mark.gpu
@pytest.mark.skipif(not backend.cupy_available(), reason="needs CuPy and a CUDA GPU")
def test_gpu_devices():
    import cupy

    one, two = pair((0, 0))
    with pytest.raises(BackendError, match="does not exist"):
        AlexNet(preset="tiny", devices=(0, 99)).to("cupy")
    two.to("cupy")
    assert isinstance(two.conv1.b.weight.data, cupy.ndarray)
    x, _ = batch(2)
    one.eval(), two.eval()
    np.testing.assert_allclose(backend.to_numpy(two.forward(cupy.asarray(x))), one.forward(x), rtol=1e-9)
    a = cupy.arange(6.0)
    assert two.placement.transfer(a, 1).data.ptr != a.data.ptr  # (0, 0): still a real copy


def test_any_gpu_ids_at_construction_checked_by_to():
    """Ids are checked against a backend when the model moves to it: (2, 3) is a fine pair for a
    four-GPU machine, while on NumPy only 0 and 1 label the columns."""
    two = AlexNet(preset="tiny", devices=(2, 3))
    assert two.devices == (2, 3)
    with pytest.raises(BackendError, match="device 2 does not exist"):
        two.to("numpy")
    for bad in [(-1, 0), (0, 1.5), (True, 0)]:
        with pytest.raises(BackendError, match="non-negative integer"):
            AlexNet(preset="tiny", devices=bad)
