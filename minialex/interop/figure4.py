"""The paper's Figure 4, both halves, drawn with Pillow alone (as train/plots.py draws Figure 3).

Left, ``draw_card``: each test image with its true label under it and its five most probable
classes as bars whose length is the probability, the true class's bar in red.
Right, ``draw_neighbours``: one row per test image, followed by the six training images whose
last-hidden-layer (fc7) feature vectors lie closest to its own in Euclidean distance.
``training_features`` computes those vectors for a training set once and caches them beside the
checkpoint in a plain .npz (no pickle), keyed by the checkpoint's bytes and the data's file list.
Used by ``predict.py --card`` and examples/neighbours.py; explained in docs/interop.md.
"""

import hashlib
import json
import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..atomic import atomic_write

INK, GREY, LIGHT = (20, 20, 20), (110, 110, 110), (236, 236, 236)
BAR, TRUE_BAR = (70, 120, 190), (205, 40, 30)  # other classes in blue, the true one in red, as the paper
SAME, OTHER = (30, 130, 50), (190, 40, 30)  # a neighbour of the query's own class, or of another
FEATURES_VERSION = 1


def _font(size):
    try:
        return ImageFont.load_default(size=size)  # scalable built-in font (Pillow >= 10.1)
    except TypeError:
        return ImageFont.load_default()


