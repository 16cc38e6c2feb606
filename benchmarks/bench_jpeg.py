"""What storing ImageNet as prepared 256 x 256 JPEGs costs in accuracy and buys in speed.

    python benchmarks/bench_jpeg.py            # 160 images of each set, 3 repeats: a few minutes
    python benchmarks/bench_jpeg.py --quick    # 40 images, 2 repeats: under a minute

Run on two image sets: bench_loader's generated textures and photos.py's real
photographs (both cached under $MINIALEX_DATA or ~/.cache/minialex, 512
images each; the first --images of them are used). For each it prints:

(a) the quality sweep for the prepared image (decode_image(path, path,
    shorter=256) then center_crop 256, re-encoded by Pillow): KB per image,
    Pillow decode time, and the error against the uncompressed 256 x 256
    image (PSNR, mean, 99.9th percentile and max absolute error in grey
    levels); next to it the colour shift PCA lighting applies to every
    training image (std of TrainTransform's offset, from the set's stats) and
    what the original's own JPEG compression already changed in that 256 x 256
    image (measured against the pixels before compression, which both sets
    can regenerate), at the set's quality and at 90 and 75;
(b) draft fidelity: decode_image with JPEG draft mode against a full-size
    decode and the same bilinear resize, at 256, 128 and 64 pixels, with the
    time each takes and how often draft engages at all;
(c) decoders on the prepared JPEGs: Pillow against simplejpeg
    (libjpeg-turbo's TurboJPEG API), time per image and pixel differences.

Times are CPU seconds of the measuring thread (time.thread_time), one image
after another on one thread, the best of --repeats passes, the cases of one
table taking turns. They move much less than wall-clock times when other
programs share the machine, but still by 10-30 % between runs on a busy one:
compare figures within a table. Conclusions and this machine's figures are
in docs/data.md, "Preparing the data once".
"""

import argparse
import io
import os
import re
import sys
import time

import numpy as np
from PIL import Image, features

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from minialex.data import ImageFolder, TrainTransform, decode_image, load_or_compute_stats  # noqa: E402
from minialex.data import transforms as T  # noqa: E402

import bench_loader  # noqa: E402
import photos  # noqa: E402

try:
    import simplejpeg
except ImportError:  # section (c) then reports Pillow alone
    simplejpeg = None

# The sweep of (a): (quality, subsampling) with Pillow's subsampling codes, 2 = 4:2:0
# (Pillow's default at every quality), 0 = 4:4:4.
SWEEP = [(75, 2), (80, 2), (85, 2), (90, 2), (95, 2), (90, 0), (95, 0)]
SUBSAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}
TARGETS = (256, 128, 64)


# -- error statistics over many images -------------------------------------------------
class AbsError:
    """Pooled |a - b| of uint8 images, kept as a histogram of the 256 possible values."""

    def __init__(self):
        self.hist = np.zeros(256, np.int64)

    def add(self, a, b):
        d = np.abs(a.astype(np.int16) - b.astype(np.int16)).ravel()
        self.hist += np.bincount(d, minlength=256)
        return self

    def summary(self):
        """(PSNR dB, mean abs, 99.9th percentile abs, max abs) in grey levels."""
        n = self.hist.sum()
        v = np.arange(256)
        mse = (self.hist * v * v).sum() / n
        psnr = float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
        cdf = np.cumsum(self.hist) / n
        p999 = int(np.searchsorted(cdf, 0.999))  # the smallest value with 99.9 % at or below it
        return psnr, (self.hist * v).sum() / n, p999, int(np.nonzero(self.hist)[0].max())


def fmt_err(summary):
    psnr, mean, p999, mx = summary
    return f"{psnr:6.1f} | {mean:5.2f} | {p999:5d} | {mx:4d}"


# -- helpers -----------------------------------------------------------------------------
def best_times(cases, repeats):
    """{key: best over ``repeats`` passes of the mean thread CPU seconds per item of fn(item)}.

    ``cases`` is {key: (fn, items)}. The passes take turns (one of each case,
    then again), so a stretch of heavy load on the shared machine slows every
    case alike instead of one of them.
    """
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(repeats):
        for key, (fn, items) in cases.items():
            t0 = time.thread_time()
            for it in items:
                fn(it)
            best[key] = min(best[key], (time.thread_time() - t0) / len(items))
    return best


