"""The command line behind minialex-train, minialex-train-cifar10, ``python -m minialex`` and
examples/train_imagenet.py and examples/train_cifar10.py.

Flags follow torchvision's reference scripts (-b, --lr, --wd, -j, --resume,
--output-dir, --test-only); defaults are the paper's recipe for the paper's
network and follow the model preset otherwise, and the preset follows the
images. Every value is checked where it is parsed, and every expected failure
(bad value, bad path, no CuPy, missing GPU, wrong checkpoint, NaN loss) ends
with one line on stderr and a non-zero exit code, not a traceback; a bad value
touches no file. A run never writes into a folder that holds another run
unless --overwrite. docs/training.md.
"""

import argparse
import os
import re
import socket
import statistics
import sys
import time

from PIL import Image

from .. import backend
from ..backend import BackendError
from ..data import (DataError, DataLoader, EvalTransform, TrainTransform, cifar10_datasets, ensure_synthetic_dataset,
                    load_or_compute_stats)
from ..interop import read_weights
from ..models import PRESETS, AlexNet
from ..kernels.cpu import runtime
from ..weights import (BEST, LATEST, RUN_FILES, CheckpointError, check_resumable, class_differences,
                       describe_checkpoint, find_checkpoint, load_checkpoint, load_weights, read_meta,
                       shape_differences, split_state)
from . import distributed
from .distributed import PeerFailed, Session
from .options import EXIT_USAGE, HelpFormatter, Parser, UsageError, int_at_least, number_in, run_main
from ..parallel.world import DistributedError, Solo
from .predict import eval_stats
from .trainer import NonFiniteLossError, Trainer, TrainingInterrupted

EXIT_FAILED, EXIT_INTERRUPTED = 1, 130
_started = {"output_dir": None}  # set once training writes files, for the Ctrl-C message

# What each model preset trains with unless told otherwise:
# (resize, crop, epochs, batch, lr, lr patience). The paper's network gets the paper's
# recipe. The synthetic preset (made for the embedded dataset's 5000 images) gets smaller
# batches (more updates per epoch), a lower rate that suits its wider init, and a shorter
# patience so that its 16 epochs include a few at lr / 10. The caffe preset (bvlc_alexnet's
# network, for --weights of its ONNX file) gets bvlc_alexnet's solver: 227 crops, batch 256.
RECIPES = {
    "paper": (256, 224, 90, 128, 0.01, 3),
    "synthetic": (64, 56, 16, 64, 0.005, 2),
    "cifar10": (32, 28, 30, 128, 0.01, 3),
    "tiny": (28, 24, 10, 16, 0.01, 3),
    "caffe": (256, 227, 90, 256, 0.01, 3),
}
RECIPE_KEYS = ("resize_size", "crop_size", "epochs", "batch_size", "lr", "lr_patience")
MODELS = tuple(RECIPES)

# Which preset an image folder gets: the paper's net when the images' typical shorter side
# is at least 224 px (ImageNet's are ~400), the synthetic preset (64 px images, 56 px crops)
# from 48 px, the CIFAR one below.
PAPER_MIN_SIDE, SMALL_MIN_SIDE = 224, 48
# Warn when the network has this many times more parameters per training image than the
# paper's (61 M parameters / 1.28 M images = about 48 per image).
PAPER_PARAMS_PER_IMAGE = 48
WARN_PARAMS_PER_IMAGE = 1000

# Options that do not depend on the model.
FIXED = {"backend": "numpy", "devices": "0", "momentum": 0.9, "weight_decay": 5e-4, "lr_schedule": "plateau",
         "lr_step_size": 30, "workers": min(4, os.cpu_count() or 1), "seed": 0, "stats_images": 20000,
         "on_corrupt": "skip", "print_freq": 10, "max_images": None, "timeout": 1800.0}
# What --resume takes from the checkpoint's saved arguments when left out: everything that
# defines the run (per-invocation choices such as --backend, -j or --print-freq are not).
RUN_KEYS = ("data", "model") + RECIPE_KEYS + ("momentum", "weight_decay", "lr_schedule", "lr_step_size",
                                              "seed", "max_images", "stats_images")

EPILOG = """\
output folder:
  Checkpoints, metrics.csv, args.json (the options actually used), curves.png and
  conv1_filters.png go to --output-dir. Two checkpoints are kept: checkpoint.npz, the
  latest (every epoch and on Ctrl-C), and checkpoint_best.npz, the epoch with the lowest
  val_top1_err so far. A folder that already holds a run is never written into: the
  script stops with one line naming it, unless you pass --overwrite.

Ctrl-C and --resume:
  Ctrl-C saves checkpoint.npz at the current step and prints the command that continues.
  --resume CKPT continues exactly where the run stopped, in CKPT's folder, with the
  options saved in the checkpoint (those you give override them). A finished run
  continues only with a larger --epochs.

metrics:
  Errors in percent everywhere (progress bar, epoch lines, metrics.csv, curves.png,
  --test-only): train_top1_err, val_top1_err and, with more than 5 classes, val_top5_err.

several processes (docs/distributed.md):
  mpiexec -n P PROG ... trains one model on P processes (pip install -e ".[mpi]"):
  each takes its share of every global batch of P x -b images, the gradients are
  averaged, and the result is the one-process run's with -b P x N. Process 0 alone
  prints and writes. Processes started with different options or data stop at once.
"""


