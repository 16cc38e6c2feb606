"""The embedded default dataset: ten classes of procedurally drawn shapes and
textures, written once as real JPEG files in the ImageFolder layout.

Colours, position, size, rotation, clutter and noise are random, so only
the geometry tells the classes apart. Why it is a fair small task, and its
sizes, are in docs/data.md, "The embedded synthetic dataset".
"""

import json
import math
import os
import shutil

import numpy as np
from PIL import Image, ImageDraw

from .errors import DataError

SYNTHETIC_VERSION = 1  # bump when the drawing changes, so old copies are regenerated
MARKER = "minialex-synthetic.json"

# (wnid, name) in label order; the fake wnids sort in this same order.
SYNTHETIC_CLASSES = [
    ("s0000001", "disc"),
    ("s0000002", "ring"),
    ("s0000003", "square"),
    ("s0000004", "triangle"),
    ("s0000005", "cross"),
    ("s0000006", "horizontal stripes"),
    ("s0000007", "vertical stripes"),
    ("s0000008", "diagonal stripes"),
    ("s0000009", "checkerboard"),
    ("s0000010", "dots"),
]


def default_synthetic_root():
    """$MINIALEX_DATA/synthetic, or ~/.cache/minialex/synthetic."""
    base = os.environ.get("MINIALEX_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "minialex")
    return os.path.join(base, "synthetic")


# -- drawing ---------------------------------------------------------------------------

def _two_colours(rng):
    """A random foreground and background that differ clearly in brightness or hue."""
    while True:
        fg, bg = rng.integers(0, 256, size=(2, 3))
        if np.abs(fg.astype(int) - bg.astype(int)).sum() >= 150:
            return tuple(int(v) for v in fg), tuple(int(v) for v in bg)


def _rotated(points, cx, cy, angle):
    """Rotate (x, y) offsets by ``angle`` radians and move them to (cx, cy)."""
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]


