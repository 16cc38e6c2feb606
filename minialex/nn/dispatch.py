"""Which implementation of an op runs: the readable reference, a CPU kernel or a CUDA kernel.

Every op (conv2d, max-pool, LRN, ReLU, dropout's mask, linear, SGD's update) has one readable
reference, a pure forward/backward pair in minialex/nn/functional/ (SGD's update in
minialex/optim/functional.py), and may have fast versions of the SAME pair, with the same
signatures, in minialex/kernels/cpu/ and minialex/kernels/cuda/. An ``Op`` names them:

    CONV2D = Op("conv2d", reference=F.conv, cpu=cpu_conv, cuda=cuda_conv)
    pair = CONV2D.pick(x)              # a Pair: pair.forward, pair.backward, pair.by
    y, cache = pair.forward(x, w, b, stride, padding, groups)
    dx, dw, db = pair.backward(dout, cache)

``pick`` is the one place a choice is made, by the array's backend: a floating NumPy array
gets the ``cpu`` module, a floating CuPy array the ``cuda`` one, anything else (or an op with
no kernel for that backend) the reference. Inside ``with minialex.nn.reference():``, or for a
whole run with MINIALEX_REFERENCE=1 in the environment, it is always the reference, on NumPy
and CuPy alike. The layers (minialex/nn/module.py) call ``pick`` in forward and keep the Pair
with the cache, so a backward always runs the implementation that made its forward, even if the
switch changed in between. Explained in docs/backend.md.
"""

import contextlib
import contextvars
import os
from collections import namedtuple

import numpy as np

from .. import backend

REFERENCE, CPU, CUDA = "reference", "cpu", "cuda"

_reference = contextvars.ContextVar("minialex_reference", default=None)


def _env_reference():
    return os.environ.get("MINIALEX_REFERENCE", "") not in ("", "0")


@contextlib.contextmanager
def reference(enabled=True):
    """Inside this context every layer (and SGD) runs its readable reference implementation.

    >>> with minialex.nn.reference():
    ...     y = conv.forward(x)        # conv2d_forward of minialex/nn/functional/conv.py

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
        return CPU
    if x is backend._cupy and x is not None:
        return CUDA
    if not hasattr(x, "dtype") or x.dtype.kind != "f":
        return REFERENCE
    if isinstance(x, np.ndarray):
        return CPU
    if backend.is_cupy_array(x):
        return CUDA
    return REFERENCE


Pair = namedtuple("Pair", "forward backward by")
Pair.__doc__ = """One implementation of an op: its ``forward`` and ``backward`` functions, and ``by``,
the module that holds them (``'reference'`` or a kernel module's path, for messages and tests)."""


class Op:
    """The implementations of one op. Each is a module that defines the functions named in
    ``functions``, with the same signatures: by default ``<name>_forward`` and ``<name>_backward``
    (SGD's update and dropout's mask are single functions, ``functions=("sgd_update",)``); or,
    where a module holds its pair under other names, the tuple of those functions.

    ``reference`` is required; ``cpu`` and ``cuda`` may be None (then the reference runs there).
    """

    def __init__(self, name, reference, cpu=None, cuda=None, functions=None):
        self.name = name
        self.functions = tuple(functions or (f"{name}_forward", f"{name}_backward"))
        self.modules = {kind: m for kind, m in ((REFERENCE, reference), (CPU, cpu), (CUDA, cuda)) if m is not None}
        self._pairs = {}  # kind -> the Pair last built (rebuilt when a function was replaced)

    def pair(self, kind):
        """The Pair of implementation ``kind`` ('reference', 'cpu' or 'cuda'). The functions are
        looked up on each call, so a function replaced in its module (a learner's experiment, a
        test's deliberate bug) is the one that runs."""
        where = self.modules[kind]
        if isinstance(where, tuple):  # the functions themselves
            functions, module = where, where[0].__module__
        else:
            functions, module = [getattr(where, f) for f in self.functions], where.__name__
        forward, backward = functions[0], (functions[1] if len(functions) > 1 else None)
        cached = self._pairs.get(kind)
        if cached is None or cached.forward is not forward or cached.backward is not backward:
            by = REFERENCE if kind == REFERENCE else module.replace("minialex.", "")
            cached = self._pairs[kind] = Pair(forward, backward, by)
        return cached

    def pick(self, x):
        """The Pair that runs for the array x (or array module x): the switch above."""
        kind = implementation_name(x)
        return self.pair(kind if kind in self.modules else REFERENCE)

    def pairs(self):
        """{kind: Pair} of every implementation this op has (tests run each of them)."""
        return {kind: self.pair(kind) for kind in self.modules}

    def __repr__(self):
        return f"Op({self.name!r}, " + ", ".join(f"{k}={p.by}" for k, p in self.pairs().items()) + ")"
