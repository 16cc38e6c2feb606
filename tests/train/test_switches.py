"""The ablation switches of the training command (--activation, --lrn/--no-lrn, --pool, --dropout,
--lighting/--no-lighting; docs/training.md, "Switches"): each one is recorded in args.json and
the checkpoint, builds the network it names, is kept by --resume when left out and refused in
one line with another value; a checkpoint from before the switches resumes as the paper's net."""

import json

import numpy as np
import pytest
from minialex.models import AlexNetConfig
from minialex.train import load_checkpoint, save_checkpoint
from minialex.train.cli import main

from .conftest import tiny_args

# (flags, args.json key, value recorded, model_config field(s) it sets, another value for --resume)
SWITCHES = [
    (["--activation", "tanh"], "activation", "tanh", {"activation": "tanh"}, ["--activation", "relu"]),
    (["--activation", "sigmoid"], "activation", "sigmoid", {"activation": "sigmoid"}, ["--activation", "tanh"]),
    (["--no-lrn"], "lrn", False, {"lrn": False}, ["--lrn"]),
    (["--pool", "2/2"], "pool", "2/2", {"pool_size": 2, "pool_stride": 2}, ["--pool", "3/2"]),
    (["--dropout", "0"], "dropout", 0.0, {"dropout": 0.0}, ["--dropout", "0.5"]),
    (["--no-lighting"], "lighting", False, {}, ["--lighting"]),
]


def one_line_error(capsys, code, *words):
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), (code, err)
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.mark.parametrize("flags, key, value, fields, other", SWITCHES,
                         ids=[" ".join(s[0]) for s in SWITCHES])
def test_switch_is_recorded_kept_on_resume_and_refused_changed(tiny_folder, tmp_path, capsys,
                                                               flags, key, value, fields, other):
    out = tmp_path / "run"
    assert main(tiny_args(tiny_folder, out, "--epochs", "1", *flags)) == 0
    args = json.loads((out / "args.json").read_text())
    assert args[key] == value
    _, meta = load_checkpoint(out / "checkpoint.npz")
    assert meta["args"][key] == value
    for field, v in fields.items():  # the network itself, not only the flag, changed
        assert getattr(AlexNetConfig.from_dict(meta["model_config"]), field) == v
    # the other switches stay the paper's
    paper = {"activation": "relu", "lrn": True, "pool": "3/2", "dropout": 0.5, "lighting": True}
    assert {k: args[k] for k in paper if k != key} == {k: v for k, v in paper.items() if k != key}
    ckpt = str(out / "checkpoint.npz")
    capsys.readouterr()

    # --resume with another value: one line naming the switch
    code = main(tiny_args(tiny_folder, out, "--epochs", "2", "--resume", ckpt, *other))
    line = one_line_error(capsys, code, "cannot change on --resume", "--weights")
    assert other[0].split("/")[0].replace("--no-", "--") in line

    # --resume without it: the checkpoint's value, recorded again
    assert main(tiny_args(tiny_folder, out, "--epochs", "2", "--resume", ckpt)) == 0
    assert json.loads((out / "args.json").read_text())[key] == value
    _, meta = load_checkpoint(out / "checkpoint.npz")
    assert meta["epoch"] == 2 and meta["args"][key] == value
    for field, v in fields.items():
        assert getattr(AlexNetConfig.from_dict(meta["model_config"]), field) == v


def test_the_same_value_on_resume_is_accepted(tiny_folder, tmp_path):
    out = tmp_path / "run"
    assert main(tiny_args(tiny_folder, out, "--epochs", "1", "--no-lrn", "--pool", "2/2")) == 0
    assert main(tiny_args(tiny_folder, out, "--epochs", "2", "--no-lrn", "--pool", "2/2",
                          "--resume", str(out / "checkpoint.npz"))) == 0


def test_checkpoint_from_before_the_switches_resumes_as_the_paper_net(tiny_folder, tmp_path, capsys):
    out = tmp_path / "old"
    assert main(tiny_args(tiny_folder, out, "--epochs", "1")) == 0
    ckpt = out / "checkpoint.npz"
    arrays, meta = load_checkpoint(ckpt)
    for k in ("activation", "lrn", "pool", "dropout", "lighting"):  # what a checkpoint of before held
        meta["args"].pop(k)
    assert not {"activation", "lrn", "pool_size", "pool_stride"} & set(meta["model_config"])
    save_checkpoint(ckpt, arrays, meta)
    capsys.readouterr()
    code = main(tiny_args(tiny_folder, out, "--epochs", "2", "--resume", str(ckpt), "--no-lrn"))
    one_line_error(capsys, code, "--lrn/--no-lrn cannot change", "--lrn;")
    assert main(tiny_args(tiny_folder, out, "--epochs", "2", "--resume", str(ckpt))) == 0
    args = json.loads((out / "args.json").read_text())
    assert {k: args[k] for k in ("activation", "lrn", "pool", "dropout", "lighting")} == \
        {"activation": "relu", "lrn": True, "pool": "3/2", "dropout": 0.5, "lighting": True}


