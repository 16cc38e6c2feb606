"""Every CUDA kernel of minialex/kernels/cuda, its OWN source compiled with g++ and run on the CPU
(host_kernel.HostKernel), against its NumPy twin (``TWINS[name]``) and against the reference
implementation, in float32 and float64, on awkward shapes: odd sizes, borders that no window
covers, a stride larger than the kernel, a single window, windows entirely in the padding, LRN
groups of one channel and fewer channels than the window, dropout masks that are blocks of a
wider mask (columns, first_row) or whose index wraps at 2**32, tanh and sigmoid on saturating
inputs (+-50, +-1000, +-710, the far tails) and signed zeros.

Against the twin the results must be bitwise equal, except LRN forward's ``pow`` (glibc's powf
or pow against NumPy's power: scale_pow within 1 ulp, and y then exactly x * scale_pow). Against the
reference: the tolerance of the order of operations (LRN forward's y and scale_pow to rtol 4e-7 in
float32, 1e-15 in float64, as a 1-ulp pow allows). tanh's and sigmoid's forwards call tanh or exp,
which glibc and NumPy's vectorised loops round differently: within ``TRANSCENDENTAL_ULPS`` of the
twin and of the reference instead of bitwise. ``pytest -s`` prints the table of the largest
differences per kernel and dtype.
"""

import functools

import numpy as np
import pytest

from minialex.kernels.cuda import dropout as cuda_dropout
from minialex.kernels.cuda import im2col as cuda_im2col
from minialex.kernels.cuda import lrn as cuda_lrn
from minialex.kernels.cuda import pool as cuda_pool
from minialex.kernels.cuda import sgd as cuda_sgd
from minialex.kernels.cuda import sigmoid as cuda_sigmoid
from minialex.kernels.cuda import tanh as cuda_tanh
from minialex.kernels.cuda.elementwise import TwinKernel, all_kernel_specs, out_size, param_names
from minialex.nn import masks
from minialex.nn import functional as F  # the reference: the readable pairs
from minialex.optim.functional import sgd_update

from .host_kernel import HostKernel

DTYPES = ["float32", "float64"]

