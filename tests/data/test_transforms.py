import numpy as np
import pytest
from PIL import Image

from minialex.data import (center_crop, hflip, pca_lighting, random_crop, random_crop_offsets,
                           resize_shorter, ten_crop)


def coord_image(h, w):
    """Pixel (y, x) holds (y, x, 7): crops can be located exactly."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([y, x, np.full_like(y, 7)], axis=2).astype(np.uint8)


@pytest.mark.parametrize("h,w,expect", [(30, 60, (16, 32)), (60, 30, (32, 16)), (40, 40, (16, 16))])
def test_resize_shorter_shapes_and_kinds(h, w, expect):
    arr = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = resize_shorter(arr, 16)
    assert out.shape == expect + (3,) and out.dtype == np.uint8
    f = resize_shorter(arr.astype(np.float32), 16)
    assert f.shape == expect + (3,) and f.dtype == np.float32
    assert np.abs(f - out).max() <= 1.0  # same bilinear filter, only rounding differs
    pil = resize_shorter(Image.fromarray(arr), 16)
    assert isinstance(pil, Image.Image) and pil.size == expect[::-1]
    assert resize_shorter(arr, min(h, w)) is arr


def test_center_crop():
    img = coord_image(10, 13)
    c = center_crop(img, 4)
    assert c.shape == (4, 4, 3)
    assert (c[0, 0, 0], c[0, 0, 1]) == (3, 4)
    with pytest.raises(ValueError, match="larger"):
        center_crop(img, 11)


def test_random_crop_in_bounds_and_covers_all_positions():
    img = coord_image(8, 10)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(2000):
        c = random_crop(img, 5, rng)
        assert c.shape == (5, 5, 3)
        top, left = int(c[0, 0, 0]), int(c[0, 0, 1])
        assert 0 <= top <= 3 and 0 <= left <= 5
        seen.add((top, left))
    assert len(seen) == 4 * 6  # every position was drawn
    assert random_crop_offsets(5, 5, 5, rng) == (0, 0)


def test_hflip():
    img = coord_image(3, 4)
    f = hflip(img)
    assert np.array_equal(f[:, 0], img[:, 3]) and np.array_equal(hflip(f), img)


def test_ten_crop_positions():
    img = coord_image(9, 12)
    crops = ten_crop(img, 5)
    assert crops.shape == (10, 5, 5, 3)
    corners = [(c[0, 0, 0], c[0, 0, 1]) for c in crops[:5]]
    assert corners == [(0, 0), (0, 7), (4, 0), (4, 7), (2, 3)]
    for k in range(5):
        assert np.array_equal(crops[k + 5], crops[k][:, ::-1])


def test_pca_lighting_covariance():
    # A rotation as eigenvectors and distinct eigenvalues, on the 0..255 scale.
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    lam = np.array([300.0, 40.0, 5.0])
    img = np.zeros((4, 5, 3), np.float32)
    rng = np.random.default_rng(2)
    offsets = []
    for _ in range(20000):
        out = pca_lighting(img, lam, q, rng, std=0.1)
        assert out.dtype == np.float32
        # the same offset on every pixel of one image
        assert np.allclose(out, out[0, 0], atol=1e-5)
        offsets.append(out[0, 0])
    cov = np.cov(np.array(offsets, np.float64).T)
    expect = q @ np.diag((0.1 * lam) ** 2) @ q.T
    assert np.allclose(cov, expect, atol=0.05 * (0.1 * lam[0]) ** 2)
    # and in the eigenbasis the variances are (0.1 * lambda)^2
    var = np.diag(q.T @ cov @ q)
    assert np.allclose(var, (0.1 * lam) ** 2, rtol=0.05)


def test_pca_lighting_does_not_modify_input():
    img = np.ones((2, 2, 3), np.float32)
    pca_lighting(img, np.ones(3), np.eye(3), np.random.default_rng(0))
    assert np.all(img == 1)


@pytest.mark.parametrize("h, w, r, s", [(30, 40, 16, 12), (41, 23, 16, 16), (12, 20, 16, 10),
                                        (16, 25, 16, 8), (300, 200, 64, 56)])
def test_resize_crop_is_resize_then_crops(h, w, r, s):
    from minialex.data.transforms import resize_crop
    img = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    square = center_crop(resize_shorter(img, r), r).astype(int)
    for top, left in [(0, 0), (r - s, r - s), (0, r - s), ((r - s) // 2, 1 % (r - s + 1))]:
        got = resize_crop(img, r, top, left, s)
        assert got.shape == (s, s, 3) and got.dtype == np.uint8
        # Same sample positions and filter; only the rounding of Pillow's fixed-point
        # weights can differ, by one grey level in a few pixels.
        diff = np.abs(got - square[top:top + s, left:left + s])
        assert diff.max() <= 1 and (diff > 0).mean() < 0.3
        assert np.array_equal(resize_crop(Image.fromarray(img), r, top, left, s), got)
