"""examples/export.py and --weights FILE.safetensors: the file holds the state_dict() names and
shapes in float32 with the config, classes and preprocessing as metadata (read with safetensors'
NumPy API, no torch); train_imagenet.py starts from it (and fine-tunes it on other classes with
--reset-classifier), predict.py predicts from it, and a file that does not fit is refused in one
line naming every mismatch, exit code 2. Skipped, with the reason, without safetensors."""

import json
import os

import numpy as np
import pytest

from minialex.train import cli, predict
from minialex.weights.checkpoint import find_checkpoint, load_checkpoint

from ..train.conftest import ROOT, assert_one_line_error, script
from .conftest import need

EXPORT = os.path.join(ROOT, "examples", "export.py")


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    need("safetensors")
    out = tmp_path_factory.mktemp("export") / "tiny.safetensors"
    proc = script(EXPORT, "--checkpoint", tiny_run, "--to", out)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout and "2,122 parameters" in proc.stdout
    return out


def one_line(capsys, code, *words):
    """In-process check of a command's failure: exit code 2, one 'error:' line holding ``words``."""
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:"), err
    for w in words:
        assert w in err[0], (w, err[0])
    return err[0]


def test_the_file_holds_the_state_dict_and_says_what_it_is(exported, tiny_run):
    st = need("safetensors")
    arrays, meta = load_checkpoint(find_checkpoint(tiny_run, prefer="best"))
    with st.safe_open(exported, framework="np") as f:
        md = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    assert sorted(tensors) == sorted(state)
    for name, value in state.items():
        assert tensors[name].dtype == np.float32
        np.testing.assert_array_equal(tensors[name], value, err_msg=name)
    assert json.loads(md["model_config"]) == meta["model_config"]
    assert json.loads(md["classes"]) == meta["classes"] and json.loads(md["names"]) == meta["names"]
    pre = json.loads(md["preprocess"])
    assert (pre["resize"], pre["crop"], pre["channel_order"]) == (28, 24, "RGB")
    np.testing.assert_allclose(pre["mean_rgb"], arrays["stats/mean_rgb"], rtol=1e-6)
    lrn = json.loads(md["lrn"])
    assert lrn["alpha_on_sum"] == 1e-4 and lrn["alpha_per_size"] == 5e-4 and lrn["per_column"] is True
    assert "checkpoint_best.npz" in md["source"]


def test_export_refuses_an_unknown_suffix(tiny_run, tmp_path):
    proc = script(EXPORT, "--checkpoint", tiny_run, "--to", tmp_path / "w.pt")
    assert_one_line_error(proc, "--to", ".safetensors, .onnx")
    assert not (tmp_path / "w.pt").exists()


@pytest.mark.parametrize("suffix", [".safetensors", ".onnx"])
def test_exports_go_through_the_one_atomic_writer(tiny_run, tmp_path, suffix):
    """Both formats are written by minialex/atomic.py: a finished file and no temporary one beside
    it, and an operating-system failure is WriteFailed in one line naming the file."""
    need("safetensors" if suffix == ".safetensors" else "onnx")
    from minialex.atomic import WriteFailed
    from minialex.interop import export_checkpoint, read_weights
    out = tmp_path / "out" / f"tiny{suffix}"
    export_checkpoint(tiny_run, out)
    assert os.listdir(out.parent) == [out.name]  # nothing left of the temporary file
    assert read_weights(out)[1]["model_config"]
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with pytest.raises(WriteFailed) as info:
        export_checkpoint(tiny_run, blocked / f"tiny{suffix}")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"cannot write {blocked / f'tiny{suffix}'}: "), message
    assert sorted(os.listdir(tmp_path)) == ["a-file", "out"] and blocked.read_text() == "not a folder"


