"""Mutation controls: deliberately broken copies of real kernel specs, each of which must be caught,
by HostKernel itself (an out-of-bounds raw access, a result that depends on the thread order) or
by comparing its result with the reference, when the CUDA implementation runs the kernel's own
source on the host (``launched_on_host(HostKernel)``, the ``cuda-source`` implementation of
tests/ops/). Each control also runs the twin path (``twins()``, the ``cuda-twin``
implementation), which runs the UNCHANGED twin of the kernel and so cannot see the bug in the
CUDA source: the reason these controls exist.

    (a) max-pool's tie rule flipped (``v > best`` -> ``v >= best``): the last maximum of a window
        wins instead of the first; inputs with ties give another argmax than the reference's;
    (b) an off-by-one bound in im2col (``w < W`` -> ``w <= W``): a read past the end of x;
    (c) a dropped guard in col2im (``&& ki <= hp`` removed): for ki > hp, oh = (hp - ki) / SH is
        negative, nothing skips it, and the column of another window is summed (ki = hp mod SH, so
        the division is exact here: C's truncation of -1/2 to 0 never comes into it);
    (d) an output that aliases an input: LRN forward made in place (y written over x, which other
        threads read as their neighbours), and the unchanged kernel launched with y = x.

Run with -s to see what each control caught.
"""

import numpy as np
import pytest

from minialex.kernels.cuda import im2col as cuda_im2col
from minialex.kernels.cuda import lrn as cuda_lrn
from minialex.kernels.cuda import pool as cuda_pool
from minialex.kernels.cuda.elementwise import TwinKernel, launched_on_host, twins
from minialex.nn import functional as F

from .host_kernel import HostKernel, OrderDependentError, OutOfBoundsError


def mutant(spec, body=(), in_params=(), out_params=()):
    """A copy of ``spec`` with each (old, new) replacement made in its body (and parameter
    lists); every ``old`` must occur exactly once, so a control cannot silently test nothing."""
    parts = dict(zip(("in_params", "out_params", "body", "name"), spec))
    for part, replacements in (("body", body), ("in_params", in_params), ("out_params", out_params)):
        for old, new in replacements:
            assert parts[part].count(old) == 1, f"{old!r} is not in {spec[3]}'s {part} exactly once"
            parts[part] = parts[part].replace(old, new)
    broken = (parts["in_params"], parts["out_params"], parts["body"], parts["name"])
    assert broken != spec
    return broken


def report(control, caught, twin):
    print(f"\ncontrol {control}\n    cuda-source: {caught}\n    cuda-twin:   {twin}")


def test_a_flipped_tie_rule(monkeypatch):
    """The forward's values are the same (tied maxima are equal); its argmax is not, so the
    gradient goes to another input than the reference sends it to."""
    broken = mutant(cuda_pool.MAXPOOL_FWD, body=[("if (v > best)", "if (v >= best)")])
    monkeypatch.setattr(cuda_pool, "MAXPOOL_FWD", broken)
    x = np.random.default_rng(1).integers(-2, 3, (2, 3, 7, 7)).astype(np.float32)  # ties in most windows
    dout = np.random.default_rng(2).standard_normal((2, 3, 3, 3)).astype(np.float32)
    want_y, cache = F.max_pool2d_forward(x, (3, 3), (2, 2))
    want_dx = F.max_pool2d_backward(dout, cache)

    def run():
        y, argmax = cuda_pool.maxpool_forward(x, (3, 3), (2, 2))
        return y, argmax, cuda_pool.maxpool_backward(dout, argmax, x.shape, (3, 3), (2, 2))

    with launched_on_host(HostKernel):
        y, argmax, dx = run()
    with twins():
        y_t, argmax_t, dx_t = run()
    np.testing.assert_array_equal(y, want_y)
    wrong = int((argmax != cache.argmax).sum())
    assert wrong > 0 and not np.array_equal(dx, want_dx)  # caught, against the reference
    assert np.array_equal(argmax_t, cache.argmax) and np.array_equal(dx_t, want_dx)  # the twin cannot see it
    report("(a) flipped tie rule, v >= best",
           f"argmax differs from the reference in {wrong} of {argmax.size} windows, and dx with it "
           f"(max |dx - reference| = {np.abs(dx - want_dx).max():.3g}); y equal",
           "argmax and dx equal to the reference: not caught")


def test_b_off_by_one_bound_in_im2col(monkeypatch):
    """With padding, the last window of a row reads column W: the next row's first pixel (a
    wrong value, in bounds), and past the end of x for the last row of the last image."""
    broken = mutant(cuda_im2col.IM2COL_ROWS, body=[("w >= 0 && w < W", "w >= 0 && w <= W")])
    monkeypatch.setattr(cuda_im2col, "IM2COL_ROWS", broken)
    x = np.random.default_rng(3).standard_normal((2, 3, 5, 5))
    want = F.im2col(x, (3, 3), (1, 1), (1, 1)).transpose(1, 2, 3, 0, 4, 5)
    with launched_on_host(HostKernel), pytest.raises(OutOfBoundsError) as caught:
        cuda_im2col.im2col_rows(x, (3, 3), (1, 1), (1, 1))
    message = str(caught.value)
    assert "kernel minialex_im2col_rows" in message and "raw parameter x" in message
    assert f"out of bounds at {x.size} " in message
    with twins():
        rows_t = cuda_im2col.im2col_rows(x, (3, 3), (1, 1), (1, 1))
    np.testing.assert_array_equal(rows_t, want)  # the twin cannot see it
    report("(b) off-by-one bound in im2col, w <= W", f"OutOfBoundsError: {message}",
           "columns equal to the reference: not caught")


