"""Module and Parameter: the small base every layer builds on.

The mathematics of a layer is a pure pair in minialex/nn/functional/ (``y, cache = forward(...)``,
``grads = backward(dout, cache)``). A Module holds what the pair needs from one call to the next:
the parameters (with their gradients) and hyperparameters, and the cache between a forward and
its backward. ``forward(x) -> y`` calls the pair's forward through ``forward_with(op, x, ...)``,
which picks the implementation (minialex/nn/dispatch.py) and keeps the cache; ``backward(dout)
-> dx`` calls ``backward_with(dout, ...)``, which runs the backward of that same implementation,
adding the parameters' gradients into ``param.grad``. There is no autograd: each pair's backward
is derived by hand in docs/layers/.
"""

from collections import OrderedDict

import numpy as np

from ..backend import backend_name, device, device_of, get_array_module, get_backend, to_backend, to_numpy
from ..kernels.cpu import runtime
from .dispatch import REFERENCE


class Parameter:
    """A trainable array ``data`` and the gradient ``grad`` of the loss with respect to it.

    ``grad`` has the shape, dtype and device of ``data``. Backward passes add
    into it (``+=``), so call ``zero_grad()`` before each step.
    """

    def __init__(self, data):
        self.data = data
        xp = get_array_module(data)
        self.grad = xp.zeros_like(data)

    def use_grad_buffer(self, view):
        """Keep the gradient in ``view`` (zeroed here), an array of ``data``'s shape, dtype and
        device, typically a slice of a larger flat buffer: data parallelism sums whole buffers
        across processes (minialex/parallel/data_parallel.py). Moving the parameter with
        ``Module.to`` gives it a gradient array of its own again."""
        if tuple(view.shape) != tuple(self.data.shape) or view.dtype != self.data.dtype:
            raise ValueError(f"use_grad_buffer: need shape {tuple(self.data.shape)} and dtype {self.data.dtype}, "
                             f"got {tuple(view.shape)} {view.dtype}")
        view[...] = 0
        self.grad = view

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def __repr__(self):
        return f"Parameter(shape={tuple(self.data.shape)}, dtype={self.data.dtype})"


