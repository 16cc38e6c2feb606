"""Dropout's mask as one CUDA launch: the counter-based hash of minialex/nn/dropout.py
(``dropout_mask``, which is this kernel's NumPy twin, bit for bit) evaluated per element.
Conventions of this folder: minialex/kernels/cuda/elementwise.py."""

from ... import backend
from .elementwise import kernel

DROPOUT_MASK = (
    "uint32 k1, uint32 k2, uint32 thresh, int64 width, int64 start, int64 full_width, T scale",
    "T mask",
    """
    // element i of this (rows, width) block is element r * full_width + start + c of the full mask
    const ptrdiff_t r = i / width, c = i % width;
    unsigned int h = (unsigned int)(r * full_width + start + c) ^ k1;
    h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16;  // fmix32
    h += k2;
    h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16;
    mask = ((h >> 8) >= thresh) ? scale : (T)0;  // kept with probability 1 - p, scaled by 1/(1-p)
    """,
    "minialex_dropout_mask",
)


def mask(k1, k2, thresh, shape, dtype, start, full_width, scale):
    """The mask of minialex.nn.dropout_mask on the current GPU, in one launch (keys, threshold
    and scale computed on the host by dropout_mask)."""
    cp = backend.get_backend("cupy")
    out = cp.empty(tuple(shape), dtype=dtype)
    width = out.shape[-1] if out.ndim else 1
    kernel(DROPOUT_MASK)(k1, k2, thresh, width, start, full_width, out.dtype.type(scale), out)
    return out
