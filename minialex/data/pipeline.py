"""The per-sample preprocessing of the paper, for training and for evaluation.

Input: a uint8 RGB image (H, W, 3) of any size. Output: a float32 CHW array
on the 0..255 scale with the training mean subtracted. Each step and its
source in the paper is listed in docs/data.md, "From the paper to the code".
"""

import numpy as np

from .transforms import (center_crop, crop, hflip, pca_lighting, random_crop_offsets,
                         resize_shorter, ten_crop)

MEAN_MODES = ("image", "channel")


def _mean_for(stats, size_resize, mean):
    """The array subtracted from a size_resize x size_resize image: (S, S, 3) or (3,)."""
    if mean not in MEAN_MODES:
        raise ValueError(f"mean must be one of {MEAN_MODES}, got {mean!r}")
    if stats is None:
        return np.zeros(3, np.float32)
    if mean == "channel":
        return np.asarray(stats.mean_rgb, np.float32)
    mean_image = np.asarray(stats.mean_image, np.float32)
    if mean_image.shape != (size_resize, size_resize, 3):
        raise ValueError(
            f"the mean image is {mean_image.shape[0]}x{mean_image.shape[1]} but images are "
            f"preprocessed to {size_resize}x{size_resize}; compute the stats with "
            f"size={size_resize} or use mean='channel'")
    return mean_image


def _to_chw(arr):
    return np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)  # HWC -> CHW


class TrainTransform:
    """Training preprocessing; ``transform(img, rng) -> (3, size_crop, size_crop) float32``.

    Steps: shorter side -> size_resize; centre crop size_resize (the paper's
    256 x 256 image); random size_crop window, taken from the image and from
    the mean image at the same place; subtract; mirror with probability 1/2;
    PCA lighting (skipped when ``lighting_std`` is 0 or stats are None);
    HWC -> CHW. The random draws, in order: crop top, crop left, flip, the
    three lighting alphas, all from ``rng``.

    ``mean='image'`` subtracts the per-pixel mean image (paper, cuda-convnet2);
    ``mean='channel'`` subtracts the three channel means. ``stats=None``
    subtracts nothing (useful before the stats exist).
    """

    def __init__(self, stats, size_crop=224, size_resize=256, mean="image",
                 lighting_std=0.1, flip=True):
        if size_crop > size_resize:
            raise ValueError(f"size_crop {size_crop} is larger than size_resize {size_resize}")
        self.size_crop = size_crop
        self.size_resize = size_resize
        self.decode_size = size_resize  # the loader asks the dataset to decode at this size
        self.mean = _mean_for(stats, size_resize, mean)
        # The paper's alpha_i * lambda_i only makes sense with pixels on the 0..1 scale
        # (as fb.resnet.torch reads it): there lambda_1 of ImageNet is about 0.2 and one
        # standard deviation shifts colours by about 2% of the range. Our pixels are
        # 0..255, so the offset is 255 * P (alpha * lambda / 255^2) = P (alpha * lambda / 255).
        self.eigvals = None if stats is None else np.asarray(stats.eigvals, np.float64) / 255.0
        self.eigvecs = None if stats is None else np.asarray(stats.eigvecs)
        self.lighting_std = lighting_std
        self.flip = flip

    def __call__(self, img, rng):
        s = self.size_crop
        img = center_crop(resize_shorter(img, self.size_resize), self.size_resize)  # (R, R, 3) uint8
        top, left = random_crop_offsets(self.size_resize, self.size_resize, s, rng)
        mean = crop(self.mean, top, left, s) if self.mean.ndim == 3 else self.mean
        x = crop(img, top, left, s).astype(np.float32) - mean  # (S, S, 3) float32
        if self.flip and rng.random() < 0.5:
            x = hflip(x)
        if self.lighting_std and self.eigvals is not None:
            x = pca_lighting(x, self.eigvals, self.eigvecs, rng, self.lighting_std)
        return _to_chw(x)  # (3, S, S) float32

    def __repr__(self):
        return (f"TrainTransform(size_resize={self.size_resize}, size_crop={self.size_crop}, "
                f"lighting_std={self.lighting_std}, flip={self.flip})")


class EvalTransform:
    """Evaluation preprocessing; ``transform(img, rng=None)``.

    Shorter side -> size_resize, centre crop size_resize, subtract the mean,
    then either the centre size_crop patch -> (3, S, S) float32, or with
    ``ten_crop=True`` the paper's ten patches -> (10, 3, S, S) float32
    (order in transforms.ten_crop). No randomness; ``rng`` is ignored.
    """

    def __init__(self, stats, size_crop=224, size_resize=256, mean="image", ten_crop=False):
        if size_crop > size_resize:
            raise ValueError(f"size_crop {size_crop} is larger than size_resize {size_resize}")
        self.size_crop = size_crop
        self.size_resize = size_resize
        self.decode_size = size_resize
        self.mean = _mean_for(stats, size_resize, mean)
        self.ten_crop = ten_crop

    def __call__(self, img, rng=None):
        img = center_crop(resize_shorter(img, self.size_resize), self.size_resize)
        # Subtracting over the whole R x R image crops the mean along with every patch.
        x = img.astype(np.float32) - self.mean  # (R, R, 3) float32
        if self.ten_crop:
            patches = ten_crop(x, self.size_crop)  # (10, S, S, 3)
            return np.ascontiguousarray(patches.transpose(0, 3, 1, 2))  # (10, 3, S, S)
        return _to_chw(center_crop(x, self.size_crop))  # (3, S, S)

    def __repr__(self):
        return (f"EvalTransform(size_resize={self.size_resize}, size_crop={self.size_crop}, "
                f"ten_crop={self.ten_crop})")