def _recipe_help(index, fmt="{}"):
    return ", ".join(f"{fmt.format(r[index])} {m}" for m, r in RECIPES.items())


def build_parser(dataset_kind, prog=None):
    """The parser of one script: ``dataset_kind`` "imagenet" (image folders or the embedded
    dataset) or "cifar10"; each lists only the options that apply to it."""
    cifar = dataset_kind == "cifar10"
    p = Parser(
        prog=prog, formatter_class=HelpFormatter, epilog=EPILOG,
        description=("Train a scaled-down AlexNet (Krizhevsky et al., 2012) on CIFAR-10 with minialex."
                     if cifar else
                     "Train the AlexNet of Krizhevsky et al. (2012) with minialex, on an ImageNet-style\n"
                     "folder of images or, without --data, on the embedded synthetic dataset."))
    data = p.add_argument_group("data")
    if cifar:
        data.add_argument("--data", metavar="DIR",
                          help="folder holding the CIFAR-10 python batches (cifar-10-batches-py); "
                               "required unless --resume")
    else:
        data.add_argument("--data", metavar="DIR",
                          help="ImageNet-style root holding train/<class>/ and val/<class>/ image folders "
                               "(default: the embedded synthetic dataset, 10 classes, generated on first use "
                               "in ~/.cache/minialex)")
    data.add_argument("--max-images", type=int_at_least(1), metavar="N",
                      help="use only N training and N validation images (evenly spaced, so every class stays), "
                           "for smoke runs (default: all)")
    data.add_argument("--stats-images", type=int_at_least(1), metavar="N",
                      help="training images the mean image and RGB covariance are computed from, once, then "
                           f"cached (default {FIXED['stats_images']})")
    if not cifar:
        data.add_argument("--on-corrupt", choices=["skip", "raise"],
                          help="an image that cannot be decoded is skipped with a warning, or stops the run "
                               f"(default {FIXED['on_corrupt']})")

    model = p.add_argument_group("model and preprocessing")
    if cifar:
        model_default = "default cifar10"
    else:
        model_default = (f"default: from the images, paper when their shorter side is typically "
                         f"{PAPER_MIN_SIDE} px or more, synthetic from {SMALL_MIN_SIDE} px, cifar10 below; "
                         "synthetic on the embedded dataset")
    model.add_argument("--model", choices=MODELS,
                       help="network preset (docs/alexnet.md): paper, the paper's 61 M-parameter net for 224 px "
                            "crops; synthetic, a quarter-width net for 56 px crops; cifar10, one for 24-32 px "
                            "crops; tiny, a few channels, for tests; caffe, Caffe's bvlc_alexnet (LRN over all "
                            f"channels, 227 px crops), for its weights ({model_default})")
    model.add_argument("--resize-size", type=int_at_least(1), metavar="N",
                       help="shorter side the images are resized to before the centre square crop "
                            f"(default: the model's, {_recipe_help(0)})")
    model.add_argument("--crop-size", type=int_at_least(1), metavar="N",
                       help="training crop and network input size, at most --resize-size "
                            f"(default: the model's, {_recipe_help(1)})")
    if not cifar:
        model.add_argument("--ten-crop", action="store_true",
                           help="validate on ten patches per image (four corners, centre and their mirror "
                                "images, softmax averaged), the paper's test procedure")

    opt = p.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=int_at_least(1), metavar="N",
                     help="train until N epochs in all have run, counting those of a resumed checkpoint "
                          f"(default: {_recipe_help(2)})")
    opt.add_argument("-b", "--batch-size", type=int_at_least(1), metavar="N",
                     help=f"images per SGD step in each process: with mpiexec -n P the global batch is P x N, "
                          f"and --lr is not scaled for you (docs/distributed.md) (default: {_recipe_help(3)}; "
                          "with --resume, the checkpoint's global batch shared among the processes)")
    opt.add_argument("--lr", type=number_in(0, low_open=True), metavar="LR",
                     help=f"initial learning rate, > 0 (default: {_recipe_help(4, '{:g}')})")
    opt.add_argument("--momentum", type=number_in(0, 1, high_open=True), metavar="M",
                     help=f"SGD momentum, in [0, 1) (default {FIXED['momentum']:g})")
    opt.add_argument("--wd", "--weight-decay", dest="weight_decay", type=number_in(0), metavar="WD",
                     help=f"weight decay, >= 0 (default {FIXED['weight_decay']:g})")
    opt.add_argument("--lr-schedule", choices=["plateau", "step"],
                     help="plateau: divide the rate by 10 when val_top1_err has not improved for --lr-patience "
                          "epochs (the paper); step: divide it by 10 every --lr-step-size epochs "
                          f"(default {FIXED['lr_schedule']})")
    opt.add_argument("--lr-patience", type=int_at_least(1), metavar="N",
                     help=f"epochs without improvement before a plateau division (default: {_recipe_help(5)})")
    opt.add_argument("--lr-step-size", type=int_at_least(1), metavar="N",
                     help=f"epochs between divisions of the step schedule (default {FIXED['lr_step_size']})")
    opt.add_argument("--seed", type=int_at_least(0), metavar="S",
                     help="fixes the initial weights, the data order, every augmentation and dropout, >= 0 "
                          f"(default {FIXED['seed']})")

    runs = p.add_argument_group("runs and checkpoints")
    runs.add_argument("--output-dir", metavar="DIR",
                      help="where checkpoints, logs and pictures go (default runs/alexnet-<data>, plus "
                           "-<model> unless it is the data's usual one; with --resume, the checkpoint's folder)")
    runs.add_argument("--overwrite", action="store_true",
                      help="allow writing into a folder that holds another run: its checkpoints, logs and "
                           "pictures are deleted when training starts")
    runs.add_argument("--resume", metavar="CKPT",
                      help="continue a run exactly where it stopped, in its folder, from a checkpoint file "
                           "(or a run folder: its checkpoint.npz); options left out are the checkpoint's")
    runs.add_argument("--weights", metavar="CKPT",
                      help="start a new run from a checkpoint's weights (a file, or a run folder: its "
                           "checkpoint_best.npz), or from an exported .safetensors or an ONNX graph of this "
                           "network such as Caffe's bvlcalexnet-12.onnx (docs/interop.md); the model and crop "
                           "default to the file's")
    runs.add_argument("--reset-classifier", action="store_true",
                      help="with --weights: load every layer but fc8, which starts afresh with one output per "
                           "class of this data (fine-tuning on other classes)")
    runs.add_argument("--test-only", action="store_true",
                      help="evaluate the --resume or --weights checkpoint on the validation images and exit; "
                           "writes nothing")

    hw = p.add_argument_group("hardware and logging")
    hw.add_argument("--backend", choices=["numpy", "cupy"],
                    help=f"numpy on the CPU, or cupy on NVIDIA GPUs (default {FIXED['backend']})")
    hw.add_argument("--devices", metavar="IDS",
                    help="one device id, or two for the paper's two columns: '0,1' puts each on its own GPU, "
                         "'0,0' both on one. With several processes on a node (mpiexec), IDS is the layout of "
                         "the node's first process and the process of local rank r takes it shifted by r GPUs "
                         "per GPU it names: '0' gives process r GPU r, '0,1' gives it GPUs 2r and 2r+1 "
                         f"(default {FIXED['devices']})")
    hw.add_argument("--distributed", action=argparse.BooleanOptionalAction,
                    help="data-parallel training over the processes of mpiexec (docs/distributed.md): on by "
                         "itself when an MPI launcher started more than one process; --no-distributed makes "
                         "each process a run of its own")
    hw.add_argument("--timeout", type=number_in(0, low_open=True), metavar="S",
                    help="with several processes: stop them all when no batch has finished for S seconds (a "
                         f"process that hung or died) (default {FIXED['timeout']:g})")
    hw.add_argument("-j", "--workers", type=int_at_least(1, 256), metavar="N",
                    help=f"data-loading threads, 1 to 256 (default min(4, CPU cores), {FIXED['workers']} here)")
    hw.add_argument("--print-freq", type=int_at_least(1), metavar="N",
                    help="steps between reads of the loss (each read waits for the GPU) and progress-bar "
                         f"updates (default {FIXED['print_freq']})")
    hw.add_argument("--no-progress", action="store_true", help="epoch lines only, no progress bars (for logs)")
    return p


