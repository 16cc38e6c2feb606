"""SkipLog: the record of images skipped because they could not be decoded.

With ``on_error='skip'`` an unreadable image is dropped and training goes on.
The user should still hear about it, but once: one line per file per run,
naming the file and the reason, and a count at each epoch's end (printed by
the trainer from ``take_count()``). A plain line, not a Python warning: a
warning shows the source line that raised it, and the same file would be
reported again every epoch. docs/data.md, "Errors".
"""

import sys
import threading


def _write_stderr(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class SkipLog:
    """Counts skipped images and names each file once.

    Args:
        write: a callable taking one line of text (no trailing newline); the
            default writes it to stderr.

    One SkipLog can be shared by the statistics pass and the loaders of a
    run, so a file is named once per run however often it is met. Every
    method may be called from several threads at once (the loader's workers).
    """

    def __init__(self, write=None):
        self._write = write if write is not None else _write_stderr
        self._lock = threading.Lock()
        self._seen = {}    # path -> None: a set that keeps the order paths were first seen
        self._total = 0    # skip events in this log's life
        self._count = 0    # skip events since the last take_count()

    def note(self, path, reason):
        """Record that ``path`` was skipped because of ``reason``.

        The first note of a path writes one line; later notes only count."""
        path = str(path)
        # The line is written while the lock is held, so two threads never
        # both think they are first, and lines never interleave.
        with self._lock:
            self._total += 1
            self._count += 1
            if path in self._seen:
                return
            self._seen[path] = None
            self._write(f"warning: skipped unreadable image {path}: {reason}")

    def take_count(self):
        """The number of skip events since the previous call (or since creation); resets it."""
        with self._lock:
            count, self._count = self._count, 0
        return count

    @property
    def total(self):
        """All skip events so far."""
        with self._lock:
            return self._total

    @property
    def paths(self):
        """The distinct skipped paths, in the order they were first seen."""
        with self._lock:
            return list(self._seen)

    def __repr__(self):
        return f"SkipLog({len(self.paths)} files, {self.total} skips)"
