"""Pictures people expect from a training run, drawn with Pillow alone (no matplotlib):
the learned conv1 filters as the paper's Figure 3, and per-epoch training curves."""

import numpy as np
from PIL import Image, ImageDraw

from ..backend import to_numpy


def filter_grid(weight, columns=2, per_row=12, scale=4, pad=1):
    """conv1 filters (F, 3, KH, KW) as an RGB image: one block of rows per column (GPU).

    Each filter is min-max normalised on its own (its sign and scale are
    arbitrary), so the picture shows its pattern and colours. The first F/2
    filters (column A) form the top block and the rest the bottom block, as in
    the paper's Figure 3, where one GPU's filters came out colour-agnostic and
    the other's colour-specific.
    """
    w = to_numpy(weight).astype(np.float64)
    f, c, kh, kw = w.shape
    if c != 3:
        raise ValueError(f"filter_grid needs RGB filters (F, 3, KH, KW), got {w.shape}")
    lo = w.reshape(f, -1).min(axis=1)[:, None, None, None]
    hi = w.reshape(f, -1).max(axis=1)[:, None, None, None]
    w = (w - lo) / np.maximum(hi - lo, 1e-12)
    tiles = (w.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)  # (F, KH, KW, 3)
    per_block = f // columns
    rows_per_block = -(-per_block // per_row)
    cell_h, cell_w = kh + pad, kw + pad
    gap = 2 * cell_h // 2  # a blank band between the two columns' blocks
    height = columns * rows_per_block * cell_h + (columns - 1) * gap + pad
    canvas = np.full((height, per_row * cell_w + pad, 3), 255, dtype=np.uint8)
    for i in range(f):
        block, j = divmod(i, per_block)
        r, col = divmod(j, per_row)
        y = pad + block * (rows_per_block * cell_h + gap) + r * cell_h
        x = pad + col * cell_w
        canvas[y:y + kh, x:x + kw] = tiles[i]
    img = Image.fromarray(canvas)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def save_curves(history, path, size=(900, 360)):
    """Training loss and validation top-1/top-5 error per epoch, side by side, as one PNG.

    ``history``: list of dicts with keys epoch, train_loss, val_top1_err, val_top5_err.
    """
    w, h = size
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    panels = [
        ("training loss", [("train_loss", (31, 119, 180))]),
        ("validation error (%)", [("val_top1_err", (214, 39, 40)), ("val_top5_err", (44, 160, 44))]),
    ]
    epochs = [row["epoch"] for row in history]
    for p, (title, series) in enumerate(panels):
        x0, x1, y0, y1 = p * w // 2 + 50, (p + 1) * w // 2 - 15, 30, h - 40
        draw.rectangle([x0, y0, x1, y1], outline=(0, 0, 0))
        draw.text((x0, 8), title, fill=(0, 0, 0))
        values = [row[key] for key, _ in series for row in history if row.get(key) is not None]
        if not values or not epochs:
            continue
        vmin, vmax = min(values + [0.0]), max(values)
        vmax = vmax if vmax > vmin else vmin + 1.0
        emin, emax = min(epochs), max(epochs)
        espan = max(emax - emin, 1)

        def to_xy(e, v):
            return (x0 + (e - emin) / espan * (x1 - x0), y1 - (v - vmin) / (vmax - vmin) * (y1 - y0))

        for frac in (0.0, 0.5, 1.0):
            v = vmin + frac * (vmax - vmin)
            draw.text((x0 - 45, to_xy(emin, v)[1] - 6), f"{v:.3g}", fill=(90, 90, 90))
        draw.text((x0, y1 + 6), f"epoch {emin}", fill=(90, 90, 90))
        draw.text((x1 - 50, y1 + 6), f"epoch {emax}", fill=(90, 90, 90))
        for k, (key, color) in enumerate(series):
            pts = [to_xy(row["epoch"], row[key]) for row in history if row.get(key) is not None]
            if len(pts) > 1:
                draw.line(pts, fill=color, width=2)
            for x, y in pts:
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=color)
            draw.text((x1 - 110, y0 + 6 + 14 * k), key, fill=color)
    img.save(path)
    return img
