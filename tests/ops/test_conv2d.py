"""conv2d: every implementation of the pair (minialex.nn.conv.CONV2D) and the Conv2d layer.

The pair ``conv2d_forward(x, w, b, stride, padding, groups) -> (y, cache)``,
``conv2d_backward(dout, cache, dw=None, db=None, need_dx=True) -> (dx, dw, db)`` is checked in
each implementation (tests/ops/conftest.py: the reference of minialex/nn/functional/conv.py, the
CPU kernel of minialex/kernels/cpu/conv.py, the CUDA implementation of minialex/kernels/cuda/conv.py
on its kernels' NumPy twins, and on a GPU under the ``gpu`` marker), in float32 and float64:

* against the naive loops of minialex/nn/naive.py (y, dx, dw, db) on cases where each term
  matters: stride 4 with padding, groups, rectangular kernels and strides, a stride larger than
  the kernel (pixels no window covers get exactly zero gradient), 1x1, one window, padding as
  large as the kernel allows; and against the reference;
* against centred finite differences (float64);
* need_dx=False, and dw/db given (added into) or not (fresh arrays);
* the CPU kernel on 1-3 threads with small and default chunks, two steps in a row;
* the rows-layout im2col/col2im of the CUDA implementation (minialex/kernels/cuda/im2col.py),
  twins and kernels, against the reference's im2col/col2im (minialex/nn/functional/im2col.py);
  the CUDA functions refuse NumPy arrays outside ``twins()``;
* the Conv2d layer (minialex/nn/conv.py): input errors, groups, dtypes, gradient accumulation.

The mathematics (im2col, col2im as its adjoint, the three gradients) is derived in
docs/layers/conv2d.md.
"""

import functools
from collections import namedtuple

import numpy as np
import pytest

from minialex import backend
from minialex.gradcheck import check_layer, numerical_gradient, rel_error
from minialex.kernels.cpu import runtime
from minialex.kernels.cuda import im2col as cuda_im2col
from minialex.kernels.cuda.elementwise import twins
from minialex.nn import Conv2d, reference
from minialex.nn.conv import CONV2D
from minialex.nn.functional.im2col import col2im, im2col
from minialex.nn.naive import conv2d_backward_naive, conv2d_forward_naive

