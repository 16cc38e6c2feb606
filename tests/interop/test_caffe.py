"""The caffe preset and --weights FILE.onnx of Caffe's bvlc_alexnet: the preset computes Caffe's
function (LRN over all channels, k=1, alpha divided by the size, 227 input, conv1 unpadded), a
graph in the ONNX model zoo's layout (tests/interop/zoo.py, written here since the real file
cannot be downloaded) imports into it and matches onnxruntime on the same image in BGR, and
graphs of other networks are refused in one line, exit code 2."""

import importlib.util
import os

import numpy as np
import pytest

from minialex.models import PRESETS, AlexNet, alexnet_config
from minialex.nn import LocalResponseNorm

from .conftest import need, relative_error
from .zoo import caffe_zoo_graph, weights, with_input_side, with_output

from minialex.train import cli, predict

from ..train.conftest import ROOT

SMALL = dict(channels=(8, 16, 16, 16, 16), fc=16, classes=7)


def one_line(capsys, code, *words):
    """A command's failure, run in this process: exit code 2 and one 'error:' line holding ``words``."""
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and "Traceback" not in err[0], err
    for w in words:
        assert w in err[0], (w, err[0])


def caffe_lrn(a, size=5, alpha=1e-4, beta=0.75, k=1.0):
    """Caffe's LRN written from its documentation, one channel at a time: each value divided by
    (k + alpha / size * sum of squares over the size channels centred on it) ** beta."""
    n, c, h, w = a.shape
    out = np.empty_like(a)
    for i in range(c):
        lo, hi = max(0, i - size // 2), min(c, i + size // 2 + 1)
        out[:, i] = a[:, i] / (k + alpha / size * (a[:, lo:hi] ** 2).sum(axis=1)) ** beta
    return out


def test_the_preset_is_bvlc_alexnet():
    cfg = alexnet_config("caffe")
    assert cfg.spatial_sizes() == (55, 27, 13, 6) and cfg.input_size == 227 and cfg.conv1_padding == 0
    assert cfg.num_parameters() == 60_965_224  # the same weights as the paper's network
    assert (cfg.lrn_k, cfg.lrn_alpha, cfg.lrn_alpha_on_sum, cfg.lrn_alpha_per_size) == (1.0, 1e-4, 2e-5, 1e-4)
    net = AlexNet(preset="caffe", width=0.125, fc_width=8)
    assert (net.lrn1.groups, net.lrn1.alpha, net.lrn1.k) == (1, 2e-5, 1.0)
    x = np.random.default_rng(0).standard_normal((2, 12, 5, 5)) * 60  # big enough for the sum to matter
    np.testing.assert_allclose(net.lrn1.forward(x), caffe_lrn(x), rtol=1e-12)
    assert relative_error(LocalResponseNorm(5, 2e-5, 0.75, 1.0, groups=2).forward(x), caffe_lrn(x)) > 1e-6


def test_existing_presets_keep_their_config_dicts():
    """The new LRN switches stay out of the paper's presets' dicts (and so of their checkpoints)."""
    for name in ("imagenet", "cifar10", "synthetic", "tiny"):
        d = PRESETS[name].to_dict()
        assert "lrn_per_column" not in d and "lrn_alpha_over_size" not in d
    d = PRESETS["caffe"].to_dict()
    assert d["lrn_per_column"] is False and d["lrn_alpha_over_size"] is True
    assert type(PRESETS["caffe"]).from_dict(d) == PRESETS["caffe"]


def test_two_columns_are_refused_in_one_line(tiny_data, tmp_path, capsys):
    with pytest.raises(ValueError, match="devices=None") as info:
        AlexNet(preset="caffe", devices=(0, 1))
    assert "\n" not in str(info.value)
    code = cli.main(["--model", "caffe", "--devices", "0,1", "--data", tiny_data, "--output-dir", str(tmp_path / "o")])
    one_line(capsys, code, "--devices 0,1", "one device")
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def zoo_file(tmp_path_factory):
    onnx = need("onnx")
    path = tmp_path_factory.mktemp("zoo") / "bvlcalexnet-small.onnx"
    params = weights(**SMALL)
    onnx.save(caffe_zoo_graph(params), path)
    return path, params


def test_a_zoo_graph_imports_into_the_caffe_preset_and_matches_onnxruntime(zoo_file):
    ort = need("onnxruntime")
    from minialex.interop import read_weights
    from minialex.weights.checkpoint import split_state
    path, params = zoo_file
    arrays, meta = read_weights(path)
    cfg = meta["model_config"]
    assert {k: v for k, v in cfg.items() if k not in ("channels", "fc_width", "num_classes")} == \
        {k: v for k, v in PRESETS["caffe"].to_dict().items() if k not in ("channels", "fc_width", "num_classes")}
    assert meta["preprocess"] == {"resize": 256, "crop": 227, "mean": "channel"}
    np.testing.assert_allclose(arrays["stats/mean_rgb"], [122.68, 116.67, 104.01], atol=0.01)  # Caffe's, as RGB
    assert any("224x224" in n and "227x227" in n for n in meta["notes"])
    np.testing.assert_array_equal(arrays["model/fc6.weight"], params["fc6"][0])
    np.testing.assert_array_equal(arrays["model/conv1.weight"], params["conv1"][0][:, ::-1])  # BGR -> RGB
    net = AlexNet.from_config(cfg, dtype=np.float32).load_state_dict(split_state(arrays)[0]).eval()
    if importlib.util.find_spec("safetensors") is not None:  # converted for PyTorch: RGB, no made-up classes
        from minialex.interop import export_checkpoint
        out = path.parent / "caffe.safetensors"
        export_checkpoint(path, out)
        again, again_meta = read_weights(out)
        assert again_meta["classes"] is None and again_meta["model_config"] == cfg
        np.testing.assert_array_equal(again["model/conv1.weight"], arrays["model/conv1.weight"])

    # onnxruntime runs the zoo graph at 227 (where Caffe's network is defined) on the BGR image;
    # fc8_1 are its logits, before the Softmax.
    graph = with_output(with_input_side(caffe_zoo_graph(params), 227), "fc8_1")
    sess = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    rgb = (np.random.default_rng(5).standard_normal((1, 3, 227, 227)) * 40).astype(np.float32)
    prob, logits = sess.run(None, {"data_0": np.ascontiguousarray(rgb[:, ::-1])})
    ours = net.forward(rgb)
    assert relative_error(ours, logits) < 1e-4
    assert np.argmax(ours) == np.argmax(prob)


@pytest.mark.parametrize("variant, words", [
    (dict(drop_lrn2=True), ["layer 7 is MaxPool where AlexNet has LRN (lrn2)"]),
    (dict(groups=(1, 1, 1, 2, 2)), ["conv2 has group 1, AlexNet's 2"]),
    (dict(extra_node="Softplus"), ["is a Softplus, a layer AlexNet has not"]),
    # Sigmoid is an activation AlexNet may have (its switch), but one activation for every layer
    (dict(extra_node="Sigmoid"), ["mixes activations (Relu, Sigmoid)"]),
    (dict(pool_pads=(0, 0, 2, 2)), ["the pool after conv1 gives 28 outputs from 55"]),
])
def test_other_structures_are_refused_in_one_line(variant, words, tmp_path, capsys):
    onnx = need("onnx")
    from minialex.interop import read_weights
    from minialex.weights.checkpoint import CheckpointError
    path = tmp_path / "other.onnx"
    onnx.save(caffe_zoo_graph(weights(**SMALL), **variant), path)
    with pytest.raises(CheckpointError) as info:
        read_weights(path)
    assert "\n" not in str(info.value) and all(w in str(info.value) for w in words), str(info.value)
    if "drop_lrn2" in variant:  # and the commands say it in one line, exit code 2
        one_line(capsys, predict.main([os.path.join(ROOT, "README.md"), "--weights", str(path)]), str(path), *words)
        one_line(capsys, cli.main(["--weights", str(path), "--output-dir", str(tmp_path / "o")]), str(path), *words)


def test_fine_tuning_and_predicting_from_the_zoo_graph(zoo_file, tiny_data, tmp_path, capsys):
    """--weights FILE.onnx: train every layer but fc8 on other classes; predict names the classes
    of a file that has none from --synset-words."""
    need("onnx")
    path, params = zoo_file
    out = tmp_path / "tuned"
    code = cli.main(["--data", tiny_data, "--weights", str(path), "--reset-classifier", "--epochs", "1", "-b", "20",
                     "--lr", "1e-9", "--max-images", "20", "--no-progress", "--stats-images", "20",
                     "--output-dir", str(out), "-j", "1"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "227x227 crops of 256x256 images" in printed and "conv1's input channels are reversed" in printed
    from minialex.weights.checkpoint import load_checkpoint
    tuned, meta = load_checkpoint(out / "checkpoint.npz")
    assert meta["model_config"]["num_classes"] == 10 and meta["model_config"]["lrn_per_column"] is False
    np.testing.assert_allclose(tuned["model/conv3.weight"], params["conv3"][0], atol=1e-6)

    code = cli.main(["--data", tiny_data, "--weights", str(path), "--epochs", "1", "--output-dir", str(tmp_path / "x")])
    one_line(capsys, code, "fc8.weight (7, 16) vs (10, 16)", "--reset-classifier")

    words = tmp_path / "synset_words.txt"
    words.write_text("".join(f"n0{i} thing number {i}, other name\n" for i in range(7)))
    image = os.path.join(tiny_data, "val", "s0000001", os.listdir(os.path.join(tiny_data, "val", "s0000001"))[0])
    assert predict.main([image, "--weights", str(path), "--synset-words", str(words), "-k", "3"]) == 0
    printed = capsys.readouterr().out
    assert "thing number" in printed and "(n0" in printed and "note: no minialex metadata" in printed
