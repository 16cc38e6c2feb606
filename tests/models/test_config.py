"""Tests for minialex/models/config.py: presets, derived sizes and parameter counts, validation.
The configurations are explained in docs/alexnet.md, "Configurations"."""

import json

import pytest

from minialex.models import PRESETS, AlexNetConfig, alexnet_config
from minialex.models.config import scale_channels


@pytest.mark.parametrize("name, sizes", [
    ("imagenet", (55, 27, 13, 6)),
    ("paper", (55, 27, 13, 6)),
    ("cifar10", (32, 15, 7, 3)),
    ("synthetic", (28, 13, 6, 2)),
    ("tiny", (24, 11, 5, 2)),
])
def test_preset_spatial_sizes(name, sizes):
    assert alexnet_config(name).spatial_sizes() == sizes


def test_paper_counts():
    cfg = alexnet_config("imagenet")
    assert cfg.fc6_inputs == 9216
    assert cfg.num_parameters() == 60_965_224
    per_layer = {row["name"]: row["params"] for row in cfg.layer_table()}
    assert per_layer == {"conv1": 34_944, "conv2": 307_456, "conv3": 885_120, "conv4": 663_936,
                         "conv5": 442_624, "fc6": 37_752_832, "fc7": 16_781_312, "fc8": 4_097_000}
    # forward multiply-adds of the grouped net, counted by hand for conv1 and fc6
    macs = {row["name"]: row["macs"] for row in cfg.layer_table()}
    assert macs["conv1"] == 55 * 55 * 96 * 11 * 11 * 3
    assert macs["fc6"] == 9216 * 4096


def test_every_preset_keeps_the_columns():
    for name, cfg in PRESETS.items():
        assert all(c % 2 == 0 for c in cfg.channels), name
        assert cfg.fc_width % 2 == 0, name


def test_width_rounds_to_multiples_of_four():
    assert scale_channels((96, 256, 384, 384, 256), 0.25) == (24, 64, 96, 96, 64)
    assert all(c % 4 == 0 for c in scale_channels((96, 256, 384, 384, 256), 0.1))
    cfg = alexnet_config("imagenet", width=0.5, num_classes=10)
    assert cfg.channels == (48, 128, 192, 192, 128) and cfg.fc_width == 2048 and cfg.num_classes == 10


def test_dict_round_trip_through_json():
    cfg = alexnet_config("synthetic")
    d = json.loads(json.dumps(cfg.to_dict()))
    assert AlexNetConfig.from_dict(d) == cfg


@pytest.mark.parametrize("fields, words", [
    (dict(channels=(96, 256, 383, 384, 256)), "conv3 has 383 channels"),
    (dict(fc_width=4095), "fc_width"),
    (dict(input_size=32), "too small"),
    (dict(dropout=1.0), "dropout"),
    (dict(lrn_size=4), "lrn_size"),
])
def test_bad_configs_are_refused(fields, words):
    with pytest.raises(ValueError, match=words):
        alexnet_config("imagenet", **fields)


def test_unknown_names():
    with pytest.raises(ValueError, match="preset"):
        alexnet_config("resnet")
    with pytest.raises(TypeError, match="unknown AlexNet option"):
        alexnet_config("imagenet", kernel=3)
    with pytest.raises(ValueError, match="unknown field"):
        AlexNetConfig.from_dict({"num_classes": 10, "depth": 8})
