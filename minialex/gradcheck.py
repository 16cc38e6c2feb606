"""Finite-difference gradient checks: how every backward pass in minialex is tested.

For a layer y = f(x; W) and a fixed random upstream gradient G, the scalar
L = sum(G * f(x; W)) has dL/dx = backward(G). Centred differences
(L(x + h e_i) - L(x - h e_i)) / 2h estimate each entry with error O(h^2).
Use float64: in float32 the rounding error of L swamps the O(h^2) term.
Walkthrough in docs/gradcheck.md.
"""

import contextlib
import warnings

import numpy as np

from . import backend
from .nn.dispatch import reference


def rel_error(a, b, eps=1e-12):
    """max |a - b| / max(|a| + |b|, eps), elementwise; 0 for identical arrays.

    In float64 with h = 1e-5 (docs/gradcheck.md, section 4): below 1e-5 is what a correct
    backward gives (measured: 1e-12 to 9.5e-7, the worst entry being a tiny one); 1e-5 to 1e-2
    is suspicious (a kink hit by the step, or a wrong term that is small for these inputs);
    above 1e-2 is a bug.
    """
    a, b = backend.to_numpy(a).astype(np.float64), backend.to_numpy(b).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes differ, {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), eps)))


def numerical_gradient(f, x, h=1e-5):
    """Centred-difference gradient of the scalar function ``f()`` with respect to array ``x``.

    ``x`` is perturbed in place, one entry at a time, and restored; ``f`` must
    read it. Works for NumPy and CuPy arrays (CuPy is slow here: one sync per entry).
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    flat = x.reshape(-1)  # a view: writing to it perturbs x
    for i in range(flat.size):
        old = flat[i].item()
        flat[i] = old + h
        f_plus = float(f())
        flat[i] = old - h
        f_minus = float(f())
        flat[i] = old
        grad.reshape(-1)[i] = (f_plus - f_minus) / (2 * h)
    return grad


class GradCheck(dict):
    """``{"x": rel_error, "weight": rel_error, ...}`` and ``implementation``: which code was checked,
    as the layers recorded it in forward (``"reference"``, the readable code of minialex/nn, or
    kernel modules such as ``"kernels.cpu.conv"``; several, comma-separated, for a network)."""

    def __init__(self, errors, implementation):
        super().__init__(errors)
        self.implementation = implementation

    def __repr__(self):
        return f"GradCheck({self.implementation}: {dict.__repr__(self)})"


def check_layer(layer, x, seed=0, h=1e-5, forward=None, implementation="reference"):
    """Compare a layer's backward with centred differences for its input and every parameter.

    Returns a GradCheck: ``{"x": rel_error, "weight": rel_error, ...}`` with
    ``.implementation`` saying which code ran. By default that is the reference,
    the code of minialex/nn/ that docs/layers/ derives (the check runs inside
    ``minialex.nn.reference()``); ``implementation="kernels"`` checks what runs by
    default instead, the CPU or CUDA kernels of minialex/kernels/ (a layer without a
    kernel for the array, such as Dropout, still runs its reference, and says so). The layer
    should be in float64 (``layer.astype(np.float64)``) and, for dropout, its
    random masks must repeat on every call (the check resets ``calls`` for
    layers that have it). A layer whose backward returns None for its input
    (``input_grad=False``) gets no ``"x"`` entry.

    Handed a float32 (or float16) input or parameter, it warns: rounding then swamps the
    differences, and a correct layer reports errors near 1 (docs/gradcheck.md, section 2).

    From a REPL (what it really prints; other seeds give from 1e-12 up to about 1e-6,
    all correct: see rel_error for how to read the numbers)::

        >>> layer = Conv2d(2, 4, 3, stride=2, padding=1, dtype=np.float64, rng=np.random.default_rng(0))
        >>> check_layer(layer, np.random.default_rng(1).standard_normal((2, 2, 7, 7)))
        GradCheck(reference: {'x': 4.383949992023776e-08, 'weight': 1.0395797681698947e-10, 'bias': 2.1074890040278083e-12})
    """
    if implementation not in ("reference", "kernels"):
        raise ValueError(f"check_layer: implementation must be 'reference' or 'kernels', got {implementation!r}")
    low = sorted({str(a.dtype) for a in [x] + [p.data for _, p in layer.named_parameters()]
                  if a.dtype.kind == "f" and a.dtype.itemsize < 8})
    if low:
        warnings.warn(f"check_layer: {', '.join(low)} arrays: centred differences need float64 (rounding swamps "
                      "them, and a correct layer reports errors near 1); use layer.astype(np.float64) and a "
                      "float64 input", stacklevel=2)
    with (reference() if implementation == "reference" else contextlib.nullcontext()):
        return GradCheck(*_check(layer, x, seed, h, forward))


def _check(layer, x, seed, h, forward):
    """(errors, the implementations that the layer's modules say made their forward)."""
    xp = backend.get_array_module(x)
    forward = forward or layer.forward
    modules = [m for _, m in layer.named_modules() if hasattr(m, "calls")]
    start_calls = [m.calls for m in modules]

    def run():
        for m, c in zip(modules, start_calls):
            m.calls = c  # replay the same dropout masks on every evaluation
        return forward(x)

    out = run()
    ran = sorted({m.saved_implementation() for _, m in layer.named_modules()} - {None})
    upstream = backend.to_backend(np.random.default_rng(seed).standard_normal(out.shape), xp).astype(out.dtype)
    layer.zero_grad()
    dx = layer.backward(upstream.copy())
    analytic = {name: p.grad.copy() for name, p in layer.named_parameters()}

    def loss():
        return (run() * upstream).sum()

    errors = {} if dx is None else {"x": rel_error(dx, numerical_gradient(loss, x, h))}
    for name, p in layer.named_parameters():
        errors[name] = rel_error(analytic[name], numerical_gradient(loss, p.data, h))
    return errors, ", ".join(ran)
