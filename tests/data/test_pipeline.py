import numpy as np
import pytest

from minialex.data import EvalTransform, Stats, TrainTransform


def fake_stats(size, eig=(100.0, 10.0, 1.0)):
    mean_image = np.random.default_rng(0).uniform(0, 255, (size, size, 3)).astype(np.float32)
    return Stats(mean_image, mean_image.reshape(-1, 3).mean(0), np.array(eig, np.float32),
                 np.eye(3, dtype=np.float32), count=1)


def test_train_transform_shape_and_mean_crop():
    st = fake_stats(16)
    img = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    t = TrainTransform(st, size_crop=12, size_resize=16, lighting_std=0.0, flip=False)
    out = t(img, np.random.default_rng(5))
    assert out.shape == (3, 12, 12) and out.dtype == np.float32 and out.flags.c_contiguous
    # Replaying the same rng: the mean image is cropped at the same place as the image.
    rng = np.random.default_rng(5)
    top, left = int(rng.integers(0, 5)), int(rng.integers(0, 5))
    from minialex.data import center_crop, resize_shorter
    base = center_crop(resize_shorter(img, 16), 16).astype(np.float32)
    expect = (base - st.mean_image)[top:top + 12, left:left + 12].transpose(2, 0, 1)
    assert np.allclose(out, expect)


def test_train_transform_is_a_function_of_the_rng():
    st = fake_stats(16)
    img = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    t = TrainTransform(st, size_crop=12, size_resize=16)
    a = t(img, np.random.default_rng([0, 0, 3]))
    b = t(img, np.random.default_rng([0, 0, 3]))
    c = t(img, np.random.default_rng([0, 1, 3]))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_channel_mean_and_size_mismatch():
    st = fake_stats(16)
    img = np.full((16, 16, 3), 100, np.uint8)
    out = EvalTransform(st, 8, 16, mean="channel")(img)
    assert np.allclose(out, 100 - st.mean_rgb[:, None, None], atol=1e-4)
    with pytest.raises(ValueError, match="mean='channel'"):
        TrainTransform(st, 24, 32)


def test_eval_transform_center_and_ten_crop():
    st = fake_stats(16)
    img = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    centre = EvalTransform(st, 12, 16)(img)
    assert centre.shape == (3, 12, 12)
    ten = EvalTransform(st, 12, 16, ten_crop=True)(img)
    assert ten.shape == (10, 3, 12, 12) and ten.dtype == np.float32 and ten.flags.c_contiguous
    assert np.allclose(ten[4], centre)
    assert np.allclose(ten[9], ten[4][:, :, ::-1])


def test_no_stats_subtracts_nothing():
    img = np.full((8, 8, 3), 9, np.uint8)
    assert np.all(TrainTransform(None, 4, 8)(img, np.random.default_rng(0)) == 9)


def step_by_step(t, img, rng):
    """The training transform written out one step at a time (the original formulation)."""
    from minialex.data import center_crop, pca_lighting, resize_shorter
    r, s = t.size_resize, t.size_crop
    sq = center_crop(resize_shorter(img, r), r)
    top, left = int(rng.integers(0, r - s + 1)), int(rng.integers(0, r - s + 1))
    x = sq[top:top + s, left:left + s].astype(np.float32) - t.mean[top:top + s, left:left + s]
    if rng.random() < 0.5:
        x = x[:, ::-1]
    x = pca_lighting(x, t.eigvals, t.eigvecs, rng, t.lighting_std)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def test_one_pass_equals_step_by_step_bit_for_bit():
    st = fake_stats(16)
    t = TrainTransform(st, size_crop=12, size_resize=16)
    img = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    flips = set()
    for k in range(12):
        d = t.draw(np.random.default_rng([1, k]))
        flips.add(d.flip)
        out = t(img, np.random.default_rng([1, k]))
        assert np.array_equal(out, step_by_step(t, img, np.random.default_rng([1, k])))
    assert flips == {True, False}


def test_eval_one_pass_equals_step_by_step():
    st = fake_stats(16)
    img = np.random.default_rng(4).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    x = img.astype(np.float32) - st.mean_image  # (16, 16, 3)
    from minialex.data import ten_crop
    assert np.array_equal(EvalTransform(st, 12, 16)(img), x[2:14, 2:14].transpose(2, 0, 1))
    ten = EvalTransform(st, 12, 16, ten_crop=True)(img)
    assert np.array_equal(ten, ten_crop(x, 12).transpose(0, 3, 1, 2))
