"""minialex/interop/onnx_graph.py: the exported inference graph passes the ONNX checker, and
onnxruntime's logits on it equal minialex's to 1e-4 relative, for the paper's network and small
presets; the per-column LRN is Split, LRN, LRN, Concat with alpha times the size; the graph reads
back into the same weights and config; graphs of other networks are refused in one line.
Skipped, with the reason, without onnx or onnxruntime."""

import numpy as np
import pytest

from minialex.models import AlexNet

from .conftest import image_batch, need, relative_error


def session(model):
    ort = need("onnxruntime")
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def graph_of(model):
    need("onnx")
    from minialex.interop.onnx_graph import build_graph
    return build_graph(model.cfg, model.state_dict())


def test_the_papers_network(paper_net):
    onnx = need("onnx")
    g = graph_of(paper_net)
    onnx.checker.check_model(g, full_check=True)
    assert g.opset_import[0].version >= 17
    x = image_batch(paper_net.cfg, n=2)
    (logits,) = session(g).run(None, {"input": x})
    assert logits.shape == (2, 1000)
    assert relative_error(logits, paper_net.forward(x)) < 1e-4


@pytest.mark.parametrize("preset, fields", [("synthetic", {}), ("tiny", {}), ("caffe", dict(width=0.125)),
                                            ("synthetic", dict(lrn_alpha=0.05))])
def test_small_presets(preset, fields):
    model = AlexNet(preset=preset, seed=2, **fields).eval()
    x = image_batch(model.cfg, n=3)
    (logits,) = session(graph_of(model)).run(None, {"input": x})
    assert relative_error(logits, model.forward(x)) < 1e-4


def test_the_per_column_lrn_is_split_in_two_with_alpha_times_the_size():
    g = graph_of(AlexNet(preset="tiny"))
    ops = [n.op_type for n in g.graph.node]
    assert ops[:7] == ["Conv", "Relu", "Split", "LRN", "LRN", "Concat", "MaxPool"]
    assert "Dropout" not in ops  # the evaluation-mode graph
    lrn = next(n for n in g.graph.node if n.op_type == "LRN")
    attrs = {a.name: a for a in lrn.attribute}
    assert abs(attrs["alpha"].f - 5e-4) < 1e-9 and attrs["bias"].f == 2.0 and attrs["size"].i == 5
    names = [t.name for t in g.graph.initializer if not t.name.endswith(".split")]
    assert names == list(AlexNet(preset="tiny").state_dict())
    # the caffe preset: one LRN over all channels, alpha as Caffe writes it
    caffe = graph_of(AlexNet(preset="caffe", width=0.125))
    assert [n.op_type for n in caffe.graph.node][:4] == ["Conv", "Relu", "LRN", "MaxPool"]
    alpha = next(a.f for a in next(n for n in caffe.graph.node if n.op_type == "LRN").attribute if a.name == "alpha")
    assert abs(alpha - 1e-4) < 1e-10


def test_an_export_reads_back_into_the_same_network(tiny_run, tmp_path):
    need("onnx")
    from minialex.interop import export_checkpoint, read_weights
    from minialex.weights.checkpoint import find_checkpoint, load_checkpoint
    out = tmp_path / "tiny.onnx"
    export_checkpoint(tiny_run, out)
    arrays, meta = read_weights(out)
    source, source_meta = load_checkpoint(find_checkpoint(tiny_run, prefer="best"))
    assert meta["model_config"] == source_meta["model_config"] and meta["classes"] == source_meta["classes"]
    for name, value in source.items():
        if name.startswith("model/"):
            np.testing.assert_array_equal(arrays[name], value, err_msg=name)  # not even a transpose lost
    np.testing.assert_allclose(arrays["stats/mean_rgb"], source["stats/mean_rgb"])
    assert meta["notes"] == []  # a minialex export: RGB, nothing converted


def test_other_graphs_are_refused_in_one_line(tmp_path):
    onnx = need("onnx")
    from minialex.interop.onnx_graph import build_graph, read_onnx
    from minialex.weights.checkpoint import CheckpointError
    model = AlexNet(preset="tiny")
    g = build_graph(model.cfg, model.state_dict())
    # drop lrn2 (its Split, two LRNs and Concat) and rewire the pool to read conv2's ReLU
    nodes = list(g.graph.node)
    start = next(i for i, n in enumerate(nodes) if n.name == "lrn2/split")
    pool = nodes[start + 4]
    pool.input[0] = "relu2"
    del g.graph.node[start:start + 4]
    onnx.save(g, tmp_path / "no-lrn2.onnx")
    with pytest.raises(CheckpointError) as info:
        read_onnx(tmp_path / "no-lrn2.onnx")
    message = str(info.value)
    assert "\n" not in message and "MaxPool where AlexNet has LRN (lrn2)" in message
