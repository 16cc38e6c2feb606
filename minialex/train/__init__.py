"""minialex.train: the training command and its loop, read as a pipeline (docs/training.md,
"The module layout of train/"):

    arguments.py   the flags                      config.py      one run configuration
    run_folder.py  where the run's files go       build.py       data, network, loaders
    trainer.py     the loop (one step path)       state.py       what a checkpoint holds
    signals.py     stopping between steps         report.py      lines, bars, logs, pictures
    errors.py      exit codes and endings         cli.py         the command, a short main
    distributed.py several processes (mpiexec)    predict.py     minialex-predict

plus schedule.py (learning-rate schedules), metrics.py (top-k) and plots.py (pictures). The
checkpoint file format is one layer below, in minialex/weights/.
"""

from ..weights import BEST, LATEST, CheckpointError, find_checkpoint, load_checkpoint, save_checkpoint
from .errors import NonFiniteLossError, TrainingFailed, TrainingInterrupted
from .metrics import Average, topk_correct
from .plots import filter_grid, save_curves
from .schedule import PlateauSchedule, StepSchedule
from .trainer import Trainer

__all__ = ["Average", "BEST", "CheckpointError", "LATEST", "NonFiniteLossError", "PlateauSchedule",
           "StepSchedule", "Trainer", "TrainingFailed", "TrainingInterrupted", "filter_grid", "find_checkpoint",
           "load_checkpoint", "save_checkpoint", "save_curves", "topk_correct"]
