"""minialex/models/architecture.py: the one table the networks, counts and benchmark derive from,
and checkpoints written before the table existed (tests/models/data/, by commit 7edd5cc)."""

import os

import numpy as np
import pytest

from minialex.models import AlexNet, alexnet_config
from minialex.models.architecture import BOTH, IMAGE, OWN, forward_order, gemm_shapes, layers, rows
from minialex.optim import SGD
from minialex.weights.checkpoint import load_checkpoint

OLD_CHECKPOINT = os.path.join(os.path.dirname(__file__), "data", "alexnet-tiny-7edd5cc.npz")


def test_the_papers_table():
    table = {r.name: r for r in rows(alexnet_config("imagenet"))}
    assert [(r.kernel, r.stride, r.padding) for r in table.values() if r.kind == "conv"] == [
        (11, 4, 2), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1)]
    assert {n for n, r in table.items() if r.reads == BOTH} == {"conv3", "fc6", "fc7", "fc8"}
    assert {n for n, r in table.items() if r.reads == OWN} == {"conv2", "conv4", "conv5"}
    assert table["conv1"].reads == IMAGE
    assert {n for n, r in table.items() if r.init_bias == 1.0} == {"conv2", "conv4", "conv5", "fc6", "fc7"}
    assert [n for n, r in table.items() if "lrn" in r.then] == ["conv1", "conv2"]
    assert [n for n, r in table.items() if "pool" in r.then] == ["conv1", "conv2", "conv5"]


@pytest.mark.parametrize("preset", ["imagenet", "cifar10", "synthetic", "tiny"])
@pytest.mark.parametrize("devices", [None, (0, 1)])
def test_networks_are_built_from_the_table(preset, devices):
    cfg = alexnet_config(preset, fc_width=8) if preset == "imagenet" else alexnet_config(preset)
    model = AlexNet(preset=cfg, devices=devices)
    assert tuple(name for name, _ in model.named_children()) == forward_order(cfg)
    shapes = {name: tuple(a.shape) for name, a in model.state_dict().items()}
    for layer in layers(cfg):
        assert shapes[layer.row.name + ".weight"] == layer.weight
    assert model.num_parameters() == cfg.num_parameters() == sum(layer.params for layer in layers(cfg))


def test_gemm_shapes_add_up_to_three_forwards():
    """Each layer's three products cost 3x its forward multiply-adds, less conv1's dX."""
    cfg = alexnet_config("imagenet")
    shapes = gemm_shapes(cfg, batch=2)
    macs = sum(m * k * n * count for _, m, k, n, count in shapes)
    conv1 = next(layer for layer in layers(cfg) if layer.row.name == "conv1")
    assert macs == 2 * (3 * sum(layer.macs for layer in layers(cfg)) - conv1.macs)
    assert ("conv2 fwd", 128, 48 * 25, 2 * 27 * 27, 2) in shapes


@pytest.mark.parametrize("devices", [None, (0, 1)])
def test_checkpoint_written_before_the_redesign_still_loads(devices):
    """Weights, momentum and dropout state of a checkpoint from commit 7edd5cc: the logits it
    recorded come back exactly (float32, the same operations in the same order may differ in
    rounding only, hence 1e-5)."""
    arrays, meta = load_checkpoint(OLD_CHECKPOINT)
    model = AlexNet.from_config(meta["model_config"], devices=devices).eval()
    model.load_state_dict({k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")})
    model.load_dropout_state(meta["dropout"])
    logits = model.forward(arrays["check/input"])
    np.testing.assert_allclose(logits, arrays["check/logits"], rtol=1e-5, atol=1e-6)
    assert np.ptp(arrays["check/logits"], axis=0).max() > 0.1  # the logits depend on the input
    opt = SGD(list(model.named_parameters()), lr=meta["lr"])
    if devices is None:  # the momentum names are the single-device parameter names
        opt.load_state_dict({k[len("momentum/"):]: v for k, v in arrays.items() if k.startswith("momentum/")})
        assert any(np.abs(v).max() > 0 for v in opt.velocities)


def test_checkpoint_from_before_new_config_fields_resumes():
    """A checkpoint's model_config written before a field was added (lrn_per_column, ...) still
    describes the same network: resuming it is not refused as 'another network'."""
    from minialex.weights.compat import check_resumable

    arrays, meta = load_checkpoint(OLD_CHECKPOINT)
    assert "lrn_per_column" not in meta["model_config"]  # written before the field existed
    model = AlexNet.from_config(meta["model_config"])
    check_resumable(model, meta["classes"], arrays, meta, OLD_CHECKPOINT)  # does not raise