def test_weights_take_the_files_switches_unless_given(tiny_folder, tmp_path):
    src = tmp_path / "src"
    assert main(tiny_args(tiny_folder, src, "--epochs", "1", "--no-lrn", "--dropout", "0.25")) == 0
    # tiny_args names --model, so the network is the preset's: the flags decide
    new = tmp_path / "new"
    args = ["--data", tiny_folder, "--output-dir", str(new), "--resize-size", "28", "--crop-size", "24",
            "-b", "16", "-j", "2", "--no-progress", "--stats-images", "60", "--epochs", "1",
            "--weights", str(src / "checkpoint.npz")]
    assert main(args) == 0  # without --model: the file's network, switches included
    recorded = json.loads((new / "args.json").read_text())
    assert recorded["lrn"] is False and recorded["dropout"] == 0.25
    assert main(args[:-2] + ["--weights", str(src / "checkpoint.npz"), "--dropout", "0", "--overwrite"]) == 0
    _, meta = load_checkpoint(new / "checkpoint.npz")
    assert meta["model_config"]["dropout"] == 0.0 and meta["model_config"]["lrn"] is False


@pytest.mark.parametrize("bad, words", [
    (["--activation", "gelu"], ["--activation", "invalid choice"]),
    (["--pool", "4/2"], ["--pool", "invalid choice"]),
    (["--dropout", "1"], ["--dropout"]),
    (["--dropout", "-0.1"], ["--dropout"]),
])
def test_bad_switch_values_are_one_line(tiny_folder, tmp_path, capsys, bad, words):
    code = main(tiny_args(tiny_folder, tmp_path / "bad", "--epochs", "1", *bad))
    one_line_error(capsys, code, *words)
    assert not (tmp_path / "bad").exists()


def test_no_lighting_reaches_the_training_transform(tiny_folder, tmp_path, monkeypatch):
    """--no-lighting builds TrainTransform with lighting_std=0; without it the default (0.1)."""
    from minialex.train import build
    seen = []
    real = build.TrainTransform

    def spy(*args, **kwargs):
        t = real(*args, **kwargs)
        seen.append(t.lighting_std)
        return t

    monkeypatch.setattr(build, "TrainTransform", spy)
    assert main(tiny_args(tiny_folder, tmp_path / "off", "--epochs", "1", "--no-lighting")) == 0
    assert main(tiny_args(tiny_folder, tmp_path / "on", "--epochs", "1")) == 0
    assert seen[0] == 0 and seen[-1] > 0


def test_dropout_zero_trains_and_is_the_identity(tiny_folder, tmp_path):
    """--dropout 0: drop6 and drop7 stay (their names and state) but change nothing in training."""
    from minialex.models import AlexNet
    out = tmp_path / "run"
    assert main(tiny_args(tiny_folder, out, "--epochs", "1", "--dropout", "0")) == 0
    arrays, meta = load_checkpoint(out / "checkpoint.npz")
    assert np.isfinite(meta["history"][-1]["train_loss"])
    model = AlexNet.from_config(meta["model_config"], dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((3, 3, 24, 24))
    model.train()
    a = model.forward(x)
    model.eval()
    assert np.array_equal(a, model.forward(x))


def test_the_start_line_names_the_switches_that_differ_from_the_paper():
    from types import SimpleNamespace

    from minialex.train.report import switches_text
    paper = dict(activation="relu", lrn=True, pool="3/2", dropout=0.5, lighting=True)
    assert switches_text(SimpleNamespace(**paper)) == ""
    variant = dict(paper, activation="tanh", lrn=False, pool="2/2", dropout=0.0, lighting=False)
    assert switches_text(SimpleNamespace(**variant)) == \
        ", tanh instead of ReLU, no LRN, 2/2 pools, no dropout, no PCA lighting"
    assert switches_text(SimpleNamespace(**dict(paper, dropout=0.3))) == ", dropout 0.3"