from .conftest import TOL, Implementation, implementations

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["float32", "float64"]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class Case(namedtuple("Case", "n c f kernel stride padding groups h w")):
    """A convolution: batch n, c input channels, f filters, kernel/stride/padding (pairs), groups, H x W."""

    @classmethod
    def of(cls, n, c, f, k, s, p, g, h, w):
        return cls(n, c, f, _pair(k), _pair(s), _pair(p), g, h, w)

    @property
    def x_shape(self):
        return (self.n, self.c, self.h, self.w)

    @property
    def w_shape(self):
        return (self.f, self.c // self.groups) + self.kernel

    @property
    def hyper(self):
        return self.stride, self.padding, self.groups

    def out_shape(self):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        return (self.n, self.f, (self.h + 2 * ph - kh) // sh + 1, (self.w + 2 * pw - kw) // sw + 1)


# Each case makes one term matter (the first five: the layer's own geometries; the next six: the
# geometries of the CUDA twins' rows layout, ROWS_CASES below, with 4 filters).
CASES = {
    "conv1": Case.of(2, 3, 4, 11, 4, 2, 1, 23, 23),  # conv1-like: stride 4 with padding, overlap
    "groups2": Case.of(2, 4, 6, 3, 1, 1, 2, 6, 5),  # groups=2 and padding, non-square input
    "stride4-uncovered": Case.of(2, 2, 2, 3, 4, 0, 1, 10, 10),  # rows/cols 7..9 in no window: zero gradient
    "overlap-groups": Case.of(2, 4, 4, 5, 2, 2, 2, 9, 7),  # overlap (stride < kernel), groups, padding
    "1x1": Case.of(2, 3, 2, 1, 1, 0, 1, 4, 4),  # 1x1 kernel
    "odd-overlap": Case.of(2, 3, 4, 3, 2, 1, 1, 10, 9),  # overlap, odd sizes
    "rectangular": Case.of(1, 2, 4, (3, 2), (2, 3), (0, 1), 2, 8, 9),  # right/bottom borders uncovered
    "stride-gt-kernel": Case.of(1, 2, 4, 2, 3, 0, 2, 9, 9),  # gaps between the windows
    "max-padding": Case.of(2, 4, 4, 3, 1, 2, 2, 5, 6),  # padding as large as the kernel allows
    "one-window": Case.of(1, 1, 4, 11, 4, 0, 1, 11, 11),  # a single window
    "rect-per-axis": Case.of(2, 2, 6, (5, 3), (2, 3), (3, 0), 2, 11, 8),  # padding/stride differ per axis
    "depthwise": Case.of(2, 4, 4, 3, 2, 0, 4, 7, 8),  # groups = channels, stride 2
}

Naive = namedtuple("Naive", "x w b dout y dx dw db")


def _read_only(*arrays):
    for a in arrays:
        a.setflags(write=False)  # an implementation that writes into its inputs fails loudly
    return arrays


@functools.lru_cache(maxsize=None)
def problem(name):
    """Inputs for CASES[name] whose values float32 holds exactly, and the naive loops' results on them
    in float64: the truth for both dtypes (the loops run once per case)."""
    case = CASES[name]
    rng = np.random.default_rng(list(CASES).index(name))

    def draw(shape):
        return rng.standard_normal(shape).astype(np.float32).astype(np.float64)

    x, w, b, dout = draw(case.x_shape), draw(case.w_shape), draw(case.f), draw(case.out_shape())
    y = conv2d_forward_naive(x, w, b, *case.hyper)
    dx, dw, db = conv2d_backward_naive(x, w, dout, *case.hyper)
    return Naive(*_read_only(x, w, b, dout, y, dx, dw, db))


def covered(case):
    """True where an input pixel lies in at least one window (col2im of all-ones columns)."""
    ones = np.ones(im2col(np.zeros(case.x_shape), case.kernel, case.stride, case.padding).shape)
    return col2im(ones, case.x_shape, case.kernel, case.stride, case.padding) > 0


def cast(dtype, *arrays):
    return [np.array(a, dtype=dtype) for a in arrays]  # writable copies


# ---------------------------------------------------------------------------------------
# Every implementation against the naive loops and the reference
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("impl", implementations(CONV2D), indirect=True)
def test_forward_and_backward_equal_naive_loops(impl, name, dtype):
    """y, dx, dw, db of each implementation against the naive loops (float32: against the float64
    loops, to the float32 tolerance) and against the reference in the same dtype; pixels that no
    window covers get exactly zero gradient."""
    case, want, tol = CASES[name], problem(name), TOL[np.dtype(dtype)]
    x, w, b, dout = cast(dtype, want.x, want.w, want.b, want.dout)
    y, cache = impl.forward(x, w, b, *case.hyper)
    dx, dw, db = impl.backward(dout, cache)
    got = dict(y=y, dx=dx, dw=dw, db=db)
    for key, value in got.items():
        assert value.dtype == dtype and value.shape == getattr(want, key).shape, key
        np.testing.assert_allclose(value, getattr(want, key), **tol, err_msg=key)

    if impl.name != "reference":  # the old kernel-vs-reference comparisons, same tolerance
        ref = Implementation(CONV2D, "reference")
        y_r, cache_r = ref.forward(x, w, b, *case.hyper)
        dx_r, dw_r, db_r = ref.backward(dout, cache_r)
        for key, value in dict(y=y_r, dx=dx_r, dw=dw_r, db=db_r).items():
            np.testing.assert_allclose(got[key], value, **tol, err_msg=key)

    inside = covered(case)
    assert not want.dx[~inside].any()
    assert not dx[~inside].any(), "a pixel in no window got a gradient"


def test_the_cases_leave_pixels_uncovered_where_they_say():
    """The zero-gradient check above bites: these cases do have pixels in no window."""
    assert not covered(CASES["stride4-uncovered"])[:, :, 7:, :].any()
    assert not covered(CASES["stride4-uncovered"])[:, :, :, 7:].any()
    assert covered(CASES["stride4-uncovered"])[:, :, :7, :7].any()
    for name in ("rectangular", "stride-gt-kernel", "rect-per-axis", "depthwise"):
        assert not covered(CASES[name]).all(), name
    for name in ("conv1", "max-padding", "1x1", "groups2"):
        assert covered(CASES[name]).all(), name


# ---------------------------------------------------------------------------------------
# Finite differences, float64
# ---------------------------------------------------------------------------------------
# The layer's cases, with conv1 at a smaller size (its full size, 4630 inputs, takes 17 s on the
# CUDA twins; it is checked at full size on the reference by test_layer_gradients_match_finite_differences).
FD_CASES = {
    "conv1-small": Case.of(1, 2, 2, 11, 4, 2, 1, 15, 15),
    "groups2": CASES["groups2"],
    "stride4-uncovered": CASES["stride4-uncovered"],
    "overlap-groups": CASES["overlap-groups"],
    "1x1": CASES["1x1"],
    "rectangular": CASES["rectangular"],
}


@pytest.mark.parametrize("name", list(FD_CASES))
@pytest.mark.parametrize("impl", implementations(CONV2D), indirect=True)
def test_gradients_match_finite_differences(impl, name):
    """dx, dw, db of each implementation against centred differences of sum(G * y)."""
    case = FD_CASES[name]
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal(case.x_shape), rng.standard_normal(case.w_shape), rng.standard_normal(case.f)
    upstream = rng.standard_normal(case.out_shape())
    y, cache = impl.forward(x, w, b, *case.hyper)
    dx, dw, db = impl.backward(upstream, cache)

    def loss():
        return (impl.forward(x, w, b, *case.hyper)[0] * upstream).sum()

    errors = {key: rel_error(analytic, numerical_gradient(loss, a))
              for key, analytic, a in (("x", dx, x), ("weight", dw, w), ("bias", db, b))}
    assert max(errors.values()) < 1e-6, errors


# ---------------------------------------------------------------------------------------
# need_dx, and gradients added into the arrays given
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("impl", implementations(CONV2D), indirect=True)
def test_without_input_gradient(impl, name, dtype):
    """need_dx=False: dx is None, dw and db are those of need_dx=True (and the naive loops')."""
    case, want, tol = CASES[name], problem(name), TOL[np.dtype(dtype)]
    x, w, b, dout = cast(dtype, want.x, want.w, want.b, want.dout)
    _, cache = impl.forward(x, w, b, *case.hyper)
    _, dw_full, db_full = impl.backward(dout, cache)
    dx, dw, db = impl.backward(dout, cache, need_dx=False)
    assert dx is None
    assert dw.dtype == db.dtype == dtype
    np.testing.assert_allclose(dw, dw_full, **tol)
    np.testing.assert_allclose(db, db_full, **tol)
    np.testing.assert_allclose(dw, want.dw, **tol)
    np.testing.assert_allclose(db, want.db, **tol)


@pytest.mark.parametrize("need_dx", [True, False], ids=["need_dx", "no_dx"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("impl", implementations(CONV2D), indirect=True)
def test_given_gradients_are_added_into(impl, dtype, need_dx):
    """dw/db given: the gradients are ADDED into them and those very arrays come back (twice from
    zero = double, from a hand-written start = start + 2 g); None: fresh arrays each call."""
    case, want = CASES["groups2"], problem("groups2")
    tol = TOL[np.dtype(dtype)]
    x, w, b, dout = cast(dtype, want.x, want.w, want.b, want.dout)
    xp = impl.xp
    with impl.context():  # the pair called directly, so that the arrays passed in are the ones we hold
        X, W, B, D = (impl.to(a) for a in (x, w, b, dout))
        _, cache = impl.pair.forward(X, W, B, *case.hyper)
        _, g_w, g_b = impl.pair.backward(D, cache, need_dx=need_dx)
        _, again_w, again_b = impl.pair.backward(D, cache, need_dx=need_dx)
        assert again_w is not g_w and again_b is not g_b and again_w is not W
        once_w, once_b = impl.get(g_w).copy(), impl.get(g_b).copy()
        np.testing.assert_array_equal(impl.get(again_w), once_w)  # fresh: nothing accumulated
        np.testing.assert_array_equal(impl.get(again_b), once_b)
        np.testing.assert_allclose(once_w, want.dw, **tol)

        for start in (0.0, 0.5):
            acc_w, acc_b = xp.full(w.shape, start, dtype=dtype), xp.full(b.shape, -start, dtype=dtype)
            for step in (1, 2):
                dx, out_w, out_b = impl.pair.backward(D, cache, dw=acc_w, db=acc_b, need_dx=need_dx)
                assert out_w is acc_w and out_b is acc_b
                assert (dx is None) == (not need_dx)
                np.testing.assert_allclose(impl.get(acc_w), start + step * once_w, **tol)
                np.testing.assert_allclose(impl.get(acc_b), -start + step * once_b, **tol)
    np.testing.assert_array_equal(impl.get(W), w)  # the weight itself untouched


# ---------------------------------------------------------------------------------------
# The CPU kernel on 1-3 threads, in small and default chunks
# ---------------------------------------------------------------------------------------
# (in, out, kernel, stride, padding, groups, H, W): the CPU kernel's chunking and stride-phase cases
CPU_CASES = [
    (3, 8, 11, 4, 2, 1, 31, 31),  # conv1-like: stride 4, padding
    (4, 6, 5, 1, 2, 2, 9, 7),  # conv2-like: groups, padding, non-square
    (4, 4, 3, 1, 1, 2, 6, 6),  # conv4-like
    (2, 2, 3, 4, 0, 1, 10, 10),  # stride 4 leaves rows/cols 7..9 uncovered
    (3, 2, 1, 1, 0, 1, 4, 5),  # 1x1 kernel
    (4, 4, 3, 2, 0, 4, 7, 8),  # depthwise-like groups = channels, stride 2
    # stride phases (kernels/cpu/conv.py keeps the padded input split by stride): padding not a multiple of
    # the stride, padded size not a multiple of it, different strides/paddings per axis
    (3, 4, 7, 3, 1, 1, 12, 17),
    (2, 6, (5, 3), (2, 3), (3, 0), 2, 11, 8),
    (3, 5, 11, 4, 2, 1, 27, 26),  # conv1 at a small odd size
]


def _two_steps(impl, x, w, b, dy, hyper, owner):
    """Two forward/backward steps in one workspace (the CPU kernel reuses its buffers), dw/db added
    into the same arrays: [y, dx, y2, dx2, dw, db]."""
    dw, db = np.zeros_like(w), np.zeros_like(b)
    out = []
    with runtime.workspace(owner):
        for _ in range(2):
            y, cache = impl.forward(x, w, b, *hyper)
            dx, dw_out, db_out = impl.backward(dy, cache, dw=dw, db=db)
            assert dw_out is dw and db_out is db
            out += [y, dx]
    return out + [dw, db]


@pytest.mark.parametrize("case", CPU_CASES, ids=lambda c: "-".join(map(str, c)).replace(" ", ""))
def test_cpu_kernel_on_threads_and_chunks_equals_reference(case, threads, chunking):
    """Batches of 1 and 5 (cut into chunks, the last partial, spread over the threads), float32 and
    float64, two steps (reused buffers, accumulated dw/db): the CPU kernel against the reference."""
    cin, cout, k, s, p, g, h, w = case
    hyper = (_pair(s), _pair(p), g)
    cpu, ref = Implementation(CONV2D, "cpu"), Implementation(CONV2D, "reference")
    for dtype in DTYPES:
        for batch in (1, 5):
            rng = np.random.default_rng(0)
            wt = rng.normal(0.0, 1.0, size=(cout, cin // g) + _pair(k)).astype(dtype)
            bias = rng.standard_normal(cout).astype(dtype)
            x = rng.standard_normal((batch, cin, h, w)).astype(dtype)
            dy = rng.standard_normal(Case.of(batch, cin, cout, k, s, p, g, h, w).out_shape()).astype(dtype)
            want = _two_steps(ref, x, wt, bias, dy, hyper, None)
            got = _two_steps(cpu, x, wt, bias, dy, hyper, cpu)
            for r, v in zip(want, got):
                assert v.dtype == r.dtype == np.dtype(dtype)
                np.testing.assert_allclose(v, r, **TOL[np.dtype(dtype)])


# ---------------------------------------------------------------------------------------
# The CUDA implementation's im2col/col2im (rows layout): twins, refusals, kernels
# ---------------------------------------------------------------------------------------
# (input shape, kernel, stride, padding): the geometries of the rows-layout im2col/col2im
ROWS_CASES = [
    ((2, 3, 23, 23), (11, 11), (4, 4), (2, 2)),  # conv1-like: stride 4 with padding, overlap
    ((2, 3, 10, 9), (3, 3), (2, 2), (1, 1)),      # overlap, odd sizes
    ((1, 2, 8, 9), (3, 2), (2, 3), (0, 1)),       # rectangular; right/bottom borders left uncovered
    ((1, 2, 9, 9), (2, 2), (3, 3), (0, 0)),       # stride > kernel: gaps between windows
    ((2, 4, 5, 6), (3, 3), (1, 1), (2, 2)),       # padding as large as the kernel allows
    ((1, 3, 4, 4), (1, 1), (1, 1), (0, 0)),       # 1x1
    ((1, 1, 11, 11), (11, 11), (4, 4), (0, 0)),   # one window
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,k,s,p", ROWS_CASES)
def test_rows_layout_twins(rng, dtype, shape, k, s, p):
    """The twins against the reference's im2col/col2im: im2col_rows is im2col with the batch moved
    inside the rows, bit for bit; col2im_rows is its adjoint and adds in the reference's order."""
    x = rng.standard_normal(shape).astype(dtype)
    rows = cuda_im2col.im2col_rows_twin(x, k, s, p)
    np.testing.assert_array_equal(rows, im2col(x, k, s, p).transpose(1, 2, 3, 0, 4, 5))
    c = rng.standard_normal(rows.shape).astype(dtype)
    back = cuda_im2col.col2im_rows_twin(c, shape, k, s, p)
    assert back.dtype == dtype and back.shape == shape
    np.testing.assert_allclose(np.vdot(rows, c), np.vdot(x, back), rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(back, col2im(np.ascontiguousarray(c.transpose(3, 0, 1, 2, 4, 5)), shape, k, s, p))
    with twins():  # the launch wrappers, inside twins(), run exactly these twins
        np.testing.assert_array_equal(cuda_im2col.im2col_rows(x, k, s, p), rows)
        np.testing.assert_array_equal(cuda_im2col.col2im_rows(c, shape, k, s, p), back)


def test_cuda_functions_refuse_numpy_outside_twins(rng):
    """The CUDA functions take CuPy arrays: a NumPy array outside twins() is a TypeError that names
    twins(), never a silent run of the twin; inside twins() they run the twins."""
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    rows_twin = cuda_im2col.im2col_rows_twin(x, (3, 3), (1, 1), (1, 1))
    cuda = CONV2D.pair("cuda")
    assert cuda.by == "kernels.cuda.conv"
    with pytest.raises(TypeError, match=r"twins\(\)"):
        cuda_im2col.im2col_rows(x, (3, 3), (1, 1), (1, 1))
    with pytest.raises(TypeError, match=r"twins\(\)"):
        cuda_im2col.col2im_rows(rows_twin, x.shape, (3, 3), (1, 1), (1, 1))
    with pytest.raises(TypeError, match=r"twins\(\)"):
        cuda.forward(x, w, b, (1, 1), (1, 1), 2)
    with twins():
        np.testing.assert_array_equal(cuda_im2col.im2col_rows(x, (3, 3), (1, 1), (1, 1)), rows_twin)
        with pytest.raises(TypeError, match="float32 or float64"):
            cuda_im2col.im2col_rows(x.astype(np.int32), (3, 3), (1, 1), (1, 1))
        y, cache = cuda.forward(x, w, b, (1, 1), (1, 1), 2)
    with pytest.raises(TypeError, match=r"twins\(\)"):  # a cache made inside twins() changes nothing
        cuda.backward(np.ones_like(y), cache)
    with pytest.raises(TypeError, match=r"twins\(\)"):  # not even where backward launches no kernel
        cuda.backward(np.ones_like(y), cache, need_dx=False)


def _cupy():
    return backend.get_backend("cupy")


def _kernel_im2col(cp, x, k, s, p, out=None):
    """The kernel's columns (C, KH, KW, N, OH, OW), viewed in the reference's layout."""
    rows = cuda_im2col.im2col_rows(x, k, s, p)
    if out is not None:
        out[...] = rows.transpose(3, 0, 1, 2, 4, 5)
        return out
    return rows.transpose(3, 0, 1, 2, 4, 5)


def _kernel_col2im(cp, cols, shape, k, s, p):
    return cuda_im2col.col2im_rows(cp.ascontiguousarray(cols.transpose(1, 2, 3, 0, 4, 5)), shape, k, s, p)


def _gpu_tol(dtype):
    # the GPU may fuse multiply-adds: close, not always bit-equal
    return dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,k,s,p", ROWS_CASES)
def test_im2col_kernel(rng, dtype, shape, k, s, p):
    cp = _cupy()
    x = rng.standard_normal(shape).astype(dtype)
    got = _kernel_im2col(cp, cp.asarray(x), k, s, p)
    assert got.dtype == dtype
    np.testing.assert_array_equal(cp.asnumpy(got), im2col(x, k, s, p))
    np.testing.assert_array_equal(cp.asnumpy(got), cp.asnumpy(im2col(cp.asarray(x), k, s, p)))
    buf = cp.full(got.shape, np.nan, dtype=dtype)  # the out= buffer is filled completely
    assert _kernel_im2col(cp, cp.asarray(x), k, s, p, out=buf) is buf
    np.testing.assert_array_equal(cp.asnumpy(buf), cp.asnumpy(got))


@pytest.mark.gpu
def test_im2col_kernel_noncontiguous_input(rng):
    cp = _cupy()
    x = rng.standard_normal((2, 6, 9, 9)).astype(np.float32)[:, ::2, :, ::-1]
    got = _kernel_im2col(cp, cp.asarray(x), (3, 3), (2, 2), (1, 1))
    np.testing.assert_array_equal(cp.asnumpy(got), im2col(x, (3, 3), (2, 2), (1, 1)))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,k,s,p", ROWS_CASES)
def test_col2im_kernel(rng, dtype, shape, k, s, p):
    cp = _cupy()
    cols = rng.standard_normal(im2col(np.zeros(shape, dtype), k, s, p).shape).astype(dtype)
    got = _kernel_col2im(cp, cp.asarray(cols), shape, k, s, p)
    assert got.shape == shape and got.dtype == dtype
    np.testing.assert_allclose(cp.asnumpy(got), col2im(cols, shape, k, s, p), **_gpu_tol(dtype))


@pytest.mark.gpu
def test_col2im_kernel_is_deterministic(rng):
    cp = _cupy()
    shape, k, s, p = (8, 16, 27, 27), (5, 5), (1, 1), (2, 2)
    cols = cp.asarray(rng.standard_normal(im2col(np.zeros(shape, np.float32), k, s, p).shape), dtype=cp.float32)
    first = cp.asnumpy(_kernel_col2im(cp, cols, shape, k, s, p))
    for _ in range(3):
        np.testing.assert_array_equal(cp.asnumpy(_kernel_col2im(cp, cols, shape, k, s, p)), first)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,k,s,p", ROWS_CASES)
def test_rows_layout_kernels(rng, dtype, shape, k, s, p):
    cp = _cupy()
    x = rng.standard_normal(shape).astype(dtype)
    rows = cuda_im2col.im2col_rows(cp.asarray(x), k, s, p)
    np.testing.assert_array_equal(cp.asnumpy(rows), cuda_im2col.im2col_rows_twin(x, k, s, p))
    c = rng.standard_normal(rows.shape).astype(dtype)
    np.testing.assert_allclose(cp.asnumpy(cuda_im2col.col2im_rows(cp.asarray(c), shape, k, s, p)),
                               cuda_im2col.col2im_rows_twin(c, shape, k, s, p), **_gpu_tol(dtype))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("groups, input_grad", [(1, True), (2, True), (1, False)])
def test_conv_layer_kernel_path_equals_reference(rng, dtype, groups, input_grad):
    """Conv2d on CuPy: the default (the CUDA kernels) against reference() on CuPy."""
    cp = _cupy()
    layer = Conv2d(4, 6, 3, stride=2, padding=1, groups=groups, init_std=1.0, rng=rng, dtype=dtype,
                   input_grad=input_grad).to(cp)
    x = cp.asarray(rng.standard_normal((3, 4, 9, 8)).astype(dtype))
    dout = cp.asarray(rng.standard_normal(layer.output_shape(x.shape)).astype(dtype))
    results = []
    for ref in (True, False):
        layer.zero_grad()
        with reference(ref):
            y = layer.forward(x)
            assert layer.saved_implementation() == ("reference" if ref else "kernels.cuda.conv")
            dx = layer.backward(dout)
        results.append([y, dx, layer.weight.grad.copy(), layer.bias.grad.copy()])
    # one GEMM per group over the batch sums in another order than the reference
    tol = TOL[np.dtype(dtype)]
    for a, b in zip(*results):
        if a is None:
            assert b is None and not input_grad
            continue
        np.testing.assert_allclose(cp.asnumpy(b), cp.asnumpy(a), **tol)


# ---------------------------------------------------------------------------------------
# The Conv2d layer
# ---------------------------------------------------------------------------------------
# (in, out, kernel, stride, padding, groups, H, W): the layer's cases (CASES' first five, batch 2)
LAYER_CASES = [
    (3, 4, 11, 4, 2, 1, 23, 23),  # conv1-like: stride 4 with padding
    (4, 6, 3, 1, 1, 2, 6, 5),  # groups=2 and padding, non-square input
    (2, 2, 3, 4, 0, 1, 10, 10),  # stride 4 leaves rows/cols 7..9 uncovered: their gradient must be 0
    (4, 4, 5, 2, 2, 2, 9, 7),  # overlap (stride < kernel) plus groups plus padding
    (3, 2, 1, 1, 0, 1, 4, 4),  # 1x1 kernel
]
LAYER_NAMES = ["conv1", "groups2", "stride4-uncovered", "overlap-groups", "1x1"]


def make(case, rng, dtype=np.float64):
    cin, cout, k, s, p, g, h, w = case
    layer = Conv2d(cin, cout, k, stride=s, padding=p, groups=g, init_std=1.0, rng=rng, dtype=dtype)
    layer.bias.data[...] = rng.standard_normal(cout)
    x = rng.standard_normal((2, cin, h, w)).astype(dtype)
    return layer, x


@pytest.mark.parametrize("case", LAYER_CASES)
def test_layer_gradients_match_finite_differences(case, rng, xp):
    """check_layer (the reference, on NumPy and on CuPy), at the layer cases' full size."""
    layer, x = make(case, rng)
    layer.to(xp)
    errors = check_layer(layer, backend.to_backend(x, xp))
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_layer_forward_and_backward_equal_naive_loops(name, xp):
    """The layer as it runs by default (the CPU kernel; the CUDA one on CuPy) passes its stride,
    padding, groups and gradients through: the naive loops' results."""
    case, want = CASES[name], problem(name)
    cin, cout, k, s, p, g, _, _ = LAYER_CASES[LAYER_NAMES.index(name)]
    layer = Conv2d(cin, cout, k, stride=s, padding=p, groups=g, dtype=np.float64)
    layer.weight.data[...], layer.bias.data[...] = want.w, want.b
    layer.to(xp)
    y = layer.forward(backend.to_backend(want.x, xp))
    np.testing.assert_allclose(backend.to_numpy(y), want.y, rtol=1e-10, atol=1e-10)
    dx = layer.backward(backend.to_backend(want.dout, xp))
    np.testing.assert_allclose(backend.to_numpy(dx), want.dx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(backend.to_numpy(layer.weight.grad), want.dw, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(backend.to_numpy(layer.bias.grad), want.db, rtol=1e-10, atol=1e-10)
    assert case.hyper == ((s, s), (p, p), g)


def test_layer_runs_the_implementation_the_switch_picks(rng):
    """On NumPy the layer runs the CPU kernel; inside reference() the reference."""
    layer = Conv2d(3, 4, 3, padding=1, rng=rng)
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    layer.forward(x)
    assert layer.saved_implementation() == CONV2D.pair("cpu").by == "kernels.cpu.conv"
    layer.backward(np.ones(layer.output_shape(x.shape), np.float32))
    assert layer.saved_implementation() is None
    with reference():
        layer.forward(x)
        assert layer.saved_implementation() == "reference"


def test_uncovered_border_gets_zero_gradient(rng):
    layer, x = make(LAYER_CASES[2], rng)
    layer.forward(x)
    dx = layer.backward(np.ones(layer.output_shape(x.shape)))
    assert np.all(dx[:, :, 7:, :] == 0) and np.all(dx[:, :, :, 7:] == 0)
    assert np.any(dx[:, :, :7, :7] != 0)


def test_groups_do_not_mix(rng):
    # With groups=2, filters of group 0 must not depend on channels of group 1.
    layer, x = make(LAYER_CASES[1], rng)
    y = layer.forward(x)
    x2 = x.copy()
    x2[:, 2:] += 1.0  # change only the second group's channels
    y2 = layer.forward(x2)
    np.testing.assert_array_equal(y[:, :3], y2[:, :3])
    assert not np.allclose(y[:, 3:], y2[:, 3:])


def test_float32_stays_float32(rng, xp):
    layer = Conv2d(3, 4, 3, padding=1, rng=rng).to(xp)
    x = backend.to_backend(rng.standard_normal((2, 3, 5, 5)).astype(np.float32), xp)
    y = layer.forward(x)
    assert y.dtype == np.float32 and layer.backward(y).dtype == np.float32
    assert layer.weight.grad.dtype == np.float32


@pytest.mark.parametrize("use_reference", [False, True], ids=["kernels", "reference"])
def test_grouped_layer_keeps_float32(use_reference):
    """No float64 upcast anywhere in a float32 forward and backward (the old fast-path check)."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 4, 11, 11)).astype(np.float32)
    layer = Conv2d(4, 6, 3, padding=1, groups=2, rng=rng)
    with reference(use_reference):
        y = layer.forward(x)
        assert y.dtype == np.float32
        assert layer.backward(np.ones_like(y)).dtype == np.float32
    assert layer.weight.grad.dtype == layer.bias.grad.dtype == np.float32


def test_gradients_accumulate_until_zero_grad(rng):
    layer, x = make(LAYER_CASES[1], rng)
    dout = rng.standard_normal(layer.output_shape(x.shape))
    layer.forward(x)
    layer.backward(dout)
    once = layer.weight.grad.copy()
    layer.forward(x)
    layer.backward(dout)
    np.testing.assert_allclose(layer.weight.grad, 2 * once)
    layer.zero_grad()
    assert not layer.weight.grad.any()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_layer_without_input_grad(dtype):
    """input_grad=False: backward returns None on the kernels and on the reference, and the same
    parameter gradients."""
    rng = np.random.default_rng(1)
    layer = Conv2d(3, 4, 5, stride=2, padding=1, rng=rng, init_std=1.0, dtype=dtype, input_grad=False)
    x = rng.standard_normal((3, 3, 12, 12)).astype(dtype)
    dy = rng.standard_normal(layer.output_shape(x.shape)).astype(dtype)
    results = []
    for use_reference in (True, False):
        layer.zero_grad()
        with reference(use_reference):
            layer.forward(x)
            assert layer.saved_implementation() == ("reference" if use_reference else "kernels.cpu.conv")
            results.append([layer.backward(dy), layer.weight.grad.copy(), layer.bias.grad.copy()])
    (dx_r, *grads_r), (dx_k, *grads_k) = results
    assert dx_r is None and dx_k is None
    for r, k in zip(grads_r, grads_k):
        assert k.dtype == r.dtype == np.dtype(dtype)
        np.testing.assert_allclose(k, r, **TOL[np.dtype(dtype)])


@pytest.mark.parametrize(
    "build, x_shape, dtype, words",
    [
        # every message names the layer, the problem, and what was given (the input's shape or dtype)
        (lambda: Conv2d(3, 4, 3), (2, 3, 5), np.float32, ["(N, C, H, W)", "(2, 3, 5)"]),  # wrong ndim
        (lambda: Conv2d(3, 4, 3), (2, 5, 8, 8), np.float32, ["3 input channels", "(2, 5, 8, 8)"]),
        (lambda: Conv2d(3, 4, 7, padding=1), (1, 3, 4, 4), np.float32,
         ["larger than the padded input", "(1, 3, 4, 4)"]),
        (lambda: Conv2d(3, 4, 3), (1, 3, 8, 8), np.int64, ["floating-point", "int64", "(1, 3, 8, 8)"]),
        # a float64 input with float32 weights: both dtypes, and how to fix it
        (lambda: Conv2d(3, 4, 3), (1, 3, 8, 8), np.float64, ["input dtype float64", "parameter dtype float32",
                                                             "astype"]),
    ],
)
def test_bad_input_is_named(build, x_shape, dtype, words):
    layer = build()
    with pytest.raises(ValueError) as err:
        layer.forward(np.zeros(x_shape, dtype=dtype))
    message = str(err.value)
    assert message.startswith("Conv2d"), message
    for word in words:
        assert word in message, (word, message)


def test_channels_not_divisible_by_groups():
    with pytest.raises(ValueError, match="divisible by groups=2"):
        Conv2d(3, 4, 3, groups=2)


def test_backward_without_forward_is_explained():
    with pytest.raises(RuntimeError, match="without a forward"):
        Conv2d(1, 1, 1).backward(np.zeros((1, 1, 1, 1), dtype=np.float32))
