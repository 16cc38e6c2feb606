"""minialex.weights: minialex's own checkpoint format (checkpoint.py) and whether a checkpoint
fits a network (compat.py). Below the exchange with other frameworks (minialex.interop) and
the training command (minialex.train), which both read and write through it."""

from .checkpoint import (BEST, LATEST, RUN_FILES, CheckpointError, copy_checkpoint, describe_checkpoint,
                         find_checkpoint, load_checkpoint, read_meta, save_checkpoint, split_state)
from .compat import (check_resumable, class_differences, config_differences, load_start_weights, load_weights,
                     shape_differences)

__all__ = ["BEST", "LATEST", "RUN_FILES", "CheckpointError", "copy_checkpoint", "describe_checkpoint",
           "find_checkpoint", "load_checkpoint", "read_meta", "save_checkpoint", "split_state", "check_resumable",
           "class_differences", "config_differences", "load_start_weights", "load_weights", "shape_differences"]
