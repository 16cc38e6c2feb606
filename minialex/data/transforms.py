"""Pure image transforms: resize, crops, flips and the paper's PCA lighting.

Each function takes an image and returns a new one (or a view); none keeps
state, so randomness comes only from the ``rng`` argument. Layout is HWC
throughout (H, W, 3); the switch to CHW happens once, in pipeline.py.
The paper's preprocessing and the lighting formula are in docs/data.md.
"""

import numpy as np
from PIL import Image

# Pillow's bilinear filter, as in the paper's era; it antialiases when shrinking.
_RESAMPLE = Image.Resampling.BILINEAR


def shorter_side_size(width, height, size):
    """(new_width, new_height) that makes the shorter side ``size`` and keeps the aspect ratio."""
    if width <= height:
        return size, max(1, round(height * size / width))
    return max(1, round(width * size / height)), size


def resize_shorter(img, size):
    """Scale ``img`` so its shorter side is ``size`` pixels (bilinear).

    ``img`` may be a PIL image (returned as a PIL image), a uint8 HWC array
    (returned as uint8 HWC) or a float32 HWC array (returned as float32 HWC).
    An image whose shorter side is already ``size`` is returned unchanged.

    For a JPEG that has been opened but not decoded yet, ``Image.draft`` asks
    libjpeg to decode at 1/2, 1/4 or 1/8 scale while both sides stay at least
    the target: the decoder then does most of the shrinking almost for free,
    which pays when the original is much larger than the target.
    """
    if isinstance(img, Image.Image):
        w, h = img.size
        if min(w, h) == size:
            return img
        target = shorter_side_size(w, h, size)
        if img.format in ("JPEG", "MPO"):
            # draft() acts only before the pixels are decoded (afterwards it is a
            # no-op); it may shrink img.size, so the target comes from the
            # original size above.
            img.draft(None, target)
        return img.resize(target, _RESAMPLE)

    arr = np.asarray(img)
    if arr.ndim != 3:
        raise ValueError(f"resize_shorter expects an HWC array, got shape {arr.shape}")
    h, w = arr.shape[:2]
    if min(h, w) == size:
        return arr
    target = shorter_side_size(w, h, size)
    if arr.dtype == np.uint8:
        channels = arr.shape[2]
        mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
        if mode is None:
            raise ValueError(f"resize_shorter: unsupported channel count {channels}")
        pil = Image.fromarray(arr[:, :, 0] if channels == 1 else arr, mode)
        out = np.asarray(pil.resize(target, _RESAMPLE))
        return out.reshape(target[1], target[0], channels)
    # Float images: Pillow's "F" mode holds one float32 channel, so resize each.
    planes = [
        np.asarray(Image.fromarray(np.ascontiguousarray(arr[:, :, c], dtype=np.float32), "F")
                   .resize(target, _RESAMPLE))
        for c in range(arr.shape[2])
    ]
    return np.stack(planes, axis=2)


def resize_crop(img, size_resize, top, left, size):
    """The ``size`` x ``size`` window at (top, left) of the image after
    ``center_crop(resize_shorter(img, size_resize), size_resize)``, as uint8 (size, size, C).

    ``img`` is a PIL image (decoded or only opened) or a uint8 HWC array;
    (top, left) is relative to the size_resize x size_resize square. Instead
    of resizing the whole image and throwing most of it away, this resizes
    only the source region that maps onto the window: Pillow's ``box``
    argument keeps the same scale factor and sample positions, and its filter
    still reads source pixels just outside the box, so the result is the same
    as the three steps up to rounding (at most one grey level, in a small
    fraction of pixels). For a 500 x 375 photo and a 224 window of the
    256 square this is about 40 % less resampling work.
    """
    if not isinstance(img, Image.Image):
        arr = np.asarray(img)
        if arr.ndim != 3 or arr.dtype != np.uint8:
            raise ValueError(f"resize_crop expects a uint8 HWC array, got {arr.dtype} {arr.shape}")
        h, w = arr.shape[:2]
        if min(h, w) == size_resize:  # nothing to resample: a plain slice
            return center_crop(arr, size_resize)[top:top + size, left:left + size]
        img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    w, h = img.size
    if min(w, h) == size_resize:
        cy, cx = (h - size_resize) // 2, (w - size_resize) // 2
        out = np.asarray(img.crop((cx + left, cy + top, cx + left + size, cy + top + size)))
    else:
        tw, th = shorter_side_size(w, h, size_resize)
        sx, sy = w / tw, h / th  # source pixels per output pixel, as in a full resize
        x0 = (tw - size_resize) // 2 + left  # window corner in the resized image
        y0 = (th - size_resize) // 2 + top
        # min(): (x0 + size) * sx can exceed the width by one rounding step at the right edge.
        box = (x0 * sx, y0 * sy, min((x0 + size) * sx, w), min((y0 + size) * sy, h))
        out = np.asarray(img.resize((size, size), _RESAMPLE, box=box))
    return out if out.ndim == 3 else out[:, :, None]  # (size, size, C) uint8


