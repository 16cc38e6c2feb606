import threading
import time

import numpy as np
import pytest

from minialex.data import ArrayDataset, CorruptImageError, DataLoader, ImageFolder, SkipLog, TrainTransform


def array_dataset(n=37, size=12):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return ArrayDataset(imgs, np.arange(n) % 5, [f"c{i}" for i in range(5)])


def collect(loader, epoch=None):
    it = loader if epoch is None else loader.epoch_iter(epoch)
    return [(x.copy(), y.copy()) for x, y in it]


def test_shapes_dtypes_len():
    loader = DataLoader(array_dataset(), TrainTransform(None, 8, 12), batch_size=10, workers=2)
    batches = collect(loader)
    assert len(loader) == 4 and [len(y) for _, y in batches] == [10, 10, 10, 7]
    x, y = batches[0]
    assert x.shape == (10, 3, 8, 8) and x.dtype == np.float32 and x.flags.c_contiguous
    assert y.dtype == np.int64
    assert sorted(np.concatenate([y for _, y in batches]).tolist()) == sorted(
        (np.arange(37) % 5).tolist())


def test_deterministic_across_worker_counts():
    ds = array_dataset()
    t = TrainTransform(None, 8, 12)
    a = collect(DataLoader(ds, t, batch_size=8, seed=3, workers=1), epoch=2)
    b = collect(DataLoader(ds, t, batch_size=8, seed=3, workers=3, prefetch=1), epoch=2)
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)


def test_in_place_batches_equal_stacked_samples():
    # TrainTransform takes the loader's one-pass path; a plain function the stacking path.
    ds = array_dataset()
    t = TrainTransform(None, 8, 12)
    fast = collect(DataLoader(ds, t, batch_size=8, seed=2, workers=2), epoch=1)
    slow = collect(DataLoader(ds, lambda img, rng: t(img, rng), batch_size=8, seed=2, workers=2), epoch=1)
    assert len(fast) == len(slow)
    for (xa, ya), (xb, yb) in zip(fast, slow):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)


def test_epochs_differ_and_iter_advances():
    loader = DataLoader(array_dataset(), TrainTransform(None, 8, 12), batch_size=37, seed=1)
    assert not np.array_equal(loader.indices(0), loader.indices(1))
    (x0, y0), = collect(loader)
    (x1, y1), = collect(loader)
    assert loader.epoch == 2 and not np.array_equal(y0, y1)
    loader.set_epoch(0)
    (x2, y2), = collect(loader)
    assert np.array_equal(x0, x2) and np.array_equal(y0, y2)


def test_drop_last_max_images_no_shuffle():
    ds = array_dataset()
    loader = DataLoader(ds, TrainTransform(None, 8, 12), batch_size=10, drop_last=True)
    assert len(loader) == 3 and [len(y) for _, y in collect(loader)] == [10, 10, 10]
    small = DataLoader(ds, TrainTransform(None, 8, 12), batch_size=4, max_images=10, shuffle=False)
    ys = np.concatenate([y for _, y in collect(small)])
    assert len(small) == 3 and len(ys) == 10
    assert sorted(set(ys.tolist())) == [0, 1, 2, 3, 4]  # an evenly spaced subset


def test_early_break_does_not_hang():
    before = threading.active_count()
    loader = DataLoader(array_dataset(200), TrainTransform(None, 8, 12), batch_size=4, workers=3)
    t0 = time.perf_counter()
    for i, _ in enumerate(loader):
        if i == 1:
            break
    loader.close()
    with loader:
        next(iter(loader))
    assert time.perf_counter() - t0 < 5
    assert threading.active_count() <= before
    assert loader.wait_time >= 0


def test_corrupt_images_skip_or_raise(folder_root):
    ds = ImageFolder(folder_root)
    t = TrainTransform(None, 8, 10)
    lines = []
    loader = DataLoader(ds, t, batch_size=4, workers=2, on_error="skip", skips=SkipLog(write=lines.append))
    n = sum(len(y) for _, y in loader)
    assert n == len(ds) - 1 and len(loader.skipped) == 1
    assert len(lines) == 1 and "broken.JPEG" in lines[0] and lines[0].startswith("warning: skipped")
    strict = DataLoader(ds, t, batch_size=4, workers=2, on_error="raise")
    with pytest.raises(CorruptImageError, match="broken.JPEG"):
        for _ in strict:
            pass


def test_other_worker_errors_propagate_with_context():
    def bad(img, rng):
        raise RuntimeError("boom")
    loader = DataLoader(array_dataset(), bad, batch_size=4, workers=2)
    with pytest.raises(RuntimeError, match="boom") as info:
        next(iter(loader))
    assert any("data-loader thread" in n for n in getattr(info.value, "__notes__", []))


def test_start_batch_resumes_mid_epoch():
    ds = array_dataset()
    t = TrainTransform(None, 8, 12)
    whole = collect(DataLoader(ds, t, batch_size=8, seed=5, workers=2), epoch=1)
    rest = [(x.copy(), y.copy()) for x, y in DataLoader(ds, t, batch_size=8, seed=5, workers=2).epoch_iter(1, start_batch=3)]
    assert len(rest) == len(whole) - 3
    for (xa, ya), (xb, yb) in zip(whole[3:], rest):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)


@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_batch_memory_is_reused_only_when_let_go(kind):
    from minialex.data import workers
    if kind == "processes" and not workers.available():
        pytest.skip("no POSIX shared memory here")
    ds, t = array_dataset(n=90), TrainTransform(None, 8, 12)
    want = collect(DataLoader(ds, t, batch_size=4, seed=2, workers=1, worker_kind="threads"), epoch=1)
    with DataLoader(ds, t, batch_size=4, seed=2, workers=2, prefetch=1, worker_kind=kind) as loader:
        # Held batches are never written over, however many come after them.
        held = list(loader.epoch_iter(1))
        assert len(held) == len(want)
        for (x, y), (wx, wy) in zip(held, want):
            assert np.array_equal(x, wx) and np.array_equal(y, wy)
        del held, x
        # Batches let go of are written again: a few arrays serve the whole epoch.
        pooled = 0
        for (x, y), (wx, wy) in zip(loader.epoch_iter(1), want):
            assert np.array_equal(x, wx) and np.array_equal(y, wy)
            pooled += any(np.shares_memory(x, m.images) for m in loader._memory.items)
        # All batches but perhaps one (the thread that finished a batch may still hold it for a
        # moment when the next is made) came from the few pooled arrays.
        assert len(loader._memory.items) <= loader.prefetch + 3 < len(want) - 1 <= pooled


def test_sample_rng_is_the_documented_default_rng():
    from minialex.data import sample_rng
    for seed, epoch, index in [(0, 0, 0), (3, 7, 12345), (1, 2, 2**40)]:
        a, b = sample_rng(seed, epoch, index), np.random.default_rng([seed, epoch, index])
        assert np.array_equal(a.integers(0, 1 << 30, 20), b.integers(0, 1 << 30, 20))
        assert a.random() == b.random() and a.normal() == b.normal()
