"""Winograd F(2x2, 3x3): the fast CPU convolution for 3x3 kernels with stride 1.

AlexNet's conv3, conv4 and conv5 are 3x3, stride-1 convolutions on 13x13 maps. Winograd's
minimal filtering algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2015) computes each 2x2 block of outputs from the 4x4 block of input under it:

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* elementwise, d: 4x4 input, g: 3x3 filter)

Summed over input channels, the elementwise product becomes 16 GEMMs, one per position
(xi, nu) of the 4x4 transformed tile:

    M[xi, nu] (F, tiles) = U[xi, nu] (F, C) @ V[xi, nu] (C, tiles)

with U = G g G^T (weights) and V = B^T d B (input). That is 16 multiplies per 2x2 outputs
where im2col does 36: about half the GEMM work, paid for with cheap add/subtract passes.
The backward pass is the exact adjoint of these linear maps (the transposed transforms and
two more GEMMs per position); docs/layers/winograd.md derives every line.

The readable reference is Conv2d._forward_plain / _backward_plain; tests/nn/test_winograd.py
checks this file against it (float64, 1e-10) and against finite differences.
"""

import numpy as np

from . import fast

ENABLED = True  # False: 3x3 stride-1 convolutions use the im2col fast path instead
TILE_BYTES = 12 << 20  # target size of one thread's transformed-input buffer V

# The transforms of F(2x2, 3x3) (Lavin & Gray, section 4.1). The code below applies B^T and
# A^T as add/subtract passes (_bt, _at); G is applied to the small weights with einsum.
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])


def applies(layer):
    return ENABLED and layer.kernel_size == (3, 3) and layer.stride == (1, 1)


def _bt(d, out):
    """out[xi] = sum_i BT[xi, i] d[i] along one tile axis (d: four views, out: four arrays)."""
    np.subtract(d[0], d[2], out=out[0])
    np.add(d[1], d[2], out=out[1])
    np.subtract(d[2], d[1], out=out[2])
    np.subtract(d[1], d[3], out=out[3])


def _bt_adjoint(g, d, tmp):
    """d[i] += sum_xi BT[xi, i] g[xi], the transpose of _bt. d[0] and d[2] (and d[1], d[3])
    are views of one plane a tile apart, so they overlap: the caller zeroes it, this adds."""
    d[0] += g[0]
    np.add(g[1], g[2], out=tmp)
    tmp -= g[0]
    d[2] += tmp
    np.subtract(g[1], g[2], out=tmp)
    tmp += g[3]
    d[1] += tmp
    d[3] -= g[3]


def _at(m, out):
    """out[r] = sum_xi AT[r, xi] m[xi] along one tile axis: four values to two outputs."""
    np.add(m[0], m[1], out=out[0])
    out[0] += m[2]
    np.subtract(m[1], m[2], out=out[1])
    out[1] -= m[3]


def _at_adjoint(g, m):
    """m[xi] = sum_r AT[r, xi] g[r], the transpose of _at (no overlap: plain writes)."""
    np.copyto(m[0], g[0])
    np.add(g[0], g[1], out=m[1])
    np.subtract(g[0], g[1], out=m[2])
    np.negative(g[1], out=m[3])


