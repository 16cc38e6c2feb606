"""The command line's flags: the argparse parser of minialex-train and minialex-train-cifar10,
its help text, and the parsing of --devices. What each flag defaults to, and what it does on
--resume, is decided in config.py; this file only says it. Flags follow torchvision's
reference scripts (-b, --lr, --wd, -j, --resume, --output-dir, --test-only).
"""

import argparse

from .build import PAPER_MIN_SIDE, SMALL_MIN_SIDE
from ..models.architecture import ACTIVATIONS
from .config import FIXED, MODELS, POOLS, RECIPES, RESUME_HELP
from .errors import UsageError
from .options import HelpFormatter, Parser, int_at_least, number_in

EPILOG = """\
output folder:
  Checkpoints, metrics.csv, args.json (the options actually used), curves.png and
  conv1_filters.png go to --output-dir. Two checkpoints are kept: checkpoint.npz, the
  latest (every epoch and on Ctrl-C), and checkpoint_best.npz, the epoch with the lowest
  val_top1_err so far. A folder that already holds a run (a checkpoint) is never written
  into: the script stops with one line naming it, unless you pass --overwrite.

Ctrl-C, SIGTERM and --resume:
  Ctrl-C (or SIGTERM, SIGUSR1) stops the run at the next boundary between two steps, saves
  checkpoint.npz at that instant and prints the command that continues it; a second Ctrl-C
  stops at once without saving (the previous checkpoint stays). --resume CKPT continues
  exactly where the run stopped, in CKPT's folder, bit for bit as if never stopped, with
  the options saved in the checkpoint. A finished run continues only with a larger --epochs.

{resume}

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
        prog=prog, formatter_class=HelpFormatter, epilog=EPILOG.format(resume=RESUME_HELP.format(ten_crop="" if cifar else ", --ten-crop")),
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
                          help="an image that cannot be decoded is skipped (one line names it, once per run; each "
                               "epoch line counts the skips), or stops the run "
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

    # The paper's ablations, one switch each (docs/alexnet.md, "Switches"); the defaults are the
    # paper's choices. Each defines the run: recorded in args.json and the checkpoint, refused on
    # --resume with another value, and on --weights the file's network's unless given.
    sw = p.add_argument_group("switches (the paper's ablations; defaults are the paper's network)")
    sw.add_argument("--activation", choices=ACTIVATIONS,
                    help="the nonlinearity after every conv layer and fc6, fc7: relu (section 3.1), or the "
                         f"saturating tanh or sigmoid it is compared with (default {FIXED['activation']})")
    sw.add_argument("--lrn", action=argparse.BooleanOptionalAction,
                    help="local response normalization after conv1 and conv2 (section 3.3); --no-lrn removes "
                         "both layers (default on)")
    sw.add_argument("--pool", choices=POOLS,
                    help="window/stride of the max-pools after conv1, conv2 and conv5: 3/2 overlapping "
                         f"(section 3.4), 2/2 not overlapping (default {FIXED['pool']})")
    sw.add_argument("--dropout", type=number_in(0, 1, high_open=True), metavar="P",
                    help="dropout probability of fc6 and fc7, in [0, 1) (section 4.2); 0 turns dropout off "
                         f"(default {FIXED['dropout']:g})")
    sw.add_argument("--lighting", action=argparse.BooleanOptionalAction,
                    help="PCA lighting, the random colour offsets of section 4.1; --no-lighting keeps only the "
                         "random crops and mirror images (default on)")

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
                           "(or a run folder: its checkpoint.npz); options left out are the checkpoint's, and "
                           "which ones may change is said under 'options on --resume' below")
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
                    help=f"data-loading workers, 1 to 256 (default min(4, CPU cores), {FIXED['workers']} here); "
                         f"on a GPU machine give it the cores the training process does not use")
    hw.add_argument("--worker-kind", choices=("auto", "threads", "processes"),
                    help="data-loading threads, or processes (past Python's interpreter lock, batches in shared "
                         "memory); auto: processes from 4 workers on. The batches are the same either way "
                         f"(default {FIXED['worker_kind']})")
    hw.add_argument("--print-freq", type=int_at_least(1), metavar="N",
                    help="steps between reads of the loss (each read waits for the GPU) and progress-bar "
                         f"updates (default {FIXED['print_freq']})")
    hw.add_argument("--no-progress", action="store_true",
                    help="epoch lines only, no progress bars (bars are drawn only on a terminal anyway)")
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


__all__ = ["build_parser", "parse_devices", "EPILOG"]
