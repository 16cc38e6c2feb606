"""Exports of switched networks (docs/alexnet.md, "Switches"): a run trained with --activation
tanh --no-lrn --pool 2/2 exports to .safetensors and ONNX, onnxruntime and the PyTorch module
compute minialex's logits, both files read back as the same network (switches included), and
--weights of them builds it; a graph whose metadata and layers disagree on a switch, and a
PyTorch module built with other switches, are refused in one line. Skipped without the packages."""

import numpy as np
import pytest

from minialex.interop import export_checkpoint, read_weights
from minialex.models import AlexNet, AlexNetConfig
from minialex.train import cli, load_checkpoint

from .conftest import image_batch, need, need_torch, relative_error

SWITCHED = ["--activation", "tanh", "--no-lrn", "--pool", "2/2"]


@pytest.fixture(scope="module")
def switched_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "switched"
    code = cli.main(["--data", tiny_data, "--output-dir", str(out), "--model", "tiny", "--resize-size", "28",
                     "--crop-size", "24", "-b", "16", "-j", "2", "--no-progress", "--stats-images", "60",
                     "--epochs", "1", *SWITCHED])
    assert code == 0
    return out


def trained(run):
    arrays, meta = load_checkpoint(run / "checkpoint.npz")
    model = AlexNet.from_config(meta["model_config"])
    model.load_state_dict({k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")})
    return model.eval(), meta


@pytest.mark.parametrize("fields", [dict(activation="tanh"), dict(activation="sigmoid"), dict(lrn=False),
                                    dict(pool_size=2, pool_stride=2),
                                    dict(activation="tanh", lrn=False, pool_size=2, pool_stride=2)])
def test_onnx_graph_of_a_switched_network_runs_and_reads_back(fields, tmp_path):
    onnx = need("onnx")
    ort = need("onnxruntime")
    from minialex.interop.onnx_graph import build_graph, read_onnx
    model = AlexNet(preset="synthetic", seed=3, **fields).eval()
    g = build_graph(model.cfg, model.state_dict(), {"format": "x"})
    ops = [n.op_type for n in g.graph.node]
    act = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}[model.cfg.activation]
    assert ops.count(act) == 7 and ("LRN" in ops) == model.cfg.lrn
    pool = next(n for n in g.graph.node if n.op_type == "MaxPool")
    attrs = {a.name: list(a.ints) for a in pool.attribute}
    assert attrs["kernel_shape"] == [model.cfg.pool_size] * 2 and attrs["strides"] == [model.cfg.pool_stride] * 2
    x = image_batch(model.cfg, n=2) / 40  # tanh and sigmoid saturate on pixel-sized inputs
    sess = ort.InferenceSession(g.SerializeToString(), providers=["CPUExecutionProvider"])
    (logits,) = sess.run(None, {"input": x})
    assert relative_error(logits, model.forward(x)) < 1e-4
    # a graph from elsewhere (no minialex metadata) shows its switches in its layers
    del g.metadata_props[:]
    onnx.save(g, tmp_path / "g.onnx")
    arrays, meta = read_onnx(tmp_path / "g.onnx", foreign_channel_order="RGB")
    cfg = AlexNetConfig.from_dict(meta["model_config"])
    for k, v in fields.items():
        assert getattr(cfg, k) == v
    np.testing.assert_array_equal(arrays["model/fc6.weight"], model.state_dict()["fc6.weight"])


def test_a_switched_run_exports_and_comes_back(switched_run, tmp_path):
    need("safetensors")
    need("onnx")
    model, meta = trained(switched_run)
    assert (model.cfg.activation, model.cfg.lrn, model.cfg.pool_size) == ("tanh", False, 2)
    for suffix in (".safetensors", ".onnx"):
        out = tmp_path / f"net{suffix}"
        export_checkpoint(switched_run / "checkpoint.npz", out)
        arrays, back = read_weights(out)
        assert AlexNetConfig.from_dict(back["model_config"]) == model.cfg, suffix
        for name, value in model.state_dict().items():
            np.testing.assert_array_equal(arrays[f"model/{name}"], value)


def test_weights_of_a_switched_export_build_the_switched_network(switched_run, tiny_data, tmp_path):
    need("safetensors")
    out = tmp_path / "net.safetensors"
    export_checkpoint(switched_run / "checkpoint.npz", out)
    run = tmp_path / "again"
    assert cli.main(["--data", tiny_data, "--output-dir", str(run), "--resize-size", "28", "--crop-size", "24",
                     "-b", "16", "-j", "2", "--no-progress", "--stats-images", "60", "--epochs", "1",
                     "--weights", str(out)]) == 0
    _, meta = load_checkpoint(run / "checkpoint.npz")
    cfg = AlexNetConfig.from_dict(meta["model_config"])
    assert (cfg.activation, cfg.lrn, cfg.pool_size, cfg.pool_stride) == ("tanh", False, 2, 2)
    assert (meta["args"]["activation"], meta["args"]["lrn"], meta["args"]["pool"]) == ("tanh", False, "2/2")


def test_metadata_and_graph_that_disagree_on_a_switch_are_refused(switched_run, tmp_path, capsys):
    onnx = need("onnx")
    from minialex.weights.checkpoint import CheckpointError
    out = tmp_path / "net.onnx"
    export_checkpoint(switched_run / "checkpoint.npz", out)
    g = onnx.load(out)
    for n in g.graph.node:  # the layers say sigmoid, the metadata still tanh
        if n.op_type == "Tanh":
            n.op_type = "Sigmoid"
    onnx.save(g, tmp_path / "lying.onnx")
    with pytest.raises(CheckpointError) as info:
        read_weights(tmp_path / "lying.onnx")
    message = str(info.value)
    assert "\n" not in message and "differ in the switches" in message and "activation tanh vs sigmoid" in message
    code = cli.main(["--weights", str(tmp_path / "lying.onnx"), "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "activation tanh vs sigmoid" in err[0], err


def test_pytorch_module_builds_the_switches(switched_run, tmp_path):
    torch = need_torch()
    need("safetensors")
    from minialex.interop.torch import build_module, from_minialex, load_safetensors, to_minialex
    model, _ = trained(switched_run)
    module = from_minialex(model)
    kids = dict(module.named_children())
    assert isinstance(kids["tanh1"], torch.nn.Tanh) and "lrn1" not in kids
    assert kids["pool1"].kernel_size == 2 and kids["pool1"].stride == 2
    x = image_batch(model.cfg, n=2) / 40
    with torch.no_grad():
        theirs = module(torch.from_numpy(x)).numpy()
        assert relative_error(module.features(torch.from_numpy(x)).numpy(), model.features(x)) < 1e-5
    assert relative_error(theirs, model.forward(x)) < 1e-5
    out = tmp_path / "net.safetensors"
    export_checkpoint(switched_run / "checkpoint.npz", out)
    loaded, meta = load_safetensors(out)
    with torch.no_grad():
        assert relative_error(loaded(torch.from_numpy(x)).numpy(), theirs) < 1e-6
    assert meta["model_config"]["activation"] == "tanh"
    # back to minialex: a module says its switches, and they must be the config's
    back = to_minialex(module, model.cfg)
    np.testing.assert_allclose(back.forward(x), model.forward(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError) as info:
        to_minialex(module, dict(model.cfg.to_dict(), activation="relu"))
    assert "\n" not in str(info.value) and "activation tanh vs relu" in str(info.value)
    plain = build_module("tiny")
    assert isinstance(dict(plain.named_children())["relu1"], torch.nn.ReLU)
