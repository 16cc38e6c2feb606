"""The training loop: SGD steps over a loader, validation each epoch, logs, curves and
atomic, exactly resumable checkpoints (the latest and the best). How it fits together:
docs/training.md."""

import contextlib
import csv
import json
import math
import os
import signal
import sys
import threading
import time

import numpy as np
from tqdm import tqdm

from .. import backend
from ..nn import SoftmaxCrossEntropy, softmax
from ..optim import SGD
from ..parallel.data_parallel import DataParallel, make_engine
from ..parallel.world import Solo, Watchdog
from ..weights import (BEST, LATEST, CheckpointError, check_resumable, copy_checkpoint, load_checkpoint,
                       load_weights, read_meta, save_checkpoint, split_state)
from .metrics import topk_correct
from .plots import filter_grid, save_curves
from .schedule import PlateauSchedule, StepSchedule

# The one metric convention: error rates in percent, under these names, in the progress
# bar, the epoch lines, metrics.csv, the curves and --test-only alike.
CSV_FIELDS = ["epoch", "lr", "train_loss", "train_top1_err", "val_loss", "val_top1_err", "val_top5_err",
              "epoch_seconds", "images_per_second", "data_wait_share"]


def reports_top5(num_classes):
    """Top-5 error means something only with more than 5 classes (with 5 or fewer it is always 0)."""
    return num_classes > 5


@contextlib.contextmanager
def deferred_interrupt():
    """Hold back a Ctrl-C that arrives inside the block until the block is done.

    For the few places where an interrupt halfway through would leave something
    half made: an epoch's results being committed to the state (so a checkpoint
    never records half an epoch), or the loader's thread pool being set up. Only
    in the main thread with Python's default handler; elsewhere it does nothing.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    pending = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending:
            raise KeyboardInterrupt


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: a checkpoint of the current step was saved to ``checkpoint``."""

    def __init__(self, checkpoint, epoch=0, step=0):
        super().__init__(checkpoint)
        self.checkpoint, self.epoch, self.step = checkpoint, epoch, step


class StopRequested(KeyboardInterrupt):
    """Data parallel: a process was asked to stop (Ctrl-C, SIGTERM, SIGUSR1); every process
    learnt it at the same step."""


class WeightsDivergedError(RuntimeError):
    """Data parallel: the processes' weights are no longer equal (they must be, step after step)."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stopped and the last good checkpoint was kept."""


def model_devices(model, device_id):
    """The GPU ids a model's parameters are on: its two columns', or ``device_id`` (0 if None)."""
    return list(model.devices) if getattr(model, "devices", None) else [0 if device_id is None else device_id]


