"""The training loop: SGD steps over a loader, validation each epoch, and the checkpoints and logs
between epochs. One step for every case: a data-parallel run differs only in its optimizer,
which averages the gradients over the processes (minialex/parallel/optimizer.py) and is a
pass-through for one process. A stop signal is taken only between steps (signals.py), so a
checkpoint is always one instant and a resumed run equals the straight one bit for bit.
docs/training.md walks through one epoch.
"""

import contextlib
import math
import time

import numpy as np

from .. import backend
from ..atomic import WriteFailed
from ..data import SkipLog
from ..nn import SoftmaxCrossEntropy
from ..optim import SGD
from ..parallel.optimizer import AveragingOptimizer
from ..parallel.world import Solo, Watchdog
from ..weights import load_checkpoint
from .config import FIXED, RECIPES
from .errors import NonFiniteLossError, TrainingFailed, TrainingInterrupted, WeightsDivergedError
from .metrics import mean_log_softmax, topk_correct
from .report import Reporter, reports_top5
from .schedule import make_schedule
from .signals import StopSignals, deferred_interrupt
from .state import RunCheckpoints, restore

_PAPER = dict(zip(("epochs", "lr", "patience"), (RECIPES["paper"][2], RECIPES["paper"][4], RECIPES["paper"][5])))


class _Stop(Exception):
    """A stop signal, agreed on by every process, taken at a boundary between two steps."""


