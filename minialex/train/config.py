"""The run configuration: every option's value, decided in one place and in one order.

For each option the value is, first found wins:

1. the flag the user gave;
2. on ``--resume``, the checkpoint's own value, for the options that define the run
   (``RUN_KEYS``); on ``--weights``, the file's crop and resize sizes;
3. the model preset's recipe (``RECIPES``: what the preset trains with unless told otherwise);
4. the fixed defaults (``FIXED``), the same for every preset.

On ``--resume`` a flag either applies from the resumed step on or is refused in one line
(``RESUME_RULE``, checked by ``check_resume``); args.json then records exactly the values the
continued run uses. docs/training.md, "Options on --resume", states the same table.
"""

import os

from .errors import UsageError

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

# Options that do not depend on the model: the paper's momentum and weight decay (section 5),
# its plateau schedule, and this tool's own defaults.
FIXED = {"backend": "numpy", "devices": "0", "momentum": 0.9, "weight_decay": 5e-4, "lr_schedule": "plateau",
         "lr_step_size": 30, "workers": min(4, os.cpu_count() or 1), "worker_kind": "auto", "seed": 0, "stats_images": 20000,
         "on_corrupt": "skip", "print_freq": 10, "max_images": None, "timeout": 1800.0,
         # the paper's ablations (docs/alexnet.md, "Switches"): its own choices by default
         "activation": "relu", "lrn": True, "pool": "3/2", "dropout": 0.5, "lighting": True}

# The switches of the network (SWITCH_KEYS; AlexNetConfig fields, pool split into its window and
# stride) and of the data (lighting: the PCA colour augmentation of section 4.1).
SWITCH_KEYS = ("activation", "lrn", "pool", "dropout")
POOLS = ("3/2", "2/2")


def switch_fields(args):
    """The AlexNetConfig fields the switch flags give: activation, lrn, pool_size, pool_stride, dropout."""
    size, stride = (int(v) for v in args.pool.split("/"))
    return dict(activation=args.activation, lrn=bool(args.lrn), pool_size=size, pool_stride=stride,
                dropout=float(args.dropout))


def switches_of(config):
    """The switch flags' values of a saved model config (a dict; fields it lacks are the paper's)."""
    from ..models import AlexNetConfig  # (the models package is heavy; needed only with a file)
    cfg = AlexNetConfig.from_dict(config)
    return {"activation": cfg.activation, "lrn": cfg.lrn, "pool": f"{cfg.pool_size}/{cfg.pool_stride}",
            "dropout": cfg.dropout}

# What --resume takes from the checkpoint when the flag is left out: everything that defines
# the run. (Per-invocation choices such as --backend, -j or --print-freq are not taken.)
RUN_KEYS = ("data", "model") + RECIPE_KEYS + ("momentum", "weight_decay", "lr_schedule", "lr_step_size",
                                              "seed", "max_images", "stats_images", "ten_crop") + SWITCH_KEYS + (
                                              "lighting",)

# The one rule for a flag given with --resume. "refused": the flag defines which run this is
# (its images, network, preprocessing or random streams), so another value is another run:
# one line says so, and --weights starts a new run from the checkpoint's weights instead.
# "applied": the value is used from the resumed step on; for the schedule's flags the schedule
# restarts at the resumed epoch, from --lr (or from the rate the run had reached).
RESUME_RULE = {
    # --data may name the same images elsewhere (a copy on another machine); its classes must be
    # the checkpoint's (weights/compat.py checks them)
    "data": "applied", "model": "refused", "resize_size": "refused", "crop_size": "refused",
    "seed": "refused", "stats_images": "refused", "max_images": "refused", "ten_crop": "refused",
    # the ablation switches: another value is another network (or augmentation), so another run
    "activation": "refused", "lrn": "refused", "pool": "refused", "dropout": "refused", "lighting": "refused",
    "epochs": "applied", "lr": "applied", "lr_schedule": "applied", "lr_patience": "applied",
    "lr_step_size": "applied", "momentum": "applied", "weight_decay": "applied",
    # a new batch size changes which images make up step k of an epoch: at an epoch boundary only
    "batch_size": "applied at an epoch boundary",
    # this invocation's own: how and where it runs, not what it computes
    "backend": "applied", "devices": "applied", "workers": "applied", "worker_kind": "applied", "print_freq": "applied",
    "no_progress": "applied", "timeout": "applied", "on_corrupt": "applied", "output_dir": "applied",
    "overwrite": "applied", "distributed": "applied",
}
SCHEDULE_KEYS = ("lr", "lr_schedule", "lr_patience", "lr_step_size")

RESUME_HELP = (
    "options on --resume:\n"
    "  The flags that define the run (--model, --resize-size, --crop-size, --seed, --stats-images,\n"
    "  --max-images{ten_crop}, and the switches --activation, --lrn/--no-lrn, --pool, --dropout,\n"
    "  --lighting/--no-lighting) are the checkpoint's; another\n"
    "  value is refused in one line (use --weights CKPT for a new run from its weights). Every other\n"
    "  flag applies from the resumed step on: --data (the same classes, perhaps moved), --epochs,\n"
    "  --momentum, --wd, and --lr, --lr-schedule,\n"
    "  --lr-patience, --lr-step-size, which restart the schedule at the resumed epoch from --lr (or the\n"
    "  rate reached); -b only at an epoch boundary. args.json records the values actually used.")