def _shape_mask(kind, size, rng):
    """An L-mode mask (255 inside) with one shape at a random place, scale and rotation."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    r = rng.uniform(0.16, 0.34) * size          # outer radius of the shape
    cx, cy = rng.uniform(r, size - r, size=2)   # keep it inside the frame
    angle = rng.uniform(0, 2 * math.pi)
    if kind == "disc":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif kind == "ring":
        inner = r * rng.uniform(0.45, 0.65)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=0)
    elif kind == "square":
        h = r / math.sqrt(2)  # half side, so the corners touch the radius
        draw.polygon(_rotated([(-h, -h), (h, -h), (h, h), (-h, h)], cx, cy, angle), fill=255)
    elif kind == "triangle":
        pts = [(r * math.cos(a), r * math.sin(a)) for a in (0, 2 * math.pi / 3, 4 * math.pi / 3)]
        draw.polygon(_rotated(pts, cx, cy, angle), fill=255)
    elif kind == "cross":
        w = r * rng.uniform(0.22, 0.34)  # half width of each bar
        for bar in ([(-r, -w), (r, -w), (r, w), (-r, w)], [(-w, -r), (w, -r), (w, r), (-w, r)]):
            draw.polygon(_rotated(bar, cx, cy, angle), fill=255)
    else:
        raise ValueError(kind)
    return np.asarray(mask) > 127


def _texture_mask(kind, size, rng):
    """A boolean (size, size) periodic pattern with random period, phase and a jittered angle."""
    period = rng.uniform(7, 14)
    jitter = math.radians(rng.uniform(-12, 12))
    # Orientation is the cue for the three stripe classes, so it is only jittered;
    # the checkerboard and the dots may take any angle.
    angle = {"horizontal stripes": math.pi / 2, "vertical stripes": 0.0,
             "diagonal stripes": rng.choice([math.pi / 4, 3 * math.pi / 4])}.get(
        kind, rng.uniform(0, math.pi))
    angle += jitter
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    u = (x * math.cos(angle) + y * math.sin(angle)) / period + rng.uniform()
    v = (-x * math.sin(angle) + y * math.cos(angle)) / period + rng.uniform()
    if kind.endswith("stripes"):
        return (u % 1.0) < 0.5  # bands across the u axis
    if kind == "checkerboard":
        return (np.floor(u) + np.floor(v)) % 2 == 0
    if kind == "dots":
        du, dv = (u % 1.0) - 0.5, (v % 1.0) - 0.5
        return du * du + dv * dv < rng.uniform(0.18, 0.3) ** 2
    raise ValueError(kind)


def render_sample(label, size=72, rng=None):
    """One image of class ``label`` as a uint8 RGB array (size, size, 3)."""
    rng = np.random.default_rng() if rng is None else rng
    kind = SYNTHETIC_CLASSES[label][1]
    fg, bg = _two_colours(rng)
    if label < 5:
        mask = _shape_mask(kind, size, rng)
    else:
        mask = _texture_mask(kind, size, rng)
    img = np.where(mask[:, :, None], np.array(fg, np.uint8), np.array(bg, np.uint8))  # (S, S, 3)

    # Clutter: a few short strokes of random colour, so "any edge" is not the cue.
    pil = Image.fromarray(img.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(2, 7))):
        x0, y0 = rng.uniform(0, size, size=2)
        a, length = rng.uniform(0, 2 * math.pi), rng.uniform(0.06, 0.16) * size
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        draw.line([(x0, y0), (x0 + length * math.cos(a), y0 + length * math.sin(a))],
                  fill=colour, width=int(rng.integers(1, 3)))

    noisy = np.asarray(pil, np.float32) + rng.normal(0.0, rng.uniform(4, 14), size=(size, size, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


# -- writing ---------------------------------------------------------------------------

def _params(image_size, train_per_class, val_per_class, seed, quality):
    return {"version": SYNTHETIC_VERSION, "image_size": image_size,
            "train_per_class": train_per_class, "val_per_class": val_per_class,
            "seed": seed, "quality": quality, "classes": [w for w, _ in SYNTHETIC_CLASSES]}


def _count_files(folder):
    try:
        return sum(1 for e in os.scandir(folder) if e.is_file())
    except OSError:
        return -1


def _is_complete(root, params):
    """True if ``root`` holds a finished dataset made with exactly ``params``."""
    try:
        with open(os.path.join(root, MARKER), encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return False
    if marker.get("params") != params:
        return False
    counts = {"train": params["train_per_class"], "val": params["val_per_class"]}
    return all(_count_files(os.path.join(root, split, wnid)) == n
               for split, n in counts.items() for wnid, _ in SYNTHETIC_CLASSES)


def _generate(folder, params):
    seed, size, quality = params["seed"], params["image_size"], params["quality"]
    for split_id, (split, n) in enumerate([("train", params["train_per_class"]),
                                           ("val", params["val_per_class"])]):
        for label, (wnid, _) in enumerate(SYNTHETIC_CLASSES):
            out = os.path.join(folder, split, wnid)
            os.makedirs(out)
            for i in range(n):
                # One generator per image: the picture depends only on (seed, split, class, i).
                rng = np.random.default_rng([seed, split_id, label, i])
                img = render_sample(label, size, rng)
                Image.fromarray(img, "RGB").save(os.path.join(out, f"{wnid}_{i:05d}.JPEG"),
                                                 "JPEG", quality=quality)
    with open(os.path.join(folder, "synset_words.txt"), "w", encoding="utf-8") as f:
        f.writelines(f"{wnid} {name}\n" for wnid, name in SYNTHETIC_CLASSES)
    # The marker is written last: its presence means the rest is complete.
    with open(os.path.join(folder, MARKER), "w", encoding="utf-8") as f:
        json.dump({"params": params}, f, indent=1)


def ensure_synthetic_dataset(root=None, image_size=72, train_per_class=500, val_per_class=100,
                             seed=0, quality=90):
    """Create the synthetic dataset under ``root`` unless a complete copy is there; return root.

    Layout: root/train/<wnid>/*.JPEG, root/val/<wnid>/*.JPEG, root/synset_words.txt.
    Generation is deterministic (same arguments and Pillow version -> same
    bytes). It is written into a temporary sibling folder and renamed into
    place, so an interrupted run never leaves a half dataset at ``root``.
    An existing ``root`` is replaced only if it is an older synthetic dataset
    (has the marker file) or empty; anything else raises DataError.
    """
    root = os.path.abspath(os.fspath(root or default_synthetic_root()))
    params = _params(image_size, train_per_class, val_per_class, seed, quality)
    if _is_complete(root, params):
        return root

    if os.path.exists(root):
        if not os.path.isdir(root):
            raise DataError(f"synthetic dataset path {root} exists and is not a folder")
        if os.path.isfile(os.path.join(root, MARKER)):
            shutil.rmtree(root)  # ours, made with other settings or damaged
        elif not os.listdir(root):
            os.rmdir(root)
        else:
            raise DataError(f"{root} exists and is not a minialex synthetic dataset "
                            f"(no {MARKER}); refusing to overwrite it")

    parent = os.path.dirname(root)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(root)}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _generate(tmp, params)
        try:
            os.rename(tmp, root)
        except OSError:
            # Another process finished first; keep its copy if it is complete.
            if not _is_complete(root, params):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