def parse_devices(text):
    try:
        ids = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise UsageError(f"--devices must be one or two integers like 0 or 0,1; got {text!r}") from None
    if len(ids) not in (1, 2) or min(ids) < 0:
        raise UsageError(f"--devices takes one id or two (one per column of the paper's net), each >= 0; "
                         f"got {text!r}")
    return ids


def _datasets(args, dataset_kind, world):
    """(train set, val set, kind) for the chosen data source; tar shards give each of several
    processes its own shards."""
    if dataset_kind == "cifar10":
        train, val = cifar10_datasets(args.data)
        return train, val, "cifar10"
    if args.data is None:
        root = ensure_synthetic_dataset()
        kind = "embedded"
    else:
        root, kind = args.data, "imagenet"
    from ..data import open_train_val  # ImageNet-style folders or tar shards (docs/data.md)
    train, val = open_train_val(root, rank=world.rank, world_size=world.size)
    return train, val, kind


def _stats_cache(root_hint, output_dir, size):
    """Next to the data when writable (shared by all runs), else in the output folder."""
    if root_hint and os.access(root_hint, os.W_OK):
        return os.path.join(root_hint, f"minialex-stats-{size}.npz")
    return os.path.join(output_dir, f"minialex-stats-{size}.npz")


# -- choosing the network for the data -------------------------------------------------------
def typical_shorter_side(dataset, samples=25):
    """Median shorter side (px) of up to ``samples`` evenly spaced training images; None if unknown
    (a streaming dataset such as tar shards cannot be sampled without reading through it).
    Reads only the file headers where the dataset has file paths."""
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


def default_output_dir(kind, data, model):
    """runs/alexnet-<data>, plus -<model> unless it is the data's usual preset."""
    if kind == "embedded":
        name, usual = "embedded", "synthetic"
    elif kind == "cifar10":
        name, usual = "cifar10", "cifar10"
    else:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(os.path.normpath(os.path.abspath(data))))
        usual = None
    return os.path.join("runs", f"alexnet-{name}" + ("" if model == usual else f"-{model}"))


# -- the output folder rule ------------------------------------------------------------------
def run_files(folder):
    return [f for f in RUN_FILES if os.path.exists(os.path.join(folder, f))]


