"""minialex.data.jpeg: simplejpeg and Pillow give the same pixels, fail alike, and the switch picks one.

What is asserted about pixels: the JPEG standard's decoder conformance (ITU-T T.83 / ISO 10918-2)
allows each output sample to be off by one after the IDCT, so the tests assert max |simplejpeg -
Pillow| <= 1 over every image below. Measured here (simplejpeg 1.9.0, Pillow 13.0.0, both
libjpeg-turbo with the exact integer IDCT and smooth upsampling) the difference is 0 everywhere.

Tests that need simplejpeg skip where it is not installed; with MINIALEX_REQUIRE_FASTJPEG=1
(CI installs the [fastjpeg] extra) they fail instead, so a broken install cannot pass as a skip.
"""

import importlib
import io
import os

import numpy as np
import pytest
from PIL import Image

from minialex.data import CorruptImageError, DataError
from minialex.data import jpeg

FASTJPEG = 'pip install -e ".[fastjpeg]"'


def need_simplejpeg():
    """The simplejpeg module, or a skip naming the extra (a failure where MINIALEX_REQUIRE_FASTJPEG=1)."""
    reason = f"needs simplejpeg: {FASTJPEG}"
    if os.environ.get("MINIALEX_REQUIRE_FASTJPEG") == "1":
        try:
            return importlib.import_module("simplejpeg")
        except ImportError:
            pytest.fail(f"MINIALEX_REQUIRE_FASTJPEG=1 but {reason}", pytrace=False)
    return pytest.importorskip("simplejpeg", reason=reason)


@pytest.fixture(autouse=True)
def fresh_choice(monkeypatch):
    """Every test starts with no decoder chosen and no MINIALEX_JPEG_DECODER, and leaves none behind."""
    monkeypatch.delenv(jpeg.ENV, raising=False)
    monkeypatch.setattr(jpeg, "_choice", None)


