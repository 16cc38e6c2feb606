"""The command behind minialex-train, minialex-train-cifar10, ``python -m minialex train`` and
examples/train_imagenet.py and examples/train_cifar10.py: a pipeline, read top to bottom.

    flags (arguments.py) -> one run configuration (config.py) -> the run folder (run_folder.py)
    -> data, network and loaders (build.py) -> training (trainer.py) -> what it reports (report.py)

Every expected failure ends in one line on stderr and an exit code (errors.py), never a
traceback; a bad value touches no file. Several processes under mpiexec: distributed.py.
docs/training.md.
"""

import os
import shlex
import sys
import time

from .. import backend
from ..atomic import WriteFailed
from ..backend import BackendError
from ..data import DataError, SkipLog
from ..interop import read_weights
from ..kernels.cpu import runtime
from ..models import PRESETS
from ..parallel.world import DistributedError, Solo
from ..weights import CheckpointError, check_resumable, describe_checkpoint, find_checkpoint, load_checkpoint
from ..weights import load_start_weights, load_weights, split_state
from . import build, distributed
from .arguments import build_parser, parse_devices
from .config import FIXED, RUN_KEYS, check_combinations, check_resume, resolve, switch_fields
from .distributed import PeerFailed, Session
from .errors import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, NonFiniteLossError, TrainingFailed, TrainingInterrupted,
                     UsageError, WeightsDivergedError)
from .options import run_main
from .report import bars_wanted, size_warning, start_line
from .run_folder import check_output_dir, prepare_output_dir
from .trainer import Trainer

# This invocation's own flags: how it runs, not what it computes. The checkpoint does not
# keep them, so the command that continues a stopped run repeats those given.
SESSION_FLAGS = ("backend", "devices", "workers", "worker_kind", "print_freq", "no_progress", "timeout", "on_corrupt")


def read_start(args, script):
    """(path, arrays, meta) of --resume or --weights (all None without either)."""
    if not (args.resume or args.weights):
        return None, None, None
    path = find_checkpoint(args.resume or args.weights, prefer="latest" if args.resume else "best")
    # --weights reads .npz, .safetensors and .onnx alike (minialex.interop.read_weights)
    arrays, meta = read_weights(path) if args.weights else load_checkpoint(path)
    for note in meta.get("notes") or ():
        print(f"minialex: {path}: {note}", flush=True)
    saved = meta.get("dataset_kind")
    if args.resume and saved and saved != script:
        other = "minialex-train-cifar10" if saved == "cifar10" else "minialex-train"
        raise UsageError(f"{path} is a {'CIFAR-10' if saved == 'cifar10' else 'image-folder'} run; "
                         f"resume it with {other}")
    return path, arrays, meta


def open_devices(args, world):
    """(xp, this process's device ids) for --backend and --devices; one line if either cannot work."""
    devices = parse_devices(args.devices)
    xp = backend.get_backend(args.backend)  # BackendError (with the install hint) if CuPy is missing
    if args.backend == "numpy":
        runtime.retain_freed_memory()  # keep big freed arrays mapped: no page faults every step
    if world.size > 1 and args.backend == "cupy":  # this process's GPUs among the node's
        distributed.check_gpu_count(devices, args.devices, world, backend.device_count(xp))
        devices = distributed.local_devices(devices, world)
    for d in devices:
        backend.check_device(xp, d)
    return xp, devices


