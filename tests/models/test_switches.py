"""The paper's ablations as AlexNetConfig switches (activation, lrn, pool_size/pool_stride,
dropout): each builds the network it names, leaves the paper's net the default, survives the
config's round trips, and the switched networks' gradients are right (float64, centred
differences). docs/alexnet.md, "Switches"."""

import numpy as np
import pytest

from minialex.gradcheck import rel_error
from minialex.models import AlexNet, AlexNetConfig, PRESETS, alexnet_config, architecture
from minialex.nn import LocalResponseNorm, MaxPool2d, ReLU, Sigmoid, Tanh

PAPER_PARAMS = 60_965_224


def activation_class(name):
    return {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}[name]


def children(model):
    return dict(model.named_children())


def test_defaults_are_the_papers_network():
    cfg = AlexNetConfig()
    assert (cfg.activation, cfg.lrn, cfg.pool_size, cfg.pool_stride, cfg.dropout) == ("relu", True, 3, 2, 0.5)
    assert cfg.num_parameters() == PAPER_PARAMS and cfg.spatial_sizes() == (55, 27, 13, 6)
    for preset in PRESETS.values():  # no preset's dict names a switch at the paper's value
        assert not {"activation", "lrn", "pool_size", "pool_stride"} & set(preset.to_dict())


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
def test_activation_replaces_every_relu(act):
    cls = activation_class(act)
    model = AlexNet(preset="tiny", activation=act)
    kids = children(model)
    names = [f"{act}{i}" for i in range(1, 8)]
    assert all(type(kids[n]) is cls for n in names)
    assert not any(isinstance(m, ReLU) for m in kids.values()) or act == "relu"
    assert architecture.forward_order(model.cfg) == tuple(n.replace("relu", act) if n.startswith("relu") else n
                                                         for n in architecture.forward_order(PRESETS["tiny"]))
    assert alexnet_config("imagenet", activation=act).num_parameters() == PAPER_PARAMS
    x = np.random.default_rng(0).standard_normal((2, 3, 24, 24)).astype(np.float32)
    assert model.eval().features(x).shape == (2, 8)  # the default layer is fc7's activation, whatever it is
    with pytest.raises(ValueError, match=f"{act}7" if act != "relu" else "no layer"):
        model.features(x, "relu7" if act != "relu" else "tanh7")


def test_activations_compute_their_functions():
    x = np.random.default_rng(1).standard_normal((2, 3, 24, 24))
    outs = {}
    for act in ("relu", "tanh", "sigmoid"):
        m = AlexNet(preset="tiny", activation=act, dtype=np.float64, seed=3).eval()
        outs[act] = m.features(x, f"{act}1")
        pre = m.features(x, "conv1")
        want = {"relu": np.maximum(pre, 0), "tanh": np.tanh(pre), "sigmoid": 1 / (1 + np.exp(-pre))}[act]
        np.testing.assert_allclose(outs[act], want, rtol=1e-12, atol=1e-15)
    assert not np.allclose(outs["tanh"], outs["sigmoid"])


def test_lrn_off_removes_both_lrn_layers_and_no_parameter():
    on, off = AlexNet(preset="tiny"), AlexNet(preset="tiny", lrn=False)
    assert sum(isinstance(m, LocalResponseNorm) for m in children(on).values()) == 2
    assert not any(isinstance(m, LocalResponseNorm) for m in children(off).values())
    assert "lrn1" not in children(off) and "lrn2" not in children(off)
    assert [n for n in children(on) if not n.startswith("lrn")] == list(children(off))
    assert alexnet_config("imagenet", lrn=False).num_parameters() == PAPER_PARAMS
    # the same weights, another function: LRN really is gone
    x = np.random.default_rng(0).standard_normal((2, 3, 24, 24))
    a = AlexNet(preset="tiny", dtype=np.float64, lrn_alpha=0.5).eval()
    b = AlexNet(preset="tiny", dtype=np.float64, lrn_alpha=0.5, lrn=False).eval()
    np.testing.assert_array_equal(a.features(x, "relu1"), b.features(x, "relu1"))
    np.testing.assert_array_equal(b.features(x, "pool1"), a.pool1.forward(a.features(x, "relu1")))
    assert not np.allclose(a.features(x, "pool1"), b.features(x, "pool1"))


def test_pool_2_2_builds_non_overlapping_pools_and_resizes():
    model = AlexNet(preset="tiny", pool_size=2, pool_stride=2)
    pools = [m for n, m in model.named_children() if n.startswith("pool")]
    assert len(pools) == 3 and all(isinstance(p, MaxPool2d) and p.kernel_size == (2, 2) and p.stride == (2, 2)
                                   for p in pools)
    assert model.cfg.spatial_sizes() == (24, 12, 6, 3)  # 3/2 gives (24, 11, 5, 2)
    assert model.fc6.weight.shape == (8, 8 * 3 * 3)
    x = np.zeros((2, 3, 24, 24), np.float32)
    assert model.eval().features(x, "pool5").shape == (2, 8, 3, 3)
    assert model.forward(x).shape == (2, 4)
    # the paper's 224 net: 55-27-13-6 with 2/2 as with 3/2 (the paper compares equal output sizes)
    paper = alexnet_config("imagenet", pool_size=2, pool_stride=2)
    assert paper.spatial_sizes() == (55, 27, 13, 6) and paper.num_parameters() == PAPER_PARAMS
    assert alexnet_config("synthetic", pool_size=2, pool_stride=2).spatial_sizes() == (28, 14, 7, 3)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_2_2_pooling_fits_every_preset(preset):
    alexnet_config(preset, pool_size=2, pool_stride=2)  # no ValueError


