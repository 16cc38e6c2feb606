import os

import numpy as np

from minialex.data import ImageFolder, SkipLog, compute_stats, load_or_compute_stats
from minialex.data.transforms import center_crop

from .conftest import make_folder


def reference(ds, size):
    """Mean image and pixel covariance by the direct formula, all in memory."""
    imgs = np.stack([center_crop(ds.load(i, shorter=size)[0], size) for i in range(len(ds))])
    imgs = imgs.astype(np.float64)  # (N, S, S, 3)
    pixels = imgs.reshape(-1, 3)
    return imgs.mean(axis=0), pixels.mean(axis=0), np.cov(pixels.T, bias=True)


def test_compute_stats_matches_numpy(tmp_path):
    ds = ImageFolder(make_folder(tmp_path / "ds", special=False))
    st = compute_stats(ds, size=16, workers=2)
    mean_image, mean_rgb, cov = reference(ds, 16)
    assert st.mean_image.shape == (16, 16, 3) and st.mean_image.dtype == np.float32
    assert st.count == len(ds)
    assert np.allclose(st.mean_image, mean_image, atol=1e-3)
    assert np.allclose(st.mean_rgb, mean_rgb, atol=1e-3)
    assert np.all(np.diff(st.eigvals) <= 0)  # largest first
    rebuilt = st.eigvecs @ np.diag(st.eigvals) @ st.eigvecs.T
    assert np.allclose(rebuilt, cov, rtol=1e-4, atol=1e-2)


def test_skips_corrupt_with_a_line(folder_root):
    ds = ImageFolder(folder_root)
    lines = []
    st = compute_stats(ds, size=12, skips=SkipLog(write=lines.append))
    assert st.count == len(ds) - 1
    assert len(lines) == 1 and "broken.JPEG" in lines[0] and lines[0].startswith("warning: skipped")


def test_cache_reused_and_invalidated(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "ds", special=False)
    cache = tmp_path / "cache" / "stats.npz"
    first = load_or_compute_stats(ImageFolder(root), cache, size=12)
    assert cache.is_file()

    import minialex.data.stats as stats_mod
    calls = []
    real = stats_mod.compute_stats
    monkeypatch.setattr(stats_mod, "compute_stats", lambda *a, **k: calls.append(1) or real(*a, **k))

    again = load_or_compute_stats(ImageFolder(root), cache, size=12)
    assert calls == [] and np.array_equal(again.mean_image, first.mean_image)

    os.remove(root / "train" / "n001" / "n001_0.JPEG")  # the dataset changed
    changed = load_or_compute_stats(ImageFolder(root), cache, size=12)
    assert calls == [1] and changed.count == first.count - 1

    load_or_compute_stats(ImageFolder(root), cache, size=10)  # other settings
    assert calls == [1, 1]
    assert [p.name for p in cache.parent.iterdir()] == ["stats.npz"]  # no temporary file left
