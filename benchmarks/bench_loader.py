"""How fast the input pipeline delivers ImageNet-style batches, and where its time goes.

    python benchmarks/bench_loader.py                  # 1, 2 and all threads
    python benchmarks/bench_loader.py --threads 1,4,16 --images 1024

The first run writes a cached set of ImageNet-like JPEGs (sizes around 500x375,
quality 90, 1/f "natural" textures with region edges and sensor noise, in the
ImageFolder layout) under $MINIALEX_DATA or ~/.cache/minialex. Then it prints:

* decoded images/s (Pillow decode to RGB, full size) for each thread count;
* fully preprocessed images/s through DataLoader + TrainTransform (decode,
  resize to 256, random 224 crop, flip, mean subtraction, PCA lighting,
  float32 NCHW batches), per CPU-second, and the same read from tar shards;
* the time per image on one thread split into decode, resize, the NumPy
  steps and the loader's own overhead;
* the loader's wait time when it feeds a consumer that takes a fixed time per
  batch (a stand-in for a GPU step), at several demanded rates.

Timings on a shared machine are noisy: compare figures from one run, and read
the load average printed at the start and end. docs/data.md has this machine's figures.
"""

import argparse
import io
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, features

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minialex.data import DataLoader, ImageFolder, TrainTransform, load_or_compute_stats, sample_rng  # noqa: E402
from minialex.data import transforms as T  # noqa: E402

from minialex.data import ShardDataset, jpeg, write_shards  # noqa: E402
from minialex.data.tarshards import INDEX_NAME  # noqa: E402

BENCH_VERSION = 1
MARKER = "bench-images.json"
SECTIONS = ["decode", "preprocess", "shards", "split", "prepared", "caps", "consumer"]


