"""Learning-rate schedules, top-k counting and the pictures."""

import numpy as np
from PIL import Image

from minialex.train import PlateauSchedule, StepSchedule, filter_grid, save_curves, topk_correct


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


def test_topk_correct_counts_ties_in_favour():
    logits = np.array([[0.1, 0.9, 0.5], [1.0, 1.0, 0.0], [0.3, 0.2, 0.1]])
    labels = np.array([2, 1, 2])
    # sample 0: label ranks 2nd; sample 1: tie for first; sample 2: last
    assert topk_correct(logits, labels, ks=(1, 2, 3)) == [1, 2, 3]


def test_filter_grid_two_blocks(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((96, 3, 11, 11))
    img = filter_grid(w, scale=1)
    assert img.mode == "RGB"
    arr = np.asarray(img)
    # 2 blocks of 4 rows of 12 filters (11 px + 1 px pad), a blank band between the blocks
    assert arr.shape[1] == 12 * 12 + 1
    band = arr[1 + 4 * 12: 1 + 4 * 12 + 12 - 1]
    assert (band == 255).all()


def test_curves_png(tmp_path):
    history = [{"epoch": e, "train_loss": 2.0 / e, "val_top1_err": 80 - 10 * e, "val_top5_err": 50 - 8 * e}
               for e in range(1, 5)]
    save_curves(history, tmp_path / "curves.png")
    img = Image.open(tmp_path / "curves.png")
    assert img.size == (900, 360)
    assert len(np.unique(np.asarray(img).reshape(-1, 3), axis=0)) > 3  # something was drawn
