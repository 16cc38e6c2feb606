"""minialex.train: the training loop, checkpoints, schedules, metrics and pictures.

The command-line front ends are cli.py (minialex-train, minialex-train-cifar10) and
predict.py (minialex-predict); docs/training.md walks through one epoch.
"""

from ..weights import BEST, LATEST, CheckpointError, find_checkpoint, load_checkpoint, save_checkpoint
from .metrics import Average, topk_correct
from .plots import filter_grid, save_curves
from .schedule import PlateauSchedule, StepSchedule
from .trainer import NonFiniteLossError, Trainer, TrainingInterrupted

__all__ = ["Average", "BEST", "CheckpointError", "LATEST", "NonFiniteLossError", "PlateauSchedule",
           "StepSchedule", "Trainer", "TrainingInterrupted", "filter_grid", "find_checkpoint", "load_checkpoint",
           "save_checkpoint", "save_curves", "topk_correct"]