# -- the image set ----------------------------------------------------------------
def _pink_field(rng, h, w, slope, channels):
    """Gaussian noise with a 1/f^slope amplitude spectrum (natural photos are close to 1/f)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.hypot(fx, fy)
    f[0, 0] = 1.0
    amp = f ** -slope
    amp[0, 0] = 0.0  # zero mean
    shape = (channels, h, w // 2 + 1)
    spec = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * amp
    x = np.fft.irfft2(spec, s=(h, w), axes=(1, 2))  # (channels, h, w)
    return x / x.std(axis=(1, 2), keepdims=True)


def _textured_region(rng, h, w):
    """A 1/f texture with a random colour cast, mostly luminance as in photos: (3, h, w)."""
    base = rng.uniform(50, 200, 3)
    mix = rng.normal(0, 1, (3, 3)) * rng.uniform(10, 35)
    mix[:, 0] += rng.uniform(20, 45)  # the first field drives all three channels
    return base[:, None, None] + np.einsum("ck,khw->chw", mix, _pink_field(rng, h, w, 1.0, 3))


def render_photo(rng, width, height):
    """One ImageNet-like picture, uint8 (height, width, 3).

    Two textured regions separated by the level set of a smooth random field
    (so there are long irregular edges, not flat colour), plus sensor noise.
    At quality 90 a 500x375 one compresses to about 110-120 KB, close to the
    ImageNet average, which is what decides the JPEG decoding time.
    """
    a, b = _textured_region(rng, height, width), _textured_region(rng, height, width)
    mask = _pink_field(rng, height, width, 2.2, 1)[0] > rng.uniform(-0.5, 0.8)
    img = np.where(mask, a, b) + rng.normal(0, 4, (3, height, width))
    return np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 0))


def _photo_size(rng):
    """Around 500x375: long side 420-600, aspect 4:3 mostly, a quarter portrait."""
    long_side = int(rng.integers(420, 601))
    aspect = float(rng.choice([4 / 3, 4 / 3, 3 / 2, 5 / 4, 1.0]))
    short_side = int(round(long_side / aspect))
    return (short_side, long_side) if rng.random() < 0.25 else (long_side, short_side)


def write_image_set(root, marker, params, n_images, n_classes, make_pixels, quality, what, workers=None):
    """Write root/train/c<k>/img<i>.JPEG once, and return root.

    ``make_pixels()`` returns ``pixels(i) -> uint8 (h, w, 3)``, the picture of image
    ``i`` (called only when the set must be written), saved at ``quality``. The set is
    written into a temporary folder that is renamed into place, with the marker file
    holding ``params`` last; a later call with the same ``params`` only reads the marker.
    """
    marker_path = os.path.join(root, marker)
    if os.path.isfile(marker_path):
        with open(marker_path) as f:
            if json.load(f) == params:
                return root
    pixels = make_pixels()
    tmp = root + f".tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)

    def write(i):
        d = os.path.join(tmp, "train", f"c{i % n_classes:02d}")
        Image.fromarray(pixels(i)).save(os.path.join(d, f"img{i:05d}.JPEG"), quality=quality)

    print(f"writing {n_images} {what} to {root} (once) ...", flush=True)
    for k in range(n_classes):
        os.makedirs(os.path.join(tmp, "train", f"c{k:02d}"))
    # NumPy's FFT and Pillow's resize and encoder release the GIL
    with ThreadPoolExecutor(workers or os.cpu_count()) as pool:
        list(pool.map(write, range(n_images)))
    with open(os.path.join(tmp, marker), "w") as f:
        json.dump(params, f)
    if os.path.isdir(root):
        shutil.rmtree(root)
    os.makedirs(os.path.dirname(os.path.abspath(root)), exist_ok=True)
    os.replace(tmp, root)
    return root


def ensure_bench_images(root, n_images, n_classes, seed=0, workers=None):
    """The generated textures: root/train/c<k>/img<i>.JPEG, written once."""
    params = {"version": BENCH_VERSION, "images": n_images, "classes": n_classes, "seed": seed}

    def pixels(i):
        rng = np.random.default_rng([seed, i])
        w, h = _photo_size(rng)
        return render_photo(rng, w, h)

    return write_image_set(root, MARKER, params, n_images, n_classes, lambda: pixels, 90,
                           "benchmark JPEGs", workers)


def describe_images(paths):
    """Read every file once (we measure decoding, not the disk) and return (mean width, mean
    height, mean KB)."""
    for path in paths:
        with open(path, "rb") as f:
            f.read()
    sizes = np.array([Image.open(p).size for p in paths])
    return sizes[:, 0].mean(), sizes[:, 1].mean(), np.mean([os.path.getsize(p) for p in paths]) / 1e3


def ensure_bench_shards(root, shard_size=128):
    """The same images as tar shards in root/shards (written once)."""
    out = os.path.join(root, "shards")
    if not os.path.isfile(os.path.join(out, INDEX_NAME)):
        write_shards(root, out, shard_size=shard_size, overwrite=True)
    return out


# -- measurements ---------------------------------------------------------------
def _timed(fn, n, repeats):
    """(best images per wall second, best images per CPU second of this process) over ``repeats`` calls.

    CPU seconds count every thread of the process, so images per CPU second is
    the throughput of one fully used core, and it hardly moves when other
    programs share the machine, unlike wall-clock rates.
    """
    wall = cpu = 0.0
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        t1, c1 = time.perf_counter(), time.process_time()
        wall, cpu = max(wall, n / (t1 - t0)), max(cpu, n / max(c1 - c0, 1e-9))
    return wall, cpu


def decode_rate(paths, threads, repeats):
    """Plain Pillow decoding to RGB at full size (file bytes already in memory): (img/s, img/CPU-s)."""
    blobs = [open(p, "rb").read() for p in paths]

    def decode(b):
        with Image.open(io.BytesIO(b)) as img:
            img.convert("RGB")

    with ThreadPoolExecutor(threads) as pool:
        return _timed(lambda: list(pool.map(decode, blobs, chunksize=8)), len(blobs), repeats)


def _children_cpu(loader):
    """CPU seconds used so far by the loader's worker processes (Linux /proc), 0 with threads."""
    procs = loader._procs
    if procs is None or procs.pool is None:
        return 0.0
    total = 0
    for pid in list(procs.pool._processes or {}):  # noqa: SLF001 - a benchmark may look inside
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
        except (OSError, IndexError, ValueError):
            return float("nan")
    return total / os.sysconf("SC_CLK_TCK")