def flag(key):
    return {"weight_decay": "--wd", "batch_size": "-b"}.get(key, "--" + key.replace("_", "-"))



def check_combinations(args, explicit):
    """UsageError, in one line, for flags that cannot go together (before anything is read)."""
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


def resolve(args, explicit, ckpt_args, ckpt_pre, recipe_model, file_config=None):
    """Fill every option left out, in the order of this file's first lines: the checkpoint's
    (``ckpt_args`` on --resume; only the crop sizes, ``ckpt_pre``, on --weights), then the
    model's recipe, then the fixed defaults. ``file_config``: the model config of the --resume
    or --weights file whose network this run builds; the switches it lacks in ``ckpt_args``
    (a checkpoint from before them, an export) are read from it."""
    from_file = switches_of(file_config) if file_config else {}
    recipe = dict(zip(RECIPE_KEYS, RECIPES[recipe_model if recipe_model in RECIPES else "paper"]))
    for key in RECIPE_KEYS + tuple(FIXED) + ("ten_crop",):
        if key in explicit:
            continue
        if ckpt_args is not None and key in RUN_KEYS and ckpt_args.get(key) is not None:
            value = ckpt_args[key]
        elif key in from_file:
            value = from_file[key]
        elif key in ("resize_size", "crop_size") and ckpt_pre:
            value = ckpt_pre["resize" if key == "resize_size" else "crop"]
        elif key in recipe:
            value = recipe[key]
        elif key == "ten_crop":
            value = bool(getattr(args, key, False))
        else:
            value = FIXED[key]
        setattr(args, key, value)
    if "lr_patience" in explicit and args.lr_schedule == "step":
        raise UsageError("--lr-patience applies to --lr-schedule plateau only")
    if "lr_step_size" in explicit and args.lr_schedule != "step":
        raise UsageError("--lr-step-size applies to --lr-schedule step only (add --lr-schedule step)")
    if args.crop_size > args.resize_size:
        raise UsageError(f"--crop-size must be at most --resize-size ({args.resize_size}), got {args.crop_size}")


def _same(key, given, saved):
    if key == "data":
        return saved is not None and os.path.abspath(given) == os.path.abspath(saved)
    return given == saved


def check_resume(args, explicit, ckpt_args, meta, path, processes):
    """The rule for the flags given with --resume (``RESUME_RULE``): a refused flag whose value
    differs from the checkpoint's is one UsageError; returns the schedule flags that were given
    (the schedule then restarts from them)."""
    saved = ckpt_args or {}
    if meta.get("model_config"):
        # a checkpoint from before the switches records none in its args: its network says them,
        # and it trained with lighting, the only augmentation there was
        saved = {**switches_of(meta["model_config"]), "lighting": True, **saved}
    for key in sorted(explicit):
        rule = RESUME_RULE.get(key)
        if rule == "refused" and key in saved and not _same(key, getattr(args, key), saved[key]):
            shown = "on" if saved[key] is True else "off" if saved[key] is False else saved[key]
            name = flag(key)
            if key in ("lrn", "lighting"):  # --lrn/--no-lrn: say the pair and the saved one as typed
                name, shown = f"--{key}/--no-{key}", f"--{key}" if saved[key] else f"--no-{key}"
                raise UsageError(f"{name} cannot change on --resume: it defines the run, and {path} was trained "
                                 f"with {shown}; to train with another value start a new run from its weights "
                                 f"with --weights {path}")
            raise UsageError(f"{name} cannot change on --resume: it defines the run, and {path} was trained "
                             f"with {name} {shown}; to train with another value start a new run from its "
                             f"weights with --weights {path}")
    done, step = int(meta.get("epoch", 0)), int(meta.get("step_in_epoch", 0))
    if args.epochs <= done:
        if "epochs" in explicit:
            said = f"--epochs {args.epochs} is not more than the {done} epochs {path} has finished"
        else:
            said = f"{path} has finished all {done} epochs of its run"
        raise UsageError(f"{said}; to train further, pass --epochs N with N > {done} "
                         f"(e.g. --epochs {done + max(done // 2, 1)})")
    if "batch_size" in explicit and step:
        saved_global = saved.get("global_batch_size") or saved.get("batch_size")
        if saved_global and args.batch_size * processes != int(saved_global):
            raise UsageError(f"-b can change on --resume only at an epoch boundary: {path} stopped at step {step} "
                             f"of epoch {done + 1}, whose batches are of {saved_global} images; leave -b out, or "
                             f"resume the checkpoint of a finished epoch")
    return {k for k in SCHEDULE_KEYS if k in explicit}


__all__ = ["RECIPES", "RECIPE_KEYS", "MODELS", "FIXED", "RUN_KEYS", "SWITCH_KEYS", "POOLS", "switch_fields",
           "switches_of", "RESUME_RULE", "SCHEDULE_KEYS", "RESUME_HELP",
           "check_combinations", "resolve", "check_resume", "flag"]