def test_train_starts_from_it_and_fine_tunes_it(exported, tiny_run, tiny_data, tmp_path, capsys):
    out = tmp_path / "same"
    code = cli.main(["--data", tiny_data, "--weights", str(exported), "--epochs", "1", "--lr", "1e-9",
                     "--max-images", "20", "--no-progress", "--stats-images", "20", "--output-dir", str(out), "-j", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"from the weights of {exported}" in printed and "tiny preset" in printed
    tuned, meta = load_checkpoint(out / "checkpoint.npz")
    source, _ = load_checkpoint(find_checkpoint(tiny_run, prefer="best"))
    assert meta["args"]["crop_size"] == 24  # the file's preprocessing
    np.testing.assert_allclose(tuned["model/conv2.weight"], source["model/conv2.weight"], atol=1e-6)

    # fine-tuning on 3 classes of the 10: every layer but fc8
    three = tmp_path / "three"
    for split in ("train", "val"):
        for wnid in sorted(os.listdir(os.path.join(tiny_data, split)))[:3]:
            os.makedirs(three / split / wnid)
            for name in os.listdir(os.path.join(tiny_data, split, wnid)):
                with open(os.path.join(tiny_data, split, wnid, name), "rb") as f:
                    (three / split / wnid / name).write_bytes(f.read())
    code = cli.main(["--data", str(three), "--weights", str(exported), "--epochs", "1", "--output-dir",
                     str(tmp_path / "x"), "--no-progress"])
    one_line(capsys, code, "10 classes", "this data has 3", "--reset-classifier")
    code = cli.main(["--data", str(three), "--weights", str(exported), "--reset-classifier", "--epochs", "1",
                     "--lr", "1e-9", "--no-progress", "--stats-images", "18", "--output-dir", str(tmp_path / "ft"),
                     "-j", "1"])
    assert code == 0
    tuned, meta = load_checkpoint(tmp_path / "ft" / "checkpoint.npz")
    assert tuned["model/fc8.weight"].shape == (3, 8)
    np.testing.assert_allclose(tuned["model/fc7.weight"], source["model/fc7.weight"], atol=1e-6)


def test_test_only_evaluates_it_with_its_channel_means(exported, tiny_data, tmp_path, capsys):
    code = cli.main(["--data", tiny_data, "--weights", str(exported), "--test-only", "--no-progress", "-j", "1"])
    printed = capsys.readouterr().out
    assert code == 0 and f"evaluating {exported} (exported from" in printed and "val_top1_err" in printed


def test_predict_from_it(exported, tiny_run, tiny_data, capsys):
    image = os.path.join(tiny_data, "val", "s0000002", sorted(os.listdir(os.path.join(tiny_data, "val", "s0000002")))[0])
    assert predict.main([image, "--weights", str(exported), "-k", "3"]) == 0
    printed = capsys.readouterr().out
    assert f"checkpoint: {exported} (exported from" in printed and "rank" in printed
    # the checkpoint's network, and its channel means in place of its per-pixel mean image
    ours, ref = predict.Predictor(exported), predict.Predictor(tiny_run)
    arrays, _ = load_checkpoint(ref.path)
    assert ours.transform.mean.shape == (3,) and ref.transform.mean.shape == (28, 28, 3)
    np.testing.assert_allclose(ours.transform.mean, arrays["stats/mean_rgb"], rtol=1e-6)
    x = ours.preprocess(image)[None]
    np.testing.assert_allclose(ours.probabilities(x), ref.probabilities(x), rtol=1e-6)


def test_a_file_that_does_not_fit_names_every_mismatch(tmp_path, tiny_data, capsys):
    """A safetensors file written elsewhere (no minialex metadata), with a renamed layer and a
    wrong shape: the command's own network decides, and every difference is listed."""
    st = need("safetensors.numpy")
    from minialex.models import AlexNet
    state = dict(AlexNet(preset="tiny", num_classes=10).state_dict())
    state["features.0.weight"] = state.pop("conv1.weight")
    state["fc6.weight"] = np.zeros((8, 31), np.float32)
    path = tmp_path / "other.safetensors"
    st.save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(path))
    code = cli.main(["--data", tiny_data, "--model", "tiny", "--crop-size", "24", "--resize-size", "28", "--weights",
                     str(path), "--output-dir", str(tmp_path / "o"), "--no-progress"])
    line = one_line(capsys, code, str(path), "conv1.weight absent vs (4, 3, 3, 3)", "fc6.weight (8, 31) vs (8, 32)",
                    "features.0.weight (4, 3, 3, 3) vs absent")
    assert "more" not in line  # all of them, not the first few
    assert not (tmp_path / "o").exists()
    code = predict.main([os.path.join(ROOT, "README.md"), "--weights", str(path)])
    one_line(capsys, code, str(path), "model config")