def loader_rate(ds, tf, threads, batch_size, repeats, kind="threads", parent=False):
    """Through DataLoader, one epoch = every image once: (img/s, img/CPU-s), best of ``repeats``.

    CPU seconds include the worker processes' (kind="processes"); with ``parent`` a third
    figure is returned, the parent process's CPU seconds per image (the reader, the hand-offs),
    which is what bounds processes on a machine with many cores. Worker processes are
    started by an untimed first epoch.
    """
    best = [0.0, 0.0, float("inf")]
    with DataLoader(ds, tf, batch_size=batch_size, shuffle=True, seed=0, workers=threads,
                    worker_kind=kind) as loader:
        if kind == "processes":
            sum(len(y) for _, y in loader.epoch_iter(100))
        for r in range(repeats):
            t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu(loader)
            n = sum(len(y) for _, y in loader.epoch_iter(r))
            t1, c1, k1 = time.perf_counter(), time.process_time(), _children_cpu(loader)
            best[0] = max(best[0], n / (t1 - t0))
            best[1] = max(best[1], n / max(c1 - c0 + k1 - k0, 1e-9))
            best[2] = min(best[2], (c1 - c0) / n)
    return tuple(best) if parent else tuple(best[:2])


def time_split(ds, tf, repeats):
    """CPU seconds per image on one thread for decode, resize and the NumPy steps (best pass)."""
    size, crop = tf.size_resize, tf.size_crop
    has_finish = hasattr(tf, "finish")
    paths = [p for p, _ in ds.samples]
    out = np.empty((3, crop, crop), np.float32)
    best = {"decode": 1e9, "resize": 1e9, "numpy": 1e9}
    for _ in range(repeats):
        spent = dict.fromkeys(best, 0.0)
        for i, path in enumerate(paths):
            rng = sample_rng(0, 0, i)
            t0 = time.thread_time()
            with Image.open(path) as img:  # decode exactly as the loader does (draft first)
                if img.format == "JPEG":
                    img.draft(None, T.shorter_side_size(*img.size, size))
                rgb = img.convert("RGB")
            t1 = time.thread_time()
            if has_finish:
                params = tf.draw(rng)
                if hasattr(T, "resize_crop"):  # resampling only the crop window
                    win = T.resize_crop(rgb, size, *params.crop)
                else:
                    top, left, s = params.crop
                    win = T.center_crop(np.asarray(T.resize_shorter(rgb, size)), size)[top:top + s, left:left + s]
                t2 = time.thread_time()
                tf.finish(win, params, out)
            else:  # the transform does everything after the resize
                arr = np.asarray(T.resize_shorter(rgb, size))
                t2 = time.thread_time()
                out[...] = tf(arr, rng)  # and the loader copies it into the batch
            t3 = time.thread_time()
            spent["decode"] += t1 - t0
            spent["resize"] += t2 - t1
            spent["numpy"] += t3 - t2
        for k in best:
            best[k] = min(best[k], spent[k] / len(paths))
    return best


def consumer_wait(root, tf, threads, batch_size, step_seconds, passes):
    """(delivered img/s, share of wall time the consumer waited) for a consumer of fixed speed.

    One epoch covers the image set ``passes`` times, so the start-up (the
    first batches, before prefetching has caught up) weighs little.
    """
    ds = ImageFolder(root, "train")
    ds.samples = ds.samples * passes
    with DataLoader(ds, tf, batch_size=batch_size, shuffle=True, seed=0, workers=threads) as loader:
        t0 = time.perf_counter()
        n = 0
        for _, y in loader.epoch_iter(7):
            n += len(y)
            time.sleep(step_seconds)  # a GPU step: the host thread waits, the GIL is free
        wall = time.perf_counter() - t0
        return n / wall, loader.wait_time / wall


def ensure_prepared(root, size):
    """The image set at ``root`` prepared once by minialex-prepare, beside it (written once)."""
    from minialex.data.prepare import prepare
    out = root.rstrip(os.sep) + f"-prepared-{size}"
    prepare(root, out, size=size, shard_size=128, workers=os.cpu_count(), progress=False)
    return out


