"""The per-sample preprocessing of the paper, for training and for evaluation.

Input: a uint8 RGB image (H, W, 3) of any size. Output: a float32 CHW array
on the 0..255 scale with the training mean subtracted. Each step and its
source in the paper is listed in docs/data.md, "From the paper to the code".
"""

from typing import NamedTuple

import numpy as np

from .transforms import lighting_offset, random_crop_offsets, resize_crop, ten_crop

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


def _mean_chw(mean):
    """The mean as CHW float32, ready to be sliced per crop: (3, R, R) or (3, 1, 1)."""
    if mean.ndim == 3:
        return np.ascontiguousarray(mean.transpose(2, 0, 1))  # (R, R, 3) -> (3, R, R)
    return mean.reshape(3, 1, 1)


class Draw(NamedTuple):
    """One sample's random choices: where to crop, whether to mirror, the lighting offset."""
    crop: tuple          # (top, left, size) of the window inside the R x R square
    flip: bool
    offset: object       # (3,) float32 colour offset, or None without lighting


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

    The loader splits the call in two so that it can decode straight into the
    batch: ``draw(rng)`` makes every random choice first (the crop position is
    known before the image is decoded), and ``finish(window, draw, out)``
    writes the float32 result into a slot of the batch array in one pass.
    """

    def __init__(self, stats, size_crop=224, size_resize=256, mean="image",
                 lighting_std=0.1, flip=True):
        if size_crop > size_resize:
            raise ValueError(f"size_crop {size_crop} is larger than size_resize {size_resize}")
        self.size_crop = size_crop
        self.size_resize = size_resize
        self.decode_size = size_resize  # the loader asks the dataset to decode at this size
        self.output_shape = (3, size_crop, size_crop)
        self.mean = _mean_for(stats, size_resize, mean)
        self._mean_chw = _mean_chw(self.mean)
        # The paper's alpha_i * lambda_i only makes sense with pixels on the 0..1 scale
        # (as fb.resnet.torch reads it): there lambda_1 of ImageNet is about 0.2 and one
        # standard deviation shifts colours by about 2% of the range. Our pixels are
        # 0..255, so the offset is 255 * P (alpha * lambda / 255^2) = P (alpha * lambda / 255).
        self.eigvals = None if stats is None else np.asarray(stats.eigvals, np.float64) / 255.0
        self.eigvecs = None if stats is None else np.asarray(stats.eigvecs)
        self.lighting_std = lighting_std
        self.flip = flip

    def draw(self, rng):
        """All of one sample's random choices, in the documented order."""
        top, left = random_crop_offsets(self.size_resize, self.size_resize, self.size_crop, rng)
        flip = bool(self.flip and rng.random() < 0.5)
        offset = None
        if self.lighting_std and self.eigvals is not None:
            offset = lighting_offset(self.eigvals, self.eigvecs, rng, self.lighting_std).astype(np.float32)
        return Draw((top, left, self.size_crop), flip, offset)

    def finish(self, window, draw, out):
        """``out`` (3, S, S) float32 <- mirror(window - mean at the same place) + offset.

        ``window`` is the uint8 (S, S, 3) crop of the R x R image at draw.crop.
        The uint8 pixels are converted while they are subtracted, HWC -> CHW
        is a strided read, and the mirror is a reversed read, so there is no
        temporary array; the arithmetic (float32(pixel) - mean, then + offset)
        is the one the step-by-step version does, bit for bit.
        """
        top, left, s = draw.crop
        src = window.transpose(2, 0, 1)  # (3, S, S) view of HWC uint8
        mean = self._mean_chw
        if mean.shape[1] > 1:
            mean = mean[:, top:top + s, left:left + s]  # the mean image, cropped with the data
        if draw.flip:
            src, mean = src[:, :, ::-1], mean[:, :, ::-1]
        np.subtract(src, mean, out=out)
        if draw.offset is not None:
            out += draw.offset[:, None, None]  # one colour cast for the whole image
        return out

    def __call__(self, img, rng):
        d = self.draw(rng)
        window = resize_crop(img, self.size_resize, *d.crop)  # (S, S, 3) uint8, as the loader does
        return self.finish(window, d, np.empty(self.output_shape, np.float32))  # (3, S, S) float32

    def __repr__(self):
        return (f"TrainTransform(size_resize={self.size_resize}, size_crop={self.size_crop}, "
                f"lighting_std={self.lighting_std}, flip={self.flip})")


class EvalTransform:
    """Evaluation preprocessing; ``transform(img, rng=None)``.

    Shorter side -> size_resize, centre crop size_resize, subtract the mean,
    then either the centre size_crop patch -> (3, S, S) float32, or with
    ``ten_crop=True`` the paper's ten patches -> (10, 3, S, S) float32
    (order in transforms.ten_crop). No randomness; ``rng`` is ignored.
    Like TrainTransform it offers ``draw`` and ``finish`` to the loader.
    """

    def __init__(self, stats, size_crop=224, size_resize=256, mean="image", ten_crop=False):
        if size_crop > size_resize:
            raise ValueError(f"size_crop {size_crop} is larger than size_resize {size_resize}")
        self.size_crop = size_crop
        self.size_resize = size_resize
        self.decode_size = size_resize
        self.mean = _mean_for(stats, size_resize, mean)
        self._mean_chw = _mean_chw(self.mean)
        self.ten_crop = ten_crop
        s, r = size_crop, size_resize
        self.output_shape = (10, 3, s, s) if ten_crop else (3, s, s)
        # Ten crops need the whole R x R square; one centre crop needs only its window.
        c = (r - s) // 2
        self._draw = Draw((0, 0, r) if ten_crop else (c, c, s), False, None)

    def draw(self, rng=None):
        return self._draw

    def finish(self, window, draw, out):
        """``out`` <- the patch(es) of ``window`` (uint8, at draw.crop) minus the mean."""
        top, left, s = draw.crop
        mean = self._mean_chw
        if mean.shape[1] > 1:
            mean = mean[:, top:top + s, left:left + s]
        if not self.ten_crop:
            return np.subtract(window.transpose(2, 0, 1), mean, out=out)  # (3, S, S)
        # Subtracting over the whole R x R square crops the mean along with every patch.
        x = np.subtract(window, mean.transpose(1, 2, 0), dtype=np.float32)  # (R, R, 3)
        out[...] = ten_crop(x, self.size_crop).transpose(0, 3, 1, 2)  # (10, 3, S, S)
        return out

    def __call__(self, img, rng=None):
        window = resize_crop(img, self.size_resize, *self._draw.crop)
        return self.finish(window, self._draw, np.empty(self.output_shape, np.float32))

    def __repr__(self):
        return (f"EvalTransform(size_resize={self.size_resize}, size_crop={self.size_crop}, "
                f"ten_crop={self.ten_crop})")