def test_size_check_uses_the_pool_window():
    # conv5 of tiny at 8x8 input is 1x1 after the earlier pools; a 3x3 window does not fit, no pool does
    with pytest.raises(ValueError, match="4x4/4 max-pools"):
        alexnet_config("tiny", pool_size=4, pool_stride=4)


@pytest.mark.parametrize("fields, words", [
    (dict(activation="gelu"), "activation must be one of relu, tanh, sigmoid"),
    (dict(pool_size=2, pool_stride=3), "1 <= pool_stride <= pool_size"),
    (dict(pool_size=0, pool_stride=0), "1 <= pool_stride <= pool_size"),
    (dict(lrn="no"), "lrn must be True or False"),
    (dict(dropout=1.0), r"dropout must lie in \[0, 1\)"),
])
def test_bad_switches_are_refused(fields, words):
    with pytest.raises(ValueError, match=words):
        alexnet_config("tiny", **fields)


def test_dropout_zero_is_the_identity_in_training():
    m = AlexNet(preset="tiny", dropout=0.0, dtype=np.float64).train()
    x = np.random.default_rng(0).standard_normal((3, 3, 24, 24))
    a = m.forward(x)
    m.eval()
    np.testing.assert_array_equal(a, m.forward(x))
    half = AlexNet(preset="tiny", dropout=0.5, dtype=np.float64).train()
    assert not np.array_equal(half.forward(x), half.eval().forward(x))  # the check can fail


def test_config_round_trips_and_old_configs_read_as_the_paper():
    cfg = alexnet_config("tiny", activation="tanh", lrn=False, pool_size=2, pool_stride=2, dropout=0.0)
    d = cfg.to_dict()
    assert d["activation"] == "tanh" and d["lrn"] is False and d["pool_size"] == 2 and "pool_stride" not in d
    assert AlexNetConfig.from_dict(d) == cfg
    assert AlexNet.from_config(d).cfg == cfg
    old = PRESETS["tiny"].to_dict()  # what a checkpoint of before the switches holds
    assert AlexNetConfig.from_dict(old) == PRESETS["tiny"]


def test_two_columns_compute_the_switched_network():
    kw = dict(preset="tiny", dtype=np.float64, seed=2, activation="tanh", lrn=False, pool_size=2, pool_stride=2)
    one, two = AlexNet(**kw).eval(), AlexNet(devices=(0, 1), **kw).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 24, 24))
    np.testing.assert_allclose(two.forward(x), one.forward(x), rtol=1e-10, atol=1e-13)


# Sigmoid is left to its layer's own check (tests/ops): through eight layers of it the gradients
# vanish (1e-8 at conv1 here, the paper's very point), below what centred differences of an O(1)
# loss resolve, so a whole-network check of it measures round-off, not the backward pass.
@pytest.mark.parametrize("fields", [
    dict(activation="tanh", lrn=False, pool_size=2, pool_stride=2),
    dict(activation="relu", lrn=False, pool_size=2, pool_stride=2, dropout=0.0),
], ids=["tanh-nolrn-2x2", "relu-nolrn-2x2-nodropout"])
def test_switched_network_gradients(fields):
    model = AlexNet(preset="tiny", dtype=np.float64, seed=1, init_std=0.2, lrn_alpha=0.5, input_grad=True,
                    **fields).train()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 3, 24, 24))
    drops = [m for n, m in model.named_children() if n.startswith("drop")]
    start = [d.calls for d in drops]

    def logits():
        for d, c in zip(drops, start):
            d.calls = c  # the same masks every time
        return model.forward(x)

    upstream = rng.standard_normal(logits().shape)
    logits()
    model.zero_grad()
    analytic = {"x": model.backward(upstream.copy()).copy()}
    analytic.update({n: np.array(p.grad) for n, p in model.named_parameters()})
    h, errors = 3e-5, {}  # as tests/models/test_gradcheck.py: round-off and kinks both small
    for name, arr in [("x", x)] + [(n, p.data) for n, p in model.named_parameters()]:
        flat = arr.reshape(-1)
        idx = rng.choice(flat.size, min(flat.size, 8), replace=False)
        numeric = []
        for i in idx:
            old = flat[i]
            flat[i] = old + h
            plus = float((logits() * upstream).sum())
            flat[i] = old - h
            minus = float((logits() * upstream).sum())
            flat[i] = old
            numeric.append((plus - minus) / (2 * h))
        errors[name] = rel_error(analytic[name].reshape(-1)[idx], np.array(numeric))
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, (worst, errors)
