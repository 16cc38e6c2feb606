"""What a run tells its user: the lines it prints, the progress bars, and the files besides
its checkpoints (args.json, metrics.csv, curves.png, conv1_filters.png). Every file goes
through the one atomic writer (minialex/atomic.py); every figure is an error rate in percent
under one name (train_top1_err, val_top1_err, val_top5_err). docs/training.md, "Outputs".
"""

import csv
import io
import json
import os
import sys

from tqdm import tqdm

from ..atomic import atomic_write, write_text
from ..nn.dispatch import reference_enabled
from .plots import filter_grid, save_curves

# The one metric convention, in the progress bar, the epoch lines, metrics.csv, the curves and
# --test-only alike.
CSV_FIELDS = ["epoch", "lr", "train_loss", "train_top1_err", "val_loss", "val_top1_err", "val_top5_err",
              "epoch_seconds", "images_per_second", "data_wait_share"]


def reports_top5(num_classes):
    """Top-5 error means something only with more than 5 classes (with 5 or fewer it is always 0)."""
    return num_classes > 5


def bars_wanted(asked=True, stream=None):
    """Progress bars only when asked for and the output is a terminal (tqdm's convention): in a
    log file a bar is hundreds of wrapped lines, so there the epoch lines stand alone."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(asked) and stream.isatty()
    except (AttributeError, ValueError):
        return False


class Reporter:
    """Prints (process 0 alone) and writes a run's logs into ``output_dir``."""

    def __init__(self, output_dir, top5, epochs, printing=True, bars=True):
        self.output_dir, self.top5, self.epochs = output_dir, top5, epochs
        self.printing, self.bars = printing, bars and printing

    @property
    def csv_fields(self):
        return [f for f in CSV_FIELDS if self.top5 or f != "val_top5_err"]

    # -- lines -------------------------------------------------------------------------------
    def line(self, text, err=False):
        """One line, around a progress bar when one is drawn."""
        if not self.printing:
            return
        if self.bars:
            tqdm.write(text, file=sys.stderr if err else sys.stdout)
        else:
            print(text, file=sys.stderr if err else sys.stdout, flush=True)

    def bar(self, total, desc, initial=0):
        return tqdm(total=total, initial=initial, desc=desc, disable=not self.bars, leave=False, dynamic_ncols=True)

    def bar_over(self, iterable, total, desc):
        """``iterable`` under a progress bar when bars are drawn, else itself."""
        return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True) if self.bars else iterable

    def epoch_line(self, row, improved=False, skipped=0):
        top5 = f"  val_top5_err {row['val_top5_err']:.2f}%" if "val_top5_err" in row else ""
        skip = f"  ({skipped} unreadable image{'s' if skipped != 1 else ''} skipped)" if skipped else ""
        return (f"epoch {row['epoch']}/{self.epochs}  lr {row['lr']:.2g}  train_loss {row['train_loss']:.4f}  "
                f"train_top1_err {row['train_top1_err']:.2f}%  val_loss {row['val_loss']:.4f}  "
                f"val_top1_err {row['val_top1_err']:.2f}%{top5}  {row['images_per_second']:.1f} img/s  "
                f"data wait {100 * row['data_wait_share']:.0f}%" + ("  (best so far)" if improved else "") + skip)

    # -- files -------------------------------------------------------------------------------
    def write_args(self, args):
        """args.json: every option as this invocation uses it."""
        write_text(os.path.join(self.output_dir, "args.json"),
                   json.dumps(args, indent=2, sort_keys=True, default=str) + "\n")

    def metrics_text(self, history):
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.csv_fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in history:
            writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row.get(k), float) else row.get(k))
                             for k in self.csv_fields})
        return out.getvalue()  # every line, the last one too, ends in "\n"

    def write_logs(self, history, model):
        """metrics.csv rewritten from the history (so a resumed run never duplicates rows), the
        curves and the conv1 filter picture."""
        write_text(os.path.join(self.output_dir, "metrics.csv"), self.metrics_text(history))
        save_curves(history, os.path.join(self.output_dir, "curves.png"))
        weight = model.state_dict().get("conv1.weight")
        if weight is not None and weight.shape[1] == 3:
            picture = filter_grid(weight)
            atomic_write(os.path.join(self.output_dir, "conv1_filters.png"), lambda f: picture.save(f, format="PNG"))





# -- the run's first line and its warnings -----------------------------------------------------
PAPER_PARAMS_PER_IMAGE = 48  # the paper's 61 M parameters / 1.28 M images
WARN_PARAMS_PER_IMAGE = 1000  # warn past this many parameters per training image