def check_output_dir(out, resume_path, overwrite):
    """True if ``out`` holds another run, which only ``overwrite`` allows replacing (else a
    UsageError, in one line). Continuing the folder's own latest checkpoint is not another run."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--output-dir {out} exists and is not a folder")
    present = run_files(out) if os.path.isdir(out) else []
    latest = os.path.join(out, LATEST)
    if not present or (resume_path and os.path.isfile(latest) and os.path.samefile(latest, resume_path)):
        return False  # empty, or the usual resume: the run continues in its own folder
    if overwrite:
        return True
    if resume_path and os.path.dirname(os.path.abspath(resume_path)) == os.path.abspath(out):
        if os.path.isfile(latest):
            try:
                held = f"another checkpoint ({LATEST}, epoch {read_meta(latest).get('epoch')})"
            except CheckpointError:
                held = f"another checkpoint ({LATEST})"
        else:
            held = f"the files of a run ({', '.join(present)})"
        raise UsageError(f"resuming {resume_path} would write into {out}, which holds {held}; pass "
                         "--output-dir NEW to continue it in a new folder, or --overwrite to replace that run")
    hint = f"continue it with --resume {latest}, " if os.path.isfile(latest) else ""
    raise UsageError(f"{out} already holds a run ({', '.join(present)}); choose another --output-dir, "
                     f"{hint}or pass --overwrite to replace it")


def clear_run(out, keep=None):
    """--overwrite: delete the files of the run in ``out`` (only those), except ``keep``."""
    for name in run_files(out):
        path = os.path.join(out, name)
        if keep and os.path.exists(keep) and os.path.samefile(path, keep):
            continue
        os.remove(path)


# -- the command -----------------------------------------------------------------------------
def _resolve(args, explicit, ckpt_args, ckpt_pre, recipe_model):
    """Fill every option left out: checkpoint (``ckpt_args`` on --resume; only the crop sizes,
    ``ckpt_pre``, on --weights), then the model's recipe, then the fixed defaults."""
    recipe = dict(zip(RECIPE_KEYS, RECIPES[recipe_model]))
    for key in RECIPE_KEYS + tuple(FIXED):
        if key in explicit or getattr(args, key, None) is not None:
            continue
        if ckpt_args is not None and key in RUN_KEYS and ckpt_args.get(key) is not None:
            value = ckpt_args[key]
        elif key in ("resize_size", "crop_size") and ckpt_pre:
            value = ckpt_pre["resize" if key == "resize_size" else "crop"]
        elif key in recipe:
            value = recipe[key]
        else:
            value = FIXED[key]
        setattr(args, key, value)