class Trainer:
    """Trains ``model`` with the paper's SGD on ``train_loader``, validating on ``val_loader``.

    ``model`` lives on ``xp`` already (``model.to(...)`` or the two-device
    model). Two checkpoints are kept in ``output_dir``: ``checkpoint.npz``,
    rewritten after every epoch and on Ctrl-C, and ``checkpoint_best.npz``,
    rewritten when an epoch's validation top-1 error beats every earlier
    epoch's. Each holds everything needed to continue exactly: weights,
    momentum, epoch and step, learning rate and schedule, dropout RNG
    counters, metrics so far, the class list and the model's config. The data
    order and augmentation need no saved state: the loader derives them from
    (seed, epoch, sample). Nothing is written before ``fit`` or ``save``.

    Data parallel (``world`` of several processes, minialex/parallel/world.py): the loaders
    give this process its share of every global batch; each step averages the gradients of
    all processes (minialex/parallel/data_parallel.py) before the update, so every process
    holds the same weights. Metrics are summed over the processes; process 0 alone writes
    and prints. ``timeout``: seconds without progress after which the run is stopped.
    """

    def __init__(self, model, train_loader, val_loader, *, classes, output_dir, xp=np, device_id=None,
                 lr=0.01, momentum=0.9, weight_decay=5e-4, epochs=90, schedule="plateau", patience=3,
                 step_size=30, log_every=20, args=None, progress=True, extra_arrays=None, extra_meta=None,
                 world=None, timeout=1800.0):
        self.model, self.train_loader, self.val_loader = model, train_loader, val_loader
        self.classes = list(classes)
        self.top5 = reports_top5(len(self.classes))
        self.output_dir = output_dir
        self.xp, self.device_id = xp, device_id
        self._uploaders = {}  # "images", "labels" -> backend.Uploader, made on the first CuPy batch
        self.world = world or Solo()
        self.timeout = float(timeout)
        self.epochs, self.log_every = int(epochs), max(int(log_every), 1)
        self.progress = progress and self.world.is_root
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
        self.data_parallel, self.engine_note = None, None
        if self.world.size > 1 and train_loader is not None:  # (evaluation alone needs no gradients)
            engine, self.engine_note = make_engine(self.world, xp, model_devices(model, device_id))
            self.data_parallel = DataParallel(model, self.world, engine)
            self.data_parallel.broadcast_parameters()  # every process starts from process 0's weights
        self.stop_signal = None  # the signal that asked a data-parallel run to stop
        self.global_rows = 0  # images in the last global batch
        self.watchdog = None
        self.epoch, self.step_in_epoch = 0, 0  # where the next training step starts
        self.history = []  # one dict per finished epoch (the CSV rows)
        self.best = None  # {"epoch": e, "val_top1_err": x} of the best finished epoch
        self.best_source = None  # a best checkpoint elsewhere to copy in (a resume into a new folder)
        self._partial = {"loss": 0.0, "top1": 0, "count": 0}  # running sums of an unfinished epoch

    # -- paths ----------------------------------------------------------------------
    @property
    def checkpoint_path(self):
        return os.path.join(self.output_dir, LATEST)

    @property
    def best_path(self):
        return os.path.join(self.output_dir, BEST)

    @property
    def csv_fields(self):
        return [f for f in CSV_FIELDS if self.top5 or f != "val_top5_err"]

    def _to_device(self, x, what="images"):
        """A host batch on the model's device: on CuPy through pinned buffers on a stream of its
        own (backend.Uploader, one per kind of array), so the copy overlaps the step still
        running on the GPU and never makes the host wait."""
        dtype = getattr(self.model, "dtype", None)
        if what == "images" and dtype is not None and x.dtype != dtype:
            x = x.astype(dtype)  # a float64 model (tests, checks) gets float64 images
        if self.xp is np or backend.is_cupy_array(x):
            return backend.to_backend(x, self.xp, self.device_id)
        if what not in self._uploaders:
            self._uploaders[what] = backend.Uploader(self.xp, self.device_id)
        return self._uploaders[what].upload(x)

    def _log(self, text):
        if not self.world.is_root:
            return
        if self.progress:
            tqdm.write(text)
        else:
            print(text, flush=True)

    # -- one training step ----------------------------------------------------------
    def train_step(self, images, labels):
        """Forward, loss, backward and the SGD update on one batch; returns (loss, logits).

        Both come back on the device, unread: reading them is a host-device sync,
        so the loop does it only every ``log_every`` steps. Data parallel: see
        ``parallel_step``.
        """
        if self.data_parallel is not None:
            return self.parallel_step(images, labels)
        self.model.train()
        with backend.device(self.xp, self.device_id):  # so temporaries land on the model's GPU
            logits = self.model.forward(self._to_device(images))
            loss = self.loss_fn.forward(logits, self._to_device(labels, "labels"))
            self.optimizer.zero_grad()
            self.model.backward(self.loss_fn.backward())
            self.optimizer.step()
        return loss, logits

    def parallel_step(self, images, labels):
        """One data-parallel step on this process's share (m of the global batch's M images).

        One small exchange first, of host numbers: every process's m (so each knows M and
        where its rows start, for dropout) and whether it was asked to stop. Then forward and
        loss on the share; the loss gradient is scaled by m / M, so that the allreduce's sum is
        the gradient of the whole batch's mean loss; backward hands each finished layer to the
        allreduce; the update waits for the sums. Returns (loss, logits) of the share, or
        (None, None) for an empty share.
        """
        world, dp, m = self.world, self.data_parallel, len(labels)
        shares = world.allgather((m, self.stop_signal))
        if any(stop is not None for _, stop in shares):
            raise StopRequested(next(stop for _, stop in shares if stop is not None))
        total = sum(n for n, _ in shares)
        self.global_rows = total
        if total == 0:  # every image of this batch was skipped, everywhere: no step, as with one process
            return None, None
        self.model.train()
        loss = logits = None
        with backend.device(self.xp, self.device_id):
            dp.zero_grad()  # (the gradients are views of the buckets: one fill per bucket)
            if m:
                self.model.set_batch_rows(sum(n for n, _ in shares[:world.rank]))  # rows of the global batch
                logits = self.model.forward(self._to_device(images))
                loss = self.loss_fn.forward(logits, self._to_device(labels, "labels"))
                dlogits = self.loss_fn.backward()  # (m, K), of the share's mean loss
                if m != total:
                    dlogits = dlogits * (m / total)  # of the global batch's mean loss
                dp.begin_step()  # backward starts: from here the buckets go out as they fill
                self.model.backward(dlogits, grads_ready=dp.grads_ready)
            else:  # nothing to compute; the gradient sent is zero and dropout counts the step
                self.model.skip_batch()
                dp.begin_step()
            dp.finish()
            self.optimizer.step()
        return loss, logits

    def train_epoch(self, epoch):
        """One epoch from ``step_in_epoch`` on; returns train_loss and train_top1_err (averages
        over the logged steps of the epoch) and the speed figures."""
        loader = self.train_loader
        start_step = self.step_in_epoch
        total = len(loader)
        bar = tqdm(total=total, initial=start_step, desc=f"epoch {epoch + 1}/{self.epochs}",
                   disable=not self.progress, leave=False, dynamic_ncols=True)
        t0, seen = time.perf_counter(), 0
        with deferred_interrupt():  # a half-built epoch iterator would be left behind
            run = loader.epoch_iter(epoch, start_batch=start_step)
        p = self._partial
        try:
            for images, labels in run:
                self.global_rows = len(labels)
                loss, logits = self.train_step(images, labels)
                self.step_in_epoch += 1
                seen += self.global_rows
                if self.watchdog is not None:
                    self.watchdog.beat()
                if self.step_in_epoch % self.log_every == 0 or self.step_in_epoch == total:
                    # the one sync per logging interval; data parallel, summed over the processes
                    value, top1, count = self._batch_figures(loss, logits, labels)
                    if not math.isfinite(value):
                        raise NonFiniteLossError(
                            f"loss became {value} at epoch {epoch + 1}, step {self.step_in_epoch}; "
                            f"stopped; the last good checkpoint is {self.checkpoint_path}. "
                            "Try a smaller --lr.")
                    p["loss"] += value * count
                    p["top1"] += top1
                    p["count"] += count
                    elapsed = time.perf_counter() - t0
                    # running averages of the epoch so far: the last values equal the epoch line's
                    bar.set_postfix_str(
                        f"train_loss {p['loss'] / p['count']:.3f}  "
                        f"train_top1_err {100 * (1 - p['top1'] / p['count']):.1f}%  "
                        f"{seen / max(elapsed, 1e-9):.1f} img/s  "
                        f"data wait {100 * loader.wait_time / max(elapsed, 1e-9):.0f}%")
                bar.update(1)
        finally:
            bar.close()
            run.close()
        elapsed = time.perf_counter() - t0
        return {
            "train_loss": p["loss"] / max(p["count"], 1),
            "train_top1_err": 100.0 * (1 - p["top1"] / max(p["count"], 1)),
            "epoch_seconds": elapsed,
            "images_per_second": seen / max(elapsed, 1e-9),
            "data_wait_share": loader.wait_time / max(elapsed, 1e-9),
        }

    def _batch_figures(self, loss, logits, labels):
        """(mean loss, top-1 correct, images) of the last batch: the whole global batch's when
        data parallel (the same numbers on every process)."""
        n = len(labels) if loss is not None else 0
        loss_sum = float(loss) * n if n else 0.0
        top1 = topk_correct(logits, labels, ks=(1,))[0] if n else 0
        if self.data_parallel is not None:
            loss_sum, top1, n = self.world.sum([loss_sum, top1, n])
        n = int(n)
        return (loss_sum / n if n else 0.0), int(top1), n

    # -- evaluation -----------------------------------------------------------------
    def evaluate(self, loader=None, epoch=0):
        """val_loss and val_top1_err (%) on ``loader`` (the validation loader by default), and
        val_top5_err where there are more than 5 classes.

        Batches of shape (N, 10, 3, S, S) are ten-crop batches: the softmax of the
        ten patches is averaged per image, as in the paper's test procedure.
        """
        loader = loader or self.val_loader
        self.model.eval()
        loss_sum, correct1, correct5, count = 0.0, 0, 0, 0
        with deferred_interrupt():
            run = loader.epoch_iter(epoch)
        try:
            for images, labels in tqdm(run, total=len(loader), desc="validate", leave=False,
                                       disable=not self.progress, dynamic_ncols=True):
                n = len(labels)
                if self.watchdog is not None:
                    self.watchdog.beat()
                if n == 0:  # an empty share of a data-parallel batch
                    continue
                crops = images.shape[1] if images.ndim == 5 else 1
                x = images.reshape(n * crops, *images.shape[-3:])  # (N*crops, 3, S, S)
                with backend.device(self.xp, self.device_id):  # everything on the logits' device
                    probs = softmax(self.model.forward(self._to_device(x)))
                    xp = backend.get_array_module(probs)
                    probs = probs.reshape(n, crops, -1).mean(axis=1)  # (N, K): average over crops
                    picked = probs[xp.arange(n), xp.asarray(labels)]
                    loss_sum += float(-xp.log(xp.maximum(picked, 1e-30)).sum())
                    c1, c5 = topk_correct(probs, labels, ks=(1, 5))
                correct1, correct5, count = correct1 + c1, correct5 + c5, count + n
        finally:
            run.close()
        self.model.train()
        if self.world.size > 1:  # each process validated its share: the counts add up
            loss_sum, correct1, correct5, count = self.world.sum([loss_sum, correct1, correct5, count])
        count = max(count, 1)
        result = {"val_loss": loss_sum / count, "val_top1_err": 100.0 * (1 - correct1 / count)}
        if self.top5:
            result["val_top5_err"] = 100.0 * (1 - correct5 / count)
        return result

    # -- the loop -------------------------------------------------------------------
    def fit(self):
        """Train from the current epoch to ``epochs``; returns the history.

        Ctrl-C saves a checkpoint at the current step before re-raising, so
        ``--resume`` continues from the very batch that was interrupted. Data parallel,
        Ctrl-C (or SIGTERM, or SIGUSR1) in any process stops every process at the same
        step, and process 0 saves that checkpoint.
        """
        root = self.world.is_root
        if root:
            os.makedirs(self.output_dir, exist_ok=True)
            self._write_args()
            self._ensure_best()
            if self.history and not os.path.isfile(os.path.join(self.output_dir, "metrics.csv")):
                self._write_logs()  # resumed into a new folder: its logs start complete
        with self._stop_signals(), self._watchdog():
            while self.epoch < self.epochs:
                try:
                    row, improved = self._one_epoch()
                    self.check_weights_equal()
                    if root:
                        if improved:  # the best first: a crash between the two writes leaves both consistent
                            self.save(self.best_path, saved_as="best")
                        self.save()
                        self._write_logs()
                    self._log(self.epoch_line(row, improved))
                except KeyboardInterrupt:
                    # The state in memory is whole at every point a Ctrl-C can land (an epoch's
                    # results are committed together in _one_epoch), so saving it is always right.
                    if root:
                        self.save()
                    self.world.barrier()  # no process ends before the checkpoint is written
                    raise TrainingInterrupted(self.checkpoint_path, self.epoch, self.step_in_epoch) from None
        return self.history

    @contextlib.contextmanager
    def _stop_signals(self):
        """Data parallel: Ctrl-C, SIGTERM and SIGUSR1 only note that a stop was asked for; the next
        step's exchange tells every process, and all stop together (``StopRequested``). MPICH's
        mpiexec passes Ctrl-C on to the processes; Open MPI's ends them within half a second
        instead, but passes SIGUSR1 on (docs/distributed.md)."""
        if self.world.size == 1 or threading.current_thread() is not threading.main_thread():
            yield
            return
        wanted = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGUSR1] if hasattr(signal, "SIGUSR1") else [])

        def note(signum, frame):
            self.stop_signal = signal.Signals(signum).name

        previous = {s: signal.signal(s, note) for s in wanted}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    @contextlib.contextmanager
    def _watchdog(self):
        if self.world.size == 1:
            yield
            return
        self.watchdog = Watchdog(self.world, self.timeout)
        try:
            yield
        finally:
            self.watchdog.stop()
            self.watchdog = None

    def check_weights_equal(self):
        """Data parallel: raise WeightsDivergedError unless every process holds the same weights
        (compared through one checksum per parameter, once an epoch, before a checkpoint)."""
        if self.world.size == 1:
            return
        sums = []
        for _, p in self.model.named_parameters():
            xp = backend.get_array_module(p.data)
            with backend.device_of(p.data):
                sums.append(float(xp.abs(p.data).sum(dtype=xp.float64)))  # a sync, once an epoch
        mine = np.asarray(sums)
        others = self.world.allgather(mine)
        bad = [r for r, o in enumerate(others) if not np.array_equal(o, others[0])]
        if bad:
            raise WeightsDivergedError(f"the weights of process {bad[0]} differ from process 0's after epoch "
                                       f"{self.epoch}; the processes no longer train one model")

    def _one_epoch(self):
        """Train and validate the current epoch, then commit its results to the state."""
        epoch = self.epoch
        lr = self.optimizer.lr = self.schedule.lr
        row = self.train_epoch(epoch)
        row.update(self.evaluate(epoch=epoch))
        row.update(epoch=epoch + 1, lr=lr)
        improved = self.best is None or row["val_top1_err"] < self.best["val_top1_err"]
        with deferred_interrupt():  # the epoch's results enter the state together or not at all
            self.history.append(row)
            self.schedule.step(epoch, row["val_top1_err"])
            if improved:
                self.best = {"epoch": epoch + 1, "val_top1_err": row["val_top1_err"]}
            self.epoch, self.step_in_epoch = epoch + 1, 0
            self._partial = {"loss": 0.0, "top1": 0, "count": 0}
        return row, improved

    def epoch_line(self, row, improved=False):
        top5 = f"  val_top5_err {row['val_top5_err']:.2f}%" if "val_top5_err" in row else ""
        return (f"epoch {row['epoch']}/{self.epochs}  lr {row['lr']:.2g}  train_loss {row['train_loss']:.4f}  "
                f"train_top1_err {row['train_top1_err']:.2f}%  val_loss {row['val_loss']:.4f}  "
                f"val_top1_err {row['val_top1_err']:.2f}%{top5}  {row['images_per_second']:.1f} img/s  "
                f"data wait {100 * row['data_wait_share']:.0f}%" + ("  (best so far)" if improved else ""))

    # -- outputs --------------------------------------------------------------------
    def _write_args(self):
        path = os.path.join(self.output_dir, "args.json")
        with open(path + ".tmp", "w") as f:
            json.dump(self.args, f, indent=2, sort_keys=True, default=str)
            f.write("\n")
        os.replace(path + ".tmp", path)

    def _write_logs(self):
        """metrics.csv rewritten from the history (so a resumed run never duplicates rows),
        the curves PNG and the conv1 filter picture."""
        path = os.path.join(self.output_dir, "metrics.csv")
        with open(path + ".tmp", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.csv_fields, extrasaction="ignore")
            writer.writeheader()
            for row in self.history:
                writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row.get(k), float) else row.get(k))
                                 for k in self.csv_fields})
        os.replace(path + ".tmp", path)
        save_curves(self.history, os.path.join(self.output_dir, "curves.png"))
        weight = self.model.state_dict().get("conv1.weight")
        if weight is not None and weight.shape[1] == 3:
            filter_grid(weight).save(os.path.join(self.output_dir, "conv1_filters.png"))

    # -- checkpoints ----------------------------------------------------------------
    def save(self, path=None, saved_as="latest"):
        arrays = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        # the velocities under the full names and shapes too, so any placement can resume them
        velocities = self.optimizer.state_dict()
        if hasattr(self.model, "full_named"):
            velocities = self.model.full_named(velocities)
        arrays.update({f"momentum/{k}": v for k, v in velocities.items()})
        arrays.update(self.extra_arrays)
        meta = dict(self.extra_meta)
        meta.update({
            "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "lr": self.optimizer.lr,
            "schedule": self.schedule.state_dict(), "partial": self._partial, "history": self.history,
            "dropout": self.model.dropout_state(), "classes": self.classes,
            "model_config": self.model.config, "args": self.args, "best": self.best,
            "saved_as": saved_as, "processes": self.world.size,
        })
        save_checkpoint(path or self.checkpoint_path, arrays, meta)

    def _ensure_best(self):
        """Make the folder's checkpoint_best.npz the best epoch's, when that can be had: it is
        there already, or ``best_source`` holds it, or the state just restored is that epoch."""
        if self.best is None:
            return
        want = self.best["epoch"]

        def holds_best(path):
            try:
                meta = read_meta(path)
            except CheckpointError:
                return False
            return meta.get("epoch") == want and meta.get("step_in_epoch", 0) == 0

        if os.path.isfile(self.best_path) and holds_best(self.best_path):
            return
        if self.best_source and os.path.isfile(self.best_source) and holds_best(self.best_source):
            copy_checkpoint(self.best_source, self.best_path)
        elif (self.epoch, self.step_in_epoch) == (want, 0):
            self.save(self.best_path, saved_as="best")
        else:
            print(f"note: the best epoch so far ({want}, val_top1_err {self.best['val_top1_err']:.2f}%) has no "
                  f"checkpoint in {self.output_dir}; {BEST} will be written when an epoch beats it",
                  file=sys.stderr, flush=True)

    def resume(self, path):
        """Restore everything ``save`` wrote; raise CheckpointError if it does not fit this run."""
        arrays, meta = load_checkpoint(path)
        self.restore(arrays, meta, path)
        return meta

    def restore(self, arrays, meta, path):
        """``resume`` for a checkpoint already read with ``load_checkpoint``."""
        check_resumable(self.model, self.classes, arrays, meta, path)
        model_state, momentum = split_state(arrays)
        load_weights(self.model, model_state, path)
        if set(momentum) != set(self.optimizer.names) and hasattr(self.model, "placed_named"):
            try:  # full names (any placement wrote them) cut into this placement's pieces
                momentum = self.model.placed_named(momentum)
            except (ValueError, KeyError):
                pass  # reported just below, by name
        try:
            self.optimizer.load_state_dict(momentum)
        except ValueError as exc:
            raise CheckpointError(f"{path}: {' '.join(str(exc).split())}") from None
        self.model.load_dropout_state(meta["dropout"])
        self.schedule.load_state_dict(meta["schedule"])
        self.optimizer.lr = meta["lr"]
        self.epoch, self.step_in_epoch = meta["epoch"], meta["step_in_epoch"]
        self.history, self._partial = meta["history"], meta["partial"]
        self.best = meta.get("best")
        if self.best is None and self.history:  # a checkpoint from before best tracking
            row = min(self.history, key=lambda r: r["val_top1_err"])
            self.best = {"epoch": row["epoch"], "val_top1_err": row["val_top1_err"]}
