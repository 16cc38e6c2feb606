"""Dropout's random masks, from a counter-based hash instead of a random stream.

Element i of the mask of training forward number ``call`` of a layer seeded ``seed`` is kept
when a hash of (seed, call, i) says so. So a mask is a pure function of (seed, call, shape, p):
the same bits on NumPy, on any GPU (minialex/kernels/cuda/dropout.py computes exactly this in
one launch) and after a resume, and a layer's whole random state is two integers, which a
checkpoint stores. Why this matters for exact resume: docs/layers/dropout.md, "Masks from
(seed, calls)". The reference dropout (minialex/nn/functional/dropout.py) calls
``dropout_mask`` and nothing else from here.

A ``MaskKey`` can also ask for a block of a larger mask, which is how the layouts that split a
batch keep the single-device network's masks: ``columns=(start, full_width)`` gives columns
start.. of a mask whose rows are ``full_width`` long (each column of the two-column network,
minialex/parallel/two_column.py, draws its half alone), and ``first_row`` says the block's rows
are rows first_row.. of the full mask (a data-parallel process holding samples first_row.. of
the global batch draws exactly their rows, minialex/parallel/data_parallel.py).
"""

import sys
from collections import namedtuple

import numpy as np

from ..kernels.cuda import dropout as cuda_dropout
from .dispatch import Op

class MaskKey(namedtuple("MaskKey", "seed call first_row columns", defaults=(0, None))):
    """Which mask: the layer's ``seed``, the number ``call`` of its training forward, and for a
    block of a larger mask its ``first_row`` and ``columns=(start, full_width)``."""

    __slots__ = ()

    def draw(self, shape, p, dtype, xp):
        """The scaled mask m / (1 - p) of this key: ``dropout_mask`` below."""
        return dropout_mask(self.seed, self.call, shape, p, xp, dtype, self.columns, self.first_row)


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


def hash_mask(k1, k2, thresh, shape, start, full_width, scale, xp, dtype):
    """The scaled mask of a ``shape`` block: element (r, c) is element r * full_width + start + c
    of the full mask, kept (set to ``scale``) when its hash clears ``thresh``, else 0. On the
    array module xp (NumPy or CuPy); the CUDA kernel of the same signature does it in one launch."""
    width = shape[-1] if shape else 1
    n = int(np.prod(shape)) if shape else 1
    flat = xp.arange(n, dtype=xp.int64)
    i = (flat // width * full_width + start + flat % width).astype(xp.uint32)  # index in the full mask
    h = _fmix32(_fmix32(i ^ k1) + k2)
    keep = (h >> np.uint32(8)) >= np.uint32(thresh)  # a 24-bit uniform integer against the threshold
    mask = keep.astype(dtype).reshape(shape)
    mask *= scale
    return mask


# the hash on NumPy or CuPy (hash_mask above), or as one CUDA launch for CuPy arrays
HASH_MASK = Op("hash_mask", reference=sys.modules[__name__], cuda=cuda_dropout, functions=("hash_mask",))


def dropout_mask(seed, call, shape, p, xp=np, dtype=np.float32, columns=None, first_row=0):
    """The scaled mask m / (1 - p), m ~ Bernoulli(1 - p), of training forward number ``call`` of a
    layer seeded ``seed``: an array of ``shape`` and ``dtype`` on the array module xp. With
    ``columns`` and ``first_row``, the block of a larger mask described at the top."""
    shape = tuple(shape)
    k1, k2 = mask_keys(seed, call)
    width = shape[-1] if shape else 1
    start, full_width = columns if columns is not None else (0, width)
    # element (r, c) is element (first_row + r) * full_width + start + c of the full mask: the row
    # offset folds into ``start`` (the hash reads the index modulo 2**32 on both paths)
    start = (int(first_row) * full_width + start) % (1 << 32)
    make = HASH_MASK.pick(xp).forward  # hash_mask above, or its CUDA launch for CuPy
    return make(k1, k2, keep_threshold(p), shape, start, full_width, 1.0 / (1.0 - p), xp, dtype)
