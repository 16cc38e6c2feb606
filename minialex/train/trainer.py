"""The training loop: SGD steps over a loader, validation each epoch, logs, curves and
atomic, exactly resumable checkpoints. How it fits together: docs/training.md."""

import csv
import json
import math
import os
import time
from functools import partial

import numpy as np
from tqdm import tqdm

from .. import backend
from ..nn import SoftmaxCrossEntropy, softmax
from ..optim import SGD
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .metrics import Average, topk_correct
from .plots import filter_grid, save_curves
from .schedule import PlateauSchedule, StepSchedule

CSV_FIELDS = ["epoch", "lr", "train_loss", "train_top1_err", "val_loss", "val_top1_err", "val_top5_err",
              "epoch_seconds", "images_per_second", "data_wait_share"]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: a checkpoint of the current step was saved to ``checkpoint``."""

    def __init__(self, checkpoint):
        super().__init__(checkpoint)
        self.checkpoint = checkpoint


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stopped and the last good checkpoint was kept."""


class Trainer:
    """Trains ``model`` with the paper's SGD on ``train_loader``, validating on ``val_loader``.

    ``model`` lives on ``xp`` already (``model.to(...)`` or the two-device
    model). The checkpoint ``output_dir/checkpoint.npz`` is rewritten after
    every epoch, and on Ctrl-C, with everything needed to continue exactly:
    weights, momentum, epoch and step, learning rate and schedule, dropout
    RNG counters, metrics so far, the class list and the model's config.
    The data order and augmentation need no saved state: the loader derives
    them from (seed, epoch, sample).
    """

    def __init__(self, model, train_loader, val_loader, *, classes, output_dir, xp=np, device_id=None,
                 lr=0.01, momentum=0.9, weight_decay=5e-4, epochs=90, schedule="plateau", patience=3,
                 step_size=30, log_every=20, args=None, progress=True, extra_arrays=None, extra_meta=None):
        self.model, self.train_loader, self.val_loader = model, train_loader, val_loader
        self.classes = list(classes)
        self.output_dir = output_dir
        self.xp, self.device_id = xp, device_id
        self.epochs, self.log_every, self.progress = int(epochs), max(int(log_every), 1), progress
        self.args = dict(args or {})
        # what inference needs besides the weights (mean image, crop sizes, class names)
        self.extra_arrays, self.extra_meta = dict(extra_arrays or {}), dict(extra_meta or {})
        self.optimizer = SGD(list(model.named_parameters()), lr=lr, momentum=momentum,
                             weight_decay=weight_decay)
        if schedule == "plateau":
            self.schedule = PlateauSchedule(lr, patience=patience)
        elif schedule == "step":
            self.schedule = StepSchedule(lr, step_size=step_size)
        else:
            raise ValueError(f"unknown schedule {schedule!r}; use 'plateau' or 'step'")
        self.loss_fn = SoftmaxCrossEntropy()
        self.epoch, self.step_in_epoch = 0, 0  # where the next training step starts
        self.history = []  # one dict per finished epoch (the CSV rows)
        self._partial = {"loss": 0.0, "top1": 0, "count": 0}  # running sums of an unfinished epoch
        os.makedirs(output_dir, exist_ok=True)

    # -- paths ----------------------------------------------------------------------
    @property
    def checkpoint_path(self):
        return os.path.join(self.output_dir, "checkpoint.npz")

    def _to_device(self, x):
        return backend.to_backend(x, self.xp, self.device_id)

    # -- one training step ----------------------------------------------------------
    def train_step(self, images, labels):
        """Forward, loss, backward and the SGD update on one batch; returns (loss, logits).

        Both come back on the device, unread: reading them is a host-device sync,
        so the loop does it only every ``log_every`` steps.
        """
        self.model.train()
        with backend.device(self.xp, self.device_id):  # so temporaries land on the model's GPU
            logits = self.model.forward(self._to_device(images))
            loss = self.loss_fn.forward(logits, labels)
            self.optimizer.zero_grad()
            self.model.backward(self.loss_fn.backward())
            self.optimizer.step()
        return loss, logits

    def train_epoch(self, epoch):
        loader = self.train_loader
        start_step = self.step_in_epoch
        total = len(loader)
        bar = tqdm(total=total, initial=start_step, desc=f"epoch {epoch + 1}/{self.epochs}",
                   disable=not self.progress, leave=False, dynamic_ncols=True)
        t0, seen = time.perf_counter(), 0
        run = loader.epoch_iter(epoch, start_batch=start_step)
        try:
            for images, labels in run:
                loss, logits = self.train_step(images, labels)
                self.step_in_epoch += 1
                seen += len(labels)
                if self.step_in_epoch % self.log_every == 0 or self.step_in_epoch == total:
                    value = float(loss)  # the one sync per logging interval
                    if not math.isfinite(value):
                        raise NonFiniteLossError(
                            f"loss became {value} at epoch {epoch + 1}, step {self.step_in_epoch}; "
                            f"stopped; the last good checkpoint is {self.checkpoint_path}. "
                            "Try a smaller --lr.")
                    top1 = topk_correct(logits, labels, ks=(1,))[0]
                    p = self._partial
                    p["loss"] += value * len(labels)
                    p["top1"] += top1
                    p["count"] += len(labels)
                    elapsed = time.perf_counter() - t0
                    bar.set_postfix(loss=f"{value:.3f}", top1=f"{100 * (1 - top1 / len(labels)):.1f}%",
                                    img_s=f"{seen / max(elapsed, 1e-9):.1f}",
                                    data=f"{100 * loader.wait_time / max(elapsed, 1e-9):.0f}%")
                bar.update(1)
        finally:
            bar.close()
            run.close()
        elapsed = time.perf_counter() - t0
        p = self._partial
        return {
            "train_loss": p["loss"] / max(p["count"], 1),
            "train_top1_err": 100.0 * (1 - p["top1"] / max(p["count"], 1)),
            "epoch_seconds": elapsed,
            "images_per_second": seen / max(elapsed, 1e-9),
            "data_wait_share": loader.wait_time / max(elapsed, 1e-9),
        }

    # -- evaluation -----------------------------------------------------------------
    def evaluate(self, loader=None, epoch=0):
        """Mean loss and top-1/top-5 error (%) on ``loader`` (the validation loader by default).

        Batches of shape (N, 10, 3, S, S) are ten-crop batches: the softmax of the
        ten patches is averaged per image, as in the paper's test procedure.
        """
        loader = loader or self.val_loader
        self.model.eval()
        loss_avg, correct1, correct5, count = Average(), 0, 0, 0
        run = loader.epoch_iter(epoch)
        try:
            for images, labels in tqdm(run, total=len(loader), desc="validate", leave=False,
                                       disable=not self.progress, dynamic_ncols=True):
                n = len(labels)
                crops = images.shape[1] if images.ndim == 5 else 1
                x = images.reshape(n * crops, *images.shape[-3:])  # (N*crops, 3, S, S)
                with backend.device(self.xp, self.device_id):
                    probs = softmax(self.model.forward(self._to_device(x)))
                xp = backend.get_array_module(probs)
                probs = probs.reshape(n, crops, -1).mean(axis=1)  # (N, K): average over crops
                picked = probs[xp.arange(n), xp.asarray(labels)]
                loss_avg.update(float(-xp.log(xp.maximum(picked, 1e-30)).mean()), n)
                c1, c5 = topk_correct(probs, labels, ks=(1, 5))
                correct1, correct5, count = correct1 + c1, correct5 + c5, count + n
        finally:
            run.close()
        self.model.train()
        count = max(count, 1)
        return {"val_loss": loss_avg.mean, "val_top1_err": 100.0 * (1 - correct1 / count),
                "val_top5_err": 100.0 * (1 - correct5 / count)}

    # -- the loop -------------------------------------------------------------------
    def fit(self):
        """Train from the current epoch to ``epochs``; returns the history.

        Ctrl-C saves a checkpoint at the current step before re-raising, so
        ``--resume`` continues from the very batch that was interrupted.
        """
        self._write_args()
        while self.epoch < self.epochs:
            epoch = self.epoch
            lr = self.optimizer.lr = self.schedule.lr
            try:
                row = self.train_epoch(epoch)
            except KeyboardInterrupt:
                self.save()
                raise TrainingInterrupted(self.checkpoint_path) from None
            row.update(self.evaluate(epoch=epoch))
            row.update(epoch=epoch + 1, lr=lr)
            self.history.append(row)
            self.schedule.step(epoch, row["val_top1_err"])
            self.epoch, self.step_in_epoch = epoch + 1, 0
            self._partial = {"loss": 0.0, "top1": 0, "count": 0}
            self.save()
            self._write_logs()
            (tqdm.write if self.progress else partial(print, flush=True))(
                f"epoch {epoch + 1}/{self.epochs}  lr {lr:.2g}  train loss {row['train_loss']:.4f}  "
                f"val loss {row['val_loss']:.4f}  top-1 err {row['val_top1_err']:.2f}%  "
                f"top-5 err {row['val_top5_err']:.2f}%  {row['images_per_second']:.1f} img/s  "
                f"data wait {100 * row['data_wait_share']:.0f}%")
        return self.history

    # -- outputs --------------------------------------------------------------------
    def _write_args(self):
        with open(os.path.join(self.output_dir, "args.json"), "w") as f:
            json.dump(self.args, f, indent=2, sort_keys=True, default=str)

    def _write_logs(self):
        """metrics.csv rewritten from the history (so a resumed run never duplicates rows),
        the curves PNG and the conv1 filter picture."""
        path = os.path.join(self.output_dir, "metrics.csv")
        with open(path + ".tmp", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            writer.writeheader()
            for row in self.history:
                writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k]) for k in CSV_FIELDS})
        os.replace(path + ".tmp", path)
        save_curves(self.history, os.path.join(self.output_dir, "curves.png"))
        weight = self.model.state_dict().get("conv1.weight")
        if weight is not None and weight.shape[1] == 3:
            filter_grid(weight).save(os.path.join(self.output_dir, "conv1_filters.png"))

    # -- checkpoints ----------------------------------------------------------------
    def save(self, path=None):
        arrays = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        arrays.update({f"momentum/{k}": v for k, v in self.optimizer.state_dict().items()})
        arrays.update(self.extra_arrays)
        meta = dict(self.extra_meta)
        meta.update({
            "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "lr": self.optimizer.lr,
            "schedule": self.schedule.state_dict(), "partial": self._partial, "history": self.history,
            "dropout": self.model.dropout_state(), "classes": self.classes,
            "model_config": self.model.config, "args": self.args,
        })
        save_checkpoint(path or self.checkpoint_path, arrays, meta)

    def resume(self, path):
        """Restore everything ``save`` wrote; raise CheckpointError if it does not fit this run."""
        arrays, meta = load_checkpoint(path)
        if meta.get("model_config") != self.model.config:
            raise CheckpointError(
                f"{path} holds a different network: checkpoint config {meta.get('model_config')} "
                f"vs this run's {self.model.config}")
        if meta.get("classes") != self.classes:
            raise CheckpointError(f"{path} was trained on other classes than this dataset's")
        model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
        momentum = {k[len("momentum/"):]: v for k, v in arrays.items() if k.startswith("momentum/")}
        try:
            self.model.load_state_dict(model_state)
            self.optimizer.load_state_dict(momentum)
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        self.model.load_dropout_state(meta["dropout"])
        self.schedule.load_state_dict(meta["schedule"])
        self.optimizer.lr = meta["lr"]
        self.epoch, self.step_in_epoch = meta["epoch"], meta["step_in_epoch"]
        self.history, self._partial = meta["history"], meta["partial"]
        return meta
