"""lrn on the CPU, fast: the pair of the reference (minialex/nn/functional/lrn.py, derived in
docs/layers/lrn.md) with the same signatures, in cache-sized blocks on all threads. Tested with
every implementation in tests/ops/test_lrn.py; measured in docs/performance.md.

The block rule (tested in tests/kernels/test_size_rules.py). A block is whole samples x all
channels x all positions, seen as (S, G, C/G, P): as many samples as fit in BLOCK_BYTES, and at
least one. Whole samples matter: a block is then contiguous in x, y, scale and scale_pow, and NumPy's
SIMD loops run on it; on a strided run of positions (rows of m < P) the same ufuncs measured 3-4x
slower per element (34 vs 9 us for 131K floats), and the paper's lrn1 (1.1 MB per sample) ran in
112 ms on runs of 512 KB against 65 ms on whole samples (64 samples, 2 threads). Several samples
per block matter for small images: a block's dozen NumPy calls then each get enough elements that
their fixed cost, which holds the GIL, stays small next to the work; with one 42-96 KB sample per
block the two threads ran LRN slower than one (synthetic lrn1 + lrn2: 24 ms on one thread, 32 on
two). BLOCK_BYTES = 512 KB, half of this machine's 1 MB L2 per core, was the best size at every
shape of the small presets on one and two threads (measured from 64 KB to 4 MB; blocks of 1-2 MB
within 10%). Only a sample above RUN_BYTES is cut into runs of positions.
The costs that remain are the number of passes, which are counted:
  forward  11 passes: (x sqrt(alpha))^2 (2), window sum (3), + k (1), ^-beta (4), y (1)
  backward  9 passes: d = dout s^-beta (1), t = d x / s (2), window sum (3), * x, * c2, + d (3)
"""

from collections import namedtuple

import numpy as np

from . import runtime

BLOCK_BYTES = 512 << 10
RUN_BYTES = 2 << 20