# -- the cases: for each kernel, geometries -> (kernel arguments, the reference's outputs by name) ----------
# (N, C, H, W, KH, KW, SH, SW, PH, PW)
CONV_GEOMETRIES = {
    "odd-overlap-pad": (2, 3, 7, 5, 3, 3, 2, 2, 1, 1),
    "uncovered-border": (1, 2, 7, 8, 3, 3, 3, 3, 0, 0),  # row 6, columns 6-7 in no window
    "stride-gt-kernel": (2, 1, 8, 9, 2, 2, 3, 3, 0, 0),  # rows 2, 5 and columns 2, 5, 8 in none
    "one-window": (3, 2, 4, 5, 4, 5, 1, 1, 0, 0),
    "rect-pad-per-axis": (1, 3, 5, 6, 3, 2, 2, 3, 2, 1),
    "windows-in-padding": (2, 2, 3, 3, 3, 3, 1, 1, 2, 2),  # corner windows see only padding
    "1x1": (2, 3, 1, 1, 1, 1, 1, 1, 0, 0),
    "conv1-like": (1, 3, 23, 23, 11, 11, 4, 4, 0, 0),
}
# (N, C, H, W, KH, KW, SH, SW)
POOL_GEOMETRIES = {
    "overlap-odd": (2, 3, 7, 7, 3, 3, 2, 2),
    "uncovered-border": (1, 2, 7, 8, 3, 3, 3, 3),
    "stride-gt-kernel": (2, 1, 8, 9, 2, 2, 3, 3),
    "one-window": (1, 2, 5, 4, 5, 4, 1, 1),
    "rect": (2, 2, 6, 5, 2, 3, 1, 2),
    "pool1-like": (1, 4, 13, 13, 3, 3, 2, 2),
}
# (N, C, H, W, size, groups)
LRN_CASES = {
    "fewer-channels-than-window": (2, 3, 3, 4, 5, 1),
    "one-channel-groups": (2, 2, 2, 3, 5, 2),
    "alexnet-groups": (1, 12, 3, 3, 5, 2),
    "odd": (2, 7, 1, 5, 3, 1),
    "three-groups": (1, 6, 2, 2, 3, 3),
    "window-gt-group": (1, 4, 3, 3, 7, 2),
    "window-of-one": (2, 5, 3, 3, 1, 1),
}
LRN_CONSTANTS = dict(alpha=1e-2, beta=0.75, k=2.0)
# (shape, p, columns, first_row)
MASK_CASES = {
    "plain": ((7, 10), 0.3, None, 0),
    "columns-first-row": ((5, 6), 0.5, (6, 12), 4),
    "3d-first-row": ((4, 3, 5), 0.2, None, 2),
    "1d": ((3,), 0.9, None, 0),
    "wraps-2^32": ((3, 8), 0.5, None, (1 << 29) - 1),
    "odd-block": ((33, 17), 0.5, (17, 51), 1),
}
SGD_SHAPES = {"matrix": (4, 6), "one": (1,), "3d": (3, 2, 5), "odd-70": (70,)}
SGD_CONSTANTS = dict(lr=0.1, momentum=0.9, wd=0.05)
# elementwise activations (tanh, sigmoid): name -> (shape, scale of the standard normal input, extra
# values written at the start: saturating, signed zeros, far tails)
ACTIVATION_CASES = {
    "normal": ((5, 7), 1.0, ()),
    "saturating": ((3, 4, 5), 10.0, (-1000.0, -50.0, -0.0, 0.0, 50.0, 1000.0, -88.5, 89.0, -710.0, 710.0)),
    "tails": ((64,), 1.0, tuple(float(v) for v in range(-40, 41, 3))),
    "one": ((1,), 1.0, (-3.5,)),
    "odd-3d": ((3, 1, 17), 4.0, ()),
}


def _seed(key):
    """A stable seed from a case key (str hashes change between runs)."""
    return [sum(ord(ch) * (i + 1) for i, ch in enumerate(str(part))) for part in key]


def im2col_case(geometry, dtype):
    n, c, h, w, kh, kw, sh, sw, ph, pw = geometry
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    x = np.random.default_rng(_seed(("im2col", geometry))).standard_normal((n, c, h, w)).astype(dtype)
    out = np.full((c, kh, kw, n, oh, ow), np.nan, dtype=dtype)
    want = F.im2col(x, (kh, kw), (sh, sw), (ph, pw)).transpose(1, 2, 3, 0, 4, 5)
    return [x, n, c, h, w, kh, kw, oh, ow, sh, sw, ph, pw, out], {"out": want}


def col2im_case(geometry, dtype):
    n, c, h, w, kh, kw, sh, sw, ph, pw = geometry
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    cols = np.random.default_rng(_seed(("col2im", geometry))).standard_normal((c, kh, kw, n, oh, ow)).astype(dtype)
    dx = np.full((n, c, h, w), np.nan, dtype=dtype)
    want = F.col2im(cols.transpose(3, 0, 1, 2, 4, 5), (n, c, h, w), (kh, kw), (sh, sw), (ph, pw))
    return [cols, n, c, h, w, kh, kw, oh, ow, sh, sw, ph, pw, dx], {"dx": want}


def pool_input(geometry, dtype):
    """Small integers: most windows have ties, so the tie rule (first maximum wins) matters."""
    n, c, h, w = geometry[:4]
    return np.random.default_rng(_seed(("pool", geometry))).integers(-2, 3, (n, c, h, w)).astype(dtype)


def maxpool_fwd_case(geometry, dtype):
    n, c, h, w, kh, kw, sh, sw = geometry
    oh, ow = out_size(h, kh, sh, 0), out_size(w, kw, sw, 0)
    x = pool_input(geometry, dtype)
    y, argmax = np.full((n, c, oh, ow), np.nan, dtype=dtype), np.full((n, c, oh, ow), 255, dtype=np.uint8)
    want_y, cache = F.max_pool2d_forward(x, (kh, kw), (sh, sw))
    return [x, h, w, kh, kw, oh, ow, sh, sw, y, argmax], {"y": want_y, "argmax": cache.argmax}


