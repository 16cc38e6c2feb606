"""What a checkpoint of a training run holds, and putting it back: the weights, SGD's
velocities (under the full names and shapes, so any placement can resume them), where the run
is (epoch, step), the learning rate and its schedule, the dropout counters, the running sums of
an unfinished epoch, the history, the best epoch so far, the classes, the network's config and
the options. The data order and augmentation need no state: the loader derives them from
(seed, epoch, sample). With all of it restored, a resumed run equals the straight run bit for
bit. The file format is minialex/weights/checkpoint.py; docs/training.md, "Checkpoints".
"""

import os
import sys

from ..weights import BEST, LATEST, CheckpointError, check_resumable, copy_checkpoint, load_weights, read_meta
from ..weights import save_checkpoint, split_state


class RunCheckpoints:
    """The two checkpoints of a run folder, ``checkpoint.npz`` (the latest instant saved) and
    ``checkpoint_best.npz`` (the finished epoch with the lowest val_top1_err), written from a
    Trainer. ``saved_at`` is the (epoch, step) of the last latest checkpoint, so a stop that
    comes right after an epoch's checkpoint does not write the same state twice."""

    def __init__(self, output_dir):
        self.output_dir = output_dir
        self.saved_at = None
        self.best_source = None  # a best checkpoint elsewhere to copy in (a resume into a new folder)

    @property
    def latest(self):
        return os.path.join(self.output_dir, LATEST)

    @property
    def best(self):
        return os.path.join(self.output_dir, BEST)

    def last_complete(self):
        """The latest checkpoint's path if it exists (messages name only files that exist)."""
        return self.latest if os.path.isfile(self.latest) else None

    def save(self, trainer, best=False):
        arrays, meta = trainer_state(trainer, saved_as="best" if best else "latest")
        save_checkpoint(self.best if best else self.latest, arrays, meta)
        if not best:
            self.saved_at = (trainer.epoch, trainer.step_in_epoch)

    def save_if_changed(self, trainer):
        if self.saved_at != (trainer.epoch, trainer.step_in_epoch) or not os.path.isfile(self.latest):
            self.save(trainer)

    def ensure_best(self, trainer):
        """Make the folder's best checkpoint the best epoch's, when that can be had: it is there
        already, or ``best_source`` holds it, or the state just restored is that epoch."""
        if trainer.best is None:
            return
        want = trainer.best["epoch"]

        def holds_best(path):
            try:
                meta = read_meta(path)
            except CheckpointError:
                return False
            return meta.get("epoch") == want and meta.get("step_in_epoch", 0) == 0

        if os.path.isfile(self.best) and holds_best(self.best):
            return
        if self.best_source and os.path.isfile(self.best_source) and holds_best(self.best_source):
            copy_checkpoint(self.best_source, self.best)
        elif (trainer.epoch, trainer.step_in_epoch) == (want, 0):
            self.save(trainer, best=True)
        else:
            print(f"note: the best epoch so far ({want}, val_top1_err {trainer.best['val_top1_err']:.2f}%) has no "
                  f"checkpoint in {self.output_dir}; {BEST} will be written when an epoch beats it",
                  file=sys.stderr, flush=True)


def trainer_state(trainer, saved_as="latest"):
    """(arrays, meta) of one instant of ``trainer``, between two steps."""
    model = trainer.model
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"momentum/{k}": v for k, v in model.full_named(trainer.optimizer.state_dict()).items()})
    arrays.update(trainer.extra_arrays)
    meta = dict(trainer.extra_meta)
    meta.update({
        "epoch": trainer.epoch, "step_in_epoch": trainer.step_in_epoch, "lr": trainer.optimizer.lr,
        "schedule": trainer.schedule.state_dict(), "partial": dict(trainer.partial), "history": trainer.history,
        "dropout": model.dropout_state(), "classes": trainer.classes, "model_config": model.config,
        "args": trainer.args, "best": trainer.best, "saved_as": saved_as, "processes": trainer.world.size,
    })
    return arrays, meta


def restore(trainer, arrays, meta, path):
    """Put a checkpoint's state into ``trainer``; CheckpointError (one line) if it does not fit."""
    model = trainer.model
    check_resumable(model, trainer.classes, arrays, meta, path)
    model_state, momentum = split_state(arrays)
    load_weights(model, model_state, path)
    if set(momentum) != set(trainer.optimizer.names):
        try:  # full names (any placement wrote them) cut into this placement's pieces
            momentum = model.placed_named(momentum)
        except (ValueError, KeyError):
            pass  # reported just below, by name
    try:
        trainer.optimizer.load_state_dict(momentum)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {' '.join(str(exc).split())}") from None
    model.load_dropout_state(meta["dropout"])
    trainer.schedule.load_state_dict(meta["schedule"])
    trainer.optimizer.lr = meta["lr"]
    trainer.epoch, trainer.step_in_epoch = meta["epoch"], meta["step_in_epoch"]
    trainer.history, trainer.partial = meta["history"], dict(meta["partial"])
    trainer.best = meta.get("best")
    if trainer.best is None and trainer.history:  # a checkpoint from before best tracking
        row = min(trainer.history, key=lambda r: r["val_top1_err"])
        trainer.best = {"epoch": row["epoch"], "val_top1_err": row["val_top1_err"]}
    trainer.checkpoints.saved_at = (trainer.epoch, trainer.step_in_epoch) if os.path.abspath(path) == \
        os.path.abspath(trainer.checkpoints.latest) else None
    trainer.checkpoints.best_source = os.path.join(os.path.dirname(os.path.abspath(path)), BEST)


__all__ = ["RunCheckpoints", "trainer_state", "restore"]
