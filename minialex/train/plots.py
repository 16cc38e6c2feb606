"""Pictures people expect from a training run, drawn with Pillow alone (no matplotlib):
the learned conv1 filters laid out as the paper's Figure 3, and per-epoch curves of
loss and top-1/top-5 error. What they show is described in docs/training.md, "Outputs"."""

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..atomic import atomic_write
from ..backend import to_numpy

# Line colours: training in blue, validation in orange, validation top-5 in green.
COLOURS = {"train_loss": (31, 119, 180), "val_loss": (255, 127, 14),
           "train_top1_err": (31, 119, 180), "val_top1_err": (255, 127, 14), "val_top5_err": (44, 160, 44)}
INK, GREY, GRID = (0, 0, 0), (90, 90, 90), (225, 225, 225)


def _font(size):
    try:
        return ImageFont.load_default(size=size)  # scalable built-in font (Pillow >= 10.1)
    except TypeError:
        return ImageFont.load_default()


def _text_width(draw, text, font):
    return draw.textlength(text, font=font)


# -- conv1 filters ----------------------------------------------------------------------
def filter_grid(weight, columns=2, per_row=12, min_px=32, gap=4):
    """conv1 filters (F, 3, KH, KW) as an RGB image, one labelled block per column (GPU).

    Each filter is min-max normalised on its own (its sign and scale are
    arbitrary), so the picture shows its pattern and colours, and is enlarged
    with nearest-neighbour sampling to at least ``min_px`` pixels wide. The
    first F/2 filters (column A) form the top block and the rest the bottom
    block, as in the paper's Figure 3, where the filters of one GPU came out
    largely colour-agnostic and those of the other colour-specific.
    """
    w = to_numpy(weight).astype(np.float64)
    f, c, kh, kw = w.shape
    if c != 3:
        raise ValueError(f"filter_grid needs RGB filters (F, 3, KH, KW), got {w.shape}")
    lo = w.reshape(f, -1).min(axis=1)[:, None, None, None]
    hi = w.reshape(f, -1).max(axis=1)[:, None, None, None]
    w = (w - lo) / np.maximum(hi - lo, 1e-12)
    tiles = (w.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)  # (F, KH, KW, 3)
    scale = max(1, math.ceil(min_px / kw))
    tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)  # (F, KH*scale, KW*scale, 3)
    th, tw = tiles.shape[1:3]

    columns = columns if f % columns == 0 else 1
    per_block = f // columns
    per_row = min(per_row, per_block)
    rows = -(-per_block // per_row)
    title_font, label_font = _font(15), _font(13)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title = f"conv1: {f} filters of {kh}x{kw}x3, each stretched to its own range"
    names = [f"column {chr(ord('A') + b)}: filters {b * per_block + 1}-{(b + 1) * per_block}"
             + (f" (the paper's GPU {b + 1})" if columns == 2 else "") for b in range(columns)]
    if columns == 1:
        names = [f"filters 1-{f}"]
    margin, title_h, label_h, block_gap = 10, 26, 22, 14
    grid_w = per_row * tw + (per_row - 1) * gap
    text_w = max([_text_width(probe, title, title_font)] + [_text_width(probe, n, label_font) for n in names])
    width = int(max(grid_w, text_w)) + 2 * margin
    block_h = label_h + rows * th + (rows - 1) * gap
    height = margin + title_h + columns * block_h + (columns - 1) * block_gap + margin
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    tops = [margin + title_h + b * (block_h + block_gap) + label_h for b in range(columns)]
    for i in range(f):
        b, j = divmod(i, per_block)
        r, col = divmod(j, per_row)
        y, x = tops[b] + r * (th + gap), margin + col * (tw + gap)
        canvas[y:y + th, x:x + tw] = tiles[i]
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    draw.text((margin, margin), title, fill=INK, font=title_font)
    for b, name in enumerate(names):
        draw.text((margin, tops[b] - label_h + 3), name, fill=INK, font=label_font)
    return img


# -- curves -----------------------------------------------------------------------------
def nice_step(span, target=5):
    """A round tick spacing (1, 2, 2.5 or 5 times a power of ten) giving about ``target`` ticks over ``span``."""
    raw = max(span, 1e-12) / target
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * power >= raw:
            return m * power
    return 10.0 * power


def value_axis(values, target=6, headroom=0.05, cap=None):
    """(top, step) of a y axis from 0 with round ticks. The top tick clears the largest value by
    ``headroom`` of the axis, except that it stops at ``cap`` (100 for an error in %) when the
    values allow; the plot leaves a band above the top tick too (``_panel``), so even a line at
    the top tick is drawn inside the frame, not on it."""
    vmax = max(max(values), 0.0)
    if vmax <= 0:
        return 1.0, 0.2
    step = nice_step(vmax, target)
    top = math.ceil(vmax / step) * step
    while top - vmax < headroom * top:
        top += step
    if cap is not None and vmax <= cap < top and abs(cap / step - round(cap / step)) < 1e-9:
        top = cap
    return top, step


def _tick_label(v, step):
    """``v`` with just the decimals the step needs: 0.25 steps print 0.50, 20 steps print 40."""
    decimals = 0
    while decimals < 6 and abs(step * 10 ** decimals - round(step * 10 ** decimals)) > 1e-6:
        decimals += 1
    return f"{v:.{decimals}f}"


def _panel(draw, box, title, series, history, fonts, unit="", cap=None):
    """One chart: y from 0 with round ticks and a grid, x = epoch, ``series`` = [(key, label)]."""
    x0, y0, x1, y1 = box
    small, big = fonts
    draw.text((x0, y0 - 30), title, fill=INK, font=big)
    drawn = [(k, lab) for k, lab in series if any(row.get(k) is not None for row in history)]
    # legend on the title line, right-aligned, so it never covers the data
    lx = x1
    for key, label in reversed(drawn):
        lx -= _text_width(draw, label, small) + 30
        draw.line([(lx, y0 - 20), (lx + 18, y0 - 20)], fill=COLOURS[key], width=3)
        draw.text((lx + 22, y0 - 28), label, fill=INK, font=small)
    epochs = [row["epoch"] for row in history]
    values = [row[k] for k, _ in drawn for row in history if row.get(k) is not None]
    top, step = value_axis(values, cap=cap) if values else (1.0, 0.2)
    emax = max(epochs) if epochs else 1
    estep = max(1, int(nice_step(emax, 6)))
    pad = 0.02 * (x1 - x0)

    def to_xy(e, v):
        # bands of 6% above the top tick and 3% below zero: a line at either end of the axis
        # (a flat error of 100%, a top-5 error of 0) is drawn inside the frame, not on it
        return (x0 + pad + e / emax * (x1 - x0 - 2 * pad), y1 - (0.03 + 0.91 * v / top) * (y1 - y0))

    n_ticks = int(round(top / step))
    for i in range(n_ticks + 1):
        v = i * step
        _, y = to_xy(0, v)
        draw.line([(x0, y), (x1, y)], fill=GRID, width=1)
        label = _tick_label(v, step) + unit
        draw.text((x0 - 8 - _text_width(draw, label, small), y - 8), label, fill=GREY, font=small)
    for e in range(0, emax + 1, estep):
        x, _ = to_xy(e, 0)
        draw.line([(x, y0), (x, y1)], fill=GRID, width=1)
        label = str(e)
        draw.text((x - _text_width(draw, label, small) / 2, y1 + 6), label, fill=GREY, font=small)
    draw.text(((x0 + x1) / 2 - 20, y1 + 24), "epoch", fill=GREY, font=small)
    draw.rectangle([x0, y0, x1, y1], outline=INK)
    for key, _ in drawn:
        pts = [to_xy(row["epoch"], row[key]) for row in history if row.get(key) is not None]
        colour = COLOURS[key]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2 if key.startswith("train") else 3, joint="curve")
        for x, y in pts:
            if key == "val_top5_err":
                draw.rectangle([x - 3, y - 3, x + 3, y + 3], fill=colour)
            else:
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)


def save_curves(history, path, size=(1200, 480)):
    """Loss (training and validation) and error (training top-1, validation top-1 and, where
    recorded, top-5) per epoch, in two panels, as one PNG. ``history``: the rows of metrics.csv."""
    w, h = size
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    fonts = (_font(13), _font(16))
    half = w // 2
    _panel(draw, (75, 50, half - 25, h - 55), "loss (cross-entropy)",
           [("train_loss", "train_loss"), ("val_loss", "val_loss")], history, fonts)
    _panel(draw, (half + 75, 50, w - 25, h - 55), "error (%)",
           [("train_top1_err", "train_top1_err"), ("val_top1_err", "val_top1_err"),
            ("val_top5_err", "val_top5_err")], history, fonts, unit="%", cap=100.0)
    atomic_write(path, lambda f: img.save(f, format="PNG"))
    return img
