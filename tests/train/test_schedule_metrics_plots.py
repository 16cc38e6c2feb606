"""Learning-rate schedules, top-k counting and the pictures."""

import numpy as np
import pytest
from PIL import Image

from minialex.train import PlateauSchedule, StepSchedule, filter_grid, save_curves, topk_correct
from minialex.train.metrics import mean_log_softmax
from minialex.train.plots import COLOURS, GRID, nice_step, value_axis


def test_plateau_divides_by_ten_after_patience():
    s = PlateauSchedule(0.01, patience=2)
    lrs = [s.step(e, err) for e, err in enumerate([50, 40, 40, 40, 39.9999, 30])]
    assert lrs == [0.01, 0.01, 0.01, 0.001, 0.001, 0.001]
    t = PlateauSchedule(1.0)
    t.load_state_dict(s.state_dict())
    assert t.state_dict() == s.state_dict()


def test_step_schedule():
    s = StepSchedule(0.1, step_size=2)
    assert [round(s.step(e), 6) for e in range(5)] == [0.1, 0.01, 0.01, 0.001, 0.001]


def test_topk_correct_counts_ties_against_the_label():
    logits = np.array([[0.1, 0.9, 0.5], [1.0, 1.0, 0.0], [0.3, 0.2, 0.1], [0.0, 0.0, 0.0]])
    labels = np.array([2, 1, 2, 0])
    # sample 0: label ranks 2nd; sample 1: tied for first, counts as 2nd; sample 2: last;
    # sample 3: all equal, counts as last
    assert topk_correct(logits, labels, ks=(1, 2, 3)) == [0, 2, 4]
    assert topk_correct(np.array([[np.nan, 1.0, 0.0]]), np.array([1]), ks=(1, 3)) == [0, 0]  # a NaN row is wrong


def test_top5_of_a_diverged_network_is_chance_not_zero():
    """The defect: probabilities that underflow to 0 all tie, and ties counted for the label made a
    diverged run report val_top5_err 0%. Ranked by the log of the mean softmax, it is chance."""
    rng = np.random.default_rng(0)
    n, k = 2000, 10
    logits = rng.normal(0, 1, (n, 1, k)).astype(np.float32)
    logits[:, 0, 0] = 1000.0  # every image "sure" of class 0: the others' softmax is exactly 0
    labels = rng.integers(1, k, n)  # never class 0
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    assert (probs[:, 0, 1:] == 0).all()  # the underflow the old ranking tied on
    top1, top5 = topk_correct(mean_log_softmax(logits), labels, ks=(1, 5))
    assert top1 == 0
    assert abs(top5 / n - 4 / 9) < 0.05  # label uniform among the 9 others, 4 top-5 places left


def test_mean_log_softmax_is_the_log_of_the_crops_mean_softmax():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (4, 10, 7))
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(mean_log_softmax(logits), np.log(p.mean(axis=1)), rtol=1e-12, atol=1e-12)


def tile_bands(img, min_columns):
    """Row ranges [(first, last)] where at least ``min_columns`` pixels are not white: the filter rows."""
    arr = np.asarray(img).astype(int)
    busy = ((arr < 250).any(axis=2).sum(axis=1) >= min_columns)
    bands, start = [], None
    for y, b in enumerate(busy):
        if b and start is None:
            start = y
        if not b and start is not None:
            bands.append((start, y - 1))
            start = None
    return bands, arr


@pytest.mark.parametrize("kernel,scale", [(11, 3), (5, 7), (3, 11)])
def test_filter_grid_two_labelled_blocks_of_large_filters(kernel, scale):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((96, 3, kernel, kernel))
    img = filter_grid(w)
    assert img.mode == "RGB"
    side = kernel * scale  # at least 32 px
    assert side >= 32
    bands, arr = tile_bands(img, 12 * side)
    # 2 blocks of 4 rows of 12 filters, each row exactly one filter high
    assert len(bands) == 8 and all(last - first + 1 == side for first, last in bands)
    row = (arr[bands[0][0] + side // 2] < 250).any(axis=1)  # across the first row of filters
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, row.astype(int), 0])))[::2]
    assert list(runs) == [side] * 12
    # a label between the blocks (dark text), and a wider gap there than between rows
    between = arr[bands[3][1] + 1:bands[4][0]]
    assert (between.max(axis=2) < 80).any()
    assert bands[4][0] - bands[3][1] > 3 * (bands[1][0] - bands[0][1])
    above = arr[:bands[0][0]]
    assert (above.max(axis=2) < 80).any()  # title and the first block's label


def test_nice_axes():
    rng = np.random.default_rng(1)
    for _ in range(200):
        values = list(rng.uniform(0, 10 ** rng.uniform(-2, 3), size=5))
        top, step = value_axis(values)
        mantissa = step / 10 ** np.floor(np.log10(step))
        assert any(np.isclose(mantissa, m) for m in (1, 2, 2.5, 5)), step
        assert np.isclose(top / step, round(top / step))  # the top is a tick
        assert top - max(values) >= 0.05 * top  # headroom above the data
        assert 3 <= round(top / step) <= 12
    assert value_axis([100.0, 90.0], cap=100.0) == (100.0, 20.0)  # an error axis stops at 100%
    assert nice_step(16, 6) == 5 and nice_step(90, 6) == 20 and nice_step(0.9, 6) == 0.2


def colour_rows(arr, colour, x_range):
    x0, x1 = x_range
    hit = (np.abs(arr[:, x0:x1] - np.array(colour)).sum(axis=2) < 30).any(axis=1)
    return np.flatnonzero(hit)


def test_curves_png_both_panels_grid_and_headroom(tmp_path):
    history = [{"epoch": e, "lr": 0.01, "train_loss": 2.3, "val_loss": 2.0 / e, "train_top1_err": 100.0,
                "val_top1_err": 90.0 - 5 * e, "val_top5_err": 50 - 8 * e} for e in range(1, 6)]
    save_curves(history, tmp_path / "curves.png")
    img = Image.open(tmp_path / "curves.png")
    arr = np.asarray(img.convert("RGB")).astype(int)
    w = img.size[0]
    blue, orange, green = COLOURS["train_loss"], COLOURS["val_loss"], COLOURS["val_top5_err"]
    for panel in ((60, w // 2), (w // 2 + 60, w)):
        frame_rows = np.flatnonzero((arr[:, panel[0]:panel[1]].max(axis=2) < 10).sum(axis=1) > 300)
        frame_top = frame_rows.min()
        plot = (frame_top + 2, panel)
        for colour in (blue, orange):  # training and validation in each panel
            rows = colour_rows(arr[plot[0]:], colour, panel)
            assert len(rows), (panel, colour)
            # a flat line at the data maximum (train_loss 2.3, train_top1_err 100%) stays off the frame
            assert rows.min() > 8, (panel, colour, rows.min())
        grid = (np.abs(arr[frame_top + 2:, panel[0]:panel[1]] - np.array(GRID)).sum(axis=2) < 6).sum(axis=1)
        assert (grid > 300).sum() >= 4  # horizontal grid lines at the ticks
    assert len(colour_rows(arr, green, (w // 2, w)))  # top-5 in the error panel only
    assert not len(colour_rows(arr, green, (0, w // 2)))
