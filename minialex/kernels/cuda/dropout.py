"""Dropout's mask as one CUDA launch: ``hash_mask`` of minialex/nn/masks.py, the counter-based
hash, with the same signature, evaluated per element (bit for bit; its twin below is the same
hash in NumPy). Conventions of this folder: elementwise.py."""

import numpy as np

from .elementwise import kernel, require_gpu, twin

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


def hash_mask(k1, k2, thresh, shape, start, full_width, scale, xp, dtype):
    """The scaled mask of a ``shape`` block, as minialex/nn/masks.py's hash_mask, in one launch
    (xp: CuPy; keys, threshold and scale computed on the host by masks.dropout_mask)."""
    out = xp.empty(tuple(shape), dtype=dtype)
    require_gpu(out, "dropout.hash_mask")
    width = out.shape[-1] if out.ndim else 1
    kernel(DROPOUT_MASK)(k1, k2, thresh, width, start, full_width, out.dtype.type(scale), out)
    return out


def _fmix32(h):
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


@twin(DROPOUT_MASK)
def _(p):
    """The kernel's body for every element at once."""
    out = p["mask"]
    i = np.arange(out.size, dtype=np.int64)
    r, c = i // p["width"], i % p["width"]
    h = (r * p["full_width"] + p["start"] + c).astype(np.uint32) ^ np.uint32(p["k1"])
    h = _fmix32(h)
    h += np.uint32(p["k2"])
    h = _fmix32(h)
    out.reshape(-1)[...] = np.where((h >> np.uint32(8)) >= np.uint32(p["thresh"]), p["scale"], 0)