def _fit(draw, text, font, width):
    """``text``, cut with an ellipsis so that it is at most ``width`` pixels wide."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "..."


def _wrap(draw, text, font, width):
    """``text`` broken at spaces into lines at most ``width`` pixels wide (a longer word is cut)."""
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    lines.append(line)
    return [_fit(draw, ln, font, width) for ln in lines]


def _thumb(pixels, side):
    """An RGB uint8 image (H, W, 3) as a side x side Pillow image: enlarged smoothly, shrunk
    with antialiasing; non-square images are centre-cropped first."""
    img = Image.fromarray(np.asarray(pixels, dtype=np.uint8))
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return img.resize((side, side), Image.BICUBIC if s < side else Image.LANCZOS)


# -- left half: an image, its label and its top-5 ------------------------------------------
def draw_card(entries, path=None, title=None, per_row=4, image_px=176):
    """Figure 4 (left). ``entries``: one dict per image with ``image`` (uint8 (H, W, 3), what
    the network saw), ``name`` (a caption, e.g. the file name), ``truth`` (the true class's
    label, or None when unknown) and ``top``: [(probability, label, is_true), ...], most probable
    first. Several images make a grid of ``per_row`` columns. Returns the image; saves it to
    ``path`` when given."""
    if not entries:
        raise ValueError("draw_card needs at least one image")
    small, label_font, head = _font(13), _font(15), _font(17)
    pad, gap = 14, 22
    width_cell = image_px + 2 * 40  # bars wider than the image, as in the paper
    k = max(len(e["top"]) for e in entries)
    row_h = 32  # a class name (and its share) over a bar as long as its probability
    cell_h = 18 + image_px + 8 + 24 + k * row_h
    cols = min(per_row, len(entries))
    rows = math.ceil(len(entries) / cols)
    width = pad * 2 + cols * width_cell + (cols - 1) * gap
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    legend = f"under each image its true class; bars: its {k} most probable classes, the true one in red"
    heading = [(ln, head, INK, 22) for ln in _wrap(probe, title, head, width - 2 * pad)] if title else []
    heading += [(ln, small, GREY, 17) for ln in _wrap(probe, legend, small, width - 2 * pad)] if title else []
    title_h = sum(h for *_, h in heading) + (10 if heading else 0)
    height = pad * 2 + title_h + rows * cell_h + (rows - 1) * gap
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    y = pad
    for text, font, ink, h in heading:
        draw.text((pad, y), text, fill=ink, font=font)
        y += h
    for i, e in enumerate(entries):
        r, c = divmod(i, cols)
        x0 = pad + c * (width_cell + gap)
        y0 = pad + title_h + r * (cell_h + gap)
        draw.text((x0, y0), _fit(draw, e.get("name") or "", small, width_cell), fill=GREY, font=small)
        ix = x0 + (width_cell - image_px) // 2
        img.paste(_thumb(e["image"], image_px), (ix, y0 + 18))
        y = y0 + 18 + image_px + 6
        truth = e.get("truth")
        text = _fit(draw, truth if truth is not None else "(true class unknown)", label_font, width_cell)
        tw = draw.textlength(text, font=label_font)
        draw.text((x0 + (width_cell - tw) / 2, y), text, fill=INK if truth is not None else GREY, font=label_font)
        y += 28
        for prob, label, is_true in e["top"]:
            share = f"{100 * prob:.1f}%"
            sw = draw.textlength(share, font=small)
            ink = TRUE_BAR if is_true else INK
            draw.text((x0, y), _fit(draw, label, small, width_cell - sw - 10), fill=ink, font=small)
            draw.text((x0 + width_cell - sw, y), share, fill=ink, font=small)
            top = y + 17
            draw.rectangle([x0, top, x0 + width_cell, top + 7], fill=LIGHT)
            length = int(round(max(0.0, min(1.0, prob)) * width_cell))
            if length:
                draw.rectangle([x0, top, x0 + length, top + 7], fill=TRUE_BAR if is_true else BAR)
            y += row_h
    if path is not None:
        img.save(path)
    return img


# -- right half: the nearest training images in fc7 space ----------------------------------
def nearest(features, queries, k=6, chunk=65536):
    """Indices (Q, k) of the ``k`` rows of ``features`` (N, F) closest to each row of ``queries``
    (Q, F) in Euclidean distance, nearest first, and those distances (Q, k). Ties keep the lower
    index (a stable sort). Computed as |a|^2 - 2 a.b + |b|^2 in float64, ``chunk`` rows of
    ``features`` at a time, so a large float32 feature matrix is never copied whole."""
    q = np.asarray(queries, np.float64)
    qq = (q * q).sum(1)[:, None]  # (Q, 1)
    best_d = np.empty((len(q), 0))
    best_i = np.empty((len(q), 0), np.int64)
    for start in range(0, len(features), chunk):
        f = np.asarray(features[start:start + chunk], np.float64)  # (n, F)
        d2 = qq - 2.0 * q @ f.T + (f * f).sum(1)[None, :]  # (Q, n)
        np.maximum(d2, 0.0, out=d2)  # rounding can leave -1e-12 where a query equals a row
        # the best so far first: on a tie the lower index, which came earlier, wins
        cand_d = np.concatenate([best_d, d2], axis=1)
        cand_i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + len(f)), d2.shape)], axis=1)
        order = np.argsort(cand_d, axis=1, kind="stable")[:, :k]
        best_d = np.take_along_axis(cand_d, order, axis=1)
        best_i = np.take_along_axis(cand_i, order, axis=1)
    return best_i, np.sqrt(best_d)


def draw_neighbours(rows, path=None, title=None, space="fc7", tile=112):
    """Figure 4 (right). ``rows``: one dict per query with ``image`` (uint8 HWC), ``truth`` (its
    class label or None) and ``neighbours``: [(image, label, distance, same_class), ...];
    ``space`` names the features compared. Returns the image; saves it to ``path`` when given."""
    if not rows:
        raise ValueError("draw_neighbours needs at least one query")
    small, head = _font(12), _font(17)
    k = max(len(r["neighbours"]) for r in rows)
    pad, gap, sep, caption = 14, 8, 26, 34
    width = pad * 2 + tile + sep + k * tile + (k - 1) * gap
    nx = pad + tile + sep
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    titles = _wrap(probe, title, head, width - 2 * pad) if title else []
    legend = _wrap(probe, f"the {k} training images nearest in {space} feature space (Euclidean distance d); "
                          "green: the test image's class", small, width - nx - pad)
    header = 24 * len(titles) + 16 * len(legend) + 12
    height = pad * 2 + header + len(rows) * (tile + caption) + (len(rows) - 1) * gap
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    y = pad
    for line in titles:
        draw.text((pad, y), line, fill=INK, font=head)
        y += 24
    draw.text((pad, y), "test image", fill=GREY, font=small)
    for line in legend:
        draw.text((nx, y), line, fill=GREY, font=small)
        y += 16
    y = pad + header
    for r in rows:
        img.paste(_thumb(r["image"], tile), (pad, y))
        truth = r.get("truth")
        draw.text((pad, y + tile + 3), _fit(draw, truth if truth is not None else "(class unknown)", small, tile),
                  fill=INK if truth is not None else GREY, font=small)
        for j, (pixels, label, dist, same) in enumerate(r["neighbours"]):
            x = nx + j * (tile + gap)
            img.paste(_thumb(pixels, tile), (x, y))
            colour = SAME if same else (OTHER if truth is not None else INK)
            draw.text((x, y + tile + 3), _fit(draw, label, small, tile), fill=colour, font=small)
            draw.text((x, y + tile + 17), f"d = {dist:.3g}", fill=GREY, font=small)
        draw.line([(pad + tile + sep // 2, y), (pad + tile + sep // 2, y + tile)], fill=(200, 200, 200), width=1)
        y += tile + caption + gap
    if path is not None:
        img.save(path)
    return img


# -- the training set's features, computed once ---------------------------------------------
def file_digest(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def features_key(weights_path, data_fingerprint, layer, transform):
    """What the cached features depend on: the weights file's bytes, the data (its file list and
    sizes), the layer, and the preprocessing."""
    text = json.dumps({"version": FEATURES_VERSION, "weights": file_digest(weights_path), "data": data_fingerprint,
                       "layer": layer, "transform": repr(transform)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def training_features(model, loader, cache_path, key, layer=None, progress=True):
    """(features (N, F) float32, labels (N,) int64) of every sample of ``loader`` (in order, no
    shuffling), from ``model.features(images, layer)`` in evaluation mode (``layer`` None: fc7's
    activation, "relu7" in the paper's net, "tanh7" with --activation tanh); read from
    ``cache_path`` when it holds the same ``key``, else computed (with a progress bar) and written
    there. Returns also whether the cache was used."""
    if os.path.isfile(cache_path):
        try:
            with np.load(cache_path, allow_pickle=False) as data:
                if bytes(data["key"]).decode() == key:
                    return data["features"], data["labels"], True
        except (OSError, ValueError, KeyError):
            pass  # unreadable or another layout: compute afresh
    from tqdm import tqdm
    from .. import backend
    model.eval()
    feats, labels = [], []
    bar = tqdm(total=loader.num_samples, desc=f"{layer or 'fc7'} features of the training images", unit="img",
               disable=not progress, leave=False)
    for images, y in loader.epoch_iter(0):
        feats.append(backend.to_numpy(model.features(images, upto=layer)).reshape(len(images), -1).astype(np.float32))
        labels.append(np.asarray(y, np.int64))
        bar.update(len(images))
    bar.close()
    features, labels = np.concatenate(feats), np.concatenate(labels)
    # all or nothing (minialex/atomic.py): a cut-off cache would be read back next time
    atomic_write(cache_path, lambda f: np.savez(f, features=features, labels=labels,
                                                key=np.frombuffer(key.encode(), np.uint8)))
    return features, labels, False
