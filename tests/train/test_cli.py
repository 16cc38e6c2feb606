"""The scripts as a user runs them, each in a subprocess: the outputs of a tiny run and the one
metric convention, --test-only and predict saying which checkpoint they load, every bad value
ending in one line (flag and allowed range, exit code 2, no file touched), complete --help,
and the console commands."""

import configparser
import csv
import json
import os
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from minialex.nn.dispatch import reference_enabled
from minialex.train import load_checkpoint, save_checkpoint
from minialex.train.cli import build_parser, main

from .conftest import PREDICT, ROOT, TRAIN, TRAIN_CIFAR, assert_one_line_error, script, tiny_args


@pytest.fixture(scope="module")
def trained(tiny_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    proc = script(TRAIN, *tiny_args(tiny_folder, out, "--epochs", "3"))
    assert proc.returncode == 0, proc.stderr
    return out, proc


def tree(folder):
    """{relative path: (size, mtime_ns)} of every file under ``folder``: what "no file touched" compares."""
    found = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            found[os.path.relpath(path, folder)] = (st.st_size, st.st_mtime_ns)
    return found


def val_image(folder, wnid="s0000001", i=0):
    d = os.path.join(folder, "val", wnid)
    return os.path.join(d, sorted(os.listdir(d))[i])


# -- a run's outputs -----------------------------------------------------------------------------
def test_run_writes_every_output_with_resolved_args(trained):
    out, proc = trained
    assert "minialex: training AlexNet (tiny preset" in proc.stdout and "done in" in proc.stdout
    for name in ("checkpoint.npz", "checkpoint_best.npz", "metrics.csv", "args.json", "curves.png",
                 "conv1_filters.png"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert all(0 <= float(r["val_top1_err"]) <= 100 and float(r["train_loss"]) > 0 for r in rows)
    args = json.load(open(out / "args.json"))
    # the values actually used, never null for what the run depended on
    assert (args["epochs"], args["model"], args["crop_size"], args["resize_size"]) == (3, "tiny", 24, 28)
    assert (args["batch_size"], args["lr"], args["momentum"], args["lr_patience"]) == (16, 0.01, 0.9, 3)
    assert args["output_dir"] == str(out) and args["data"] and args["seed"] == 0
    arrays, meta = load_checkpoint(out / "checkpoint.npz")
    assert meta["classes"] == sorted(meta["classes"]) and len(meta["classes"]) == 10
    assert meta["names"][0] == "disc" and meta["epoch"] == 3 and meta["args"] == args
    assert "model/conv1.weight" in arrays and "momentum/conv1.weight" in arrays


def test_the_banner_says_when_the_reference_implementations_run(trained, tiny_folder, tmp_path):
    said = "the reference implementations of minialex/nn/functional/ (MINIALEX_REFERENCE=1 or reference())"
    assert (said in trained[1].stdout) == reference_enabled()  # the run above: only under MINIALEX_REFERENCE=1
    proc = script(TRAIN, *tiny_args(tiny_folder, tmp_path, "--epochs", "1"), env={"MINIALEX_REFERENCE": "1"})
    assert proc.returncode == 0, proc.stderr
    banner = next(line for line in proc.stdout.splitlines() if line.startswith("minialex: training"))
    assert said in banner


def test_best_checkpoint_is_the_epoch_with_the_lowest_val_error(trained):
    out, _ = trained
    _, latest = load_checkpoint(out / "checkpoint.npz")
    _, best = load_checkpoint(out / "checkpoint_best.npz")
    errors = [row["val_top1_err"] for row in latest["history"]]
    first_min = errors.index(min(errors)) + 1
    assert best["epoch"] == first_min and best["saved_as"] == "best" and latest["saved_as"] == "latest"
    assert latest["best"] == {"epoch": first_min, "val_top1_err": min(errors)}
    assert [f for f in os.listdir(out) if f.startswith(".tmp-")] == []  # both written atomically


def test_one_metric_convention_everywhere(trained, tiny_folder):
    out, proc = trained
    names = ["train_loss", "train_top1_err", "val_loss", "val_top1_err", "val_top5_err"]
    header = open(out / "metrics.csv").readline().strip().split(",")
    epoch_lines = [line for line in proc.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 3
    for name in names:
        assert name in header and all(name in line for line in epoch_lines), name
    test = script(TRAIN, "--test-only", "--resume", out, "--no-progress")
    assert test.returncode == 0, test.stderr
    assert "val_top1_err" in test.stdout and "val_top5_err" in test.stdout
    for text in (proc.stdout, test.stdout):
        assert "Acc@" not in text and "accuracy" not in text.lower()


# -- --test-only ---------------------------------------------------------------------------------
def test_test_only_says_which_checkpoint_it_loads(trained, tiny_folder, tmp_path):
    out, _ = trained
    before = tree(out)
    latest = script(TRAIN, "--test-only", "--resume", out, "--ten-crop", "--no-progress", cwd=tmp_path)
    assert latest.returncode == 0, latest.stderr
    assert f"evaluating {out / 'checkpoint.npz'} (latest: epoch 3 of 3" in latest.stdout
    assert "ten crops" in latest.stdout
    best = script(TRAIN, "--test-only", "--weights", out, "--data", tiny_folder, "--no-progress", cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    assert f"evaluating {out / 'checkpoint_best.npz'} (best: epoch" in best.stdout
    assert tree(out) == before and os.listdir(tmp_path) == []  # --test-only writes nothing


def test_test_only_without_weights_refuses(tiny_folder, tmp_path):
    proc = script(TRAIN, "--test-only", "--data", tiny_folder, cwd=tmp_path)
    assert_one_line_error(proc, "--test-only", "--resume", "--weights")
    assert os.listdir(tmp_path) == []


# -- predict -------------------------------------------------------------------------------------
def test_predict_prints_a_table_per_image(trained, tiny_folder):
    out, _ = trained
    images = [val_image(tiny_folder, "s0000001"), val_image(tiny_folder, "s0000004", 1)]
    proc = script(PREDICT, *images, "--checkpoint", out)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"checkpoint: {out / 'checkpoint_best.npz'} (best: epoch")
    for image in images:
        start = lines.index(image)
        assert lines[start + 1].split() == ["rank", "probability", "class"]
        rows = lines[start + 2:start + 7]
        assert [int(r.split()[0]) for r in rows] == [1, 2, 3, 4, 5]
        probs = [float(r.split()[1].rstrip("%")) for r in rows]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 100.01
        assert all("(s00000" in r for r in rows)  # name (wnid)
    one = script(PREDICT, images[0], "--checkpoint", out / "checkpoint.npz", "-k", "10")
    assert one.returncode == 0 and "(latest: epoch 3 of 3" in one.stdout
    assert len([r for r in one.stdout.splitlines() if r.strip()[:2].strip().isdigit()]) == 10


def test_predict_errors(trained, tiny_folder, tmp_path):
    out, _ = trained
    image = val_image(tiny_folder)
    assert_one_line_error(script(PREDICT, image, "--checkpoint", out, "-k", "11"), "-k/--topk", "1 to 10")
    assert_one_line_error(script(PREDICT, image, "--checkpoint", out, "-k", "0"), "-k/--topk", ">= 1")
    assert_one_line_error(script(PREDICT, image, tmp_path / "missing.jpg", "--checkpoint", out), "not found",
                          "missing.jpg")
    assert_one_line_error(script(PREDICT, image, "--checkpoint", tmp_path), "no checkpoint in", str(tmp_path))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    assert_one_line_error(script(PREDICT, image, "--checkpoint", bad), "is not a minialex checkpoint")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    proc = script(PREDICT, image, broken, "--checkpoint", out)
    assert_one_line_error(proc, "cannot decode image", "broken.jpg")
    assert proc.stdout == ""  # every image is read before anything is printed


# -- bad values: one line, the flag and its range, exit 2, nothing touched ----------------------
BAD_TRAIN_VALUES = [
    (["--lr", "0"], ["--lr", "> 0"]),
    (["--lr", "-1"], ["--lr", "> 0"]),
    (["--lr", "nan"], ["--lr", "> 0"]),
    (["--lr", "fast"], ["--lr", "> 0", "'fast'"]),
    (["--momentum", "-0.5"], ["--momentum", "[0, 1)"]),
    (["--momentum", "1"], ["--momentum", "[0, 1)"]),
    (["--wd", "-1"], ["--weight-decay", ">= 0"]),
    (["--epochs", "-1"], ["--epochs", ">= 1"]),
    (["--epochs", "0"], ["--epochs", ">= 1"]),
    (["-b", "0"], ["--batch-size", ">= 1"]),
    (["-j", "0"], ["--workers", "1 to 256"]),
    (["--seed", "-1"], ["--seed", ">= 0"]),
    (["--max-images", "0"], ["--max-images", ">= 1"]),
    (["--stats-images", "0"], ["--stats-images", ">= 1"]),
    (["--print-freq", "0"], ["--print-freq", ">= 1"]),
    (["--lr-patience", "0"], ["--lr-patience", ">= 1"]),
    (["--lr-schedule", "step", "--lr-step-size", "0"], ["--lr-step-size", ">= 1"]),
    (["--resize-size", "0"], ["--resize-size", ">= 1"]),
    (["--crop-size", "300"], ["--crop-size", "at most --resize-size"]),
    (["--model", "vgg"], ["--model", "paper", "tiny"]),
    (["--backend", "tpu"], ["--backend", "numpy", "cupy"]),
    (["--devices", "0,1,2"], ["--devices", "one id or two"]),
    (["--devices", "a"], ["--devices", "0,1"]),
    (["--lr-step-size", "5"], ["--lr-step-size", "--lr-schedule step"]),
    (["--lr-schedule", "step", "--lr-patience", "2"], ["--lr-patience", "plateau"]),
    (["--reset-classifier"], ["--reset-classifier", "--weights"]),
    (["--resume", "x.npz", "--weights", "y.npz"], ["--resume", "--weights"]),
    (["--test-only", "--overwrite", "--resume", "x.npz"], ["--overwrite", "--test-only"]),
    (["--epochs", "1", "--no-such-flag"], ["--no-such-flag"]),
]


class Finished:
    """What assert_one_line_error reads, from an in-process call of main()."""

    def __init__(self, returncode, out, err):
        self.returncode, self.stdout, self.stderr = returncode, out, err


@pytest.mark.parametrize("bad,words", BAD_TRAIN_VALUES, ids=[" ".join(b) for b, _ in BAD_TRAIN_VALUES])
def test_bad_value_is_one_line_and_touches_nothing(bad, words, tiny_folder, tmp_path, monkeypatch, capsys):
    # in-process, through the same main() the scripts call (the subprocess test below runs a sample)
    monkeypatch.chdir(tmp_path)
    code = main(["--data", tiny_folder, "--model", "tiny", "--stats-images", "60", *bad])
    captured = capsys.readouterr()
    assert_one_line_error(Finished(code, captured.out, captured.err), *words)
    assert os.listdir(tmp_path) == []  # no runs/ folder, no stats file, nothing


@pytest.mark.parametrize("index", [0, 4, 8, 10, 21, 25])
def test_bad_value_from_the_command_line(index, tiny_folder, tmp_path):
    bad, words = BAD_TRAIN_VALUES[index]
    proc = script(TRAIN, "--data", tiny_folder, "--model", "tiny", *bad, cwd=tmp_path)
    assert_one_line_error(proc, *words)
    assert os.listdir(tmp_path) == []


def test_bad_values_in_the_cifar_and_predict_scripts(tmp_path, trained, tiny_folder):
    for bad, words in ((["--lr", "0"], ["--lr", "> 0"]), (["-b", "0"], ["--batch-size", ">= 1"]),
                       (["--epochs", "0"], ["--epochs", ">= 1"]), (["--ten-crop"], ["--ten-crop"])):
        proc = script(TRAIN_CIFAR, "--data", tmp_path / "nowhere", *bad, cwd=tmp_path)
        assert_one_line_error(proc, *words)
    assert_one_line_error(script(TRAIN_CIFAR, "--epochs", "1", cwd=tmp_path), "--data", "cifar-10-batches-py")
    out, _ = trained
    assert_one_line_error(script(PREDICT, val_image(tiny_folder), "--checkpoint", out, "-k", "x"),
                          "-k/--topk", "'x'")
    assert_one_line_error(script(PREDICT, val_image(tiny_folder)), "--checkpoint")
    assert os.listdir(tmp_path) == []


# -- --help --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["imagenet", "cifar10"])
def test_every_option_is_described_once_with_its_default(kind):
    parser = build_parser(kind)
    for action in parser._actions:
        if action.dest == "help":
            continue
        text = action.help or ""
        assert len(text) > 15, action.option_strings
        assert "None" not in text and text.count("default") <= 1, (action.option_strings, text)
        takes_value = action.nargs != 0
        if takes_value and action.dest not in ("data", "output_dir", "resume", "weights"):
            assert "default" in text, action.option_strings  # every valued option states its default
    help_text = parser.format_help()
    assert "(default: None)" not in help_text and "Ctrl-C" in help_text and "--resume CKPT" in help_text
    assert "--overwrite" in parser.epilog


def test_help_of_each_script_lists_only_its_options():
    helps = {}
    for path in (TRAIN, TRAIN_CIFAR, PREDICT):
        proc = script(path, "--help")
        assert proc.returncode == 0 and proc.stdout.startswith("usage:"), proc.stderr
        helps[path] = proc.stdout
    assert "--ten-crop" in helps[TRAIN] and "--on-corrupt" in helps[TRAIN]
    assert "--ten-crop" not in helps[TRAIN_CIFAR] and "--on-corrupt" not in helps[TRAIN_CIFAR]
    assert "cifar-10-batches-py" in helps[TRAIN_CIFAR] and "default cifar10" in helps[TRAIN_CIFAR]
    assert "IMAGE [IMAGE ...]" in helps[PREDICT] and "checkpoint_best.npz" in helps[PREDICT]
    for path in (TRAIN, TRAIN_CIFAR):
        assert "Ctrl-C" in helps[path] and "--resume" in helps[path]


# -- console commands ----------------------------------------------------------------------------
def entry_points():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    lines = [line.strip() for line in cfg["options.entry_points"]["console_scripts"].splitlines() if line.strip()]
    return dict(tuple(part.strip() for part in line.split("=", 1)) for line in lines)


def test_console_commands_are_declared_and_run():
    points = entry_points()
    assert set(points) == {"minialex", "minialex-train", "minialex-train-cifar10", "minialex-predict",
                           "minialex-prepare"}
    for name, target in points.items():
        module, func = target.split(":")
        installed = shutil.which(name, path=os.path.dirname(sys.executable))
        if installed:  # the wrapper pip generated from setup.cfg, where this checkout is installed
            proc = script(installed, "--help")
        else:  # not installed (or installed before the entry points existed): what it would run
            proc = script("-c", f"import sys; sys.argv[0] = {name!r}; from {module} import {func}; "
                                f"sys.exit({func}(['--help']))")
        assert proc.returncode == 0 and proc.stdout.startswith(f"usage: {name}"), (name, proc.stderr)


def test_python_dash_m_minialex():
    usage = script("-m", "minialex")
    assert usage.returncode == 2 and "train-cifar10" in usage.stderr
    proc = script("-m", "minialex", "train", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python -m minialex train")
    proc = script("-m", "minialex", "predict", "--help")
    assert proc.returncode == 0 and "IMAGE [IMAGE ...]" in proc.stdout
    assert_one_line_error(script("-m", "minialex", "fit"), "unknown command", "train")
    proc = script("-m", "minialex.train.cli", "--help")
    assert proc.returncode == 0 and "--resume" in proc.stdout


# -- other expected failures ---------------------------------------------------------------------
def test_missing_data_path(tmp_path):
    assert_one_line_error(script(TRAIN, "--data", tmp_path / "nope", cwd=tmp_path), "not found", "nope")


def test_empty_data_folder(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    assert_one_line_error(script(TRAIN, "--data", tmp_path), str(tmp_path))


def test_cupy_without_cupy_or_gpu(tiny_folder):
    try:
        from minialex import backend
        if backend.cupy_available():
            pytest.skip("this machine has a working CuPy")
    except Exception:
        pass
    assert_one_line_error(script(TRAIN, "--data", tiny_folder, "--backend", "cupy"), "CuPy")


def test_device_that_does_not_exist(tiny_folder):
    assert_one_line_error(script(TRAIN, "--data", tiny_folder, "--devices", "0,7"), "device 7 does not exist")


def test_checkpoint_from_another_architecture(trained, tiny_folder, tmp_path):
    out, _ = trained
    proc = script(TRAIN, *tiny_args(tiny_folder, tmp_path / "other", "--epochs", "5", "--model", "cifar10",
                                    "--resume", out / "checkpoint.npz"))
    # the network defines the run: the resume rule refuses another --model in one line
    assert_one_line_error(proc, "--model cannot change on --resume", "trained with --model tiny", "--weights")
    assert not (tmp_path / "other").exists()
    # a checkpoint whose saved options name no preset meets the architecture check itself
    arrays, meta = load_checkpoint(out / "checkpoint.npz")
    meta["args"].pop("model")
    meta["model_config"]["channels"] = [24, 64, 96, 96, 64]
    odd = tmp_path / "odd.npz"
    save_checkpoint(odd, arrays, meta)
    proc = script(TRAIN, *tiny_args(tiny_folder, tmp_path / "other", "--epochs", "5", "--resume", odd))
    line = assert_one_line_error(proc, "holds another network", "channels [24, 64, 96, 96, 64] vs [4, 8, 8, 8, 8]")
    assert len(line) < 700
    assert not (tmp_path / "other").exists()


def test_corrupt_checkpoint(tmp_path, tiny_folder):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    proc = script(TRAIN, *tiny_args(tiny_folder, tmp_path / "out", "--resume", bad))
    assert_one_line_error(proc, "is not a minialex checkpoint", "not an .npz archive")
    img = tmp_path / "x.jpg"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    assert_one_line_error(script(PREDICT, img, "--checkpoint", bad), "is not a minialex checkpoint")


def test_train_cifar10_script(tmp_path):
    from tests.data.test_cifar10 import write_fake_cifar
    root = tmp_path / "cifar"
    write_fake_cifar(root, n=8)
    proc = script(TRAIN_CIFAR, "--data", root, "--epochs", "1", "-b", "8", "--no-progress", "--model", "tiny",
                  "--crop-size", "24", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "runs" / "alexnet-cifar10-tiny"  # the folder says what was trained
    assert "CIFAR-10" in proc.stdout and (out / "checkpoint.npz").is_file()
    proc = script(TRAIN, "--resume", out, "--epochs", "2", cwd=tmp_path)
    assert_one_line_error(proc, "CIFAR-10 run", "minialex-train-cifar10")
    assert_one_line_error(script(TRAIN_CIFAR, "--data", tmp_path / "nope"), "nope")