@pytest.mark.parametrize("geometry", [((2, 3, 7, 7), 3, 2), ((1, 2, 9, 8), 5, 3), ((2, 2, 6, 6), 4, 1)],
                         ids=["k3-s2", "k5-s3", "k4-s1"])
def test_c_dropped_guard_in_col2im(geometry, monkeypatch):
    """Without ``ki <= hp`` a pixel in the first rows also sums "windows" above the image: oh =
    (hp - ki) / SH is negative (-1, or -2 for k4-s1 at h = 0), ``oh >= OH`` does not skip it, and
    the flat index lands on the column of another window, in bounds (c*KH + ki >= 1 keeps it >= 0):
    a wrong result, caught against the reference. An out-of-bounds read would be reported too."""
    shape, k, s = geometry
    broken = mutant(cuda_im2col.COL2IM_ROWS, body=[(" && ki <= hp", "")])
    monkeypatch.setattr(cuda_im2col, "COL2IM_ROWS", broken)
    n, c, h, w = shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    cols = np.random.default_rng(4).standard_normal((c, k, k, n, oh, ow))
    want = F.col2im(cols.transpose(3, 0, 1, 2, 4, 5), shape, (k, k), (s, s), (0, 0))
    caught = None
    with launched_on_host(HostKernel):
        try:
            dx = cuda_im2col.col2im_rows(cols, shape, (k, k), (s, s), (0, 0))
        except OutOfBoundsError as error:
            caught = f"OutOfBoundsError: {error}"
    if caught is None:
        wrong = np.abs(dx - want) > 1e-12
        assert wrong.any()  # caught, against the reference
        rows = sorted({int(r) for r in np.nonzero(wrong)[2]})
        caught = f"a wrong result: {int(wrong.sum())} of {dx.size} pixels differ from the reference (rows {rows})"
    with twins():
        dx_t = cuda_im2col.col2im_rows(cols, shape, (k, k), (s, s), (0, 0))
    np.testing.assert_array_equal(dx_t, want)  # the twin cannot see it
    report(f"(c) dropped guard ki <= hp in col2im, {'x'.join(map(str, shape))} kernel {k} stride {s}", caught,
           "dx equal to the reference: not caught")


def lrn_arguments(x, size=5, groups=1, alpha=1e-2, beta=0.75, k=2.0):
    n, c, h, w = x.shape
    t = x.dtype.type
    return [x, c, h * w, c // groups, size // 2, t(alpha), t(beta), t(k)]


def test_d_lrn_forward_in_place():
    """LRN forward "saving memory": y written over x. A thread reads its neighbours' x, which the
    threads of neighbouring channels may already have overwritten: which ones depends on the
    order in which the threads run (on a GPU, a race)."""
    broken = mutant(cuda_lrn.LRN_FWD, in_params=[("raw T x", "raw _non_const T x")],
                    out_params=[("T y, T scale, T scale_pow", "T scale, T scale_pow")],
                    body=[("y = x[i] * iv;", "x[i] = x[i] * iv;  // y written over x")])
    x = (3 * np.random.default_rng(5).standard_normal((2, 6, 3, 4))).astype(np.float32)
    scale, scale_pow = np.empty_like(x), np.empty_like(x)
    with pytest.raises(OrderDependentError) as caught:
        HostKernel(broken)(*lrn_arguments(x.copy()), scale, scale_pow)
    message = str(caught.value)
    assert message.startswith("order-dependent: kernel minialex_lrn_fwd wrote different results in forward and "
                              "reverse order")
    report("(d) LRN forward in place (y written over the raw input x)", f"OrderDependentError: {message}",
           "no twin for this variant (the twin writes y, which it no longer has): see the aliased launch")


def test_d_output_aliases_input():
    """The unchanged LRN forward launched with y = x (a wrapper that reuses x's memory): the twin
    reads all of x before writing y, so it gives the right answer; the kernel would race."""
    x = (3 * np.random.default_rng(6).standard_normal((2, 6, 3, 4))).astype(np.float64)
    want_y, _ = F.lrn_forward(x, 5, 1e-2, 0.75, 2.0, 1)
    aliased = x.copy()
    with pytest.raises(OrderDependentError) as caught:
        HostKernel(cuda_lrn.LRN_FWD)(*lrn_arguments(aliased), aliased, np.empty_like(x), np.empty_like(x))
    message = str(caught.value)
    assert "order-dependent: kernel minialex_lrn_fwd wrote different results in forward and reverse order" in message
    assert "output y" in message
    np.testing.assert_array_equal(aliased, x)  # a failed launch leaves the caller's arrays alone
    aliased_t = x.copy()
    TwinKernel(cuda_lrn.LRN_FWD)(*lrn_arguments(aliased_t), aliased_t, np.empty_like(x), np.empty_like(x))
    np.testing.assert_allclose(aliased_t, want_y, rtol=1e-13)  # the twin cannot see it
    report("(d) LRN forward launched with y = x", f"OrderDependentError: {message}",
           "y (over x) equal to the reference: not caught")
