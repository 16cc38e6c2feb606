"""minialex/interop/torch.py: the PyTorch module built from the same table computes minialex's
function (1e-5 relative in float32, 1e-10 in float64, evaluation mode) for the paper's network
and small presets, has the same layer and parameter names, and a PyTorch state_dict comes back
into minialex with the same logits. Skipped, with the reason, without torch."""

import importlib
import os

import numpy as np
import pytest

from minialex.models import AlexNet
from minialex.models.architecture import forward_order

from .conftest import image_batch, need, need_torch, relative_error


def torch_logits(module, x):
    torch = need_torch()
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def test_the_papers_network_in_float32(paper_net):
    need_torch()
    from minialex.interop.torch import from_minialex
    x = image_batch(paper_net.cfg, n=2)
    ours = paper_net.forward(x)
    theirs = torch_logits(from_minialex(paper_net), x)
    assert relative_error(theirs, ours) < 1e-5
    assert np.ptp(ours, axis=0).max() > 1e-3  # the logits depend on the image


@pytest.mark.parametrize("preset", ["synthetic", "cifar10", "tiny"])
@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_small_presets(preset, dtype, tol):
    need_torch()
    from minialex.interop.torch import from_minialex
    model = AlexNet(preset=preset, dtype=dtype, seed=3).eval()
    x = image_batch(model.cfg, n=3, dtype=dtype)
    assert relative_error(torch_logits(from_minialex(model), x), model.forward(x)) < tol


def test_caffe_lrn_over_all_channels_and_two_columns_alike():
    """The caffe preset's LRN spans both columns; two-column minialex exports the same module."""
    need_torch()
    from minialex.interop.torch import build_module, from_minialex
    caffe = AlexNet(preset="caffe", width=0.125, fc_width=16, num_classes=5, dtype=np.float64).eval()
    x = image_batch(caffe.cfg, n=1, dtype=np.float64)
    assert relative_error(torch_logits(from_minialex(caffe), x), caffe.forward(x)) < 1e-10
    assert type(build_module("caffe", width=0.125).lrn1).__name__ == "ColumnLRN"
    assert build_module("caffe", width=0.125).lrn1.groups == 1 and build_module("tiny").lrn1.groups == 2
    two = AlexNet(preset="synthetic", devices=(0, 1), dtype=np.float64).eval()
    x = image_batch(two.cfg, n=2, dtype=np.float64)
    assert relative_error(torch_logits(from_minialex(two), x), two.forward(x)) < 1e-10


def test_the_per_column_lrn_matters():
    """A module with one LRN over all channels would compute another function: the test above
    can tell them apart."""
    torch = need_torch()
    from minialex.interop.torch import from_minialex
    model = AlexNet(preset="synthetic", dtype=np.float64, lrn_alpha=0.05).eval()
    module = from_minialex(model)
    x = image_batch(model.cfg, n=2, dtype=np.float64)
    right = torch_logits(module, x)
    module.lrn1 = torch.nn.LocalResponseNorm(5, alpha=5 * 0.05, beta=0.75, k=2.0)  # all 24 channels at once
    assert relative_error(torch_logits(module, x), right) > 1e-6


def test_names_and_order_are_minialexs():
    need_torch()
    from minialex.interop.torch import build_module
    model = AlexNet(preset="synthetic")
    module = build_module(model.config)
    assert tuple(name for name, _ in module.named_children()) == forward_order(model.cfg)
    assert [(n, tuple(p.shape)) for n, p in module.named_parameters()] == \
        [(n, tuple(a.shape)) for n, a in model.state_dict().items()]


def test_a_pytorch_state_dict_comes_back(tmp_path):
    """Weights PyTorch drew itself (its default initialisation), through torch.save's plain
    state_dict, load into minialex and give PyTorch's logits."""
    torch = need_torch()
    from minialex.interop.torch import build_module, to_minialex
    torch.manual_seed(0)
    module = build_module("synthetic", dtype=torch.float64)
    torch.save(module.state_dict(), tmp_path / "sd.pt")
    state = torch.load(tmp_path / "sd.pt", weights_only=True)
    for devices in (None, (0, 1)):
        back = to_minialex(state, "synthetic", dtype=np.float64, devices=devices)
        x = image_batch(back.cfg, n=2, dtype=np.float64)
        assert relative_error(back.forward(x), torch_logits(module, x)) < 1e-10