def run(argv, dataset_kind="imagenet", prog=None, session=None):
    """The training script. ``session`` (train/distributed.py) when mpiexec started several
    processes: they check at start-up that they were started alike, then train one model."""
    world = session.world if session is not None else Solo()
    args = build_parser(dataset_kind, prog).parse_args(argv)
    explicit = {k for k, v in vars(args).items() if v is not None and v is not False}
    for flag in ("ten_crop", "on_corrupt"):  # options the CIFAR script does not have
        if not hasattr(args, flag):
            setattr(args, flag, False if flag == "ten_crop" else "skip")

    # -- combinations that cannot work --------------------------------------------------------
    if args.resume and args.weights:
        raise UsageError("--resume and --weights exclude each other: --resume continues a run, "
                         "--weights starts a new one from a checkpoint's weights")
    if args.reset_classifier and not args.weights:
        raise UsageError("--reset-classifier needs --weights CKPT (the checkpoint whose other layers to load)")
    if args.test_only and not (args.resume or args.weights):
        raise UsageError("--test-only needs weights to evaluate: pass --resume CKPT or --weights CKPT "
                         "(a checkpoint file or a run folder)")
    if args.test_only and args.reset_classifier:
        raise UsageError("--test-only with --reset-classifier would evaluate an untrained classifier")
    if args.test_only and args.overwrite:
        raise UsageError("--overwrite does nothing with --test-only, which writes no file")
    if "lr_patience" in explicit and args.lr_schedule == "step":
        raise UsageError("--lr-patience applies to --lr-schedule plateau only")
    if "lr_step_size" in explicit and args.lr_schedule != "step":
        raise UsageError("--lr-step-size applies to --lr-schedule step only (add --lr-schedule step)")
    args.backend = args.backend or FIXED["backend"]
    args.devices = args.devices or FIXED["devices"]
    devices = parse_devices(args.devices)
    layout = args.devices

    # -- the checkpoint, read only --------------------------------------------------------------
    ckpt_path = arrays = meta = None
    if args.resume or args.weights:
        ckpt_path = find_checkpoint(args.resume or args.weights, prefer="latest" if args.resume else "best")
        # --weights reads .npz, .safetensors and .onnx alike (minialex.interop.read_weights)
        arrays, meta = read_weights(ckpt_path) if args.weights else load_checkpoint(ckpt_path)
        for note in meta.get("notes") or ():
            print(f"minialex: {ckpt_path}: {note}", flush=True)
        saved_kind = meta.get("dataset_kind")
        mine = "cifar10" if dataset_kind == "cifar10" else "folder"
        if args.resume and saved_kind and saved_kind != mine:
            other = "minialex-train-cifar10" if saved_kind == "cifar10" else "minialex-train"
            raise UsageError(f"{ckpt_path} is a {'CIFAR-10' if saved_kind == 'cifar10' else 'image-folder'} "
                             f"run; resume it with {other}")
    ckpt_args = (meta.get("args") or {}) if args.resume else None
    if args.resume and "data" not in explicit:
        args.data = ckpt_args.get("data")
    if dataset_kind == "cifar10" and args.data is None:
        raise UsageError("--data is required: the folder holding the CIFAR-10 python batches "
                         "(cifar-10-batches-py)")

    xp = backend.get_backend(args.backend)  # BackendError (with the install hint) if CuPy is missing
    if args.backend == "numpy":
        runtime.retain_freed_memory()  # keep big freed arrays mapped: no page faults every step
    if world.size > 1 and args.backend == "cupy":  # this process's GPUs among the node's
        distributed.check_gpu_count(devices, layout, world, backend.device_count(xp))
        devices = distributed.local_devices(devices, world)
    for d in devices:
        backend.check_device(xp, d)

    # -- data, then the network that fits it ---------------------------------------------------
    train_set, val_set, kind = _datasets(args, dataset_kind, world)
    classes = list(train_set.classes)
    side, chosen = None, None
    if "model" in explicit:
        model_name = args.model
    elif meta is not None and meta.get("model_config"):  # a file without one: the data's network
        model_name = (ckpt_args or {}).get("model") or preset_name(meta["model_config"])
    elif kind == "embedded":
        model_name = "synthetic"
    elif kind == "cifar10":
        model_name = "cifar10"
    else:
        side = typical_shorter_side(train_set)
        model_name = chosen = model_for_images(side)
    args.model = model_name
    ckpt_pre = (meta.get("preprocess") if args.weights else None) or None
    _resolve(args, explicit, ckpt_args, ckpt_pre, model_name if model_name in RECIPES else "paper")
    # The global batch (what one SGD step averages over) is P x -b; a resumed run keeps its
    # checkpoint's global batch unless -b is given, whatever the number of processes.
    streaming = hasattr(train_set, "stream")
    saved_global = None
    if args.resume and ckpt_args:  # (a checkpoint from before data parallelism: one process's batch)
        saved_global = ckpt_args.get("global_batch_size") or ckpt_args.get("batch_size")
    if saved_global and "batch_size" not in explicit and not streaming:
        global_batch = int(saved_global)
        args.batch_size = max(1, global_batch // world.size)
    else:
        global_batch = args.batch_size * world.size
    if args.crop_size > args.resize_size:
        raise UsageError(f"--crop-size must be at most --resize-size ({args.resize_size}), got {args.crop_size}")

    # -- where the run goes ------------------------------------------------------------------------
    if args.test_only:
        output_dir = None
    elif "output_dir" in explicit:
        output_dir = args.output_dir
    elif args.resume:
        output_dir = os.path.dirname(os.path.abspath(ckpt_path))
    else:
        output_dir = default_output_dir(kind, args.data, model_name)
    replace = output_dir is not None and check_output_dir(output_dir, ckpt_path if args.resume else None,
                                                          args.overwrite)
    if args.resume and not args.test_only:
        done = int(meta.get("epoch", 0))
        if args.epochs <= done:
            if "epochs" in explicit:
                said = f"--epochs {args.epochs} is not more than the {done} epochs {ckpt_path} has finished"
            else:
                said = f"{ckpt_path} has finished all {done} epochs of its run"
            raise UsageError(f"{said}; to train further, pass --epochs N with N > {done} "
                             f"(e.g. --epochs {done + max(done // 2, 1)})")

    # -- the network -------------------------------------------------------------------------------
    build = dict(seed=args.seed, devices=devices if len(devices) == 2 else None)
    from_file = meta is not None and "model" not in explicit and meta.get("model_config")
    spec = (meta["model_config"] if from_file else
            PRESETS.get("imagenet" if model_name == "paper" else model_name, PRESETS["imagenet"]).to_dict())
    if len(devices) == 2 and spec.get("lrn_per_column", True) is False:
        raise UsageError(f"--devices {args.devices}: the {model_name} network normalises (LRN) over the channels of "
                         f"both columns at once, as Caffe does, so it runs on one device: pass one id, e.g. "
                         f"--devices {devices[0]}")
    try:
        if from_file:
            config = dict(meta["model_config"], num_classes=len(classes), input_size=args.crop_size)
            model = AlexNet.from_config(config, **build)
        else:
            model = AlexNet(len(classes), preset="imagenet" if model_name == "paper" else model_name,
                            input_size=args.crop_size, **build)
    except ValueError as exc:
        raise UsageError(f"--model {model_name} does not fit {args.crop_size}x{args.crop_size} crops "
                         f"(--crop-size): {exc}") from None
    if len(devices) == 2:
        model.to(xp)  # each column to its own device
    else:
        model.to(xp, device_id=devices[0])
    device_id = devices[0]
    if args.weights:
        _load_start_weights(model, arrays, meta, ckpt_path, classes, args.reset_classifier)
    elif args.resume:
        check_resumable(model, classes, arrays, meta, ckpt_path)  # before any file is written

    resolved = dict(vars(args), data=os.path.abspath(args.data) if args.data else None,
                    output_dir=output_dir, resume=ckpt_path if args.resume else None,
                    weights=ckpt_path if args.weights else None, global_batch_size=global_batch,
                    processes=world.size)
    resolved.pop("distributed", None)
    what = {"embedded": "the embedded synthetic dataset (10 classes of shapes and textures, generated once)",
            "imagenet": f"the images in {args.data}", "cifar10": f"CIFAR-10 from {args.data}"}[kind]

    if session is not None:  # the first exchange between the processes: were they started alike?
        session.check(_start_up_fingerprint(resolved, train_set, val_set, meta),
                      {"host": socket.gethostname(),
                       "gpus": distributed.gpu_identities(xp, devices) if args.backend == "cupy" else []})

    if args.test_only:
        return _test_only(args, model, xp, device_id, arrays, meta, ckpt_path, train_set, val_set, what, world)

    # -- from here on files are written (by process 0 alone) -------------------------------------
    if world.is_root:
        if replace:  # --overwrite, and the folder holds another run: remove it, so two runs never mix
            clear_run(output_dir, keep=ckpt_path)
        os.makedirs(output_dir, exist_ok=True)
    data_root = None if kind == "cifar10" else getattr(train_set, "root", None)
    t0 = time.perf_counter()
    stats = None
    if world.is_root:  # computed (or read from the cache) once, then sent to the others
        stats = load_or_compute_stats(train_set, _stats_cache(data_root, output_dir, args.resize_size),
                                      size=args.resize_size, max_images=args.stats_images, workers=args.workers,
                                      on_error=args.on_corrupt)
    stats = world.bcast(stats)
    train_tf = TrainTransform(stats, size_crop=args.crop_size, size_resize=args.resize_size)
    eval_tf = EvalTransform(stats, size_crop=args.crop_size, size_resize=args.resize_size, ten_crop=args.ten_crop)
    val_batch = max(1, args.batch_size // 10) if args.ten_crop else args.batch_size
    # Image folders and CIFAR: every process walks the same global batches and loads its share.
    # Tar shards: each process streams its own shards, its own batches of -b.
    share = None if streaming else (world.rank, world.size)
    scale = 1 if streaming else world.size
    train_loader = DataLoader(train_set, train_tf, batch_size=global_batch if share else args.batch_size,
                              shuffle=True, seed=args.seed, workers=args.workers, drop_last=False,
                              on_error=args.on_corrupt, max_images=args.max_images, share=share)
    val_loader = DataLoader(val_set, eval_tf, batch_size=val_batch * scale, shuffle=False, seed=args.seed,
                            workers=args.workers, on_error=args.on_corrupt, max_images=args.max_images, share=share)

    trainer = Trainer(model, train_loader, val_loader, classes=classes, output_dir=output_dir,
                      xp=xp, device_id=device_id, lr=args.lr, momentum=args.momentum,
                      weight_decay=args.weight_decay, epochs=args.epochs, schedule=args.lr_schedule,
                      patience=args.lr_patience, step_size=args.lr_step_size, log_every=args.print_freq,
                      args=resolved, progress=not args.no_progress, world=world, timeout=args.timeout,
                      extra_arrays={"stats/mean_image": stats.mean_image, "stats/mean_rgb": stats.mean_rgb},
                      extra_meta={"preprocess": {"resize": args.resize_size, "crop": args.crop_size,
                                                 "mean": "image"},
                                  "names": list(train_set.names),
                                  "dataset_kind": "cifar10" if kind == "cifar10" else "folder"})
    if args.resume:
        trainer.restore(arrays, meta, ckpt_path)
        trainer.best_source = os.path.join(os.path.dirname(os.path.abspath(ckpt_path)), BEST)
    del arrays  # the trainer holds its own copies now

    _print_banner(args, explicit, trainer, model, train_loader, val_loader, what, output_dir, ckpt_path, meta,
                  side, chosen, kind)
    _warn_if_too_big(model, model_name, len(train_set))
    _started["output_dir"] = output_dir
    history = trainer.fit()
    last = history[-1]
    chance = 100 - 100 / len(classes)
    best = trainer.best
    top5 = f", val_top5_err {last['val_top5_err']:.2f}%" if "val_top5_err" in last else ""
    print(f"done in {time.perf_counter() - t0:.0f} s: val_top1_err {last['val_top1_err']:.2f}%{top5} after epoch "
          f"{last['epoch']} (chance {chance:.1f}%); best val_top1_err {best['val_top1_err']:.2f}% at epoch "
          f"{best['epoch']}; checkpoints {trainer.checkpoint_path} (latest) and {trainer.best_path} (best)")
    return 0


def _start_up_fingerprint(resolved, train_set, val_set, meta):
    """What must be the same in every process of a data-parallel run: the options (but those
    of PER_PROCESS), the images (count and a digest of names and sizes) and the checkpoint."""
    from ..data.stats import dataset_fingerprint
    args = {k: v for k, v in resolved.items() if k not in distributed.PER_PROCESS}
    data = {split: {"images": len(ds), "digest": dataset_fingerprint(ds, 0, None)}
            for split, ds in (("train", train_set), ("val", val_set))}
    ckpt = None if meta is None else {"epoch": meta.get("epoch"), "step": meta.get("step_in_epoch")}
    return {"args": args, "data": data, "checkpoint": ckpt}


def _batch_text(args, trainer):
    world = trainer.world
    if world.size == 1:
        return f"batch {args.batch_size}"
    total = args.batch_size * world.size
    glob = trainer.args.get("global_batch_size", total)
    per = f"{args.batch_size}" if glob == total else f"{glob // world.size}-{-(-glob // world.size)}"
    return f"batch {per} per process x {world.size} processes = {glob}"


def _exchange_text(trainer):
    """``; gradients averaged by NCCL`` (or MPI) for a data-parallel run, else nothing."""
    if trainer.data_parallel is None:
        return ""
    engine = type(trainer.data_parallel.engine).__name__
    how = {"MpiAllreduce": "MPI", "NcclAllreduce": "NCCL", "StagedMpiAllreduce": "MPI via host copies"}.get(engine,
                                                                                                             engine)
    return f"; gradients averaged by {how}"


def _load_start_weights(model, arrays, meta, path, classes, reset_classifier):
    """--weights: copy a checkpoint's weights into the new model (all but fc8 with --reset-classifier)."""
    state, _ = split_state(arrays)
    if reset_classifier:
        load_weights(model, state, path, skip_prefixes=("fc8.",))
        return
    if meta.get("classes") is None:  # a file that names no classes (an ONNX graph from elsewhere)
        shapes = shape_differences(state, model.state_dict(), limit=None)
        if shapes and all(d.startswith("fc8.") for d in shapes):
            raise CheckpointError(f"{path} has another number of classes than this data's {len(classes)} "
                                  f"(file vs this run: {', '.join(shapes)}); add --reset-classifier to start "
                                  "from every layer but fc8")
        load_weights(model, state, path)  # its classes are taken to be the data's, in sorted order
        return
    saved = list(meta.get("classes") or [])
    if len(saved) != len(classes):
        shapes = shape_differences(state, model.state_dict())
        raise CheckpointError(f"{path} was trained for {len(saved)} classes, this data has {len(classes)} "
                              f"(checkpoint vs this run: {', '.join(shapes)}); add --reset-classifier to "
                              "start from every layer but fc8")
    if saved != classes:
        raise CheckpointError(f"{path} was trained on other classes than this data's: "
                              f"{class_differences(saved, classes)}; add --reset-classifier to start from "
                              "every layer but fc8")
    load_weights(model, state, path)


def _test_only(args, model, xp, device_id, arrays, meta, ckpt_path, train_set, val_set, what, world):
    """--test-only: evaluate the checkpoint's weights with its own mean image; write nothing. With
    several processes each evaluates its share of the images and the counts are summed."""
    if args.resume:  # (--weights were loaded already)
        load_weights(model, split_state(arrays)[0], ckpt_path)
    stats = eval_stats(arrays)
    mean = "image"
    if stats.mean_image is None and stats.mean_rgb is not None:
        mean = "channel"  # an exported file keeps the channel means only
    elif stats.mean_image is None or stats.mean_image.shape[0] != args.resize_size:
        saved = None if stats.mean_image is None else stats.mean_image.shape[0]
        raise UsageError(f"--resize-size {args.resize_size} does not match {ckpt_path}, whose mean image is for "
                         f"{saved} px images; leave --resize-size out")
    eval_tf = EvalTransform(stats, size_crop=args.crop_size, size_resize=args.resize_size, ten_crop=args.ten_crop,
                            mean=mean)
    val_batch = max(1, args.batch_size // 10) if args.ten_crop else args.batch_size
    streaming = hasattr(val_set, "stream")
    val_loader = DataLoader(val_set, eval_tf, batch_size=val_batch * (1 if streaming else world.size), shuffle=False,
                            seed=args.seed, workers=args.workers, on_error=args.on_corrupt,
                            max_images=args.max_images, share=None if streaming else (world.rank, world.size))
    trainer = Trainer(model, None, val_loader, classes=train_set.classes, output_dir=".", xp=xp,
                      device_id=device_id, progress=not args.no_progress, world=world)
    source = meta.get("description") or describe_checkpoint(ckpt_path, meta)  # an export says what it is
    print(f"minialex: evaluating {source} on {what}: "
          f"{val_loader.num_samples} validation images{', ten crops each' if args.ten_crop else ''}", flush=True)
    result = trainer.evaluate()
    top5 = f"  val_top5_err {result['val_top5_err']:.2f}%" if "val_top5_err" in result else ""
    print(f"val_loss {result['val_loss']:.4f}  val_top1_err {result['val_top1_err']:.2f}%{top5}  "
          f"(chance val_top1_err {100 - 100 / len(train_set.classes):.1f}%)")
    return 0


def _print_banner(args, explicit, trainer, model, train_loader, val_loader, what, output_dir, ckpt_path, meta,
                  side, chosen, kind):
    steps_per_epoch = len(train_loader)
    left = steps_per_epoch * (args.epochs - trainer.epoch) - trainer.step_in_epoch
    why = f"; the preset suits images of about {side:.0f} px, --model picks another" if chosen else ""
    net = (f"AlexNet ({args.model} preset, {model.num_parameters():,} parameters, "
           f"{args.crop_size}x{args.crop_size} crops of {args.resize_size}x{args.resize_size} images{why})")
    # tar shards under several processes: each reads its own shards, so its loader counts its own
    own = trainer.world.size if train_loader.streaming and trainer.world.size > 1 else 1
    data = (f"{what}: {train_loader.num_samples * own} train / {val_loader.num_samples * own} val images"
            + (f" ({train_loader.num_samples} and {val_loader.num_samples} in each process's own shards)"
               if own > 1 else "") + f", {len(trainer.classes)} classes")
    where = f"output in {output_dir}"
    if args.resume:
        own = os.path.dirname(os.path.abspath(ckpt_path))
        if os.path.abspath(output_dir) == own:
            where += " (the checkpoint's folder)"
        else:
            where += f" (--output-dir; the checkpoint's own folder {own} is left as it is)"
        start = (f"resuming {describe_checkpoint(ckpt_path, meta)} at epoch {trainer.epoch + 1}, "
                 f"step {trainer.step_in_epoch + 1} of {steps_per_epoch}: {left} steps of "
                 f"{_batch_text(args, trainer).replace('batch ', '', 1)} left until epoch {args.epochs}")
        print(f"minialex: {start}; {net} on {data}{_exchange_text(trainer)}; backend {args.backend}, devices "
              f"{args.devices}; {where}", flush=True)
        return
    if args.weights:
        net += f" from the weights of {ckpt_path}" + (" (all layers but fc8)" if args.reset_classifier else "")
    eta = (", about 3 minutes on 2 CPU cores" if kind == "embedded" and args.backend == "numpy"
           and args.max_images is None and not (explicit & {"epochs", "model", "batch_size", "crop_size"}) else "")
    steps = f"{steps_per_epoch} step{'s' if steps_per_epoch != 1 else ''}"
    print(f"minialex: training {net} on {data}; {args.epochs} epoch{'s' if args.epochs != 1 else ''} of {steps} "
          f"({_batch_text(args, trainer)}){eta}{_exchange_text(trainer)}; backend {args.backend}, devices "
          f"{args.devices}; {where}", flush=True)
    if trainer.engine_note:
        print(f"note: {trainer.engine_note}", file=sys.stderr, flush=True)


def _warn_if_too_big(model, model_name, images):
    params = model.num_parameters()
    per_image = params / max(images, 1)
    if per_image <= WARN_PARAMS_PER_IMAGE:
        return
    smaller = [m for m in ("synthetic", "cifar10") if m != model_name and
               PRESETS[m].num_parameters() < params]
    hint = f"; --model {' or '.join(smaller)} is smaller" if smaller else ""
    print(f"warning: the network has {params:,} parameters, about {per_image:,.0f} per training image "
          f"({images} images; the paper had about {PAPER_PARAMS_PER_IMAGE}): expect it to memorise the "
          f"training images rather than learn the classes{hint}", file=sys.stderr, flush=True)


def _attempt(body):
    """Run ``body``; (exit code, message or None, how it ended) for every expected ending."""
    try:
        return body(), None, "done"
    except (UsageError, DataError, BackendError, CheckpointError, DistributedError) as exc:
        return EXIT_USAGE, f"error: {exc}", "usage"
    except NonFiniteLossError as exc:
        return EXIT_FAILED, f"error: {exc}", "nonfinite"
    except TrainingInterrupted as exc:
        return (EXIT_INTERRUPTED, f"interrupted at epoch {exc.epoch + 1}, step {exc.step}: saved {exc.checkpoint}; "
                f"continue with --resume {exc.checkpoint} (the other options are read from it)", "interrupted")
    except KeyboardInterrupt:
        if _started["output_dir"] is None:
            return EXIT_INTERRUPTED, "interrupted before training started; no run file was written", "keyboard"
        # a second Ctrl-C while the first one's checkpoint was being written
        return (EXIT_INTERRUPTED, f"interrupted; the checkpoints in {_started['output_dir']} are the last complete "
                "ones", "keyboard")


def main(argv=None, dataset_kind="imagenet", prog=None):
    """Run and turn the expected failures into one line and an exit code."""
    argv = sys.argv[1:] if argv is None else argv
    _started["output_dir"] = None
    try:
        world = distributed.open_world(argv)
    except DistributedError as exc:
        if distributed.launcher_rank() == 0:  # MPI is not there to say who prints: the launcher's variables do
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if world.size > 1:
        return _main_processes(world, argv, dataset_kind, prog)
    code, message, _ = _attempt(lambda: run_main(lambda a: run(a, dataset_kind, prog), argv))
    if message:
        print(message, file=sys.stderr)
    return code


# How a data-parallel run may end without ending the others: every process gets there at the
# same step (the loss is the global batch's, a stop is agreed on in the step's exchange).
ENDS_TOGETHER = ("done", "nonfinite", "interrupted")


def _main_processes(world, argv, dataset_kind, prog):
    """``main`` for one of several processes: process 0 prints; a failure before the start-up
    check reaches every process through the check, one after it ends them all (MPI_Abort)."""
    said = distributed.quiet_unless_root(world)
    session = Session(world)
    try:
        code, message, how = _attempt(lambda: run_main(lambda a: run(a, dataset_kind, prog, session), argv))
    except PeerFailed as exc:  # another process could not start: all know it from the check
        code, message, how = exc.code, exc.message, "peer"
    except BaseException as exc:  # noqa: BLE001 - an unexpected error in this process alone
        code, message, how = EXIT_FAILED, distributed.crash_text(exc), "crash"
    if how == "peer":
        pass
    elif not session.started:  # stopped before the check: tell the others there
        if message is None and code and said is not None:
            message = said.last_line()  # what argparse printed, say
        code, message = session.fail(code, message)
    elif how not in ENDS_TOGETHER:
        distributed.report_crash(world, message or f"error: stopped with exit code {code}")
        world.abort(code or EXIT_FAILED)
    if world.is_root and message:
        print(message, file=sys.stderr)
    return code


def main_cifar10(argv=None, prog=None):
    """minialex-train-cifar10: the same command for CIFAR-10's python batches."""
    return main(argv, dataset_kind="cifar10", prog=prog)


__all__ = ["main", "main_cifar10", "run", "build_parser", "parse_devices", "UsageError", "RECIPES"]

if __name__ == "__main__":
    sys.exit(main())
