"""minialex.train: the training loop, checkpoints, schedules, metrics and pictures.

The command-line front end is cli.py (used by examples/train_imagenet.py);
docs/training.md walks through one epoch.
"""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .metrics import Average, topk_correct
from .plots import filter_grid, save_curves
from .schedule import PlateauSchedule, StepSchedule
from .trainer import NonFiniteLossError, Trainer, TrainingInterrupted

__all__ = ["Average", "CheckpointError", "NonFiniteLossError", "PlateauSchedule", "StepSchedule", "Trainer",
           "TrainingInterrupted", "filter_grid", "load_checkpoint", "save_checkpoint", "save_curves", "topk_correct"]