def encode(arr, quality, subsampling=2):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality, subsampling=subsampling)
    return buf.getvalue()


def pillow_decode(data):
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB") if img.mode != "RGB" else img)


def full_decode_resize(path, target):
    """Draft off: decode at full size, then the same bilinear resize_shorter, centre crop."""
    with Image.open(path) as img:
        img.load()  # decoded now, at full size: resize_shorter's draft() can change nothing after this
        rgb = img.convert("RGB") if img.mode != "RGB" else img
        return T.center_crop(np.asarray(T.resize_shorter(rgb, target)), target)


def draft2x_decode_resize(path, target):
    """The middle way: draft only down to twice the target, so the bilinear filter does the last >= 2x."""
    with Image.open(path) as img:
        img.draft(None, T.shorter_side_size(*img.size, 2 * target))
        img.load()  # so that resize_shorter's own draft() changes nothing
        rgb = img.convert("RGB") if img.mode != "RGB" else img
        return T.center_crop(np.asarray(T.resize_shorter(rgb, target)), target)


def draft_decode(path, target):
    return T.center_crop(decode_image(path, path, shorter=target), target)


def draft_engages(path, target):
    """Whether draft mode would decode this file at a reduced scale for ``target``."""
    with Image.open(path) as img:
        size = img.size
        img.draft(None, T.shorter_side_size(*size, target))
        return img.size != size


class ImageSet:
    """One of the two benchmark sets: JPEG paths and a way to get each file's pixels before JPEG."""

    def __init__(self, name, root, quality, pixels):
        self.name, self.root, self.quality, self._pixels = name, root, quality, pixels
        self.folder = ImageFolder(root, "train")

    def paths(self, n):
        # Spread over the classes (files are sorted by class, then name).
        idx = np.linspace(0, len(self.folder) - 1, min(n, len(self.folder))).astype(int)
        return [self.folder.samples[i][0] for i in idx]

    def uncompressed(self, path):
        i = int(re.search(r"img(\d+)\.JPEG$", path).group(1))
        return self._pixels(i)


def texture_pixels(i, seed=0):
    """bench_loader's image ``i`` before JPEG: the same random draws as ensure_bench_images."""
    rng = np.random.default_rng([seed, i])
    w, h = bench_loader._photo_size(rng)
    return bench_loader.render_photo(rng, w, h)


def open_sets(base, n_total, n_classes):
    textures = bench_loader.ensure_bench_images(os.path.join(base, "bench-loader"), n_total, n_classes)
    photo_root = photos.ensure_photo_images(os.path.join(base, "bench-photos"), n_total, n_classes)
    sources = photos.load_sources()
    return [ImageSet("textures", textures, 90, texture_pixels),
            ImageSet("photos", photo_root, photos.PHOTO_QUALITY,
                     lambda i: photos.photo_pixels(sources, 0, i))]


def lighting_std(image_set):
    """Per-channel std (grey levels) of TrainTransform's PCA lighting offset, from 20,000 draws."""
    stats = load_or_compute_stats(image_set.folder, os.path.join(image_set.root, "stats-256.npz"),
                                  size=256, max_images=128)
    tf = TrainTransform(stats)
    rng = np.random.default_rng(0)
    offsets = np.array([tf.draw(rng).offset for _ in range(20000)], np.float64)  # (20000, 3)
    return offsets.std(axis=0)


