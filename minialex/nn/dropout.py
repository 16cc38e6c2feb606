"""Dropout: zero each unit with probability p while training (inverted scaling).
Derivation, and why it matches the paper's test-time x0.5, in docs/layers/dropout.md;
checked in tests/nn/test_dropout.py."""

import numpy as np

from .. import backend
from .checks import check_float_input
from ..kernels.cuda import dropout as cuda_dropout
from .dispatch import REFERENCE, fast_implementation
from .module import Module


def _fmix32(h):
    """MurmurHash3's 32-bit finaliser: every input bit flips each output bit with probability ~1/2."""
    h ^= h >> 16
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> 13
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> 16
    return h


def mask_keys(seed, call):
    """The two 32-bit keys of training forward number ``call`` of a layer seeded ``seed``."""
    k1, k2 = np.random.SeedSequence([int(seed), int(call)]).generate_state(2)
    return np.uint32(k1), np.uint32(k2)


def keep_threshold(p):
    """Element i is kept when the top 24 bits of its hash are >= this: probability 1 - p."""
    return int(round(p * (1 << 24)))


def dropout_mask(seed, call, shape, p, xp=np, dtype=np.float32, columns=None, first_row=0):
    """The scaled mask m / (1 - p), m ~ Bernoulli(1 - p), of training forward number ``call``.

    Counter-based: element i of the (row-major) mask is kept when a hash of (seed, call, i)
    says so, so the mask is a pure function of (seed, call, shape, p) and the same bits on
    NumPy, on any GPU (minialex/kernels/cuda/dropout.py computes exactly this in one launch)
    and after a resume. ``columns=(start, full_width)`` gives only columns start.. of a mask
    whose rows are ``full_width`` long: the two-column network draws each half of the
    single-device mask that way, without drawing the other half. ``first_row``: the block's
    rows are rows first_row.. of the full mask, so a data-parallel process holding samples
    first_row.. of the global batch draws exactly their rows (minialex/parallel/data_parallel.py).
    """
    shape = tuple(shape)
    k1, k2 = mask_keys(seed, call)
    width = shape[-1] if shape else 1
    start, full_width = columns if columns is not None else (0, width)
    # element (r, c) is element (first_row + r) * full_width + start + c of the full mask: the row
    # offset folds into ``start`` (the hash reads the index modulo 2**32 on both paths)
    start = (int(first_row) * full_width + start) % (1 << 32)
    scale = 1.0 / (1.0 - p)
    if (fast := fast_implementation(xp, cuda=cuda_dropout)) is not None:  # dispatch: one launch on CuPy
        return fast.mask(k1, k2, keep_threshold(p), shape, dtype, start, full_width, scale)
    return hash_mask(k1, k2, keep_threshold(p), shape, start, full_width, scale, xp, dtype)


def hash_mask(k1, k2, thresh, shape, start, full_width, scale, xp=np, dtype=np.float32):
    """The reference of the mask: element (r, c) of a ``shape`` block is element
    r * full_width + start + c of the full mask, kept when its hash clears ``thresh``."""
    width = shape[-1] if shape else 1
    n = int(np.prod(shape)) if shape else 1
    flat = xp.arange(n, dtype=xp.int64)
    i = (flat // width * full_width + start + flat % width).astype(xp.uint32)  # index in the full mask
    h = _fmix32(_fmix32(i ^ k1) + k2)
    keep = (h >> np.uint32(8)) >= np.uint32(thresh)  # a 24-bit uniform integer against the threshold
    mask = keep.astype(dtype).reshape(shape)
    mask *= scale
    return mask


class Dropout(Module):
    """Training: y = x * m / (1 - p) with m ~ Bernoulli(1 - p) per element. Evaluation: y = x.

    The paper multiplies outputs by 0.5 at test time instead ("dropout2" in
    cuda-convnet). Scaling the kept units by 1/(1-p) during training gives the
    same expectation, E[y] = x, and leaves the test-time network untouched.

    Masks come from ``dropout_mask(seed, calls, ...)``, a counter-based hash, where
    ``calls`` counts the training forwards. The layer's whole random state is therefore two integers,
    ``seed`` and ``calls``: a checkpoint stores them and a resumed run draws the very
    same masks. ``first_row`` (0 unless data parallel) says which rows of the global batch's
    mask this process's batch is.
    """

    def __init__(self, p=0.5, seed=0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p, self.seed, self.calls = p, int(seed), 0
        self.first_row = 0

    def extra_repr(self):
        return f"p={self.p}"

    def forward(self, x):
        """x (any shape) -> y; saves the scaled mask (None in evaluation: y = x)."""
        if not hasattr(x, "dtype") or x.dtype.kind != "f":
            check_float_input(self, x, getattr(x, "ndim", 0))
        if not self.training or self.p == 0.0:
            self.save_for_backward(REFERENCE, mask=None)
            return x
        mask = dropout_mask(self.seed, self.calls, x.shape, self.p, backend.get_array_module(x), x.dtype,
                            first_row=self.first_row)
        self.calls += 1
        self.save_for_backward(REFERENCE, mask=mask)
        return x * mask

    def backward(self, dout):
        # y = x * mask, so dx = dout * mask (and dx = dout in evaluation)
        mask = self.saved_for_backward().mask
        return dout if mask is None else dout * mask