def batch_text(batch_size, global_batch, processes):
    if processes == 1:
        return f"batch {batch_size}"
    per = f"{batch_size}" if global_batch == batch_size * processes else \
        f"{global_batch // processes}-{-(-global_batch // processes)}"
    return f"batch {per} per process x {processes} processes = {global_batch}"


def switches_text(cfg):
    """", tanh, no LRN, 2/2 pools, ...": the switches of an ablation that differ from the paper's recipe
    (docs/alexnet.md, "Switches"), so a run's first line says which variant it is; "" for the paper's."""
    parts = []
    if getattr(cfg, "activation", "relu") != "relu":
        parts.append(f"{cfg.activation} instead of ReLU")
    if not getattr(cfg, "lrn", True):
        parts.append("no LRN")
    if getattr(cfg, "pool", "3/2") != "3/2":
        parts.append(f"{cfg.pool} pools")
    if getattr(cfg, "dropout", 0.5) != 0.5:
        parts.append("no dropout" if cfg.dropout == 0 else f"dropout {cfg.dropout:g}")
    if not getattr(cfg, "lighting", True):
        parts.append("no PCA lighting")
    return "".join(", " + p for p in parts)


def start_line(cfg, trainer, train_loader, val_loader, what, resumed=None, weights=None, side=None,
               eta=""):
    """``minialex: training AlexNet (...) on ...; N epochs of S steps (batch B); backend ...``,
    or ``minialex: resuming ...`` with ``resumed`` = (description of the checkpoint, its folder)."""
    world = trainer.world
    steps = len(train_loader)
    why = f"; the preset suits images of about {side:.0f} px, --model picks another" if side is not None else ""
    net = (f"AlexNet ({cfg.model} preset, {trainer.model.num_parameters():,} parameters, "
           f"{cfg.crop_size}x{cfg.crop_size} crops of {cfg.resize_size}x{cfg.resize_size} images"
           f"{switches_text(cfg)}{why})")
    if weights:
        net += f" from the weights of {weights}" + (" (all layers but fc8)" if cfg.reset_classifier else "")
    # tar shards under several processes: each reads its own shards, so its loader counts its own
    own = world.size if train_loader.streaming and world.size > 1 else 1
    data = (f"{what}: {train_loader.num_samples * own} train / {val_loader.num_samples * own} val images"
            + (f" ({train_loader.num_samples} and {val_loader.num_samples} in each process's own shards)"
               if own > 1 else "") + f", {len(trainer.classes)} classes")
    engine = trainer.optimizer.engine_name
    exchange = f"; gradients averaged by {engine}" if engine else ""
    batch = batch_text(cfg.batch_size, cfg.global_batch_size, world.size)
    where = f"output in {cfg.output_dir}"
    hardware = f"backend {cfg.backend}, devices {cfg.devices}"
    if reference_enabled():
        hardware += (", the reference implementations of minialex/nn/functional/ (MINIALEX_REFERENCE=1 or "
                     "reference()), not the kernels")
    if resumed:
        description, folder = resumed
        same = os.path.abspath(cfg.output_dir) == folder
        where += " (the checkpoint's folder)" if same else \
            f" (--output-dir; the checkpoint's own folder {folder} is left as it is)"
        left = steps * (cfg.epochs - trainer.epoch) - trainer.step_in_epoch
        return (f"minialex: resuming {description} at epoch {trainer.epoch + 1}, step {trainer.step_in_epoch + 1} "
                f"of {steps}: {left} steps of {batch.replace('batch ', '', 1)} left until epoch {cfg.epochs}; "
                f"{net} on {data}{exchange}; {hardware}; {where}")
    plural = "s" if cfg.epochs != 1 else ""
    return (f"minialex: training {net} on {data}; {cfg.epochs} epoch{plural} of {steps} step"
            f"{'s' if steps != 1 else ''} ({batch}){eta}{exchange}; {hardware}; {where}")


def size_warning(params, model_name, images, smaller_presets):
    """A warning line when the network is far too big for the number of training images, else None."""
    per_image = params / max(images, 1)
    if per_image <= WARN_PARAMS_PER_IMAGE:
        return None
    hint = f"; --model {' or '.join(smaller_presets)} is smaller" if smaller_presets else ""
    return (f"warning: the network has {params:,} parameters, about {per_image:,.0f} per training image "
            f"({images} images; the paper had about {PAPER_PARAMS_PER_IMAGE}): expect it to memorise the "
            f"training images rather than learn the classes{hint}")
__all__ = ["CSV_FIELDS", "Reporter", "bars_wanted", "reports_top5", "batch_text", "start_line", "size_warning"]