class Trainer:
    """Trains ``model`` (already on its devices) with the paper's SGD on ``train_loader``,
    validating on ``val_loader``; checkpoints and logs go to ``output_dir`` (process 0 alone).

    ``world``: the processes of a data-parallel run (minialex/parallel/world.py; one process
    when None): the loaders give this process its share of every global batch, the optimizer
    averages the gradients, metrics are summed over the processes. ``timeout``: seconds
    without progress after which a data-parallel run is stopped. Defaults are the paper's
    recipe (train/config.py). Nothing is written before ``fit``.
    """

    def __init__(self, model, train_loader, val_loader, *, classes, output_dir, xp=np, device_id=None,
                 lr=_PAPER["lr"], momentum=FIXED["momentum"], weight_decay=FIXED["weight_decay"],
                 epochs=_PAPER["epochs"], schedule=FIXED["lr_schedule"], patience=_PAPER["patience"],
                 step_size=FIXED["lr_step_size"], log_every=FIXED["print_freq"], args=None, progress=True,
                 extra_arrays=None, extra_meta=None, world=None, timeout=FIXED["timeout"], skips=None):
        self.model, self.train_loader, self.val_loader = model, train_loader, val_loader
        self.classes = list(classes)
        self.xp = xp
        self.device_id = model.device_ids[0] if device_id is None else device_id
        self.world = world or Solo()
        self.timeout, self.epochs, self.log_every = float(timeout), int(epochs), max(int(log_every), 1)
        self.args = dict(args or {})
        # what inference needs besides the weights (mean image, crop sizes, class names)
        self.extra_arrays, self.extra_meta = dict(extra_arrays or {}), dict(extra_meta or {})
        self.reporter = Reporter(output_dir, reports_top5(len(self.classes)), self.epochs,
                                 printing=self.world.is_root, bars=progress)
        self.checkpoints = RunCheckpoints(output_dir)
        self.skips = skips or SkipLog()
        sgd = SGD(list(model.named_parameters()), lr=lr, momentum=momentum, weight_decay=weight_decay)
        needs_averaging = train_loader is not None  # (evaluation alone needs no gradients)
        self.optimizer = AveragingOptimizer(sgd, model, self.world if needs_averaging else Solo(), xp,
                                            model.device_ids)
        self.schedule_kind, self.patience, self.step_size = schedule, patience, step_size
        self.schedule = make_schedule(schedule, lr, patience, step_size)
        self.loss_fn = SoftmaxCrossEntropy()
        self.stop = StopSignals()
        self.watchdog = None
        self._uploaders = {}  # "images", "labels" -> backend.Uploader, made on the first CuPy batch
        self.global_rows = 0  # images in the last global batch
        self.epoch, self.step_in_epoch = 0, 0  # where the next training step starts
        self.history = []  # one dict per finished epoch (the CSV rows)
        self.best = None  # {"epoch": e, "val_top1_err": x} of the best finished epoch
        self.partial = {"loss": 0.0, "top1": 0, "count": 0}  # running sums of an unfinished epoch

    @property
    def output_dir(self):
        return self.checkpoints.output_dir

    @property
    def engine_note(self):
        return self.optimizer.note

    @property
    def data_parallel(self):
        """The gradient buckets and allreduce engine of a data-parallel run (None alone)."""
        return self.optimizer.data_parallel

    def _to_device(self, x, what="images"):
        """A host batch on the model's device: on CuPy through pinned buffers on a stream of its
        own (backend.Uploader, one per kind of array), so the copy overlaps the step still
        running on the GPU and never makes the host wait."""
        if what == "images" and x.dtype != self.model.dtype:
            x = x.astype(self.model.dtype)  # a float64 model (tests, checks) gets float64 images
        if self.xp is np or backend.is_cupy_array(x):
            return backend.to_backend(x, self.xp, self.device_id)
        if what not in self._uploaders:
            self._uploaders[what] = backend.Uploader(self.xp, self.device_id)
        return self._uploaders[what].upload(x)

    def _agreed_stop(self, shares=None):
        """The stop signal any process received, the same answer on every process."""
        asked = shares if shares is not None else self.world.allgather(self.stop.requested)
        return next((s for s in asked if s is not None), None)

    # -- one training step ----------------------------------------------------------
    def train_step(self, images, labels):
        """Forward, loss, backward and the SGD update on this process's share of one batch;
        returns (loss, logits), on the device and unread (reading is a host-device sync, so
        the loop does it every ``log_every`` steps), or (None, None) for an empty share.

        One small exchange of host numbers first: every process's m (so each knows the global
        batch's M and where its rows start, for dropout) and whether it received a stop
        signal, which then stops every process here, before the step changes anything. The
        loss gradient is scaled by m / M so that the averaging optimizer's sum is the gradient
        of the global batch's mean loss (one process: m = M, nothing to scale or sum).
        """
        world, opt, m = self.world, self.optimizer, len(labels)
        shares = world.allgather((m, self.stop.requested))
        if (asked := self._agreed_stop([s for _, s in shares])) is not None:
            raise _Stop(asked)
        total = sum(n for n, _ in shares)
        self.global_rows = total
        if total == 0:  # every image of this batch was skipped, everywhere: no step
            return None, None
        self.model.train()
        loss = logits = None
        with backend.device(self.xp, self.device_id):  # so temporaries land on the model's GPU
            opt.zero_grad()
            if m:
                self.model.set_batch_rows(sum(n for n, _ in shares[:world.rank]))  # rows of the global batch
                logits = self.model.forward(self._to_device(images))
                loss = self.loss_fn.forward(logits, self._to_device(labels, "labels"))
                dlogits = self.loss_fn.backward()  # (m, M), of the share's mean loss
                if m != total:
                    dlogits = dlogits * (m / total)  # of the global batch's mean loss
                opt.begin_step()  # backward starts: from here the buckets go out as they fill
                self.model.backward(dlogits, grads_ready=opt.grads_ready)
            else:  # nothing to compute; the gradient sent is zero and dropout counts the step
                self.model.skip_batch()
                opt.begin_step()
            opt.step()
        return loss, logits

    def train_epoch(self, epoch):
        """The steps of ``epoch`` from ``step_in_epoch`` on; returns train_loss and train_top1_err
        (averages over the logged steps of the epoch) and the speed figures."""
        loader, total = self.train_loader, len(self.train_loader)
        bar = self.reporter.bar(total, f"epoch {epoch + 1}/{self.epochs}", initial=self.step_in_epoch)
        t0, seen, p = time.perf_counter(), 0, self.partial
        with deferred_interrupt():  # a half-built epoch iterator would be left behind
            run = loader.epoch_iter(epoch, start_batch=self.step_in_epoch)
        try:
            for images, labels in run:
                loss, logits = self.train_step(images, labels)
                self.step_in_epoch += 1
                seen += self.global_rows
                if self.watchdog is not None:
                    self.watchdog.beat()
                if self.step_in_epoch % self.log_every == 0 or self.step_in_epoch == total:
                    value, top1, count = self._batch_figures(loss, logits, labels)  # the one sync per interval
                    if not math.isfinite(value):
                        raise NonFiniteLossError(f"loss became {value} at epoch {epoch + 1}, step "
                                                 f"{self.step_in_epoch}; stopped; {self._last_good()}. "
                                                 "Try a smaller --lr.")
                    p["loss"], p["top1"], p["count"] = p["loss"] + value * count, p["top1"] + top1, p["count"] + count
                    elapsed = max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix_str(f"train_loss {p['loss'] / p['count']:.3f}  "
                                        f"train_top1_err {100 * (1 - p['top1'] / p['count']):.1f}%  "
                                        f"{seen / elapsed:.1f} img/s  data wait {100 * loader.wait_time / elapsed:.0f}%")
                bar.update(1)
        finally:
            bar.close()
            run.close()
        elapsed = max(time.perf_counter() - t0, 1e-9)
        return {"train_loss": p["loss"] / max(p["count"], 1),
                "train_top1_err": 100.0 * (1 - p["top1"] / max(p["count"], 1)),
                "epoch_seconds": elapsed, "images_per_second": seen / elapsed,
                "data_wait_share": loader.wait_time / elapsed}

    def _batch_figures(self, loss, logits, labels):
        """(mean loss, top-1 correct, images) of the last batch: the whole global batch's when
        data parallel (the same numbers on every process)."""
        n = len(labels) if loss is not None else 0
        loss_sum = float(loss) * n if n else 0.0
        top1 = topk_correct(logits, labels, ks=(1,))[0] if n else 0
        if self.world.size > 1:
            loss_sum, top1, n = self.world.sum([loss_sum, top1, n])
        n = int(n)
        return (loss_sum / n if n else 0.0), int(top1), n

    def _last_good(self):
        path = self.checkpoints.last_complete() if self.world.is_root else None
        return (f"the last good checkpoint is {path}" if path else
                f"no checkpoint was written before it, so {self.output_dir} holds no run to continue")

    # -- evaluation -----------------------------------------------------------------
    def evaluate(self, loader=None, epoch=0):
        """val_loss and val_top1_err (%) on ``loader`` (the validation loader by default), and
        val_top5_err where there are more than 5 classes. Batches of shape (N, 10, 3, S, S)
        are ten-crop batches: the softmax of the ten patches is averaged per image, as in the
        paper's test procedure. The classes are ranked by the log of that average, which never
        underflows to a tie the way probabilities do, and ties count against the label
        (metrics.py)."""
        loader = loader or self.val_loader
        self.model.eval()
        loss_sum, correct1, correct5, count = 0.0, 0, 0, 0
        with deferred_interrupt():
            run = loader.epoch_iter(epoch)
        try:
            for images, labels in self.reporter.bar_over(run, len(loader), "validate"):
                if (asked := self._agreed_stop()) is not None:  # a stop between two validation batches
                    raise _Stop(asked)
                if self.watchdog is not None:
                    self.watchdog.beat()
                n = len(labels)
                if n == 0:  # an empty share of a data-parallel batch
                    continue
                crops = images.shape[1] if images.ndim == 5 else 1
                x = images.reshape(n * crops, *images.shape[-3:])  # (N*crops, 3, S, S)
                with backend.device(self.xp, self.device_id):  # everything on the logits' device
                    logits = self.model.forward(self._to_device(x))
                    scores = mean_log_softmax(logits.reshape(n, crops, -1))  # (N, M): log of the crops' mean softmax
                    xp = backend.get_array_module(scores)
                    loss_sum += float(-scores[xp.arange(n), xp.asarray(labels)].sum())
                    c1, c5 = topk_correct(scores, labels, ks=(1, 5))
                correct1, correct5, count = correct1 + c1, correct5 + c5, count + n
        finally:
            run.close()
        self.model.train()
        if self.world.size > 1:  # each process validated its share: the counts add up
            loss_sum, correct1, correct5, count = self.world.sum([loss_sum, correct1, correct5, count])
        count = max(count, 1)
        result = {"val_loss": loss_sum / count, "val_top1_err": 100.0 * (1 - correct1 / count)}
        if self.reporter.top5:
            result["val_top5_err"] = 100.0 * (1 - correct5 / count)
        return result

    # -- the loop -------------------------------------------------------------------
    def fit(self):
        """Train from the current epoch to ``epochs``; returns the history. A stop signal (in
        any process) is taken at the next boundary between steps: every process stops there,
        process 0 saves that instant, and TrainingInterrupted names the checkpoint."""
        root = self.world.is_root
        try:
            if root:
                self.reporter.write_args(self.args)
                self.checkpoints.ensure_best(self)
                self.reporter.write_logs(self.history, self.model)  # (a resumed run's logs start complete)
            # a diverging run overflows: the loss check says so in one line, NumPy need not warn
            with self.stop, self._watchdog(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                while self.epoch < self.epochs:
                    row, improved = self._one_epoch()
                    self.check_weights_equal()
                    if root:
                        if improved:  # the best first: a crash between the two writes leaves both consistent
                            self.checkpoints.save(self, best=True)
                        self.checkpoints.save(self)
                        self.reporter.write_logs(self.history, self.model)
                    self.reporter.line(self.reporter.epoch_line(row, improved, self.skips.take_count()))
        except _Stop as stop:
            if root:
                self.checkpoints.save_if_changed(self)
            self.world.barrier()  # no process ends before the checkpoint is written
            raise TrainingInterrupted(self.checkpoints.latest, self.epoch, self.step_in_epoch, str(stop)) from None
        except WriteFailed as exc:
            raise TrainingFailed(f"{exc}; {self._last_good()}") from None
        return self.history

    def _one_epoch(self):
        """Train and validate the current epoch, then commit its results to the state."""
        epoch = self.epoch
        lr = self.optimizer.lr = self.schedule.lr
        row = self.train_epoch(epoch)
        row.update(self.evaluate(epoch=epoch))
        row.update(epoch=epoch + 1, lr=lr)
        improved = self.best is None or row["val_top1_err"] < self.best["val_top1_err"]
        self.history.append(row)  # (no stop can land in here: signals only note, train_step stops)
        self.schedule.step(epoch, row["val_top1_err"])
        if improved:
            self.best = {"epoch": epoch + 1, "val_top1_err": row["val_top1_err"]}
        self.epoch, self.step_in_epoch = epoch + 1, 0
        self.partial = {"loss": 0.0, "top1": 0, "count": 0}
        return row, improved

    def restart_schedule(self, lr=None):
        """--resume with a schedule flag: the schedule starts afresh at the current epoch, from
        ``lr`` (or the rate the run had reached)."""
        self.schedule = make_schedule(self.schedule_kind, self.schedule.lr if lr is None else lr, self.patience,
                                      self.step_size, start_epoch=self.epoch)
        self.optimizer.lr = self.schedule.lr

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
        others = self.world.allgather(np.asarray(sums))
        bad = [r for r, o in enumerate(others) if not np.array_equal(o, others[0])]
        if bad:
            raise WeightsDivergedError(f"the weights of process {bad[0]} differ from process 0's after epoch "
                                       f"{self.epoch}; the processes no longer train one model")

    # -- checkpoints ----------------------------------------------------------------
    def resume(self, path):
        """Restore everything a checkpoint holds; CheckpointError if it does not fit this run."""
        arrays, meta = load_checkpoint(path)
        restore(self, arrays, meta, path)
        return meta

    def restore(self, arrays, meta, path):
        """``resume`` for a checkpoint already read."""
        restore(self, arrays, meta, path)


__all__ = ["Trainer", "NonFiniteLossError", "TrainingInterrupted", "TrainingFailed"]
