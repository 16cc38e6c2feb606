"""Building what a run needs from its configuration: the datasets, the network that fits the
images, the preprocessing statistics and the loaders. One builder for training, --test-only
and minialex-predict, so the three never preprocess differently. docs/training.md, "The
module layout of train/".
"""

import os
import re
import statistics

import numpy as np
from PIL import Image

from ..data import (DataLoader, EvalTransform, Stats, TrainTransform, cifar10_datasets, ensure_synthetic_dataset,
                    load_or_compute_stats)
from ..models import PRESETS, AlexNet
from .config import MODELS
from .errors import UsageError

# Which preset an image folder gets: the paper's net when the images' typical shorter side
# is at least 224 px (ImageNet's are ~400), the synthetic preset (64 px images, 56 px crops)
# from 48 px, the CIFAR one below.
PAPER_MIN_SIDE, SMALL_MIN_SIDE = 224, 48

# The kinds of data a run trains on, each with one name everywhere (checkpoints, output
# folders, messages): the embedded synthetic dataset, an ImageNet-style folder (or tar
# shards), CIFAR-10's python batches. A checkpoint records the script instead ("cifar10" or
# "folder"), which is what --resume must match.
EMBEDDED, IMAGENET, CIFAR10 = "embedded", "imagenet", "cifar10"


def describe_data(kind, data):
    return {EMBEDDED: "the embedded synthetic dataset (10 classes of shapes and textures, generated once)",
            IMAGENET: f"the images in {data}", CIFAR10: f"CIFAR-10 from {data}"}[kind]


def datasets(data, script, world):
    """(train set, val set, kind) for ``data`` (None: the embedded dataset) and ``script``
    ("cifar10" or "folder"); tar shards give each of several processes its own shards."""
    if script == "cifar10":
        train, val = cifar10_datasets(data)
        return train, val, CIFAR10
    if data is None:
        root, kind = ensure_synthetic_dataset(), EMBEDDED
    else:
        root, kind = data, IMAGENET
    from ..data import open_train_val  # ImageNet-style folders or tar shards (docs/data.md)
    train, val = open_train_val(root, rank=world.rank, world_size=world.size)
    return train, val, kind


def is_streaming(dataset):
    """Tar shards are read as a stream (each process its own shards), not by index."""
    return hasattr(dataset, "stream")