def _check_crop(arr, size):
    h, w = arr.shape[:2]
    if size > h or size > w:
        raise ValueError(f"crop size {size} is larger than the image ({h}x{w})")
    return h, w


def crop(arr, top, left, size):
    """The ``size`` x ``size`` window of an HWC array whose top-left corner is (top, left); a view."""
    return arr[top:top + size, left:left + size]


def center_crop(arr, size):
    """The central ``size`` x ``size`` window (HWC); when the margin is odd the extra pixel goes to the bottom/right."""
    h, w = _check_crop(arr, size)
    return crop(arr, (h - size) // 2, (w - size) // 2, size)


def random_crop_offsets(height, width, size, rng):
    """A uniformly random (top, left) for a ``size`` window: every one of the
    (height - size + 1) * (width - size + 1) positions is equally likely."""
    if size > height or size > width:
        raise ValueError(f"crop size {size} is larger than the image ({height}x{width})")
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    return top, left


def random_crop(arr, size, rng):
    """A uniformly random ``size`` x ``size`` window of an HWC array; a view."""
    h, w = arr.shape[:2]
    top, left = random_crop_offsets(h, w, size, rng)
    return crop(arr, top, left, size)


def hflip(arr):
    """Mirror an HWC array left-right (a view; axis 1 is the width)."""
    return arr[:, ::-1]


def ten_crop(arr, size):
    """The paper's ten test patches of an HWC array, stacked: (10, size, size, C).

    Order: top-left, top-right, bottom-left, bottom-right, centre, then each
    of those five mirrored (patch k + 5 is hflip of patch k). torchvision
    flips the whole image first, which lists the mirrored corners in another
    order; for averaging the ten predictions the order does not matter.
    """
    h, w = _check_crop(arr, size)
    offsets = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size),
               ((h - size) // 2, (w - size) // 2)]
    five = [crop(arr, t, l, size) for t, l in offsets]
    return np.stack(five + [hflip(p) for p in five])


def pca_lighting(arr, eigvals, eigvecs, rng, std=0.1):
    """Add the paper's PCA colour offset to every pixel of one float HWC image.

    offset = eigvecs @ (alpha * eigvals), alpha ~ N(0, std^2) per component,
    drawn once per call (so once per image per epoch). ``eigvals`` (3,) are
    the eigenvalues lambda of the 3x3 RGB covariance of the training pixels
    and ``eigvecs`` (3, 3) holds the matching unit eigenvectors as columns,
    on the same 0..255 scale as ``arr``.

    Paper versus code: the paper writes alpha_i * lambda_i (a variance
    times a unitless alpha), while cuda-convnet2 multiplies alpha by the
    square root of the eigenvalue (a standard deviation), a much smaller
    offset. We follow the paper; pass ``np.sqrt(eigvals)`` to get
    cuda-convnet2's behaviour.
    """
    offset = lighting_offset(eigvals, eigvecs, rng, std)
    # One offset for the whole image: lighting changes the colour cast, not the content.
    return arr + offset.astype(arr.dtype if arr.dtype.kind == "f" else np.float32)


def lighting_offset(eigvals, eigvecs, rng, std=0.1):
    """The (3,) float64 offset of pca_lighting: eigvecs @ (alpha * eigvals), alpha ~ N(0, std^2)."""
    alpha = rng.normal(0.0, std, size=3)
    return np.asarray(eigvecs, np.float64) @ (alpha * np.asarray(eigvals, np.float64))  # (3,)
