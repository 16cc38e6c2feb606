"""The paper's Figure 4: AlexNet.features stops at any layer with one device or two columns;
nearest() is the brute-force nearest neighbour; predict.py --card draws a grid of top-5 cards with
the true class in red; examples/neighbours.py finds a training image as its own nearest neighbour,
caches the training features beside the checkpoint keyed by checkpoint and data, and reads them
back."""

import importlib.util
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from minialex.interop.figure4 import TRUE_BAR, draw_card, nearest
from minialex.models import AlexNet
from minialex.models.architecture import forward_order
from minialex.train import predict

from ..train.conftest import ROOT, assert_one_line_error, script

NEIGHBOURS = os.path.join(ROOT, "examples", "neighbours.py")


def neighbours_main():
    """examples/neighbours.py's main, imported from its file (to run it in this process)."""
    spec = importlib.util.spec_from_file_location("neighbours_example", NEIGHBOURS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def images_in(root, split, classes=2, per_class=1):
    out = []
    for wnid in sorted(os.listdir(os.path.join(root, split)))[:classes]:
        names = sorted(os.listdir(os.path.join(root, split, wnid)))[:per_class]
        out += [os.path.join(root, split, wnid, n) for n in names]
    return out


@pytest.mark.parametrize("upto", ["lrn1", "conv3", "flatten", "relu7", "fc8"])
def test_features_stop_at_any_layer_on_one_device_and_two_columns(upto):
    one = AlexNet(preset="tiny", dtype=np.float64).eval()
    two = AlexNet(preset="tiny", dtype=np.float64, devices=(0, 1)).eval()
    x = np.random.default_rng(0).standard_normal((3, 3, 24, 24))
    expected = x
    for name in forward_order(one.cfg)[:forward_order(one.cfg).index(upto) + 1]:
        expected = getattr(one, name).forward(expected)
    np.testing.assert_allclose(one.features(x, upto), expected, rtol=1e-12)
    np.testing.assert_allclose(two.features(x, upto), expected, rtol=1e-10, atol=1e-13)
    if upto == "fc8":
        np.testing.assert_allclose(one.features(x, upto), one.forward(x), rtol=1e-12)
    with pytest.raises(ValueError, match="no layer 'fc9'"):
        one.features(x, "fc9")


def test_nearest_is_the_brute_force_answer():
    rng = np.random.default_rng(1)
    feats, queries = rng.standard_normal((50, 7)), rng.standard_normal((4, 7))
    order, dist = nearest(feats, queries, k=6)
    brute = np.linalg.norm(queries[:, None, :] - feats[None, :, :], axis=2)  # (4, 50)
    np.testing.assert_array_equal(order, np.argsort(brute, axis=1, kind="stable")[:, :6])
    np.testing.assert_allclose(dist, np.sort(brute, axis=1)[:, :6], rtol=1e-9)
    chunked = nearest(feats, queries, k=6, chunk=7)  # the running top-k over blocks of rows
    np.testing.assert_array_equal(chunked[0], order)
    np.testing.assert_allclose(chunked[1], dist, rtol=1e-12)
    order, dist = nearest(feats, feats[[3, 17]], k=1)
    assert order.ravel().tolist() == [3, 17] and np.allclose(dist, 0, atol=1e-6)
    twins = np.concatenate([feats[:1], feats[:1], feats[1:]])  # a tie: the lower index first
    assert nearest(twins, feats[:1], k=2, chunk=1)[0].tolist() == [[0, 1]]


def red_pixels(path):
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    return int((pixels == np.array(TRUE_BAR, np.uint8)).all(axis=1).sum())


def test_the_card_of_several_images_is_one_grid(tiny_run, tiny_data, tmp_path, capsys):
    images = images_in(tiny_data, "val", classes=3)
    out = tmp_path / "card.png"
    assert predict.main([*images, "--checkpoint", str(tiny_run), "--card", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    grid = Image.open(out)
    single = tmp_path / "one.png"
    assert predict.main([images[0], "--checkpoint", str(tiny_run), "--card", str(single)]) == 0
    assert grid.size[0] > 2.5 * Image.open(single).size[0]  # three cards side by side
    # The true class is always among the 10 classes' top 5 only by luck; with -k irrelevant the
    # card shows the top 5. Draw one whose truth is known to be ranked, and one with none.
    p = predict.Predictor(tiny_run)
    entry = dict(image=np.zeros((24, 24, 3), np.uint8), name="x", truth="disc",
                 top=[(0.6, "disc", True), (0.4, "ring", False)])
    draw_card([entry], tmp_path / "red.png")
    draw_card([dict(entry, truth=None, top=[(0.6, "disc", False), (0.4, "ring", False)])], tmp_path / "none.png")
    assert red_pixels(tmp_path / "red.png") > 100 and red_pixels(tmp_path / "none.png") == 0
    assert p.true_class(images[0]) == 0 and p.true_class(os.path.join(ROOT, "README.md")) is None


def test_the_card_wants_a_png(tiny_run, tiny_data, capsys):
    code = predict.main([images_in(tiny_data, "val")[0], "--checkpoint", str(tiny_run), "--card", "card.jpg"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--card" in err[0]


def test_neighbours_find_themselves_and_cache_by_checkpoint_and_data(tiny_run, tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    train_image = images_in(str(data), "train", classes=4)[3]  # a training image: it finds itself
    queries = [images_in(str(data), "val")[0], train_image]
    out = tmp_path / "nb.png"
    args = [str(a) for a in ("--checkpoint", run, "--data", data, "--queries", *queries, "--out", out, "-j", "1",
                             "--no-progress")]
    main = neighbours_main()
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "computed in" in first and Image.open(out).size[0] > 6 * 100
    caches = [f for f in os.listdir(run) if f.endswith(".npz") and ".relu7-" in f]
    assert len(caches) == 1 and caches[0].startswith("checkpoint_best.relu7-")
    with np.load(run / caches[0], allow_pickle=False) as cached:  # plain arrays, no pickle
        assert cached["features"].shape == (60, 8) and cached["labels"].shape == (60,)
    line = next(l for l in first.splitlines() if l.startswith(train_image))
    assert line.split(": ", 1)[1].split(", ")[0].endswith("(0)")  # itself, at distance 0

    assert main(args) == 0
    again = capsys.readouterr().out
    assert "read from" in again
    assert again.splitlines()[2:] == first.splitlines()[2:]  # the same answers

    assert main(args + ["--max-images", "20"]) == 0  # a subset: its own features, every class kept
    subset = capsys.readouterr().out
    assert "of 20 training images" in subset and "computed in" in subset

    victim = images_in(str(data), "train", classes=1, per_class=2)[1]
    os.remove(victim)  # other data: other features
    assert main(args) == 0
    assert "computed in" in capsys.readouterr().out
    assert len([f for f in os.listdir(run) if ".relu7-" in f]) == 3


def test_neighbours_refuse_bad_input_in_one_line(tiny_run, tiny_data, tmp_path):
    proc = script(NEIGHBOURS, "--checkpoint", tiny_run, "--data", tiny_data, "--queries", tmp_path / "nope.jpg",
                  "--out", tmp_path / "o.png")
    assert_one_line_error(proc, "query image not found")
    query = images_in(tiny_data, "val")[0]
    proc = script(NEIGHBOURS, "--checkpoint", tiny_run, "--data", tiny_data, "--queries", query,
                  "--out", tmp_path / "o.png", "--layer", "fc9")
    assert_one_line_error(proc, "--layer", "relu7")
    assert not (tmp_path / "o.png").exists()