def _geometry(layer, x_shape, itemsize):
    n, c, h, w = x_shape
    ph, pw = layer.padding
    oh, ow = h + 2 * ph - 2, w + 2 * pw - 2
    th, tw = -(-oh // 2), -(-ow // 2)  # tiles of 2x2 outputs (the last row/col may overhang)
    # The 4x4 input tiles start every 2 pixels, so the padded input is kept in 2x2 stride
    # phases (fast.fill_phases): tile row ty, offset i reads phase i % 2 at row ty + i // 2.
    # A phase plane has th + 1 rows, which covers the padded input and the overhang.
    hq, wq, plan = fast.phase_plan(h, w, ph, pw, 2, 2)
    assert (hq, wq) == (th + 1, tw + 1)
    per_sample = 16 * max(c, layer.out_channels) * th * tw * itemsize
    chunk = max(1, min(n, TILE_BYTES // per_sample))
    return n, c, oh, ow, th, tw, plan, chunk


def _weights_transformed(layer, dtype):
    """U[xi, nu] = (G g G^T)[xi, nu] for every filter: (4, 4, F, C/G), each (F, C/G) contiguous."""
    gm = G.astype(dtype)  # float32 stays float32
    return np.ascontiguousarray(np.einsum("xi,fcij,yj->xyfc", gm, layer.weight.data, gm, optimize=True))


def _buffers(layer, c, f, th, tw, m, chunk, dtype, tid):
    """Per-thread scratch, flat and reused across steps; views are cut for the chunk's m samples."""
    shapes = {  # per sample; T = th * tw * m columns in the GEMMs: (tile row, tile col, sample)
        "pv": (c, 2, 2, th + 1, tw + 1),  # padded input in stride phases
        "t": (4, c, 2, th, tw + 1),  # after the row pass of B^T
        "v": (4, 4, c, th * tw),  # V, the transformed input (backward: dV over it)
        "m": (4, 4, f, th * tw),  # M = U V (backward: dM)
        "s": (2, 4, f, th * tw),  # after the row pass of A^T (backward: the column pass of A)
        "y": (2, 2, f, th * tw),  # output (backward: dout) by pixel parity
        "tmp_t": (c, th, tw),  # temporaries of the backward's adjoint passes
        "tmp_p": (c, 2, th, tw + 1),
    }
    views = {}
    for key, shape in shapes.items():
        size = int(np.prod(shape))
        flat = fast.buffer(layer, ("wino_" + key, tid), (size * chunk,), dtype)
        # the GEMM operands keep (tile, sample) flat as their last axis; the rest get (..., m)
        gemm = key in ("v", "m", "s", "y")
        views[key] = flat[:size * m].reshape(shape[:-1] + (shape[-1] * m,) if gemm else shape + (m,))
    return views


def _input_transform(pv, t, v, th, tw):
    """v[xi, nu] = (B^T d B)[xi, nu] for every 4x4 tile d of the chunk's padded input pv."""
    c, m = pv.shape[0], pv.shape[-1]
    # rows: tile row ty, offset i is phase-row i % 2, plane row ty + i // 2
    _bt([pv[:, i % 2, :, i // 2:i // 2 + th] for i in range(4)], t)  # t[xi]: (C, 2, th, tw+1, m)
    for xi in range(4):
        # columns: offset j is phase-column j % 2, plane column tx + j // 2
        _bt([t[xi, :, j % 2, :, j // 2:j // 2 + tw] for j in range(4)],
            v[xi].reshape(4, c, th, tw, m))


def _input_transform_adjoint(dv, dt, dpv, th, tw, tmp_t, tmp_p):
    """dpv = the padded-input gradient from dv = dL/dV: _input_transform run backwards."""
    c, m = dpv.shape[0], dpv.shape[-1]
    dt.fill(0)
    for xi in range(4):
        _bt_adjoint(dv[xi].reshape(4, c, th, tw, m),
                    [dt[xi, :, j % 2, :, j // 2:j // 2 + tw] for j in range(4)], tmp_t)
    dpv.fill(0)
    _bt_adjoint(dt, [dpv[:, i % 2, :, i // 2:i // 2 + th] for i in range(4)], tmp_p)


def conv_forward(layer, x):
    n, c, oh, ow, th, tw, plan, chunk = _geometry(layer, x.shape, x.itemsize)
    f, g = layer.out_channels, layer.groups
    fg, cg = f // g, c // g
    u = _weights_transformed(layer, x.dtype)  # (4, 4, F, C/G)
    bias = layer.bias.data.reshape(1, f, 1, 1)
    y = np.empty((n, f, oh, ow), dtype=x.dtype)

    def work(start, stop, tid):
        for a, b in fast.chunks(start, stop, chunk):
            m = b - a
            bufs = _buffers(layer, c, f, th, tw, m, chunk, x.dtype, tid)
            pv, t, v, mm, s, yt = (bufs[k] for k in ("pv", "t", "v", "m", "s", "y"))
            fast.fill_phases(x, a, b, pv, plan)
            _input_transform(pv, t, v, th, tw)
            for xi in range(4):
                for nu in range(4):
                    for gi in range(g):  # M = U @ V per group: (F/G, C/G) @ (C/G, th*tw*m)
                        np.matmul(u[xi, nu, gi * fg:(gi + 1) * fg], v[xi, nu, gi * cg:(gi + 1) * cg],
                                  out=mm[xi, nu, gi * fg:(gi + 1) * fg])
            _at(mm, s)  # s[r] = sum_xi AT[r, xi] mm[xi]: rows, all nu at once, (2, 4, F, T)
            for r in range(2):
                _at(s[r], yt[r])  # yt[r, q]: output pixel (2 ty + r, 2 tx + q), (F, T)
            out = yt.reshape(2, 2, f, th, tw, m)
            for r in range(2):
                for q in range(2):
                    # drop the overhanging last row/col, (F, ty, tx, m) -> (m, F, ty, tx), + bias
                    nr, nq = len(range(r, oh, 2)), len(range(q, ow, 2))
                    np.add(out[r, q, :, :nr, :nq].transpose(3, 0, 1, 2), bias, out=y[a:b, :, r::2, q::2])

    fast.run_workers(work, n)
    return y


def conv_backward(layer, x, dout, need_dx=True):
    n, c, oh, ow, th, tw, plan, chunk = _geometry(layer, x.shape, x.itemsize)
    f, g = layer.out_channels, layer.groups
    fg, cg = f // g, c // g
    u = _weights_transformed(layer, x.dtype)
    dx = np.empty(x.shape, dtype=x.dtype) if need_dx else None
    partial = {}

    def work(start, stop, tid):
        du = np.zeros((4, 4, f, cg), dtype=x.dtype)  # dL/dU, summed over this thread's chunks
        db = np.zeros(f, dtype=x.dtype)
        tmp = np.empty((fg, cg), dtype=x.dtype)
        for a, b in fast.chunks(start, stop, chunk):
            m = b - a
            bufs = _buffers(layer, c, f, th, tw, m, chunk, x.dtype, tid)
            pv, t, v, dm, e, dyt = (bufs[k] for k in ("pv", "t", "v", "m", "s", "y"))
            fast.fill_phases(x, a, b, pv, plan)
            _input_transform(pv, t, v, th, tw)  # recomputed: cheaper than keeping V per layer
            # dout in the output's tile layout, zero where the tiles overhang the output
            dyv = dyt.reshape(2, 2, f, th, tw, m)
            for r in range(2):
                for q in range(2):
                    nr, nq = len(range(r, oh, 2)), len(range(q, ow, 2))
                    dyv[r, q, :, nr:].fill(0)
                    dyv[r, q, :, :nr, nq:].fill(0)
                    dyv[r, q, :, :nr, :nq] = dout[a:b, :, r::2, q::2].transpose(1, 2, 3, 0)
            db += dyt.sum(axis=(0, 1, 3))
            # dM = A dY A^T: the transposes of the forward's two _at passes, in reverse order
            for r in range(2):
                _at_adjoint(dyt[r], e[r])  # e[r, nu]: (F, T)
            _at_adjoint(e, dm)  # dm[xi]: (4, F, T)
            for xi in range(4):
                for nu in range(4):
                    for gi in range(g):
                        fs, cs = slice(gi * fg, (gi + 1) * fg), slice(gi * cg, (gi + 1) * cg)
                        # dU = dM @ V^T, summed over tiles and samples
                        np.matmul(dm[xi, nu, fs], v[xi, nu, cs].T, out=tmp)
                        du[xi, nu, fs] += tmp
                        if need_dx:  # dV = U^T @ dM, written over V (used just above, last time)
                            np.matmul(u[xi, nu, fs].T, dm[xi, nu, fs], out=v[xi, nu, cs])
            if not need_dx:
                continue
            _input_transform_adjoint(v, t, pv, th, tw, bufs["tmp_t"], bufs["tmp_p"])
            fast.unfill_phases(dx, a, b, pv, plan)
        partial[tid] = du, db

    fast.run_workers(work, n)
    du = sum(p[0] for p in partial.values())
    gm = G.astype(x.dtype)
    # U = G g G^T, so dL/dg = G^T dU G, per filter and channel
    layer.weight.grad += np.einsum("xi,xyfc,yj->fcij", gm, du, gm, optimize=True)
    for _, db in partial.values():
        layer.bias.grad += db
    return dx

