"""The command line behind examples/train_imagenet.py and examples/train_cifar10.py.

Flags follow torchvision's reference scripts (-b, --lr, --wd, -j, --resume,
--output-dir, --test-only); defaults are the paper's recipe. Every expected
failure (bad path, no CuPy, missing GPU, wrong checkpoint, NaN loss) ends with
one line on stderr and a non-zero exit code, not a traceback. docs/training.md.
"""

import argparse
import os
import sys
import time

from .. import backend
from ..backend import BackendError
from ..data import (DataError, DataLoader, EvalTransform, ImageFolder, TrainTransform,
                    check_same_classes, cifar10_datasets, ensure_synthetic_dataset, load_or_compute_stats)
from ..models import AlexNet
from ..nn import fast
from .checkpoint import CheckpointError
from .trainer import NonFiniteLossError, Trainer, TrainingInterrupted

EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130

# What each dataset kind trains by default: (model preset, resize, crop, epochs, batch, lr,
# lr patience). ImageNet gets the paper's recipe. The small embedded set gets smaller
# batches (more updates per epoch: it has only 5000 images), a lower rate that suits its
# wider init, and a shorter patience so that its 16 epochs include a few at lr / 10.
DEFAULTS = {
    "imagenet": ("paper", 256, 224, 90, 128, 0.01, 3),
    "embedded": ("synthetic", 64, 56, 16, 64, 0.005, 2),
    "cifar10": ("cifar10", 32, 28, 30, 128, 0.01, 3),
}


class UsageError(ValueError):
    """A command-line value that cannot work (reported in one line)."""


