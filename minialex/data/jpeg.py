"""Decoding the prepared JPEGs (ImageNet resized once to 256 x 256) with the fastest decoder at hand.

``decode_rgb(data, name)`` turns the bytes of one image into a uint8 RGB
array (H, W, 3). It uses simplejpeg (libjpeg-turbo's TurboJPEG API, an
optional extra: pip install -e ".[fastjpeg]") when that is installed and not
switched off, and Pillow otherwise. Why: on the prepared 256 x 256 JPEGs
simplejpeg needs a fifth to a half less CPU time per image than Pillow's
open + convert + asarray (benchmarks/bench_jpeg.py, photographs at quality 90,
one thread: 0.31 against 0.40 ms with 4:2:0 chroma, 0.43 against 0.87 ms with
4:4:4), and on such small images the decoder is a large part of the loader's
work, since the random crop is only a slice. Both run libjpeg-turbo with the
exact integer IDCT and smooth chroma upsampling, so they give the same pixels
(measured: identical; the tests allow the +-1 that the JPEG standard, ITU-T
T.83 / ISO 10918-2, permits between decoders). The figures and the choice of
quality are in docs/data.md, "Preparing the data once".

Choosing: ``set_decoder("auto" | "pillow" | "simplejpeg")``, or the
environment variable MINIALEX_JPEG_DECODER with the same values (read at
the first decode, so loader threads see it); ``decoder_name()`` says which
one runs. What goes to Pillow whatever the choice: data that is not a JPEG
(a PNG in a shard), and CMYK/YCCK JPEGs, whose conversion to RGB is Pillow's
(TurboJPEG's rounds differently: almost every pixel one grey level off).
Grayscale JPEGs come out as RGB from both.

Errors: what Pillow cannot decode raises CorruptImageError(name, reason),
as minialex.data.folder does. When simplejpeg rejects data, Pillow gets a
second try before the error is raised, so both settings accept and reject
exactly the same files: simplejpeg (strict mode) refuses files with
recoverable faults, such as stray bytes between markers, that Pillow decodes.
"""

import io
import os

import numpy as np
from PIL import Image

from .errors import DataError
from .folder import decode_image

try:  # optional: the [fastjpeg] extra
    import simplejpeg
except ImportError:
    simplejpeg = None

ENV = "MINIALEX_JPEG_DECODER"
CHOICES = ("auto", "pillow", "simplejpeg")
INSTALL = 'pip install -e ".[fastjpeg]"'

_choice = None  # None: not chosen yet, read ENV at the first use


def _check(choice, where):
    if choice not in CHOICES:
        raise DataError(f"{where}: unknown JPEG decoder {choice!r}; expected one of {', '.join(CHOICES)}")
    if choice == "simplejpeg" and simplejpeg is None:
        raise DataError(f"{where}: the simplejpeg decoder is not installed ({INSTALL})")
    return choice


def set_decoder(choice):
    """Use ``"pillow"``, ``"simplejpeg"`` or ``"auto"`` (simplejpeg if installed) from now on.

    Raises DataError for an unknown name, or for "simplejpeg" when it is not
    installed (a silent fall back would leave benchmarks measuring the wrong
    decoder). Returns the name of the decoder now in use.
    """
    global _choice
    _choice = _check(choice, "set_decoder")
    return decoder_name()


def decoder_name():
    """``"simplejpeg"`` or ``"pillow"``: the decoder decode_rgb uses for JPEG data."""
    global _choice
    if _choice is None:
        _choice = _check(os.environ.get(ENV, "auto").strip().lower() or "auto", ENV)
    if _choice == "auto":
        return "pillow" if simplejpeg is None else "simplejpeg"
    return _choice


def _pillow(data, name):
    # folder.decode_image converts any mode to RGB and turns every decoding failure
    # into CorruptImageError, the same rules as for image files.
    return decode_image(io.BytesIO(data), name)


def decode_rgb(data, name="<bytes>"):
    """The image in ``data`` (bytes of a JPEG, or of any format Pillow reads) as uint8 RGB (H, W, 3).

    ``name`` (a path or a shard member) goes into the CorruptImageError raised
    when the data cannot be decoded.
    """
    if decoder_name() == "pillow" or bytes(data[:2]) != b"\xff\xd8":  # JPEG's SOI marker
        return _pillow(data, name)
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        if colorspace in ("CMYK", "YCCK"):
            return _pillow(data, name)  # Pillow's CMYK -> RGB conversion is the reference
        if Image.MAX_IMAGE_PIXELS and height * width > Image.MAX_IMAGE_PIXELS:
            # Pillow's decompression-bomb limit applies to both settings alike.
            return _pillow(data, name)
        # Defaults fastdct=False, fastupsample=False: the same arithmetic as Pillow.
        arr = simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
    except ValueError:
        # Corrupt, or only a recoverable fault that simplejpeg's strict mode refuses:
        # Pillow decides, so both decoders accept and reject the same files.
        return _pillow(data, name)
    return np.asarray(arr, dtype=np.uint8)  # (H, W, 3)
