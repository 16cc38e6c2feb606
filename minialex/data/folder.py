"""ImageFolder: a dataset of image files laid out as root/<split>/<class>/<file>.

This is the ILSVRC layout (root/train/n01440764/*.JPEG, root/val/...); the
class index is the position of the folder name in sorted order, the
convention torchvision and timm use. Details in docs/data.md, "ImageFolder".
"""

import os
import warnings

import numpy as np
from PIL import Image

from .errors import CorruptImageError, DataError
from .transforms import resize_crop, resize_shorter, shorter_side_size

# Matched case-insensitively, so ImageNet's ".JPEG" counts.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".pbm",
                  ".tif", ".tiff", ".webp", ".gif")

SYNSET_WORDS = "synset_words.txt"


def read_image(path, shorter=None, crop=None):
    """Decode one file to a uint8 RGB array (H, W, 3).

    Grayscale, palette, RGBA (alpha dropped) and CMYK files are converted to
    RGB. With ``shorter`` the image is also resized so its shorter side is
    ``shorter`` pixels, letting libjpeg decode JPEGs at reduced scale first.
    ``crop=(top, left, size)`` (needs ``shorter``) returns only that window
    of the centre ``shorter`` x ``shorter`` square, resampling nothing else
    (transforms.resize_crop); this is what the loader uses.
    Any failure to read or decode raises CorruptImageError naming the file.
    """
    return decode_image(path, path, shorter, crop)


def decode_image(source, name, shorter=None, crop=None):
    """read_image for a path or a binary file object (a tar shard member); ``name`` goes in errors."""
    if crop is not None and shorter is None:
        raise ValueError("crop needs shorter (the side of the square it is cut from)")
    try:
        with warnings.catch_warnings():
            # A huge image is a speed problem, not an error worth a warning per epoch.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                if shorter is not None and img.format in ("JPEG", "MPO"):
                    # Must come before convert(), which decodes the pixels. libjpeg then
                    # scales by 1/2, 1/4 or 1/8 while decoding, keeping both sides at
                    # least the target, so it helps when the image is >= twice the target.
                    img.draft(None, shorter_side_size(*img.size, shorter))
                # Convert before resizing: Pillow resizes palette images with
                # nearest-neighbour only, and CMYK would be filtered in CMYK space.
                rgb = img.convert("RGB") if img.mode != "RGB" else img
                if crop is not None:
                    arr = resize_crop(rgb, shorter, *crop)  # (size, size, 3) uint8
                else:
                    if shorter is not None:
                        rgb = resize_shorter(rgb, shorter)
                    arr = np.asarray(rgb, dtype=np.uint8)  # (H, W, 3) uint8
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        # OSError covers PIL's UnidentifiedImageError and "image file is truncated";
        # SyntaxError/ValueError/EOFError are what some PIL plugins raise on garbage.
        raise CorruptImageError(name, f"{type(exc).__name__}: {exc}") from None
    return arr


def read_synset_words(path):
    """{wnid: first name} from a file of lines "n01440764 tench, Tinca tinca"."""
    names = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            wnid, _, rest = line.partition(" ")
            # The first lemma is the short name; the rest are synonyms.
            names[wnid] = rest.split(",")[0].strip() or wnid
    return names


def _is_image(name):
    return name.lower().endswith(IMG_EXTENSIONS)


class ImageFolder:
    """The images under ``root/split/<class>/`` with integer labels.

    Attributes:
        classes: sorted class folder names (wnids); label = index in this list.
        class_to_idx: {wnid: label}.
        names: human-readable name per class, from root/synset_words.txt when
            it exists, otherwise the wnid itself.
        samples: [(path, label)], files walked in sorted order.

    Pass ``classes=train.classes`` when opening the val split: the constructor
    then checks that val has exactly the same class folders and raises
    DataError naming the difference, so labels can never silently shift.
    ``split=None`` reads class folders directly under ``root``.
    """

    def __init__(self, root, split="train", classes=None, extensions=IMG_EXTENSIONS):
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise DataError(f"dataset root {self.root} does not exist or is not a folder")
        self.split = split
        self.folder = self.root if split is None else os.path.join(self.root, split)
        if not os.path.isdir(self.folder):
            raise DataError(f"split folder {self.folder} does not exist "
                            f"(expected the layout root/{split}/<class>/<image>)")
        ext = tuple(e.lower() for e in extensions)

        found = sorted(e.name for e in os.scandir(self.folder) if e.is_dir())
        if not found:
            raise DataError(f"{self.folder} has no class folders "
                            f"(expected {self.folder}/<class>/<image>)")
        if classes is not None:
            check_same_classes(list(classes), found, self.folder)
        self.classes = found
        self.class_to_idx = {c: i for i, c in enumerate(found)}

        self.samples = []
        empty = []
        for label, cls in enumerate(found):
            n_before = len(self.samples)
            for dirpath, dirnames, filenames in os.walk(os.path.join(self.folder, cls)):
                dirnames.sort()  # os.walk visits subfolders in this list's order
                for name in sorted(filenames):
                    if name.lower().endswith(ext):
                        self.samples.append((os.path.join(dirpath, name), label))
            if len(self.samples) == n_before:
                empty.append(cls)
        if not self.samples:
            raise DataError(f"{self.folder} has class folders but no images "
                            f"with extensions {', '.join(ext)}")
        if empty:
            shown = ", ".join(empty[:10]) + (" ..." if len(empty) > 10 else "")
            raise DataError(f"{self.folder}: {len(empty)} class folder(s) contain no images: {shown}")

        self.targets = np.array([label for _, label in self.samples], dtype=np.int64)
        synset = os.path.join(self.root, SYNSET_WORDS)
        lookup = read_synset_words(synset) if os.path.isfile(synset) else {}
        self.names = [lookup.get(c, c) for c in self.classes]

    def __len__(self):
        return len(self.samples)

    def path(self, i):
        return self.samples[i][0]

    supports_crop = True  # load() takes crop=: the loader's fast path

    def load(self, i, shorter=None, crop=None):
        """(uint8 RGB image, label) of sample ``i``; see read_image for ``shorter`` and ``crop``."""
        path, label = self.samples[i]
        return read_image(path, shorter, crop), label

    def __repr__(self):
        return (f"ImageFolder({self.folder!r}: {len(self.samples)} images, "
                f"{len(self.classes)} classes)")


def check_same_classes(expected, found, where):
    """Raise DataError if the class lists differ, naming what is missing and extra."""
    if list(expected) == list(found):
        return
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    parts = []
    if missing:
        parts.append(f"missing {len(missing)}: {', '.join(missing[:10])}")
    if extra:
        parts.append(f"unexpected {len(extra)}: {', '.join(extra[:10])}")
    if not parts:
        parts.append("same names in a different order")
    raise DataError(f"classes in {where} differ from the expected (training) classes; "
                    + "; ".join(parts))