def _blocks(n, c, p, itemsize):
    """The block rule above: (samples per block, positions per block). Whole samples when one fits
    in RUN_BYTES (as many as fit in BLOCK_BYTES, at least one), else one sample and a run of positions."""
    sample = c * p * itemsize
    if sample <= RUN_BYTES:
        return max(1, min(n, BLOCK_BYTES // max(1, sample))), p
    return 1, max(8, RUN_BYTES // max(1, c * itemsize))


def _thread_blocks(start, stop, per, step, p):
    """(i0, i1, p0, p1) blocks of samples start:stop, one thread's share: equal blocks of at most
    ``per`` whole samples (runtime.even_chunks), or runs of ``step`` positions of each sample."""
    if step == p:
        return [(i0, i1, 0, p) for i0, i1 in runtime.even_chunks(start, stop, per)]
    return [(i, i + 1, a, min(a + step, p)) for i in range(start, stop) for a in range(0, p, step)]


def _window_sum_padded(ap, s, size, cg, pairs):
    """s[..., i, :] = sum of ap[..., i : i + size, :]: the window sum of a channel-padded block.

    ``ap`` (S, G, cg + size - 1, m) holds the block between ``size // 2`` zero channels on
    each side of every group, so windows clip at group edges with no special cases.
    Sums of neighbouring pairs halve the shifted adds: for size 5,
    s = (a0 + a1) + (a2 + a3) + a4 is 3 passes instead of 5.
    """
    if size == 1:
        np.copyto(s, ap)
        return s
    np.add(ap[..., :-1, :], ap[..., 1:, :], out=pairs)
    terms = [pairs[..., q:q + cg, :] for q in range(0, size - 1, 2)] + [ap[..., size - 1:size - 1 + cg, :]]
    np.add(terms[0], terms[1], out=s)
    for t in terms[2:]:
        s += t
    return s


def _neg_pow(scale, beta, out, tmp):
    """out = scale ** -beta; for the paper's beta = 0.75 as 1 / (sqrt(s) * sqrt(sqrt(s)))
    (4 cheap passes; np.power is about 3x slower than all four together)."""
    if beta == 0.75:
        np.sqrt(scale, out=out)
        np.sqrt(out, out=tmp)
        out *= tmp
        np.reciprocal(out, out=out)
    elif beta == 0.5:
        np.sqrt(scale, out=out)
        np.reciprocal(out, out=out)
    else:
        np.power(scale, -beta, out=out)
    return out


def _scratch(ws, tid, per, g, cg, half, step, dtype):
    """Per-thread block buffers: the channel-padded block (its pads zeroed here and never
    written afterwards), the pair sums, and one spare block."""
    padded = runtime.buffer(ws, ("pad", tid), (per, g, cg + 2 * half, step), dtype, zero=True)
    pairs = runtime.buffer(ws, ("pairs", tid), (per, g, cg + 2 * half - 1, step), dtype)
    spare = runtime.buffer(ws, ("spare", tid), (per, g, cg, step), dtype)
    return padded, pairs, spare


LRNCache = namedtuple("LRNCache", "x scale scale_pow size alpha beta groups")
LRNCache.__doc__ = "As the reference's: x, scale, scale_pow (N, C, H, W) and the hyperparameters."


def lrn_forward(x, size, alpha, beta, k, groups):
    """y (N, C, H, W) from x (N, C, H, W), as the reference; keeps x, scale and scale_pow."""
    n, c = x.shape[:2]
    g = groups
    cg, half = c // g, size // 2
    x3 = x.reshape(n, c, -1)  # (N, C, P), P = H*W
    # scale and scale_pow live in the caller's workspace from step to step (only backward reads
    # them): fresh 150 MB arrays cost page faults every step, which measured up to 0.1 s for
    # lrn2 in the full step. y is returned to the caller, so it is always a new array.
    ws = runtime.current_workspace()
    y = np.empty_like(x3)
    scale = runtime.buffer(ws, "scale", x3.shape, x.dtype)
    scale_pow = runtime.buffer(ws, "scale_pow", x3.shape, x.dtype)
    per, step = _blocks(n, c, x3.shape[2], x.itemsize)
    root_alpha = float(np.sqrt(alpha))

    def work(start, stop, tid):
        padded, pairs, spare = _scratch(ws, tid, per, g, cg, half, step, x.dtype)
        for i0, i1, a, b in _thread_blocks(start, stop, per, step, x3.shape[2]):
            ns, m = i1 - i0, b - a
            shape = (ns, g, cg, m)
            xs = x3[i0:i1, :, a:b].reshape(shape)  # (S, G, C/G, m)
            sq = padded[:ns, :, half:half + cg, :m]
            np.multiply(xs, root_alpha, out=sq)  # alpha a^2 as (sqrt(alpha) a)^2: alpha folded in
            np.square(sq, out=sq)
            s = _window_sum_padded(padded[:ns, :, :, :m], scale[i0:i1, :, a:b].reshape(shape), size, cg,
                                   pairs[:ns, :, :, :m])
            s += k
            iv = _neg_pow(s, beta, scale_pow[i0:i1, :, a:b].reshape(shape), spare[:ns, :, :, :m])
            np.multiply(xs, iv, out=y[i0:i1, :, a:b].reshape(shape))

    runtime.parallel(work, n, passes=11 * x.size)
    return y.reshape(x.shape), LRNCache(x, scale.reshape(x.shape), scale_pow.reshape(x.shape), size, alpha, beta, groups)


def lrn_backward(dout, cache):
    """dx = dout*scale_pow - 2 alpha beta x * window sum of (dout x scale_pow / scale), block by block."""
    x, size, g = cache.x, cache.size, cache.groups
    n, c = x.shape[:2]
    cg, half = c // g, size // 2
    x3, s3, i3, d3 = (a.reshape(n, c, -1) for a in (x, cache.scale, cache.scale_pow, dout))  # (N, C, P)
    dx = np.empty_like(x3)
    per, step = _blocks(n, c, x3.shape[2], x.itemsize)
    c2 = -2.0 * cache.alpha * cache.beta
    owner = runtime.current_workspace()

    def work(start, stop, tid):
        padded, pairs, ws = _scratch(owner, tid, per, g, cg, half, step, x.dtype)
        for i0, i1, a, b in _thread_blocks(start, stop, per, step, x3.shape[2]):
            ns, m = i1 - i0, b - a
            shape = (ns, g, cg, m)
            xs, ss, ivs, ds, d = (arr[i0:i1, :, a:b].reshape(shape) for arr in (x3, s3, i3, d3, dx))
            np.multiply(ds, ivs, out=d)  # dout_i s_i^-beta, the direct term
            t = padded[:ns, :, half:half + cg, :m]
            np.multiply(d, xs, out=t)
            t /= ss  # dout_j a_j s_j^(-beta-1)
            w = _window_sum_padded(padded[:ns, :, :, :m], ws[:ns, :, :, :m], size, cg, pairs[:ns, :, :, :m])
            w *= xs
            w *= c2
            d += w

    runtime.parallel(work, n, passes=9 * x.size)
    return dx.reshape(x.shape)
