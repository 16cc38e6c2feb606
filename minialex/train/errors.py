"""How a training command ends: its exit codes, defined once, and the exceptions that stand for
each expected ending. Every one of them is reported as one line on stderr (cli.py), never as a
traceback:

    0    the run finished (or --help, or --test-only evaluated)
    1    training failed after it started (a NaN loss, a disk that filled up, a process that died)
    2    a bad option, path, data or checkpoint, found before anything was trained
    130  stopped by Ctrl-C, SIGTERM or SIGUSR1, with a checkpoint to continue from (128 + SIGINT)
"""

EXIT_DONE, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(ValueError):
    """A command-line value, path or combination that cannot work (exit code 2)."""


class TrainingFailed(RuntimeError):
    """Training started and could not go on (exit code 1); the message names the cause and the
    last complete checkpoint, if there is one."""


class NonFiniteLossError(TrainingFailed):
    """The loss became NaN or infinite; training stopped and the last good checkpoint was kept."""


class WeightsDivergedError(TrainingFailed):
    """Data parallel: the processes' weights are no longer equal (they must be, step after step)."""


class TrainingInterrupted(KeyboardInterrupt):
    """A stop signal, taken between two steps: the state of that instant was saved to ``checkpoint``."""

    def __init__(self, checkpoint, epoch=0, step=0, signal_name="SIGINT"):
        super().__init__(checkpoint)
        self.checkpoint, self.epoch, self.step, self.signal_name = checkpoint, epoch, step, signal_name


__all__ = ["EXIT_DONE", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED", "UsageError", "TrainingFailed",
           "NonFiniteLossError", "WeightsDivergedError", "TrainingInterrupted"]