# -- the three sections ------------------------------------------------------------------
def section_quality(s, paths, repeats):
    print(f"\n### (a) {s.name}: quality of the prepared 256 x 256 JPEG ({len(paths)} images)\n")
    ref = [draft_decode(p, 256) for p in paths]  # the uncompressed prepared image
    truth = [T.center_crop(T.resize_shorter(s.uncompressed(p), 256), 256) for p in paths]

    # What compressing the original already did, seen after the resize to 256.
    print("what the original's JPEG already changed (vs the pixels before compression):\n")
    print("| original | KB | at full size: PSNR / mean abs | after resize to 256: PSNR | mean | p99.9 | max |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for q in sorted({s.quality, 90, 75}, reverse=True):
        full, at256, kb = AbsError(), AbsError(), 0.0
        for p, t in zip(paths, truth):
            raw = s.uncompressed(p)
            data = open(p, "rb").read() if q == s.quality else encode(raw, q)
            kb += len(data) / 1e3
            dec = pillow_decode(data)
            full.add(dec, raw)
            at256.add(T.center_crop(T.resize_shorter(dec, 256), 256), t)
        fp, fm, _, _ = full.summary()
        tag = f"q{q} 4:2:0" + (" (the files)" if q == s.quality else "")
        print(f"| {tag} | {kb / len(paths):.0f} | {fp:.1f} dB / {fm:.2f} | {fmt_err(at256.summary())} |")

    light = lighting_std(s)
    print(f"\nPCA lighting (TrainTransform, lighting_std 0.1): offset std per channel R, G, B = "
          f"{light[0]:.2f}, {light[1]:.2f}, {light[2]:.2f} grey levels "
          f"(RMS length {np.sqrt((light ** 2).sum()):.2f}), one shift for the whole image\n")

    print("| prepared | KB / image | Pillow decode ms | PSNR dB | mean abs | p99.9 abs | max abs |"
          " mean abs / lighting std | colour shift RMS |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    blobs_of = {qs: [encode(r, *qs) for r in ref] for qs in SWEEP}
    times = best_times({qs: (pillow_decode, blobs) for qs, blobs in blobs_of.items()}, repeats)
    for q, sub in SWEEP:
        blobs = blobs_of[(q, sub)]
        err, shifts = AbsError(), []
        for b, r in zip(blobs, ref):
            dec = pillow_decode(b)
            err.add(dec, r)
            # The part of the error that is a colour cast of the whole image, like lighting's.
            shifts.append(dec.mean(axis=(0, 1)) - r.mean(axis=(0, 1)))
        ms = times[(q, sub)] * 1e3
        kb = np.mean([len(b) for b in blobs]) / 1e3
        summ = err.summary()
        shift = float(np.sqrt(np.mean(np.square(shifts))))
        print(f"| q{q} {SUBSAMPLING[sub]} | {kb:.1f} | {ms:.2f} | {fmt_err(summ)} | "
              f"{summ[1] / light.mean():.2f} | {shift:.3f} |")
    print("\n(error: against the uncompressed 256 x 256 image, pooled over all pixels and channels;"
          " p99.9: 99.9 % of |errors| are at most this;\n colour shift: RMS over images and channels"
          " of the change in the image's mean colour, to compare with the lighting std)")


def section_draft(s, paths, repeats):
    print(f"\n### (b) {s.name}: draft mode on vs off ({len(paths)} images)\n")
    print("| target | draft engages | PSNR dB | mean abs | p99.9 abs | max abs | ms draft on | ms draft 2x |"
          " ms draft off | mean abs vs uncompressed: on / 2x / off |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    variants = {"on": draft_decode, "2x": draft2x_decode_resize, "off": full_decode_resize}
    for target in TARGETS:
        engaged = sum(draft_engages(p, target) for p in paths)
        err = AbsError()
        vs_truth = {k: AbsError() for k in variants}
        for p in paths:
            out = {k: fn(p, target) for k, fn in variants.items()}
            truth = T.center_crop(T.resize_shorter(s.uncompressed(p), target), target)
            if draft_engages(p, target):  # elsewhere on and off are the same pixels
                err.add(out["on"], out["off"])
            for k in variants:
                vs_truth[k].add(out[k], truth)
        times = best_times({k: ((lambda p, fn=fn: fn(p, target)), paths) for k, fn in variants.items()},
                           repeats)
        diff = fmt_err(err.summary()) if engaged else "identical |  |  | "  # no image where it engages
        print(f"| {target} | {engaged}/{len(paths)} | {diff} | "
              + " | ".join(f"{times[k] * 1e3:.2f}" for k in variants) + " | "
              + " / ".join(f"{vs_truth[k].summary()[1]:.2f}" for k in variants) + " |")
    print("\n(draft engages only where the shorter side is at least twice the target; PSNR to max abs:"
          " on vs off over the images where it engages;\n 2x: draft only down to twice the target, then the"
          " bilinear resize; times include reading the file from the page cache,\n decoding, resizing and"
          " cropping, over all images; the last column: each against the same bilinear resize of the\n"
          " pixels before JPEG compression, all images)")


def section_decoders(s, paths, quality, subsampling, repeats):
    print(f"\n### (c) {s.name}: decoders on prepared 256 x 256 JPEGs, q{quality} "
          f"{SUBSAMPLING[subsampling]} ({len(paths)} images)\n")
    blobs = [encode(draft_decode(p, 256), quality, subsampling) for p in paths]
    base = [pillow_decode(b) for b in blobs]
    decoders = [("Pillow (open + convert + asarray)", pillow_decode)]
    if simplejpeg is not None:
        decoders.append(("simplejpeg.decode_jpeg (exact: ISLOW DCT, fancy upsampling)",
                         lambda b: simplejpeg.decode_jpeg(b, colorspace="RGB")))
        decoders.append(("simplejpeg, fastdct + fastupsample (inexact)",
                         lambda b: simplejpeg.decode_jpeg(b, colorspace="RGB", fastdct=True,
                                                          fastupsample=True)))
    try:
        from minialex.data import jpeg as mjpeg
        decoders.append((f"minialex.data.jpeg.decode_rgb ({mjpeg.decoder_name()})",
                         lambda b: mjpeg.decode_rgb(b, "bench")))
    except ImportError:
        pass
    print("| decoder | ms / image | images / CPU-s | max abs vs Pillow | pixels differing |")
    print("|---|---:|---:|---:|---:|")
    times = best_times({name: (fn, blobs) for name, fn in decoders}, repeats)
    for name, fn in decoders:
        err = AbsError()
        for b, ref in zip(blobs, base):
            err.add(fn(b), ref)
        ms = times[name] * 1e3
        differing = 1 - err.hist[0] / err.hist.sum()
        print(f"| {name} | {ms:.3f} | {1e3 / ms:.0f} | {err.summary()[3]} | {differing:.2%} |")
    if simplejpeg is None:
        print("\n(simplejpeg is not installed: pip install -e \".[fastjpeg]\")")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="40 images and 2 repeats: a short run")
    p.add_argument("--images", type=int, default=None, help="images of each set measured (default 160)")
    p.add_argument("--repeats", type=int, default=None, help="timing passes; the best is shown (default 3)")
    p.add_argument("--quality", type=int, default=90,
                   help="quality of the prepared JPEGs in (c) (default 90, the recommendation)")
    p.add_argument("--subsampling", choices=["4:2:0", "4:4:4"], default="4:4:4",
                   help="their chroma subsampling in (c) (default 4:4:4, the recommendation)")
    p.add_argument("--sets", default="textures,photos", help="comma-separated: textures, photos")
    p.add_argument("--only", choices=["a", "b", "c"], action="append", help="run only these sections")
    args = p.parse_args(argv)
    n = args.images if args.images is not None else (40 if args.quick else 160)
    repeats = args.repeats if args.repeats is not None else (2 if args.quick else 3)
    if n < 1 or repeats < 1 or not 1 <= args.quality <= 100:
        p.error("--images and --repeats must be positive, --quality 1..100")
    wanted = [x.strip() for x in args.sets.split(",") if x.strip()]
    if not wanted or set(wanted) - {"textures", "photos"}:
        p.error(f"--sets takes textures and/or photos, got {args.sets!r}")
    sections = set(args.only or "abc")
    sub = {"4:2:0": 2, "4:4:4": 0}[args.subsampling]

    base = os.environ.get("MINIALEX_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "minialex")
    # 512 images and 8 classes, as bench_loader: the two benchmarks share one cache.
    sets = [s for s in open_sets(base, 512, 8) if s.name in wanted]
    turbo = "libjpeg-turbo" if features.check_feature("libjpeg_turbo") else "libjpeg"
    sj = f"simplejpeg {simplejpeg.__version__}" if simplejpeg else "no simplejpeg"
    print(f"Pillow {Image.__version__} ({turbo}), {sj}, NumPy {np.__version__}; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f} at start; times: thread CPU time, best of {repeats}")
    for s in sets:
        paths = s.paths(n)
        width, height, kb = bench_loader.describe_images(paths)  # reads each file once, too
        print(f"\n## {s.name}: {s.root}, mean {width:.0f}x{height:.0f}, "
              f"{kb:.0f} KB ({kb * 1e3 / (width * height):.2f} bytes/pixel), quality {s.quality}")
        if "a" in sections:
            section_quality(s, paths, repeats)
        if "b" in sections:
            section_draft(s, paths, repeats)
        if "c" in sections:
            section_decoders(s, paths, args.quality, sub, repeats)
    print(f"\nload average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