def test_features_stop_where_minialex_stops():
    need_torch()
    from minialex.interop.torch import from_minialex
    model = AlexNet(preset="tiny", dtype=np.float64).eval()
    module = from_minialex(model)
    x = image_batch(model.cfg, n=2, dtype=np.float64)
    torch = need_torch()
    with torch.no_grad():
        theirs = module.features(torch.from_numpy(x), "relu7").numpy()
    assert relative_error(theirs, model.features(x, "relu7")) < 1e-10


def test_an_exported_safetensors_file_loads_into_pytorch(tiny_run, tmp_path):
    need("safetensors")
    need_torch()
    from minialex.interop import export_checkpoint
    from minialex.interop.torch import load_safetensors
    from minialex.train.predict import Predictor
    out = tmp_path / "tiny.safetensors"
    export_checkpoint(tiny_run, out)
    module, meta = load_safetensors(out)
    assert not module.training and meta["classes"] == Predictor(tiny_run).classes
    model = Predictor(tiny_run).model
    x = image_batch(model.cfg, n=2)
    assert relative_error(torch_logits(module, x), model.forward(x)) < 1e-5
    # the five lines of docs/interop.md, with torchvision-free PyTorch only
    from safetensors.torch import load_file
    from minialex.interop.torch import build_module
    import json
    from safetensors import safe_open
    with safe_open(out, "pt") as f:
        config = json.loads(f.metadata()["model_config"])
    again = build_module(config)
    again.load_state_dict(load_file(out))
    assert relative_error(torch_logits(again, x), model.forward(x)) < 1e-5


def test_load_safetensors_gives_the_channel_means(tiny_run, tmp_path):
    """docs/interop.md: ``meta`` holds the preprocessing, the three channel means included: the
    checkpoint's stats/mean_rgb, as the export's metadata carries them, so a PyTorch user can
    subtract them from an image without reading the metadata again."""
    need("safetensors")
    need_torch()
    import json
    from safetensors import safe_open
    from minialex.interop import export_checkpoint
    from minialex.interop.torch import load_safetensors
    from minialex.weights.checkpoint import find_checkpoint, load_checkpoint
    out = tmp_path / "tiny.safetensors"
    source, _ = export_checkpoint(tiny_run, out)
    _, meta = load_safetensors(out)
    pre = meta["preprocess"]
    assert "mean_rgb" in pre, f"load_safetensors' preprocessing lacks the channel means: {pre}"
    mean_rgb = pre["mean_rgb"]
    assert isinstance(mean_rgb, list) and len(mean_rgb) == 3 and all(type(v) is float for v in mean_rgb)
    # the checkpoint's means (float32), exactly: float32 -> JSON -> float32 loses nothing
    arrays, _ = load_checkpoint(find_checkpoint(tiny_run, prefer="best"))
    assert source == find_checkpoint(tiny_run, prefer="best")
    assert mean_rgb == [float(v) for v in np.asarray(arrays["stats/mean_rgb"], np.float32)]
    assert all(0 < v < 255 for v in mean_rgb)  # real means of JPEG pixels, not zeros
    with safe_open(out, "np") as f:
        written = json.loads(f.metadata()["preprocess"])
    assert np.allclose(mean_rgb, written["mean_rgb"], rtol=1e-6, atol=0)
    assert (pre["resize"], pre["crop"]) == (written["resize"], written["crop"])


def test_without_torch_one_line_names_the_pinned_install(monkeypatch):
    import minialex.interop.torch as mt
    real = importlib.import_module

    def no_torch(name, *args):
        if name == "torch":
            raise ImportError("No module named 'torch'")
        return real(name, *args)

    monkeypatch.setattr(mt.importlib, "import_module", no_torch)
    monkeypatch.setattr(mt, "_classes", {})
    with pytest.raises(ImportError) as info:
        mt.build_module("tiny")
    message = str(info.value)
    assert "\n" not in message
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in message
    assert os.path.basename(mt.__file__) == "torch.py"
