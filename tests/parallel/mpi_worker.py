"""A small data-parallel training run for tests/parallel/test_data_parallel.py, started through
``mpiexec -n N python tests/parallel/mpi_worker.py ...`` (or as one plain process).

The tiny AlexNet in float64 on 48 random images: ``--global-batch`` images per SGD step in
all (each process takes its share), one step per epoch, ``--epochs`` epochs through
Trainer.fit, with validation, checkpoints and logs as in a real run. At the end, process 0
writes the weights to ``--out``/weights.npz. ``--resume CKPT`` continues a checkpoint.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from minialex.data import DataLoader, EvalTransform, TrainTransform  # noqa: E402
from minialex.data.cifar10 import ArrayDataset  # noqa: E402
from minialex.data.stats import compute_stats  # noqa: E402
from minialex.models import AlexNet  # noqa: E402
from minialex.parallel.world import world as make_world  # noqa: E402
from minialex.train.trainer import Trainer, TrainingInterrupted  # noqa: E402


def ask_for_a_stop(trainer, after):
    """After ``after`` steps, process 0 alone notes a stop request (what its SIGINT handler does);
    the next step's exchange makes every process stop there (one process: itself)."""
    step, steps = trainer.train_step, {"n": 0}

    def counting(images, labels):
        if steps["n"] == after:
            if trainer.world.is_root:
                trainer.stop.requested = "SIGINT"
        steps["n"] += 1
        return step(images, labels)

    trainer.train_step = counting


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--global-batch", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--columns", action="store_true", help="the two-column model in each process")
    ap.add_argument("--resume")
    ap.add_argument("--images", type=int, default=None, help="training images (default: one global batch)")
    ap.add_argument("--stop-after", type=int, default=None,
                    help="process 0 asks for a stop after this many steps, as Ctrl-C would (mid-epoch checkpoint)")
    args = ap.parse_args()

    world = make_world()
    rng = np.random.default_rng(7)
    n_train = args.images or args.global_batch
    images = rng.integers(0, 256, size=(n_train + 10, 28, 28, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, size=n_train + 10)
    classes = ["a", "b", "c", "d"]
    train = ArrayDataset(images[:n_train], labels[:n_train], classes)
    val = ArrayDataset(images[n_train:], labels[n_train:], classes)
    stats = compute_stats(train, size=28, workers=1)
    share = (world.rank, world.size)
    train_loader = DataLoader(train, TrainTransform(stats, size_crop=24, size_resize=28), batch_size=args.global_batch,
                              seed=3, workers=1, share=share)
    val_loader = DataLoader(val, EvalTransform(stats, size_crop=24, size_resize=28), batch_size=4, shuffle=False,
                            workers=1, share=share)
    # init_std 0.2: with the paper's 0.01 the tiny net's signal fades within a few layers and
    # every logit is fc8's bias; at 0.2 every layer, dropout included, shapes the result.
    model = AlexNet(4, preset="tiny", input_size=24, dtype=np.float64, seed=5, init_std=0.2,
                    devices=(0, 0) if args.columns else None)
    model.to(np)
    trainer = Trainer(model, train_loader, val_loader, classes=classes, output_dir=args.out, lr=0.01,
                      epochs=args.epochs, log_every=1, progress=False, world=world, timeout=60)
    if args.resume:
        trainer.resume(args.resume)
    if args.stop_after is not None:
        ask_for_a_stop(trainer, args.stop_after)
    try:
        trainer.fit()
    except TrainingInterrupted:
        return  # the checkpoint of the step reached is written; --resume continues it
    if world.is_root:
        np.savez(os.path.join(args.out, "weights.npz"), **model.state_dict())
        with open(os.path.join(args.out, "val.txt"), "w") as f:
            f.write(repr(trainer.history[-1]["val_loss"]) + " " + repr(trainer.history[-1]["train_loss"]) + "\n")


if __name__ == "__main__":
    main()