def build_parser(dataset_kind):
    p = argparse.ArgumentParser(
        description="Train the AlexNet of Krizhevsky et al. (2012) with minialex.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    if dataset_kind == "cifar10":
        p.add_argument("--data", required=True, help="folder holding cifar-10-batches-py (the python version)")
    else:
        p.add_argument("--data", default=None,
                       help="ImageNet-style root with train/<wnid>/ and val/<wnid>/; "
                            "omit it to train on the embedded synthetic dataset")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--devices", default="0",
                   help="'0' for one device, '0,1' for the paper's two columns on two devices "
                        "('0,0' puts both columns on one GPU)")
    p.add_argument("--model", choices=["paper", "synthetic", "cifar10", "tiny"], default=None,
                   help="network preset (default: paper for --data, synthetic without it, cifar10 for CIFAR); "
                        "its input size is set to the crop size")
    p.add_argument("--resize-size", type=int, default=None,
                   help="shorter side before the centre square crop (default 256 for ImageNet, 64 embedded, 32 CIFAR)")
    p.add_argument("--crop-size", type=int, default=None,
                   help="training crop and network input size (default 224 ImageNet, 56 embedded, 28 CIFAR)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("-b", "--batch-size", type=int, default=None,
                   help="default 128 (the paper); 64 on the embedded dataset")
    p.add_argument("--lr", type=float, default=None, help="default 0.01 (the paper); 0.005 on the embedded dataset")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--wd", "--weight-decay", dest="weight_decay", type=float, default=5e-4)
    p.add_argument("--lr-schedule", choices=["plateau", "step"], default="plateau",
                   help="plateau: divide by 10 when validation error stops improving (the paper); "
                        "step: divide by 10 every --lr-step-size epochs")
    p.add_argument("--lr-patience", type=int, default=None,
                   help="epochs without improvement before /10 (default 3; 2 on the embedded dataset)")
    p.add_argument("--lr-step-size", type=int, default=30)
    p.add_argument("-j", "--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="data-loading threads")
    p.add_argument("--resume", default="", help="checkpoint to continue from")
    p.add_argument("--output-dir", default=None, help="where checkpoints, logs and pictures go")
    p.add_argument("--test-only", action="store_true", help="evaluate (with --resume weights) and exit")
    p.add_argument("--ten-crop", action="store_true",
                   help="evaluate on ten patches per image (corners, centre and their flips), as the paper")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-images", type=int, default=None,
                   help="use at most this many training (and validation) images per epoch, for smoke runs")
    p.add_argument("--stats-images", type=int, default=20000,
                   help="images used to compute the training mean and RGB covariance (cached)")
    p.add_argument("--on-corrupt", choices=["skip", "raise"], default="skip",
                   help="what to do with an image that cannot be decoded")
    p.add_argument("--print-freq", type=int, default=10, help="steps between loss read-backs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    return p


def parse_devices(text):
    try:
        ids = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise UsageError(f"--devices must be one or two integers like 0 or 0,1; got {text!r}") from None
    if len(ids) not in (1, 2):
        raise UsageError(f"--devices takes one id or two (one per column of the paper's net); got {text!r}")
    return ids


def _datasets(args, dataset_kind):
    """(train set, val set, kind) for the chosen data source."""
    if dataset_kind == "cifar10":
        train, val = cifar10_datasets(args.data)
        return train, val, "cifar10"
    if args.data is None:
        root = ensure_synthetic_dataset()
        kind = "embedded"
    else:
        root, kind = args.data, "imagenet"
        if not os.path.isdir(root):
            raise DataError(f"data path not found: {root}")
    train = ImageFolder(root, "train")
    val = ImageFolder(root, "val", classes=train.classes)
    check_same_classes(train.classes, val.classes, os.path.join(root, "val"))
    return train, val, kind


def _stats_cache(root_hint, output_dir, size):
    """Next to the data when writable (shared by all runs), else in the output folder."""
    if root_hint and os.access(root_hint, os.W_OK):
        return os.path.join(root_hint, f"minialex-stats-{size}.npz")
    return os.path.join(output_dir, f"minialex-stats-{size}.npz")


def run(argv, dataset_kind="imagenet"):
    args = build_parser(dataset_kind).parse_args(argv)
    devices = parse_devices(args.devices)
    if (args.batch_size is not None and args.batch_size < 1) or args.workers < 1:
        raise UsageError("--batch-size and --workers must be at least 1")
    xp = backend.get_backend(args.backend)  # BackendError (with the install hint) if CuPy is missing
    if args.backend == "numpy":
        fast.retain_freed_memory()  # keep big freed arrays mapped: no page faults every step
    for d in devices:
        backend.check_device(xp, d)

    train_set, val_set, kind = _datasets(args, dataset_kind)
    preset, resize, crop, epochs, batch_size, lr, patience = DEFAULTS[kind]
    args.batch_size = args.batch_size or batch_size
    args.lr = args.lr or lr
    args.lr_patience = args.lr_patience if args.lr_patience is not None else patience
    preset = args.model or preset
    resize = args.resize_size or resize
    crop = args.crop_size or crop
    if crop > resize:
        raise UsageError(f"--crop-size {crop} is larger than --resize-size {resize}")
    epochs = args.epochs if args.epochs is not None else epochs
    output_dir = args.output_dir or os.path.join("runs", f"alexnet-{kind}")
    os.makedirs(output_dir, exist_ok=True)
    try:
        model = AlexNet(len(train_set.classes), preset="imagenet" if preset == "paper" else preset,
                        input_size=crop, seed=args.seed, devices=devices if len(devices) == 2 else None)
    except ValueError as exc:
        raise UsageError(f"--model {preset} does not fit {crop}x{crop} crops: {exc}") from None
    if len(devices) == 2:
        model.to(xp)  # each column to its own device
    else:
        model.to(xp, device_id=devices[0])
    device_id = devices[0]

    data_root = None if kind == "cifar10" else getattr(train_set, "root", None)
    t0 = time.perf_counter()
    stats = load_or_compute_stats(train_set, _stats_cache(data_root, output_dir, resize), size=resize,
                                  max_images=args.stats_images, workers=args.workers, on_error=args.on_corrupt)
    train_tf = TrainTransform(stats, size_crop=crop, size_resize=resize)
    eval_tf = EvalTransform(stats, size_crop=crop, size_resize=resize, ten_crop=args.ten_crop)
    val_batch = max(1, args.batch_size // 10) if args.ten_crop else args.batch_size
    train_loader = DataLoader(train_set, train_tf, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                              workers=args.workers, drop_last=False, on_error=args.on_corrupt,
                              max_images=args.max_images)
    val_loader = DataLoader(val_set, eval_tf, batch_size=val_batch, shuffle=False, seed=args.seed,
                            workers=args.workers, on_error=args.on_corrupt, max_images=args.max_images)

    trainer = Trainer(model, train_loader, val_loader, classes=train_set.classes, output_dir=output_dir,
                      xp=xp, device_id=device_id, lr=args.lr, momentum=args.momentum,
                      weight_decay=args.weight_decay, epochs=epochs, schedule=args.lr_schedule,
                      patience=args.lr_patience, step_size=args.lr_step_size, log_every=args.print_freq,
                      args=vars(args), progress=not args.no_progress,
                      extra_arrays={"stats/mean_image": stats.mean_image, "stats/mean_rgb": stats.mean_rgb},
                      extra_meta={"preprocess": {"resize": resize, "crop": crop, "mean": "image"},
                                  "names": list(train_set.names)})
    if args.resume:
        trainer.resume(args.resume)

    if args.test_only:
        result = trainer.evaluate()
        print(f"{kind} val: loss {result['val_loss']:.4f}  Acc@1 {100 - result['val_top1_err']:.2f}%  "
              f"Acc@5 {100 - result['val_top5_err']:.2f}%  ({len(val_set)} images"
              f"{', ten crops' if args.ten_crop else ''})")
        return 0

    steps = len(train_loader) * max(epochs - trainer.epoch, 0)
    what = {"embedded": "the embedded synthetic dataset (10 classes of shapes and textures, generated once)",
            "imagenet": f"ImageFolder data at {args.data}", "cifar10": f"CIFAR-10 from {args.data}"}[kind]
    print(f"minialex: training AlexNet ({preset}, {model.num_parameters():,} parameters, {crop}x{crop} crops) "
          f"on {what}: {train_loader.num_samples} train / {val_loader.num_samples} val images, {epochs} epoch{'s' if epochs != 1 else ''} "
          f"({steps} steps of {args.batch_size}), backend {args.backend}, devices {args.devices}"
          + (", about 4 minutes on 2 CPU cores" if kind == "embedded" and args.backend == "numpy"
             and args.max_images is None and args.epochs is None else "")
          + f"; output in {output_dir}", flush=True)
    history = trainer.fit()
    if history:
        last = history[-1]
        print(f"done in {time.perf_counter() - t0:.0f} s: val top-1 error {last['val_top1_err']:.2f}% "
              f"(accuracy {100 - last['val_top1_err']:.2f}%, chance {100 / len(train_set.classes):.1f}%), "
              f"top-5 error {last['val_top5_err']:.2f}%; checkpoint {trainer.checkpoint_path}")
    return 0


def main(argv=None, dataset_kind="imagenet"):
    """Run and turn the expected failures into one line and an exit code."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(argv, dataset_kind)
    except (UsageError, DataError, BackendError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NonFiniteLossError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except TrainingInterrupted as exc:
        print(f"interrupted: saved {exc.checkpoint}; continue with --resume {exc.checkpoint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted before training started; nothing to save", file=sys.stderr)
        return EXIT_INTERRUPTED


__all__ = ["main", "run", "build_parser", "parse_devices", "UsageError"]
