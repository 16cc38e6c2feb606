"""The experiment scripts end to end, in their --quick modes: examples/figure1.py (the paper's
Figure 1, ReLU against tanh) and examples/ablations.py (the paper's ablations through the
training command). What they measure is in docs/experiments.md; these check that they run,
write what they promise, reuse finished runs and refuse bad input in one line."""

import csv
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from minialex.data import ensure_synthetic_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURE1 = os.path.join(ROOT, "examples", "figure1.py")
ABLATIONS = os.path.join(ROOT, "examples", "ablations.py")
VARIANTS = ["full", "tanh", "no-lrn", "pool-2/2", "no-dropout", "no-lighting", "ten-crop"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """10 classes of 32 px drawings, 6 training and 3 validation images each."""
    root = tmp_path_factory.mktemp("data") / "tiny"
    return str(ensure_synthetic_dataset(root, image_size=32, train_per_class=6, val_per_class=3))


def run(*args):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)


def assert_one_line_error(proc, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_figure1_quick_writes_both_curves(folder, tmp_path):
    out = tmp_path / "f1"
    proc = run(FIGURE1, "--quick", "--data", folder, "--out", out, "-b", "16")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = read_csv(out / "figure1.csv")
    # every rate of the grid was tried for each activation, and one per activation was chosen
    assert {(r["activation"], r["lr"]) for r in rows} == {("relu", "0.01"), ("relu", "0.1"),
                                                          ("tanh", "0.01"), ("tanh", "0.1")}
    for act in ("relu", "tanh"):
        chosen = [r for r in rows if r["activation"] == act and r["chosen"] == "1"]
        assert len({r["lr"] for r in chosen}) == 1
        assert max(float(r["epoch"]) for r in chosen) == pytest.approx(2.0)  # trained on past the 1-epoch trial
        others = [r for r in rows if r["activation"] == act and r["chosen"] == "0"]
        assert max(float(r["epoch"]) for r in others) == pytest.approx(1.0)
    summary = json.loads((out / "figure1.json").read_text())
    assert summary["images"] == 60 and summary["relu"]["lr"] in (0.01, 0.1)
    with Image.open(out / "figure1.png") as img:
        assert img.format == "PNG" and img.size == (900, 560)
        assert len(img.convert("RGB").getcolors(1 << 16)) > 10  # something was drawn, not a blank canvas


def test_figure1_same_seed_same_start(folder):
    """Both activations start from the same weights (the "equivalent network" of the paper)."""
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        import figure1
    finally:
        sys.path.pop(0)
    relu, tanh = figure1.build_net("relu", 3), figure1.build_net("tanh", 3)
    pairs = list(zip(relu.named_parameters(), tanh.named_parameters()))
    assert len(pairs) == 8
    for (name, a), (_, b) in pairs:
        assert (a.data == b.data).all(), name
    assert type(relu[1]).__name__ == "ReLU" and type(tanh[1]).__name__ == "Tanh"


@pytest.mark.parametrize("argv, words", [
    (["--lrs", "0.1,x"], ["--lrs"]),
    (["--trial-epochs", "3", "--epochs", "2"], ["--trial-epochs", "at most"]),
    (["--data", "/nonexistent/cifar"], ["--data", "not a folder"]),
])
def test_figure1_bad_input(argv, words, tmp_path):
    proc = run(FIGURE1, "--quick", "--out", tmp_path / "f1", *argv)
    assert_one_line_error(proc, *words)
    assert not (tmp_path / "f1").exists()


def test_ablations_quick_table_and_reuse(folder, tmp_path):
    out = tmp_path / "abl"
    proc = run(ABLATIONS, "--quick", "--data", folder, "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "note: skipping" not in proc.stdout  # every switch exists in the training command
    rows = read_csv(out / "ablations.csv")
    assert [r["variant"] for r in rows] == VARIANTS
    for r in rows:
        assert 0 <= float(r["val_top1_err"]) <= 100 and r["seeds"] == "1"
    assert [r["d_top1"] for r in rows][0] == ""  # full is the reference, no difference of its own
    assert all(r["d_top1"] != "" for r in rows[1:])
    with Image.open(out / "ablations.png") as img:
        assert img.format == "PNG" and img.size[0] > 500
    for v in VARIANTS[:-1]:
        saved = json.loads((out / v.replace("/", "-") / "seed0" / "args.json").read_text())
        assert saved["epochs"] == 1 and saved["max_images"] == 32
    assert json.loads((out / "tanh" / "seed0" / "args.json").read_text())["activation"] == "tanh"
    assert json.loads((out / "pool-2-2" / "seed0" / "args.json").read_text())["pool"] == "2/2"
    ckpts = {v: (out / v.replace("/", "-") / "seed0" / "checkpoint.npz").stat().st_mtime_ns for v in VARIANTS[:-1]}
    log_size = (out / "ablations.log").stat().st_size

    # the second call trains nothing and evaluates nothing: every run and evaluation is reused
    again = run(ABLATIONS, "--quick", "--data", folder, "--out", out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count(": reused") == 6
    assert {v: (out / v.replace("/", "-") / "seed0" / "checkpoint.npz").stat().st_mtime_ns
            for v in VARIANTS[:-1]} == ckpts
    assert (out / "ablations.log").stat().st_size == log_size
    assert read_csv(out / "ablations.csv") == rows

    # more epochs continue the same runs (--resume), they do not start over
    longer = run(ABLATIONS, "--quick", "--data", folder, "--out", out, "--epochs", "2", "--variants", "full")
    assert longer.returncode == 0, longer.stdout + longer.stderr
    assert "full         seed 0: trained on" in longer.stdout
    metrics = read_csv(out / "full" / "seed0" / "metrics.csv")
    assert [m["epoch"] for m in metrics] == ["1", "2"]


def test_ablations_refuses_a_run_of_other_settings(folder, tmp_path):
    out = tmp_path / "abl"
    first = run(ABLATIONS, "--quick", "--data", folder, "--out", out, "--variants", "full")
    assert first.returncode == 0, first.stdout + first.stderr
    before = (out / "full" / "seed0" / "checkpoint.npz").read_bytes()
    proc = run(ABLATIONS, "--quick", "--data", folder, "--out", out, "--variants", "full", "--max-images", "40")
    assert_one_line_error(proc, "holds a run with other settings", "max_images")
    assert (out / "full" / "seed0" / "checkpoint.npz").read_bytes() == before


@pytest.mark.parametrize("argv, words", [
    (["--variants", "full,no-such"], ["--variants", "no-such"]),
    (["--seeds", "0,0"], ["--seeds", "distinct"]),
])
def test_ablations_bad_input(argv, words, tmp_path):
    proc = run(ABLATIONS, "--quick", "--out", tmp_path / "abl", *argv)
    assert_one_line_error(proc, *words)
    assert not (tmp_path / "abl").exists()