def continue_command(ckpt, explicit, args, world):
    """The whole command that continues a stopped run, as the user would type it."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "minialex-train"
    if argv0.endswith("__main__.py"):
        prog = "python -m minialex train"
    elif argv0.endswith(".py"):
        prog = f"python {shlex.quote(argv0)}"  # the script as it was typed
    else:
        prog = os.path.basename(argv0)
    launcher = f"mpiexec -n {world.size} " if world.size > 1 else ""
    extra = []
    for key in SESSION_FLAGS:
        if key in explicit:
            value = getattr(args, key)
            extra.append(f"--{key.replace('_', '-')}" + ("" if value is True else f" {shlex.quote(str(value))}"))
    return f"{launcher}{prog} --resume {shlex.quote(ckpt)}" + "".join(" " + e for e in extra)


def run(argv, dataset_kind="imagenet", prog=None, session=None):
    """The training script. ``session`` (train/distributed.py) when mpiexec started several
    processes: they check at start-up that they were started alike, then train one model."""
    world = session.world if session is not None else Solo()
    script = "cifar10" if dataset_kind == "cifar10" else "folder"
    args = build_parser(dataset_kind, prog).parse_args(argv)
    explicit = {k for k, v in vars(args).items() if v is not None and v is not False}
    explicit |= {k for k in ("lrn", "lighting") if getattr(args, k) is False}  # --no-lrn, --no-lighting
    args.ten_crop = getattr(args, "ten_crop", False)  # (options the CIFAR script does not have)
    args.on_corrupt = getattr(args, "on_corrupt", None)
    check_combinations(args, explicit)
    args.backend, args.devices = args.backend or FIXED["backend"], args.devices or FIXED["devices"]

    # -- the checkpoint (read only), the devices, the data and the network that fits it ---------
    ckpt_path, arrays, meta = read_start(args, script)
    ckpt_args = (meta.get("args") or {}) if args.resume else None
    if args.resume and "data" not in explicit:
        args.data = ckpt_args.get("data")
    if script == "cifar10" and args.data is None:
        raise UsageError("--data is required: the folder holding the CIFAR-10 python batches (cifar-10-batches-py)")
    xp, devices = open_devices(args, world)
    train_set, val_set, kind = build.datasets(args.data, script, world)
    classes = list(train_set.classes)
    args.model, side, chosen = build.choose_model(args.model, meta, (ckpt_args or {}).get("model"), kind, train_set)
    from_file = meta is not None and "model" not in explicit and meta.get("model_config")
    resolve(args, explicit, ckpt_args, (meta.get("preprocess") if args.weights else None), args.model,
            meta["model_config"] if from_file else None)
    schedule_flags = set()
    if args.resume and not args.test_only:
        schedule_flags = check_resume(args, explicit, ckpt_args, meta, ckpt_path, world.size)
    # The global batch (what one SGD step averages over) is P x -b; a resumed run keeps its
    # checkpoint's global batch unless -b is given, whatever the number of processes.
    streaming = build.is_streaming(train_set)
    saved_global = (ckpt_args.get("global_batch_size") or ckpt_args.get("batch_size")) if ckpt_args else None
    if saved_global and "batch_size" not in explicit and not streaming:
        args.global_batch_size = int(saved_global)
        args.batch_size = max(1, args.global_batch_size // world.size)
    else:
        args.global_batch_size = args.batch_size * world.size

    # -- where the run goes --------------------------------------------------------------------
    if args.test_only:
        args.output_dir = None
    elif "output_dir" not in explicit:
        args.output_dir = (os.path.dirname(os.path.abspath(ckpt_path)) if args.resume else
                           build.default_output_dir(kind, args.data, args.model))
    replace = args.output_dir is not None and check_output_dir(args.output_dir, ckpt_path if args.resume else None,
                                                               args.overwrite)

    model = build.build_model(args.model, meta["model_config"] if from_file else None, classes, args.crop_size,
                              args.seed, devices, xp, switch_fields(args))
    if args.weights:
        load_start_weights(model, arrays, meta, ckpt_path, classes, args.reset_classifier)
    elif args.resume:
        check_resumable(model, classes, arrays, meta, ckpt_path)  # before any file is written
    resolved = dict(vars(args), data=os.path.abspath(args.data) if args.data else None,
                    resume=ckpt_path if args.resume else None, weights=ckpt_path if args.weights else None,
                    processes=world.size)
    resolved.pop("distributed", None)
    what = build.describe_data(kind, args.data)
    if session is not None:  # the first exchange between the processes: were they started alike?
        session.check(distributed.start_up_fingerprint(resolved, train_set, val_set, meta),
                      {"host": distributed.hostname(),
                       "gpus": distributed.gpu_identities(xp, devices) if args.backend == "cupy" else []})
    if args.test_only:
        return test_only(args, model, xp, arrays, meta, ckpt_path, train_set, val_set, what, world)

    # -- from here on files are written (by process 0 alone) -------------------------------------
    if world.is_root:
        prepare_output_dir(args.output_dir, replace, keep=ckpt_path)
    bars = bars_wanted(not args.no_progress)
    skips = SkipLog()
    t0 = time.perf_counter()
    stats = build.training_stats(train_set, kind, args.output_dir, args, skips) if world.is_root else None
    stats = world.bcast(stats)
    train_loader, val_loader = build.loaders(args, stats, train_set, val_set, world, skips, args.global_batch_size)
    trainer = Trainer(model, train_loader, val_loader, classes=classes, output_dir=args.output_dir, xp=xp,
                      device_id=devices[0], lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                      epochs=args.epochs, schedule=args.lr_schedule, patience=args.lr_patience,
                      step_size=args.lr_step_size, log_every=args.print_freq, args=resolved, progress=bars,
                      world=world, timeout=args.timeout, skips=skips,
                      extra_arrays={"stats/mean_image": stats.mean_image, "stats/mean_rgb": stats.mean_rgb},
                      extra_meta={"preprocess": {"resize": args.resize_size, "crop": args.crop_size, "mean": "image"},
                                  "names": list(train_set.names), "dataset_kind": script})
    resumed = None
    if args.resume:
        trainer.restore(arrays, meta, ckpt_path)
        if schedule_flags:  # --lr and friends on --resume: the schedule restarts here
            trainer.restart_schedule(args.lr if "lr" in explicit else None)
        resumed = (describe_checkpoint(ckpt_path, meta), os.path.dirname(os.path.abspath(ckpt_path)))
    del arrays  # the trainer holds its own copies now
    with trainer.stop:  # from here a stop signal is taken between two steps, with a checkpoint
        skips.take_count()  # the statistics pass's skips were named already; each epoch counts its own
        eta = (", about 3 minutes on 2 CPU cores" if kind == build.EMBEDDED and args.backend == "numpy"
               and args.max_images is None and not (explicit & {"epochs", "model", "batch_size", "crop_size"}) else "")
        trainer.reporter.line(start_line(args, trainer, train_loader, val_loader, what, resumed,
                                         ckpt_path if args.weights else None, side if chosen else None, eta))
        if trainer.engine_note:
            trainer.reporter.line(f"note: {trainer.engine_note}", err=True)
        smaller = [m for m in ("synthetic", "cifar10") if m != args.model
                   and PRESETS[m].num_parameters() < model.num_parameters()]
        warning = size_warning(model.num_parameters(), args.model, len(train_set), smaller)
        if warning:
            trainer.reporter.line(warning, err=True)
        try:
            history = trainer.fit()
        except TrainingInterrupted as exc:
            exc.command = continue_command(exc.checkpoint, explicit, args, world)
            raise
        finally:  # stops the loaders' threads or worker processes and frees their batches
            for loader in (train_loader, val_loader):
                if loader is not None:
                    loader.close()
    last, best = history[-1], trainer.best
    top5 = f", val_top5_err {last['val_top5_err']:.2f}%" if "val_top5_err" in last else ""
    trainer.reporter.line(
        f"done in {time.perf_counter() - t0:.0f} s: val_top1_err {last['val_top1_err']:.2f}%{top5} after epoch "
        f"{last['epoch']} (chance {100 - 100 / len(classes):.1f}%); best val_top1_err {best['val_top1_err']:.2f}% "
        f"at epoch {best['epoch']}; checkpoints {trainer.checkpoints.latest} (latest) and "
        f"{trainer.checkpoints.best} (best)")
    return 0


def test_only(args, model, xp, arrays, meta, ckpt_path, train_set, val_set, what, world):
    """--test-only: evaluate the checkpoint's weights with its own mean image; write nothing. With
    several processes each evaluates its share of the images and the counts are summed."""
    if args.resume:  # (--weights were loaded already)
        load_weights(model, split_state(arrays)[0], ckpt_path)
    stats = build.eval_stats(arrays)
    mean = "image"
    if stats.mean_image is None and stats.mean_rgb is not None:
        mean = "channel"  # an exported file keeps the channel means only
    elif stats.mean_image is None or stats.mean_image.shape[0] != args.resize_size:
        saved = None if stats.mean_image is None else stats.mean_image.shape[0]
        raise UsageError(f"--resize-size {args.resize_size} does not match {ckpt_path}, whose mean image is for "
                         f"{saved} px images; leave --resize-size out")
    _, val_loader = build.loaders(args, stats, None, val_set, world, SkipLog(), args.global_batch_size, train=False,
                                  mean=mean)
    trainer = Trainer(model, None, val_loader, classes=train_set.classes, output_dir=".", xp=xp,
                      progress=bars_wanted(not args.no_progress), world=world)
    source = meta.get("description") or describe_checkpoint(ckpt_path, meta)  # an export says what it is
    trainer.reporter.line(f"minialex: evaluating {source} on {what}: {val_loader.num_samples} validation images"
                          f"{', ten crops each' if args.ten_crop else ''}")
    try:
        result = trainer.evaluate()
    finally:
        val_loader.close()
    top5 = f"  val_top5_err {result['val_top5_err']:.2f}%" if "val_top5_err" in result else ""
    trainer.reporter.line(f"val_loss {result['val_loss']:.4f}  val_top1_err {result['val_top1_err']:.2f}%{top5}  "
                          f"(chance val_top1_err {100 - 100 / len(train_set.classes):.1f}%)")
    return 0


def attempt(body):
    """Run ``body``; (exit code, message or None, how it ended) for every expected ending."""
    try:
        return body(), None, "done"
    except (UsageError, DataError, BackendError, CheckpointError, DistributedError, WriteFailed) as exc:
        return EXIT_USAGE, f"error: {exc}", "usage"  # (a write that fails during training is TrainingFailed)
    except (NonFiniteLossError, WeightsDivergedError) as exc:  # every process learns it at the same step
        return EXIT_FAILED, f"error: {exc}", "together"
    except TrainingFailed as exc:  # (a checkpoint that could not be written: process 0 alone)
        return EXIT_FAILED, f"error: {exc}", "failed"
    except TrainingInterrupted as exc:
        where = f"at epoch {exc.epoch + 1}, step {exc.step}" if exc.step else f"after epoch {exc.epoch}"
        return (EXIT_INTERRUPTED, f"interrupted ({exc.signal_name}) {where}: saved {exc.checkpoint}; continue with: "
                f"{getattr(exc, 'command', '--resume ' + exc.checkpoint)}", "interrupted")
    except KeyboardInterrupt:  # before training began, or a second Ctrl-C: nothing new was saved
        return EXIT_INTERRUPTED, "interrupted; no checkpoint was written by this command", "keyboard"
    except OSError as exc:  # an operating-system failure outside a write: name the file and the cause
        where = f"{exc.filename}: " if exc.filename else ""
        return EXIT_USAGE, f"error: {where}{exc.strerror or exc}", "usage"


def main(argv=None, dataset_kind="imagenet", prog=None):
    """Run and turn the expected failures into one line and an exit code."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        world = distributed.open_world(argv)
    except DistributedError as exc:
        if distributed.launcher_rank() == 0:  # MPI is not there to say who prints: the launcher's variables do
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if world.size > 1:
        return main_processes(world, argv, dataset_kind, prog)
    code, message, _ = attempt(lambda: run_main(lambda a: run(a, dataset_kind, prog), argv))
    if message:
        print(message, file=sys.stderr)
    return code


# How a data-parallel run may end without ending the others: every process gets there at the
# same step (the loss is the global batch's, a stop is agreed on in the step's exchange).
ENDS_TOGETHER = ("done", "together", "interrupted")


def main_processes(world, argv, dataset_kind, prog):
    """``main`` for one of several processes: process 0 prints; a failure before the start-up
    check reaches every process through the check, one after it ends them all (MPI_Abort)."""
    said = distributed.quiet_unless_root(world)
    session = Session(world)
    try:
        code, message, how = attempt(lambda: run_main(lambda a: run(a, dataset_kind, prog, session), argv))
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


__all__ = ["main", "main_cifar10", "run", "build_parser", "parse_devices", "UsageError", "RUN_KEYS"]

if __name__ == "__main__":
    sys.exit(main())
