"""Stopping a run cleanly: Ctrl-C (SIGINT), SIGTERM (a scheduler's or ``kill``'s stop) and
SIGUSR1 only *note* that a stop was asked for; the training loop looks at the note between two
steps, between two validation batches, and after an epoch's checkpoint, and stops there. So the
state a stop saves is always one instant: never "after this step's forward but before its
update", which is what an exception thrown from inside a step would leave (the dropout
counters advanced, the weights not yet).

A second Ctrl-C while the first is being honoured (a long step, a checkpoint being written)
stops at once, the way Python always does: the checkpoint being written is abandoned (its
temporary file removed, the previous one intact, minialex/atomic.py) and nothing new is saved.
docs/training.md, "What a signal does".
"""

import contextlib
import signal
import threading

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1") if hasattr(signal, name))


class StopSignals:
    """``with StopSignals() as stop: ... if stop.requested: ...``

    ``requested`` is None, or the name of the first stop signal received ("SIGINT", ...).
    Outside the main thread (where Python cannot set handlers) it installs nothing and
    ``requested`` stays None. The previous handlers come back when the block ends.
    """

    def __init__(self):
        self.requested = None
        self._previous = {}
        self._depth = 0  # (entered again inside its own block: the outer entry's handlers stay)

    def _note(self, signum, frame):
        if self.requested is None:  # (a later SIGTERM or SIGUSR1 changes nothing)
            self.requested = signal.Signals(signum).name
            # a second Ctrl-C is the user insisting: Python's own behaviour from here on
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self):
        self._depth += 1
        if self._depth == 1 and threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._note) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            for s, handler in self._previous.items():
                signal.signal(s, handler)
            self._previous = {}
        return False


@contextlib.contextmanager
def deferred_interrupt():
    """Hold back a Ctrl-C that arrives inside the block until the block is done: for the few
    places outside the training loop where an interrupt halfway would leave something half
    made (a loader's thread pool being set up). In the main thread with Python's default
    handler only; elsewhere it does nothing."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    pending = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending:
            raise KeyboardInterrupt


__all__ = ["StopSignals", "STOP_SIGNALS", "deferred_interrupt"]