def prepared_rates(ds, tf, workers, decoders, batch_size, rounds):
    """{(kind, workers, decoder): medians of img/s, img/CPU-s, parent CPU s/img, and img/CPU-s
    relative to Pillow's in the same round}. Every configuration keeps one loader (worker
    processes started once, by an untimed epoch) and the rounds measure them in turn, so a
    slow moment of a shared machine falls on all of them alike."""
    configs = [(kind, t, name) for kind in ("threads", "processes") for t in workers for name in decoders]
    loaders, samples = {}, {c: [] for c in configs}
    try:
        for c in configs:
            jpeg.set_decoder(c[2])  # worker processes take the decoder chosen when they start
            loaders[c] = DataLoader(ds, tf, batch_size=batch_size, seed=0, workers=c[1], worker_kind=c[0])
            sum(len(y) for _, y in loaders[c].epoch_iter(100))
        for r in range(rounds):
            for c in configs:
                jpeg.set_decoder(c[2])
                loader = loaders[c]
                t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu(loader)
                n = sum(len(y) for _, y in loader.epoch_iter(r))
                t1, c1, k1 = time.perf_counter(), time.process_time(), _children_cpu(loader)
                samples[c].append((n / (t1 - t0), n / max(c1 - c0 + k1 - k0, 1e-9), (c1 - c0) / n))
    finally:
        for loader in loaders.values():
            loader.close()
    out = {}
    for c, got in samples.items():
        wall, cpu, parent = (float(np.median(v)) for v in zip(*got))
        out[c] = {"wall": wall, "cpu": cpu, "parent": parent}
        base = samples.get((c[0], c[1], "pillow"))
        if base is not None and c[2] != "pillow":
            out[c]["vs_pillow"] = float(np.median([a[1] / b[1] for a, b in zip(got, base)]))
    return out


def time_split_prepared(ds, tf, decoders, repeats):
    """CPU seconds per image on one thread for the steps on prepared shards (best pass):
    reading the stream (tar and shuffle buffer), the generator and draws, the decode with
    each decoder, and the NumPy step into the batch row."""
    records = list(ds.stream(0, 0))
    out = np.empty(tf.output_shape, np.float32)
    best = {}

    def measure(key, fn):
        for _ in range(repeats):
            t0 = time.thread_time()
            fn()
            best[key] = min(best.get(key, 1e9), (time.thread_time() - t0) / len(records))

    measure("read", lambda: sum(1 for _ in ds.stream(0, 0)))
    measure("draw", lambda: [tf.draw(sample_rng(0, 0, r.index)) for r in records])
    draws = [tf.draw(sample_rng(0, 0, r.index)) for r in records]
    for name in decoders:
        jpeg.set_decoder(name)
        measure(f"decode ({name})", lambda: [ds.decode(r, tf.size_resize, d.crop) for r, d in zip(records, draws)])
    windows = [ds.decode(r, tf.size_resize, d.crop)[0] for r, d in zip(records, draws)]
    measure("numpy", lambda: [tf.finish(w, d, out) for w, d in zip(windows, draws)])
    return best