class Module:
    """Base class of all layers and networks.

    Parameters and child modules are registered by assigning them as
    attributes, as in PyTorch, so their names (``conv1.weight``) come from the
    attribute names.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        params, modules = self.__dict__["_parameters"], self.__dict__["_modules"]
        params.pop(name, None)
        modules.pop(name, None)
        if isinstance(value, Parameter):
            params[name] = value
        elif isinstance(value, Module):
            modules[name] = value
        object.__setattr__(self, name, value)

    # -- the two passes -------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def backward(self, dout):
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- the pair, and the cache between forward and backward ---------------------------
    def forward_with(self, op, x, *args):
        """``y, cache = pair.forward(x, *args)`` for the implementation of ``op`` (an Op of
        minialex/nn/dispatch.py) that the switch picks for x; keeps the cache, returns y. A kernel
        keeps its scratch arrays for this module from call to call (runtime.workspace)."""
        pair = op.pick(x)
        if pair.by == REFERENCE:  # the readable pair needs no workspace
            y, cache = pair.forward(x, *args)
        else:
            token = runtime.enter_workspace(self)
            try:
                y, cache = pair.forward(x, *args)
            finally:
                runtime.leave_workspace(token)
        self.__dict__["_cache"] = (pair, cache)
        return y

    def backward_with(self, dout, **kwargs):
        """``pair.backward(dout, cache, **kwargs)`` of the implementation that made the last
        forward, whatever the switch says now."""
        pair, cache = self.take_cache()
        if pair.by == REFERENCE:
            return pair.backward(dout, cache, **kwargs)
        token = runtime.enter_workspace(self)
        try:
            return pair.backward(dout, cache, **kwargs)
        finally:
            runtime.leave_workspace(token)

    def keep(self, cache, pair=None):
        """Keep ``cache`` for the next backward; ``pair`` is the implementation that made it
        (None: the module's own code, the reference)."""
        object.__setattr__(self, "_cache", (pair, cache))

    def take_cache(self):
        """(pair, cache) of the last forward, handed over once: a second backward raises."""
        kept = self.__dict__.get("_cache")
        if kept is None:
            raise RuntimeError(f"{type(self).__name__}.backward called without a forward pass before it")
        object.__setattr__(self, "_cache", None)  # free the cache as soon as backward has it
        return kept

    def saved_implementation(self):
        """Which implementation made the cache of the last forward (``'reference'`` or a kernel
        module's name, such as ``'kernels.cpu.conv'``), or None when nothing waits for a backward."""
        kept = self.__dict__.get("_cache")
        if kept is None:
            return None
        return REFERENCE if kept[0] is None else kept[0].by

    # -- parameters -----------------------------------------------------------------
    def named_modules(self, prefix=""):
        """Yield ``(name, module)`` for this module and every descendant, depth first."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_children(self):
        """Yield ``(name, module)`` for the direct children, in registration order."""
        yield from self._modules.items()

    def children(self):
        return list(self._modules.values())

    def named_parameters(self, prefix=""):
        """Yield ``(dotted_name, Parameter)`` in registration order."""
        for name, p in self._parameters.items():
            yield (f"{prefix}.{name}" if prefix else name), p
        for name, child in self._modules.items():
            yield from child.named_parameters(f"{prefix}.{name}" if prefix else name)

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def num_parameters(self):
        return sum(int(p.data.size) for p in self.parameters())

    def zero_grad(self):
        for p in self.parameters():
            with device_of(p.grad):  # on the parameter's own device (two columns: two devices)
                p.grad.fill(0)

    # -- modes ----------------------------------------------------------------------
    def train(self, mode=True):
        """Training mode (dropout active); returns self."""
        for _, m in self.named_modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode (dropout is the identity); returns self."""
        return self.train(False)

    # -- dtype and backend ----------------------------------------------------------
    def to(self, backend=None, dtype=None, device_id=None):
        """Move every parameter to a backend (``'numpy'``, ``'cupy'`` or a module) and/or cast it.

        Gradients are reset to zero in the new place. Returns self.
        """
        xp = get_backend(backend) if isinstance(backend, str) or backend is None else backend
        if backend is None and self.parameters():
            xp = get_array_module(self.parameters()[0].data)
        for p in self.parameters():
            data = to_backend(p.data, xp, device_id)
            if dtype is not None:
                with device(xp, device_id):
                    data = data.astype(dtype, copy=False)
            p.data = data
            with device(xp, device_id):
                p.grad = xp.zeros_like(data)
        return self

    def astype(self, dtype):
        """Cast every parameter (for example to float64 for gradient checks). Returns self."""
        return self.to(dtype=dtype)

    # -- state ----------------------------------------------------------------------
    def state_dict(self):
        """``{name: array}`` of every parameter (the arrays themselves, not copies)."""
        return OrderedDict((name, p.data) for name, p in self.named_parameters())

    def load_state_dict(self, state, strict=True):
        """Copy arrays into the parameters, in place, keeping each parameter's dtype and device.

        Every problem is collected first (missing names, unexpected names,
        shape mismatches) and reported in one ValueError, so a user sees all of
        them at once instead of fixing them one by one.
        """
        own = OrderedDict(self.named_parameters())
        problems = state_mismatches({n: tuple(p.data.shape) for n, p in own.items()}, state, strict)
        if problems:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: state does not match the model:\n  "
                + "\n  ".join(problems)
            )
        for name, p in own.items():
            xp = get_array_module(p.data)
            src = state[name]
            if xp is np:
                p.data[...] = to_numpy(src).astype(p.data.dtype, copy=False)
            else:
                with p.data.device:
                    p.data[...] = xp.asarray(src).astype(p.data.dtype, copy=False)
        return self

    # -- display --------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        if len(lines) == 1:
            return lines[0] + ")"
        return "\n".join(lines) + "\n)"


def state_mismatches(expected, state, strict=True):
    """Every way ``state`` ({name: array}) fails to fit ``expected`` ({name: shape}), as text lines."""
    problems = []
    missing = [n for n in expected if n not in state]
    unexpected = [n for n in state if n not in expected]
    if missing:
        problems.append("missing: " + ", ".join(missing))
    if unexpected and strict:
        problems.append("unexpected: " + ", ".join(unexpected))
    problems += [f"{n}: checkpoint shape {tuple(state[n].shape)} != model shape {tuple(shape)}"
                 for n, shape in expected.items() if n in state and tuple(state[n].shape) != tuple(shape)]
    return problems


def describe(x):
    """Short text for error messages: shape, dtype and backend of an array."""
    try:
        xp = get_array_module(x)
        return f"shape {tuple(x.shape)}, dtype {x.dtype}, {backend_name(xp)}"
    except Exception:
        return f"a {type(x).__name__}"
