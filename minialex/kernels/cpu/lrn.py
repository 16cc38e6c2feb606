"""LocalResponseNorm on the CPU, fast: the reference of minialex/nn/lrn.py (derived in
docs/layers/lrn.md) in cache-sized blocks on all threads. Tested against the reference in
tests/kernels/test_cpu.py; measured in docs/performance.md.

A block is one sample x all channels x all positions when that slab is at most
BLOCK_BYTES (lrn1: 1.2 MB, lrn2: 0.75 MB), seen as (G, C/G, P). Whole samples matter:
a block is then contiguous in x, y, scale and inv, and NumPy's SIMD loops run on it;
on a strided run of positions (rows of m < P) the same ufuncs measured 3-4x slower per
element (34 vs 9 us for 131K floats). Larger samples fall back to runs of positions.
The costs that remain are the number of passes, which are counted:
  forward  11 passes: (x sqrt(alpha))^2 (2), window sum (3), + k (1), ^-beta (4), y (1)
  backward  9 passes: d = dout s^-beta (1), t = d x / s (2), window sum (3), * x, * c2, + d (3)
"""

import numpy as np

from . import runtime

BLOCK_BYTES = 2 << 20


def _blocks(n, c, p, itemsize):
    """(sample, p0, p1) blocks: one sample, all channels, all positions or a run of them."""
    step = p if c * p * itemsize <= BLOCK_BYTES else max(8, BLOCK_BYTES // max(1, c * itemsize))
    return step, [(i, a, min(a + step, p)) for i in range(n) for a in range(0, p, step)]


def _window_sum_padded(ap, s, size, cg, pairs):
    """s[g, i] = sum of ap[g, i : i + size]: the window sum of a channel-padded block.

    ``ap`` (G, cg + size - 1, m) holds the block between ``size // 2`` zero channels on
    each side of every group, so windows clip at group edges with no special cases.
    Sums of neighbouring pairs halve the shifted adds: for size 5,
    s = (a0 + a1) + (a2 + a3) + a4 is 3 passes instead of 5.
    """
    if size == 1:
        np.copyto(s, ap)
        return s
    np.add(ap[:, :-1], ap[:, 1:], out=pairs)
    terms = [pairs[:, q:q + cg] for q in range(0, size - 1, 2)] + [ap[:, size - 1:size - 1 + cg]]
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


def _scratch(layer, tid, g, cg, half, step, dtype):
    """Per-thread block buffers: the channel-padded block (its pads zeroed here and never
    written afterwards), the pair sums, and one spare block."""
    padded = runtime.buffer(layer, ("pad", tid), (g, cg + 2 * half, step), dtype, zero=True)
    pairs = runtime.buffer(layer, ("pairs", tid), (g, cg + 2 * half - 1, step), dtype)
    spare = runtime.buffer(layer, ("spare", tid), (g, cg, step), dtype)
    return padded, pairs, spare


def forward(layer, x):
    """y (N, C, H, W); saves x, scale = k + alpha * window sum of x^2, and inv = scale^-beta."""
    n, c = x.shape[:2]
    g, size = layer.groups, layer.size
    cg, half = c // g, size // 2
    x3 = x.reshape(n, c, -1)  # (N, C, P), P = H*W
    # scale and inv live in buffers from step to step (only backward reads them): fresh
    # 150 MB arrays cost page faults every step, which measured up to 0.1 s for lrn2 in the
    # full step. y is returned to the caller, so it is always a new array.
    y = np.empty_like(x3)
    scale = runtime.buffer(layer, "scale", x3.shape, x.dtype)
    inv = runtime.buffer(layer, "inv", x3.shape, x.dtype)
    step, jobs = _blocks(n, c, x3.shape[2], x.itemsize)
    root_alpha = float(np.sqrt(layer.alpha))

    def work(start, stop, tid):
        padded, pairs, spare = _scratch(layer, tid, g, cg, half, step, x.dtype)
        for i, a, b in jobs[start:stop]:
            m = b - a
            xs = x3[i, :, a:b].reshape(g, cg, m)  # (G, C/G, m)
            sq = padded[:, half:half + cg, :m]
            np.multiply(xs, root_alpha, out=sq)  # alpha a^2 as (sqrt(alpha) a)^2: alpha folded in
            np.square(sq, out=sq)
            s = _window_sum_padded(padded[:, :, :m], scale[i, :, a:b].reshape(g, cg, m), size, cg,
                                   pairs[:, :, :m])
            s += layer.k
            iv = _neg_pow(s, layer.beta, inv[i, :, a:b].reshape(g, cg, m), spare[:, :, :m])
            np.multiply(xs, iv, out=y[i, :, a:b].reshape(g, cg, m))

    runtime.parallel(work, len(jobs))
    return y.reshape(x.shape), {"x": x, "scale": scale.reshape(x.shape), "inv": inv.reshape(x.shape)}


def backward(layer, saved, dout):
    """dx = dout*inv - 2 alpha beta x * window sum of (dout x inv / scale), block by block."""
    x = saved.x
    n, c = x.shape[:2]
    g, size = layer.groups, layer.size
    cg, half = c // g, size // 2
    x3, s3, i3, d3 = (a.reshape(n, c, -1) for a in (x, saved.scale, saved.inv, dout))  # (N, C, P)
    dx = np.empty_like(x3)
    step, jobs = _blocks(n, c, x3.shape[2], x.itemsize)
    c2 = -2.0 * layer.alpha * layer.beta

    def work(start, stop, tid):
        padded, pairs, ws = _scratch(layer, tid, g, cg, half, step, x.dtype)
        for i, a, b in jobs[start:stop]:
            m = b - a
            xs, ss, ivs, ds, d = (arr[i, :, a:b].reshape(g, cg, m) for arr in (x3, s3, i3, d3, dx))
            np.multiply(ds, ivs, out=d)  # dout_i s_i^-beta, the direct term
            t = padded[:, half:half + cg, :m]
            np.multiply(d, xs, out=t)
            t /= ss  # dout_j a_j s_j^(-beta-1)
            w = _window_sum_padded(padded[:, :, :m], ws[:, :, :m], size, cg, pairs[:, :, :m])
            w *= xs
            w *= c2
            d += w

    runtime.parallel(work, len(jobs))
    return dx.reshape(x.shape)
