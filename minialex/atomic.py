"""Writing a file all or nothing: the one writer behind every file a run or an export makes
(checkpoints, args.json, metrics.csv, pictures, the statistics cache, exported weights).

Why: a file that a crash, a full disk or a second Ctrl-C cuts in half is worse than no file,
because the next run reads it. So the bytes go to a temporary file beside the target, are
flushed to the disk (fsync), and only then renamed over the target; a rename within one
folder is atomic on POSIX and Windows, so a reader sees the old file or the new one, never a
mix. If anything fails on the way, the temporary file is removed and the old file is left as
it was. An operating-system failure comes back as ``WriteFailed``, whose text is one line
naming the file and the cause (``cannot write runs/x/checkpoint.npz: No space left on
device``).
"""

import os
import tempfile


class WriteFailed(OSError):
    """A file could not be written; the message names the file and the operating system's reason."""

    def __init__(self, path, reason):
        super().__init__(f"cannot write {path}: {reason}")
        self.path, self.reason = path, reason

    def __str__(self):
        return self.args[0]


def _reason(exc):
    return exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)


def atomic_write(path, write, text=False):
    """Call ``write(f)`` on a temporary file beside ``path`` (binary, or text with ``text=True``),
    then put it in place of ``path`` in one rename. The folder is made if missing. Raises
    ``WriteFailed`` for an operating-system error (no space, no permission, a read-only or
    missing parent); any other exception from ``write`` passes through unchanged. Either way
    no temporary file is left behind and an older ``path`` is untouched."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=folder)
        with os.fdopen(fd, "w" if text else "wb", **({"newline": "", "encoding": "utf-8"} if text else {})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; these are ordinary files
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise WriteFailed(path, _reason(exc)) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path, content):
    """``content`` (a str) to ``path``, all or nothing."""
    atomic_write(path, lambda f: f.write(content), text=True)


def write_bytes(path, content):
    """``content`` (bytes) to ``path``, all or nothing."""
    atomic_write(path, lambda f: f.write(content))


__all__ = ["WriteFailed", "atomic_write", "write_text", "write_bytes"]