def maxpool_bwd_case(geometry, dtype):
    n, c, h, w, kh, kw, sh, sw = geometry
    oh, ow = out_size(h, kh, sh, 0), out_size(w, kw, sw, 0)
    _, cache = F.max_pool2d_forward(pool_input(geometry, dtype), (kh, kw), (sh, sw))
    dout = np.random.default_rng(_seed(("pool-dout", geometry))).standard_normal((n, c, oh, ow)).astype(dtype)
    dx = np.full((n, c, h, w), np.nan, dtype=dtype)
    want = F.max_pool2d_backward(dout, cache)
    return [dout, cache.argmax, h, w, kh, kw, oh, ow, sh, sw, dx], {"dx": want}


def lrn_input(case, dtype):
    n, c, h, w = case[:4]
    rng = np.random.default_rng(_seed(("lrn", case)))
    return (3 * rng.standard_normal((n, c, h, w))).astype(dtype), rng.standard_normal((n, c, h, w)).astype(dtype)


def lrn_fwd_case(case, dtype):
    n, c, h, w, size, groups = case
    x, _ = lrn_input(case, dtype)
    t = np.dtype(dtype).type
    alpha, beta, k = (LRN_CONSTANTS[key] for key in ("alpha", "beta", "k"))
    y, scale, scale_pow = (np.full(x.shape, np.nan, dtype=dtype) for _ in range(3))
    want_y, cache = F.lrn_forward(x, size, alpha, beta, k, groups)
    return ([x, c, h * w, c // groups, size // 2, t(alpha), t(beta), t(k), y, scale, scale_pow],
            {"y": want_y, "scale": cache.scale, "scale_pow": cache.scale_pow})


def lrn_bwd_case(case, dtype):
    n, c, h, w, size, groups = case
    x, dout = lrn_input(case, dtype)
    alpha, beta, k = (LRN_CONSTANTS[key] for key in ("alpha", "beta", "k"))
    _, cache = F.lrn_forward(x, size, alpha, beta, k, groups)
    dx = np.full(x.shape, np.nan, dtype=dtype)
    coef = np.dtype(dtype).type(-2.0 * alpha * beta)
    want = F.lrn_backward(dout, cache)
    return [dout, x, cache.scale, cache.scale_pow, c, h * w, c // groups, size // 2, coef, dx], {"dx": want}


def mask_case(case, dtype):
    shape, p, columns, first_row = case
    k1, k2 = masks.mask_keys(11, 7)
    width = shape[-1]
    start, full_width = columns if columns is not None else (0, width)
    start = (first_row * full_width + start) % (1 << 32)  # as masks.dropout_mask folds the row offset
    thresh, scale = masks.keep_threshold(p), 1.0 / (1.0 - p)
    mask = np.full(shape, np.nan, dtype=dtype)
    want = masks.hash_mask(k1, k2, thresh, shape, start, full_width, scale, np, dtype)
    return [k1, k2, thresh, width, start, full_width, mask.dtype.type(scale), mask], {"mask": want}


def sgd_case(shape, dtype):
    rng = np.random.default_rng(_seed(("sgd", shape)))
    w, g = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    v = (0.1 * rng.standard_normal(shape)).astype(dtype)  # an earlier step's velocity
    lr, momentum, wd = SGD_CONSTANTS["lr"], SGD_CONSTANTS["momentum"], SGD_CONSTANTS["wd"]
    want_w, want_v = w.copy(), v.copy()
    sgd_update([want_w], [g], [want_v], lr, momentum, [wd])
    t = np.dtype(dtype).type
    return [g, t(lr), t(momentum), t(wd * lr), w, v], {"w": want_w, "v": want_v}


def activation_input(case, dtype):
    shape, scale, extra = case
    rng = np.random.default_rng(_seed(("activation", shape, scale)))
    x = scale * rng.standard_normal(shape)
    x.reshape(-1)[:len(extra)] = extra
    return x.astype(dtype), rng.standard_normal(shape).astype(dtype)


def tanh_fwd_case(case, dtype):
    x, _ = activation_input(case, dtype)
    return [x, np.full(x.shape, np.nan, dtype=dtype)], {"y": F.tanh_forward(x)[0]}


def tanh_bwd_case(case, dtype):
    x, dout = activation_input(case, dtype)
    _, cache = F.tanh_forward(x)
    return [dout, cache.y, np.full(x.shape, np.nan, dtype=dtype)], {"dx": F.tanh_backward(dout, cache)}


def sigmoid_fwd_case(case, dtype):
    x, _ = activation_input(case, dtype)
    return [x, np.full(x.shape, np.nan, dtype=dtype)], {"y": F.sigmoid_forward(x)[0]}


def sigmoid_bwd_case(case, dtype):
    x, dout = activation_input(case, dtype)
    _, cache = F.sigmoid_forward(x)
    return [dout, cache.y, np.full(x.shape, np.nan, dtype=dtype)], {"dx": F.sigmoid_backward(dout, cache)}


# kernel name -> (spec, {case id: build(dtype) -> (arguments, reference outputs)})
KERNELS = {
    spec[3]: (spec, {cid: functools.partial(build, params) for cid, params in cases.items()})
    for spec, build, cases in [
        (cuda_im2col.IM2COL_ROWS, im2col_case, CONV_GEOMETRIES),
        (cuda_im2col.COL2IM_ROWS, col2im_case, CONV_GEOMETRIES),
        (cuda_pool.MAXPOOL_FWD, maxpool_fwd_case, POOL_GEOMETRIES),
        (cuda_pool.MAXPOOL_BWD, maxpool_bwd_case, POOL_GEOMETRIES),
        (cuda_lrn.LRN_FWD, lrn_fwd_case, LRN_CASES),
        (cuda_lrn.LRN_BWD, lrn_bwd_case, LRN_CASES),
        (cuda_dropout.DROPOUT_MASK, mask_case, MASK_CASES),
        (cuda_sgd.SGD, sgd_case, SGD_SHAPES),
        (cuda_tanh.TANH_FWD, tanh_fwd_case, ACTIVATION_CASES),
        (cuda_tanh.TANH_BWD, tanh_bwd_case, ACTIVATION_CASES),
        (cuda_sigmoid.SIGMOID_FWD, sigmoid_fwd_case, ACTIVATION_CASES),
        (cuda_sigmoid.SIGMOID_BWD, sigmoid_bwd_case, ACTIVATION_CASES),
    ]
}
CASES = [(name, cid) for name, (_, cases) in KERNELS.items() for cid in cases]

# against the reference: float32 sums and products in another order (LRN backward)
REF_TOL = {"float32": dict(rtol=2e-6, atol=1e-6), "float64": dict(rtol=1e-13, atol=1e-15)}
# LRN forward's y and scale_pow: a pow within 1 ulp of NumPy's power
POW_RTOL = {"float32": 4e-7, "float64": 1e-15}
# forwards that call tanh or exp: glibc (the host) and NumPy's vectorised loops (the twin, and the
# reference) may round the last bit differently; measured at most 2 ulps apart on these cases
TRANSCENDENTAL_ULPS = {("minialex_tanh_fwd", "y"): 2, ("minialex_sigmoid_fwd", "y"): 2}


def launch(kernel_class, spec, args):
    """{output name: array} after kernel_class(spec)(*args), on copies of the array arguments."""
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    kernel_class(spec)(*args)
    inputs, outputs = param_names(spec[0]), param_names(spec[1])
    return dict(zip(outputs, args[len(inputs):]))


@functools.lru_cache(maxsize=None)
def outcome(name, case_id, dtype):
    """(host, twin, reference) outputs of one case, each {output name: array}."""
    spec, cases = KERNELS[name]
    args, reference = cases[case_id](dtype)
    return launch(HostKernel, spec, args), launch(TwinKernel, spec, args), reference


def ulps(a, b):
    """Distance in units in the last place between same-dtype float arrays (elementwise)."""
    ints = np.int32 if a.dtype == np.float32 else np.int64
    lowest = np.iinfo(ints).min

    def ordered(x):  # the float's bits as an integer that grows with the float
        bits = np.ascontiguousarray(x).view(ints).astype(np.int64)
        return np.where(bits < 0, lowest - bits, bits)

    return np.abs(ordered(a) - ordered(b))


def test_every_kernel_has_cases():
    """A kernel added to minialex/kernels/cuda without cases here fails this test."""
    specs = {spec[3]: spec for spec in all_kernel_specs().values()}
    assert set(KERNELS) == set(specs)
    for name, (spec, cases) in KERNELS.items():
        assert spec == specs[name] and len(cases) >= 4


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, case_id", CASES, ids=[f"{n.replace('minialex_', '')}-{c}" for n, c in CASES])
def test_host_kernel_equals_the_twin_and_the_reference(name, case_id, dtype):
    host, twin, reference = outcome(name, case_id, dtype)
    for out, got in host.items():
        assert got.dtype == twin[out].dtype and got.shape == twin[out].shape
        assert not (got.dtype.kind == "f" and np.isnan(got).any()), f"{out}: an element was never written"
        if name == "minialex_lrn_fwd" and out in ("y", "scale_pow"):
            assert ulps(got, twin[out]).max() <= (1 if out == "scale_pow" else 2), out
            np.testing.assert_allclose(got, reference[out], rtol=POW_RTOL[dtype], atol=0)
        elif (name, out) in TRANSCENDENTAL_ULPS:
            bound = TRANSCENDENTAL_ULPS[name, out]
            assert ulps(got, twin[out]).max() <= bound and ulps(got, reference[out]).max() <= bound, out
        else:
            assert got.tobytes() == twin[out].tobytes(), f"{out}: not bitwise equal to the twin"
            np.testing.assert_allclose(got, reference[out], **REF_TOL[dtype])
    if name == "minialex_lrn_fwd":  # y is x * scale_pow of the kernel's own scale_pow, exactly
        x = KERNELS[name][1][case_id](dtype)[0][0]
        assert host["y"].tobytes() == (x * host["scale_pow"]).tobytes()


def max_abs_difference(a_outs, b_outs):
    return max(float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))
               for a, b in ((a_outs[k], b_outs[k]) for k in a_outs))