def photo_like(h, w, seed=0):
    """Smooth colour gradients, an edge and noise: a uint8 (h, w, 3) image that exercises every DCT band."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255.0 / max(w - 1, 1), y * 255.0 / max(h - 1, 1), 128 + 60 * np.sin(x / 3.0)], axis=2)
    img[h // 3:, w // 2:] = 255 - img[h // 3:, w // 2:]  # a sharp edge, where chroma subsampling shows
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def encode(arr, mode="RGB", **kw):
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, "JPEG", **kw)
    return buf.getvalue()


def pillow_pixels(data):
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


# name -> JPEG bytes: colour at each subsampling, odd sizes (partial MCUs), grey, progressive, qualities.
CASES = {
    "420_q90_256": lambda: encode(photo_like(256, 256), quality=90),
    "420_q75_odd_37x53": lambda: encode(photo_like(37, 53), quality=75, subsampling=2),
    "444_q95_odd_61x30": lambda: encode(photo_like(61, 30, 1), quality=95, subsampling=0),
    "422_q90_odd_45x77": lambda: encode(photo_like(45, 77, 2), quality=90, subsampling=1),
    "420_q90_1x1": lambda: encode(photo_like(1, 1, 3), quality=90),
    "420_progressive": lambda: encode(photo_like(64, 48, 4), quality=85, progressive=True),
    "gray_q90_odd_33x19": lambda: encode(photo_like(33, 19, 5), mode="L", quality=90),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_simplejpeg_gives_pillows_pixels(case):
    need_simplejpeg()
    data = CASES[case]()
    reference = pillow_pixels(data)
    jpeg.set_decoder("simplejpeg")
    out = jpeg.decode_rgb(data, case)
    assert out.dtype == np.uint8 and out.shape == reference.shape and out.shape[2] == 3
    assert np.abs(out.astype(int) - reference).max() <= 1  # T.83's tolerance; measured 0


def test_grayscale_comes_out_rgb_with_equal_channels():
    data = CASES["gray_q90_odd_33x19"]()
    for name in ["pillow"] + (["simplejpeg"] if jpeg.simplejpeg is not None else []):
        jpeg.set_decoder(name)
        out = jpeg.decode_rgb(data)
        assert out.shape == (33, 19, 3), name
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all(), name


@pytest.mark.parametrize("choice", ["pillow", "simplejpeg"])
def test_cmyk_and_png_go_to_pillow(choice, monkeypatch):
    if choice == "simplejpeg":
        sj = need_simplejpeg()

        def refuse(*args, **kwargs):
            raise AssertionError("simplejpeg.decode_jpeg called for data it must leave to Pillow")
        monkeypatch.setattr(sj, "decode_jpeg", refuse)
    jpeg.set_decoder(choice)
    cmyk = encode(photo_like(20, 24), mode="CMYK", quality=90)
    np.testing.assert_array_equal(jpeg.decode_rgb(cmyk, "c.jpg"), pillow_pixels(cmyk))
    buf = io.BytesIO()
    Image.fromarray(photo_like(10, 12)[:, :, 0], "L").save(buf, "PNG")
    png = jpeg.decode_rgb(buf.getvalue(), "g.png")
    assert png.shape == (10, 12, 3)
    np.testing.assert_array_equal(png[..., 0], photo_like(10, 12)[:, :, 0])  # PNG is lossless


def corrupt_inputs():
    good = CASES["420_q90_256"]()
    return {
        "empty": b"",
        "text": b"not an image at all" * 4,
        "soi_then_garbage": b"\xff\xd8\xff\xe0" + b"\x13\x37" * 40,
        "truncated": good[: len(good) // 3],
    }


@pytest.mark.parametrize("choice", ["pillow", "simplejpeg"])
@pytest.mark.parametrize("kind", sorted(corrupt_inputs()))
def test_corrupt_data_raises_corrupt_image_error(choice, kind):
    if choice == "simplejpeg":
        need_simplejpeg()
    jpeg.set_decoder(choice)
    with pytest.raises(CorruptImageError) as info:
        jpeg.decode_rgb(corrupt_inputs()[kind], "shard-000/img7.JPEG")
    assert info.value.path == "shard-000/img7.JPEG"


@pytest.mark.parametrize("choice", ["pillow", "simplejpeg"])
def test_decompression_bomb_limit_applies_to_both(choice, monkeypatch):
    if choice == "simplejpeg":
        need_simplejpeg()
    jpeg.set_decoder(choice)
    data = CASES["420_q90_256"]()
    expected = pillow_pixels(data)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 256 * 256 // 3)  # Pillow refuses above twice this
    with pytest.raises(CorruptImageError, match="DecompressionBomb"):
        jpeg.decode_rgb(data, "big.jpg")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 256 * 256 // 2 + 1)  # only Pillow's warning: decoded
    np.testing.assert_array_equal(jpeg.decode_rgb(memoryview(data), "big.jpg"), expected)


def test_recoverable_fault_is_accepted_by_both():
    """Stray bytes before a marker: libjpeg warns, Pillow decodes; simplejpeg's strict mode refuses,
    so decode_rgb hands the file to Pillow and both settings accept it with the same pixels."""
    sj = need_simplejpeg()
    good = CASES["420_q75_odd_37x53"]()
    sos = good.index(b"\xff\xda")
    faulty = good[:sos] + b"\x00\x00" + good[sos:]
    with pytest.raises(ValueError):  # otherwise this test would not test the second try
        sj.decode_jpeg(faulty, colorspace="RGB", strict=True)
    expected = pillow_pixels(faulty)
    for name in ("pillow", "simplejpeg"):
        jpeg.set_decoder(name)
        np.testing.assert_array_equal(jpeg.decode_rgb(faulty, "f.jpg"), expected)


def test_the_switch_picks_the_decoder(monkeypatch):
    sj = need_simplejpeg()
    calls = []
    real = sj.decode_jpeg
    monkeypatch.setattr(sj, "decode_jpeg", lambda *a, **k: calls.append(1) or real(*a, **k))
    data = CASES["420_q90_256"]()

    assert jpeg.decoder_name() == "simplejpeg"  # auto, installed
    jpeg.decode_rgb(data)
    assert len(calls) == 1
    assert jpeg.set_decoder("pillow") == "pillow"
    jpeg.decode_rgb(data)
    assert len(calls) == 1  # Pillow did it
    assert jpeg.set_decoder("simplejpeg") == "simplejpeg"
    jpeg.decode_rgb(data)
    assert len(calls) == 2


@pytest.mark.parametrize("value,expected", [("pillow", "pillow"), (" Pillow ", "pillow"), ("", None)])
def test_environment_variable_chooses(monkeypatch, value, expected):
    monkeypatch.setenv(jpeg.ENV, value)
    auto = "pillow" if jpeg.simplejpeg is None else "simplejpeg"
    assert jpeg.decoder_name() == (expected or auto)


def test_bad_choices_are_data_errors(monkeypatch):
    with pytest.raises(DataError, match="unknown JPEG decoder 'turbo'"):
        jpeg.set_decoder("turbo")
    monkeypatch.setenv(jpeg.ENV, "pil")
    with pytest.raises(DataError, match=jpeg.ENV):
        jpeg.decoder_name()


def test_without_simplejpeg_auto_is_pillow(monkeypatch):
    monkeypatch.setattr(jpeg, "simplejpeg", None)  # as on an install without the extra
    assert jpeg.decoder_name() == "pillow"
    data = CASES["420_q90_256"]()
    np.testing.assert_array_equal(jpeg.decode_rgb(data), pillow_pixels(data))
    with pytest.raises(DataError, match="fastjpeg"):
        jpeg.set_decoder("simplejpeg")
    monkeypatch.setenv(jpeg.ENV, "simplejpeg")
    monkeypatch.setattr(jpeg, "_choice", None)
    with pytest.raises(DataError, match="not installed"):
        jpeg.decoder_name()
