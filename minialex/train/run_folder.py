"""The run-folder rule: a run never writes into a folder that holds another run, unless told to
(--overwrite), and continuing a run (--resume) writes into its own folder.

A folder *holds a run* when it holds a checkpoint (checkpoint.npz or checkpoint_best.npz):
that is what a run cannot afford to lose. The other files a run writes (args.json,
metrics.csv, the pictures) are rewritten from the checkpoint's history, so a folder with only
those, left by a run that stopped before its first checkpoint, is free for a new run.
docs/training.md, "The output folder".
"""

import os

from ..weights import BEST, LATEST, RUN_FILES, CheckpointError, read_meta
from .errors import UsageError

CHECKPOINTS = (LATEST, BEST)


def run_files(folder):
    """The files of ``RUN_FILES`` present in ``folder``."""
    return [f for f in RUN_FILES if os.path.exists(os.path.join(folder, f))]


def checkpoints_in(folder):
    return [f for f in CHECKPOINTS if os.path.isfile(os.path.join(folder, f))]


def check_output_dir(out, resume_path, overwrite):
    """True if ``out`` holds another run, which only ``overwrite`` allows replacing (else a
    UsageError, in one line). Continuing the folder's own latest checkpoint is not another run."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--output-dir {out} exists and is not a folder")
    held = checkpoints_in(out) if os.path.isdir(out) else []
    latest = os.path.join(out, LATEST)
    if not held or (resume_path and os.path.isfile(latest) and os.path.samefile(latest, resume_path)):
        return False  # no checkpoint, or the usual resume: the run continues in its own folder
    if overwrite:
        return True
    present = run_files(out)
    if resume_path and os.path.dirname(os.path.abspath(resume_path)) == os.path.abspath(out):
        if os.path.isfile(latest):
            try:
                what = f"another checkpoint ({LATEST}, epoch {read_meta(latest).get('epoch')})"
            except CheckpointError:
                what = f"another checkpoint ({LATEST})"
        else:
            what = f"the files of a run ({', '.join(present)})"
        raise UsageError(f"resuming {resume_path} would write into {out}, which holds {what}; pass "
                         "--output-dir NEW to continue it in a new folder, or --overwrite to replace that run")
    hint = f"continue it with --resume {latest}, " if os.path.isfile(latest) else ""
    raise UsageError(f"{out} already holds a run ({', '.join(present)}); choose another --output-dir, "
                     f"{hint}or pass --overwrite to replace it")


def prepare_output_dir(out, replace, keep=None):
    """Make the folder (one UsageError naming it and the cause if the system refuses) and, when
    ``replace`` (--overwrite over another run), delete that run's files, except ``keep``, so
    two runs never mix. The leftovers of a run that never saved a checkpoint are replaced by
    this run's own files as it writes them."""
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--output-dir {out}: cannot create the folder: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK):
        raise UsageError(f"--output-dir {out}: cannot write into the folder: permission denied")
    if not replace:
        return
    for name in run_files(out):
        path = os.path.join(out, name)
        if keep and os.path.exists(keep) and os.path.samefile(path, keep):
            continue
        try:
            os.remove(path)
        except OSError as exc:
            raise UsageError(f"--overwrite: cannot remove {path}: {exc.strerror or exc}") from None


__all__ = ["run_files", "checkpoints_in", "check_output_dir", "prepare_output_dir",
           "CHECKPOINTS"]