def test_table_of_differences():
    """The table of the closing note: per kernel and dtype, over every case and output, the
    largest |host - reference| and |host - twin| (run with -s to see it)."""
    rows = []
    for name, (_, cases) in KERNELS.items():
        for dtype in DTYPES:
            results = [outcome(name, cid, dtype) for cid in cases]
            vs_ref = max(max_abs_difference(host, ref) for host, _, ref in results)
            vs_twin = max(max_abs_difference(host, twin) for host, twin, _ in results)
            ulp = {k: max(int(ulps(host[k], twin[k]).max()) if host[k].dtype.kind == "f" else 0
                          for host, twin, _ in results) for k in results[0][0]}
            ulp = ", ".join(f"{k} {u}" for k, u in ulp.items() if u) or "0"
            rows.append((name, dtype, len(cases), vs_ref, vs_twin, ulp))
            assert vs_twin == 0.0 or name == "minialex_lrn_fwd" or any(n == name for n, _ in TRANSCENDENTAL_ULPS)
    header = ("kernel", "dtype", "cases", "max |host - reference|", "max |host - twin|", "max ulps from twin (output)")
    table = [header] + [tuple(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row) for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print("\nCUDA kernels' own source on the host (HostKernel), per kernel and dtype:")
    for row in table:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)))