# -- choosing the network for the data -------------------------------------------------------
def typical_shorter_side(dataset, samples=25):
    """Median shorter side (px) of up to ``samples`` evenly spaced training images; None if unknown
    (tar shards cannot be sampled without reading through them, unless minialex-prepare's
    manifest gives their size). Reads only the file headers where the dataset has file paths."""
    if getattr(dataset, "prepared_size", None):
        return dataset.prepared_size
    if not (hasattr(dataset, "path") or hasattr(dataset, "load")):
        return None
    n = len(dataset)
    m = min(samples, n)
    sides = []
    for i in sorted({k * n // m for k in range(m)}):
        try:
            if hasattr(dataset, "path"):
                with Image.open(dataset.path(i)) as img:
                    sides.append(min(img.size))
            else:
                sides.append(min(dataset.load(i)[0].shape[:2]))
        except Exception:  # noqa: BLE001  a bad file here is reported by the loader later
            continue
    return statistics.median(sides) if sides else None


def model_for_images(side):
    if side is None or side >= PAPER_MIN_SIDE:
        return "paper"
    return "synthetic" if side >= SMALL_MIN_SIDE else "cifar10"


def preset_name(config):
    """The preset a model config was built from (num_classes and input size aside), or "custom"."""
    ignore = ("num_classes", "input_size")
    for name in MODELS:
        preset = PRESETS["imagenet" if name == "paper" else name].to_dict()
        if all(preset[k] == config.get(k) for k in preset if k not in ignore):
            return name
    return "custom"


def choose_model(given, meta, saved_model, kind, train_set):
    """(preset name, typical side or None, whether it was chosen from the images): --model if
    given, else the checkpoint's, else the data's usual one, else from the images' size."""
    if given:
        return given, None, False
    if meta is not None and meta.get("model_config"):  # a file without one: the data's network
        return saved_model or preset_name(meta["model_config"]), None, False
    if kind == EMBEDDED:
        return "synthetic", None, False
    if kind == CIFAR10:
        return "cifar10", None, False
    side = typical_shorter_side(train_set)
    return model_for_images(side), side, True


def build_model(model_name, config, classes, crop_size, seed, devices, xp, switches=None):
    """The network on its devices: from a checkpoint's ``config`` when given (its architecture,
    this data's classes and crop), else the preset ``model_name``. ``devices``: one id, or two
    for the paper's two columns. ``switches``: AlexNetConfig fields of the switch flags
    (config.switch_fields: activation, lrn, pool_size, pool_stride, dropout), which override both."""
    switches = dict(switches or {})
    two = len(devices) == 2
    spec = config or PRESETS.get("imagenet" if model_name == "paper" else model_name, PRESETS["imagenet"]).to_dict()
    if two and spec.get("lrn_per_column", True) is False:
        raise UsageError(f"--devices {','.join(map(str, devices))}: the {model_name} network normalises (LRN) over "
                         f"the channels of both columns at once, as Caffe does, so it runs on one device: pass "
                         f"one id, e.g. --devices {devices[0]}")
    build = dict(seed=seed, devices=devices if two else None)
    try:
        if config:
            model = AlexNet.from_config(dict(config, num_classes=len(classes), input_size=crop_size, **switches),
                                        **build)
        else:
            model = AlexNet(len(classes), preset="imagenet" if model_name == "paper" else model_name,
                            input_size=crop_size, **switches, **build)
    except ValueError as exc:
        pool = switches.get("pool_size"), switches.get("pool_stride")
        also = f" with --pool {pool[0]}/{pool[1]}" if None not in pool and pool != (3, 2) else ""
        raise UsageError(f"--model {model_name} does not fit {crop_size}x{crop_size} crops "
                         f"(--crop-size){also}: {exc}") from None
    if two:
        model.to(xp)  # each column to its own device
    else:
        model.to(xp, device_id=devices[0])
    return model


# -- statistics and loaders ------------------------------------------------------------------
def stats_cache(root_hint, output_dir, size):
    """Next to the data when writable (shared by all runs), else in the output folder."""
    if root_hint and os.access(root_hint, os.W_OK):
        return os.path.join(root_hint, f"minialex-stats-{size}.npz")
    return os.path.join(output_dir, f"minialex-stats-{size}.npz")


def training_stats(train_set, kind, output_dir, cfg, skips):
    """The mean image and RGB covariance of the training images (the paper's preprocessing and
    PCA lighting), computed once and cached."""
    root = None if kind == CIFAR10 else getattr(train_set, "root", None)
    return load_or_compute_stats(train_set, stats_cache(root, output_dir, cfg.resize_size), size=cfg.resize_size,
                                 max_images=cfg.stats_images, workers=cfg.workers, on_error=cfg.on_corrupt,
                                 skips=skips)


def eval_stats(arrays):
    """The Stats that evaluation needs from a checkpoint's arrays: the mean image (None if absent)
    and the channel means; the lighting eigenpairs matter only for training augmentation."""
    return Stats(mean_image=arrays.get("stats/mean_image"), mean_rgb=arrays.get("stats/mean_rgb"),
                 eigvals=np.ones(3, np.float32), eigvecs=np.eye(3, dtype=np.float32), count=0)


def eval_transform(stats, crop, resize, ten_crop=False, mean="image"):
    """Validation's preprocessing (and predict's): resize, centre crop (or ten crops), mean."""
    return EvalTransform(stats, size_crop=crop, size_resize=resize, ten_crop=ten_crop, mean=mean)


def loaders(cfg, stats, train_set, val_set, world, skips, global_batch, train=True, mean="image"):
    """(train loader or None, validation loader). Image folders and CIFAR: every process walks
    the same global batches and loads its share; tar shards: each process streams its own
    shards in batches of -b. The validation set is the run's own: ``cfg.max_images`` is the
    run's, which --resume cannot change (config.RESUME_RULE)."""
    streaming = is_streaming(train_set if train_set is not None else val_set)
    share = None if streaming else (world.rank, world.size)
    scale = 1 if streaming else world.size
    common = dict(seed=cfg.seed, workers=cfg.workers, worker_kind=cfg.worker_kind, on_error=cfg.on_corrupt,
                  max_images=cfg.max_images, share=share, skips=skips)
    train_loader = None
    if train:
        # --no-lighting: no PCA colour offsets (section 4.1's second augmentation), crops and flips only
        lighting = {} if getattr(cfg, "lighting", True) else {"lighting_std": 0.0}
        train_tf = TrainTransform(stats, size_crop=cfg.crop_size, size_resize=cfg.resize_size, **lighting)
        train_loader = DataLoader(train_set, train_tf, batch_size=global_batch if share else cfg.batch_size,
                                  shuffle=True, drop_last=False, **common)
    val_batch = max(1, cfg.batch_size // 10) if cfg.ten_crop else cfg.batch_size
    val_tf = eval_transform(stats, cfg.crop_size, cfg.resize_size, cfg.ten_crop, mean)
    val_loader = DataLoader(val_set, val_tf, batch_size=val_batch * scale, shuffle=False, **common)
    return train_loader, val_loader


def default_output_dir(kind, data, model):
    """runs/alexnet-<data>, plus -<model> unless it is the data's usual preset."""
    if kind == EMBEDDED:
        name, usual = "embedded", "synthetic"
    elif kind == CIFAR10:
        name, usual = "cifar10", "cifar10"
    else:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(os.path.normpath(os.path.abspath(data))))
        usual = None
    return os.path.join("runs", f"alexnet-{name}" + ("" if model == usual else f"-{model}"))


__all__ = ["EMBEDDED", "IMAGENET", "CIFAR10", "datasets", "choose_model", "build_model", "training_stats",
           "eval_stats", "eval_transform", "loaders", "default_output_dir", "typical_shorter_side",
           "model_for_images", "preset_name", "describe_data", "is_streaming"]
