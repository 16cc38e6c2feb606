"""Which implementation of a layer runs: the readable reference, a CPU kernel or a CUDA kernel.

Every layer decides the same way, in the same two lines (explained in docs/backend.md):

    if (fast := fast_implementation(x, cpu=cpu_conv, cuda=cuda_conv)) is not None:
        return self.run_fast(fast, x)   # the kernel saves what its own backward needs

and below them writes its reference forward, the mathematics that docs/layers/ derives.
``fast_implementation`` picks by the array's backend: a NumPy floating array gets the ``cpu``
module (minialex/kernels/cpu/), a CuPy array the ``cuda`` one (minialex/kernels/cuda/). Inside
``with minialex.nn.reference():``, or for a whole run with MINIALEX_REFERENCE=1 in the
environment, it returns None and every layer runs its reference on NumPy and CuPy alike.

Forward records who made what it saved (``Saved.by``), and backward follows that record, so a
backward never runs a different implementation from its forward, even if the switch changed in
between.
"""

import contextlib
import contextvars
import os

import numpy as np

from .. import backend

REFERENCE = "reference"  # Saved.by of the layers' own forward code

_reference = contextvars.ContextVar("minialex_reference", default=None)


def _env_reference():
    return os.environ.get("MINIALEX_REFERENCE", "") not in ("", "0")


@contextlib.contextmanager
def reference(enabled=True):
    """Inside this context every layer (and SGD) runs its readable reference implementation.

    >>> with minialex.nn.reference():
    ...     y = conv.forward(x)        # im2col + matmul in minialex/nn/conv.py, on NumPy or CuPy

    ``reference(False)`` switches the kernels back on inside an outer ``reference()`` (or
    under MINIALEX_REFERENCE=1). Contexts nest, and each thread or task sees its own.
    """
    token = _reference.set(bool(enabled))
    try:
        yield
    finally:
        _reference.reset(token)


def reference_enabled():
    """True inside ``reference()`` or under MINIALEX_REFERENCE=1 (and not inside reference(False))."""
    on = _reference.get()
    return _env_reference() if on is None else on


def implementation_name(x):
    """``'reference'``, ``'cpu'`` or ``'cuda'``: which kind of implementation the switch picks for
    the array x (a floating NumPy or CuPy array), or for the array module x itself."""
    if reference_enabled():
        return REFERENCE
    if x is np:
        return "cpu"
    if x is backend._cupy and x is not None:
        return "cuda"
    if not hasattr(x, "dtype") or x.dtype.kind != "f":
        return REFERENCE
    if isinstance(x, np.ndarray):
        return "cpu"
    if backend.is_cupy_array(x):
        return "cuda"
    return REFERENCE


def fast_implementation(x, cpu=None, cuda=None):
    """The kernel module for ``x`` (``cpu`` for NumPy, ``cuda`` for CuPy), or None for the reference."""
    return {"cpu": cpu, "cuda": cuda}.get(implementation_name(x))


def describe_implementation(by):
    """Short name of what made a Saved: ``'reference'`` or the kernel module's path."""
    return by if isinstance(by, str) else by.__name__.replace("minialex.", "")