def bench_set(label, root, args, threads, sections):
    """Every measurement on one image set (textures or photos); prints its tables."""
    ds = ImageFolder(root, "train")
    paths = [p for p, _ in ds.samples]
    stats = load_or_compute_stats(ds, os.path.join(root, f"stats-{args.resize}.npz"), size=args.resize,
                                  max_images=128)
    tf = TrainTransform(stats, size_crop=args.crop, size_resize=args.resize)
    width, height, kbytes = describe_images(paths)
    print(f"\n=== {label}: {len(paths)} JPEGs in {root}, mean {width:.0f}x{height:.0f}, {kbytes:.0f} KB ===")
    nan = (float("nan"), float("nan"))
    rates = {}

    if sections & {"decode", "preprocess", "shards", "split"}:
        print(f"\nraw JPEGs (decoded and resized every epoch); {tf!r}, batch {args.batch_size}")
        print("img/s: wall clock; img/CPU-s: images per CPU-second of the whole process, "
              "i.e. per fully used core")
        print(f"{'threads':>7} | {'decoded img/s':>13} | {'img/CPU-s':>9} | "
              f"{'preprocessed img/s':>18} | {'img/CPU-s':>9} | {'scaling':>7} | {'from shards img/s':>17}")
        print("-" * 98)
        shards = ShardDataset(ensure_bench_shards(root), buffer_size=256) if "shards" in sections else None
        for t in threads:
            dec = decode_rate(paths, t, args.repeats) if "decode" in sections else nan
            pre = loader_rate(ds, tf, t, args.batch_size, args.repeats) \
                if sections & {"preprocess", "split"} else nan
            tar = loader_rate(shards, tf, t, args.batch_size, args.repeats) if shards else nan
            rates[t] = pre
            scale = pre[0] / rates[threads[0]][0] * threads[0]
            print(f"{t:>7} | {dec[0]:>13.0f} | {dec[1]:>9.0f} | {pre[0]:>18.0f} | {pre[1]:>9.0f} | "
                  f"{scale:>6.2f}x | {tar[0]:>17.0f}")
        print("(scaling: wall-clock preprocessed img/s relative to the first row, times its thread count;\n"
              " from shards: the same images read as tar shards of 128, shuffle buffer 256)")

    if "split" in sections:
        split = time_split(ds, tf, args.repeats)
        parts = dict(split)
        if rates.get(1):  # what the loader spends beyond the three steps: threads, batching, rng
            parts["loader overhead (by difference)"] = max(1.0 / rates[1][1] - sum(split.values()), 0.0)
        total = sum(parts.values())
        print("CPU time per image on 1 thread: " + " | ".join(
            f"{k} {v * 1e3:.2f} ms ({100 * v / total:.0f}%)" for k, v in parts.items())
            + f" | total {total * 1e3:.2f} ms")

    if "prepared" in sections:
        prepared = ShardDataset(ensure_prepared(root, args.resize), buffer_size=256)
        kb = np.mean([os.path.getsize(p) for p in prepared.shards]) / np.mean(prepared.counts) / 1e3
        print(f"\nprepared once by minialex-prepare: {prepared.total} images {args.resize} x {args.resize}, "
              f"about {kb:.0f} KB each, in {len(prepared.shards)} shards (prepared_size "
              f"{prepared.prepared_size}: no resize); shuffle buffer 256")
        rows = prepared_rates(prepared, tf, threads, args.decoders, args.batch_size, args.rounds)
        print(f"{args.rounds} rounds, each measuring every row once in turn (one epoch); medians:")
        print(f"{'workers':>9} {'':>9} | {'decoder':>10} | {'img/s':>6} | {'img/CPU-s':>9} | "
              f"{'scaling':>7} | {'parent CPU ms/img':>17} | {'vs pillow':>9}")
        print("-" * 96)
        for (kind, t, name), r in rows.items():
            one = rows[(kind, threads[0], name)]["wall"] / threads[0]
            vs = r.get("vs_pillow")
            print(f"{t:>9} {kind:>9} | {name:>10} | {r['wall']:>6.0f} | {r['cpu']:>9.0f} | "
                  f"{r['wall'] / one:>6.2f}x | {r['parent'] * 1e3:>17.3f} | "
                  + (f"{vs:>8.2f}x" if vs else f"{'':>9}"))
        print("(img/CPU-s counts the worker processes' CPU too; scaling: img/s over the 1-worker row of\n"
              " the same kind and decoder; parent CPU: the main process's CPU time per image, which with\n"
              " processes is the reader, the hand-offs and the batches' bookkeeping; vs pillow: the\n"
              " median over rounds of img/CPU-s over the Pillow row's of the same round)")
        split = time_split_prepared(prepared, tf, args.decoders, args.repeats)
        print("CPU time per image on 1 thread, prepared: " + " | ".join(
            f"{k} {v * 1e3:.3f} ms" for k, v in split.items()))
        jpeg.set_decoder(args.decoders[-1])

    if "caps" in sections:
        # The same loader on 32 x 32 prepared images: decoding and NumPy cost next to nothing,
        # so what is left is the per-image Python work, which holds the GIL (threads cannot
        # share it) and, with processes, what the training process does per image.
        tiny = ShardDataset(ensure_prepared(root, 32), buffer_size=256)
        small = TrainTransform(None, size_crop=28, size_resize=32)
        rows = prepared_rates(tiny, small, [1], args.decoders[-1:], args.batch_size, args.rounds)
        gil = 1.0 / rows[("threads", 1, args.decoders[-1])]["cpu"]
        parent = rows[("processes", 1, args.decoders[-1])]["parent"]
        print("\nthe same on 32 x 32 prepared images (28 px crops), where decoding and NumPy cost little:")
        print(f"  threads: {gil * 1e3:.3f} ms of CPU per image, nearly all holding the GIL: threads cannot "
              f"pass about {1 / gil:.0f} img/s however many cores")
        print(f"  processes: the training process spends {parent * 1e3:.3f} ms per image (reading, hand-offs): "
              f"about {1 / parent:.0f} img/s at most")

    if "consumer" in sections:
        t = threads[-1]
        capacity = rates.get(t, (None,))[0] or loader_rate(ds, tf, t, args.batch_size, args.repeats)[0]
        passes = 3
        print(f"\nfeeding a consumer that takes a fixed time per batch from raw JPEGs ({t} threads, "
              f"batch {args.batch_size}, one epoch of {passes * len(paths)} images):")
        print(f"{'demand':>8} | {'step ms':>7} | {'delivered img/s':>15} | {'wait share':>10}")
        print("-" * 50)
        for share in (0.5, 0.8, 1.25):
            step = args.batch_size / (share * capacity)
            got, wait = consumer_wait(root, tf, t, args.batch_size, step, passes)
            print(f"{share:>7.0%} | {step * 1e3:>7.1f} | {got:>15.0f} | {wait:>10.1%}")
        print("(demand: the consumer's speed as a share of the loader's measured capacity)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=None, help="where the image sets are cached "
                   "(default $MINIALEX_DATA or ~/.cache/minialex)")
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--sets", default="textures,photos",
                   help="image sets: textures (generated), photos (real, from scikit-image's samples)")
    p.add_argument("--threads", default=None, help="comma-separated worker counts (default 1,2,all)")
    p.add_argument("--decoders", default=None,
                   help="JPEG decoders for prepared data, comma-separated (default: pillow, and "
                        "simplejpeg when installed)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2, help="passes per measurement; the best is shown")
    p.add_argument("--rounds", type=int, default=5,
                   help="rounds over the prepared-data configurations; medians are shown")
    p.add_argument("--resize", type=int, default=256)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--only", choices=SECTIONS, action="append", help="run only these sections (repeatable)")
    args = p.parse_args(argv)
    sections = set(args.only or SECTIONS)
    args.decoders = (args.decoders.split(",") if args.decoders
                     else ["pillow"] + (["simplejpeg"] if jpeg.simplejpeg is not None else []))
    base = args.root or os.environ.get("MINIALEX_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "minialex")
    cores = os.cpu_count() or 1
    threads = ([int(t) for t in args.threads.split(",")] if args.threads
               else sorted({1, min(2, cores), cores}))
    turbo = "libjpeg-turbo" if features.check_feature("libjpeg_turbo") else "libjpeg"
    simple = f", simplejpeg {jpeg.simplejpeg.__version__}" if jpeg.simplejpeg is not None else ""
    print(f"machine: {_cpu_name()}, {cores} cores; Python {sys.version.split()[0]}, Pillow {Image.__version__} "
          f"({turbo}){simple}, NumPy {np.__version__}; load average {os.getloadavg()[0]:.2f} at start")
    for label in args.sets.split(","):
        if label == "textures":
            root = ensure_bench_images(os.path.join(base, "bench-loader"), args.images, args.classes)
        elif label == "photos":
            from photos import ensure_photo_images
            root = ensure_photo_images(os.path.join(base, "bench-photos"), args.images, args.classes)
        else:
            p.error(f"unknown image set {label!r}; choose from textures, photos")
        bench_set(label, root, args, threads, sections)
    print(f"\nload average {os.getloadavg()[0]:.2f} at end")


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
