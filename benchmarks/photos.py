"""Real photographs for the benchmarks: many ImageNet-sized JPEGs cut from the photos scikit-image ships.

    from benchmarks.photos import ensure_photo_images
    root = ensure_photo_images("~/.cache/minialex/bench-photos", n_images=512, n_classes=8)

bench_loader's textures (render_photo) have the right size and byte count but
not the content of photographs; decoders, resizers and JPEG's error behave
differently on real edges, skies and skin. This module cuts random crops
(position, scale, mirror) out of the colour photographs that come inside the
scikit-image wheel (nothing is downloaded), resizes each to an ImageNet-like
size (bench_loader._photo_size: around 500 x 375, a quarter portrait) and
saves it as a JPEG at PHOTO_QUALITY, chosen so the bytes per pixel match
ImageNet's (why this quality: PHOTO_QUALITY below; measured figures in
docs/data.md, "Preparing the data once", and benchmarks/bench_jpeg.py).
Layout and cache rules are those of bench_loader.ensure_bench_images:
root/train/c<k>/img<i>.JPEG, a marker json holding the parameters, written to
a temporary folder that is renamed into place when complete.
"""

import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PHOTO_VERSION = 1
MARKER = "bench-photos.json"

# ImageNet's train JPEGs average about 110 KB at about 500 x 375 (187,500 pixels), about
# 0.6 bytes per pixel, and the bytes are what the entropy decoding time follows. These
# photographs are smoother than camera pictures: even at their native size, quality 90
# gives only 0.12-0.34 bytes per pixel, and the crops here are partly upscaled. Measured
# on 80 images of this set: quality 90 -> 0.25 B/px (51 KB), 95 -> 0.35 (74 KB),
# 97 -> 0.44 (93 KB), 98 -> 0.50 (105 KB). So 98, the quality that gives ImageNet's byte
# count. The price: the JPEG error in these files is smaller than in ImageNet's, so
# bench_jpeg.py measures "what the original's JPEG already changed" from the
# uncompressed pixels (photo_pixels) at lower qualities too.
PHOTO_QUALITY = 98

# (file in skimage/data, usable box (left, top, right, bottom) or None for all, weight).
# Everyday scenes count double; the three scientific photographs add dark, flat and
# fine-grained content but should not dominate. retina.jpg's box is the square inside
# its round field of view (outside it the picture is black). Left out: the grey,
# binary and drawn images (camera, coins, horse, logo, color chart, chessboards ...).
SOURCES = [
    ("astronaut.png", None, 2),
    ("chelsea.png", None, 2),
    ("coffee.png", None, 2),
    ("motorcycle_left.png", None, 2),
    ("motorcycle_right.png", None, 2),
    ("rocket.jpg", None, 2),
    ("hubble_deep_field.jpg", None, 1),
    ("ihc.png", None, 1),
    ("retina.jpg", (220, 220, 1190, 1190), 1),
]


def _fail(message):
    """One line on stderr and exit code 2, as minialex's commands do, instead of a traceback."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def skimage_data_dir():
    """The folder of images inside the installed scikit-image, or a clear error if it is missing."""
    try:
        import skimage
    except ImportError:
        _fail('the photo benchmark set needs scikit-image: pip install -e ".[bench]"')
    return os.path.join(os.path.dirname(skimage.__file__), "data")


def load_sources():
    """[(RGB PIL image cropped to its usable box, weight)] for every source photo present."""
    data = skimage_data_dir()
    out = []
    for name, box, weight in SOURCES:
        path = os.path.join(data, name)
        if not os.path.isfile(path):  # a slimmed-down install; the rest still make a set
            continue
        with Image.open(path) as img:
            rgb = img.convert("RGB")
        out.append((rgb.crop(box) if box else rgb, weight))
    if not out:
        _fail(f"none of the scikit-image sample photos found in {data}")
    return out


def photo_pixels(sources, seed, i):
    """Image ``i`` of the set before JPEG compression: uint8 (height, width, 3).

    A random source (by weight), a random crop of the output's aspect ratio
    whose sides are 60-100 % of the largest that fits, at a random place,
    mirrored half of the time, resized to the output size with Lanczos (a
    camera's or a photo site's downscaler is at least that sharp).
    """
    # Imported here, not at the top: bench_loader imports this module, and a top-level
    # import each way round would find the other half-initialised.
    from bench_loader import _photo_size

    rng = np.random.default_rng([seed, i])
    w, h = _photo_size(rng)
    weights = np.array([wt for _, wt in sources], float)
    src, _ = sources[int(rng.choice(len(sources), p=weights / weights.sum()))]
    sw, sh = src.size
    cw = min(sw, sh * w / h)  # the largest crop of aspect w:h that fits
    scale = rng.uniform(0.6, 1.0)
    cw *= scale
    ch = cw * h / w
    x0 = rng.uniform(0, sw - cw)
    y0 = rng.uniform(0, sh - ch)
    img = src.resize((w, h), Image.Resampling.LANCZOS, box=(x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(img)  # (h, w, 3) uint8


def ensure_photo_images(root, n_images, n_classes, seed=0, workers=None):
    """Write root/train/c<k>/img<i>.JPEG once; later calls only check the marker."""
    import bench_loader  # here, not at the top: bench_loader imports this module
    params = {"version": PHOTO_VERSION, "images": n_images, "classes": n_classes, "seed": seed,
              "quality": PHOTO_QUALITY}

    def make_pixels():
        sources = load_sources()
        return lambda i: photo_pixels(sources, seed, i)

    return bench_loader.write_image_set(root, MARKER, params, n_images, n_classes, make_pixels,
                                        PHOTO_QUALITY, "benchmark photographs", workers)
