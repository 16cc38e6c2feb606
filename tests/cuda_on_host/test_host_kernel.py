"""HostKernel itself, on small kernels written for these tests: CuPy's ElementwiseKernel rules
(binding, broadcasting, type decisions, ``size=``, outputs allocated when omitted, what it
returns), the bounds check of raw accesses, the three thread orders, aliasing kept through views,
the CUDA spellings the prelude provides, and the compile cache."""

import numpy as np
import pytest

from . import host_kernel
from .host_kernel import CompileError, HostKernel, OrderDependentError, OutOfBoundsError

SCALE = ("T x, T s", "T y", "y = x * s;", "t_scale")
GATHER = ("raw T x, int64 shift", "T y", "y = x[i + shift];", "t_gather")


def test_non_raw_parameters_bind_the_threads_element_and_a_scalar_takes_t_from_the_arrays():
    x = np.linspace(-1, 1, 7, dtype=np.float32)
    y = np.empty_like(x)
    assert HostKernel(SCALE)(x, 0.1, y) is y  # one output: that array, the caller's
    np.testing.assert_array_equal(y, x * np.float32(0.1))  # the Python float became a float32
    y64 = np.empty(7)
    HostKernel(SCALE)(x.astype(np.float64), 0.1, y64)
    np.testing.assert_array_equal(y64, x.astype(np.float64) * 0.1)


def test_broadcasting_and_omitted_outputs():
    x = np.arange(3.0).reshape(1, 3)
    y = HostKernel(SCALE)(x, np.float64(2.0))  # outputs omitted: allocated with the loop's shape
    np.testing.assert_array_equal(y, [[0.0, 2.0, 4.0]])
    out = np.empty((2, 3))
    HostKernel(("T x, T b", "T y", "y = x + b;", "t_add"))(x, np.array([[10.0], [20.0]]), out)
    np.testing.assert_array_equal(out, [[10.0, 11.0, 12.0], [20.0, 21.0, 22.0]])
    HostKernel(SCALE)(x, 2.0, out)  # the outputs broadcast with the inputs, as in CuPy
    np.testing.assert_array_equal(out, [[0.0, 2.0, 4.0]] * 2)
    with pytest.raises(ValueError, match="Out shape is mismatched"):
        HostKernel(SCALE)(out, 2.0, np.empty(3))


def test_type_rules_as_cupy():
    x = np.ones(4, dtype=np.float32)
    with pytest.raises(TypeError, match="mismatched"):  # an output of another dtype than T
        HostKernel(SCALE)(x, 1.0, np.empty(4))
    with pytest.raises(TypeError, match="mismatched"):  # a fixed-type input array of another dtype
        HostKernel(("T x, int64 k", "T y", "y = x * k;", "t_k"))(x, np.ones(4, dtype=np.int32), np.empty_like(x))
    with pytest.raises(TypeError, match="cannot be decided"):
        HostKernel(("T a, U b", "T y", "y = a + b;", "t_u"))(x, 1.0, np.empty_like(x))
    with pytest.raises(OverflowError):  # a Python int out of a uint32's range, as NumPy assigns it
        HostKernel(("T x, uint32 k", "T y", "y = x + k;", "t_u32"))(x, 1 << 32, np.empty_like(x))
    with pytest.raises(TypeError, match="Wrong number of arguments"):
        HostKernel(SCALE)(x)
    with pytest.raises(ValueError, match="'i'"):
        HostKernel(("T i", "T y", "y = i;", "t_i"))


def test_size_and_ind_size():
    kernel = HostKernel(("raw T x", "raw T y", "y[i] = x[i] + _ind.size();", "t_size"))
    x, y = np.arange(5.0), np.zeros(8)
    kernel(x, y, size=5, stream=None, block_size=64)
    np.testing.assert_array_equal(y, [5, 6, 7, 8, 9, 0, 0, 0])
    with pytest.raises(ValueError, match="undecided"):
        kernel(x, y)
    with pytest.raises(ValueError, match="'size'"):
        HostKernel(SCALE)(x, 1.0, np.empty(5), size=5)
    with pytest.raises(ValueError, match="block_size"):
        kernel(x, y, size=5, block_size=0)


def test_raw_accesses_are_bounds_checked():
    x = np.arange(6.0)
    np.testing.assert_array_equal(HostKernel(GATHER)(x, 0, np.empty(6)), x)
    with pytest.raises(OutOfBoundsError, match=r"kernel t_gather: raw parameter x indexed out of bounds at 6 "
                                               r"\(it has 6 elements\), by thread i = 5"):
        HostKernel(GATHER)(x, 1, np.empty(6))
    with pytest.raises(IndexError, match="out of bounds at -1 "):
        HostKernel(GATHER)(x, -1, np.empty(6))


def test_threads_that_depend_on_each_other_are_order_dependent():
    prefix = ("T x", "raw T y", "y[i] = x + (i > 0 ? y[i - 1] : (T)0);", "t_prefix")  # a serial scan
    y = np.zeros(6)
    with pytest.raises(OrderDependentError, match="order-dependent: kernel t_prefix wrote different results in "
                                                  "forward and reverse order"):
        HostKernel(prefix)(np.ones(6), y)
    np.testing.assert_array_equal(y, 0.0)  # nothing written back


def test_aliasing_through_views_is_kept():
    """y = buf[:-1] and x = buf[1:]: thread i reads the element thread i + 1 writes (a race on a
    GPU: ElementwiseKernel does not copy overlapping inputs, unlike a ufunc)."""
    shift = ("T x", "T y", "y = x;", "t_copy")
    buf = np.arange(8.0)
    with pytest.raises(OrderDependentError):
        HostKernel(shift)(buf[1:], buf[:-1])
    np.testing.assert_array_equal(buf, np.arange(8.0))
    same = np.arange(8.0)
    HostKernel(SCALE)(same, 2.0, same)  # in place, each thread its own element: fine
    np.testing.assert_array_equal(same, 2 * np.arange(8.0))


def test_non_contiguous_arguments():
    wide = np.zeros((4, 3))
    x = np.arange(8.0).reshape(4, 2)[:, 1]  # a strided input
    HostKernel(SCALE)(x, 3.0, wide[:, 1])  # a strided output: only its elements are written
    np.testing.assert_array_equal(wide, [[0, 3, 0], [0, 9, 0], [0, 15, 0], [0, 21, 0]])


def test_cuda_spellings_compile():
    body = """
    unsigned int h = (unsigned int)i ^ 0x85EBCA6Bu;
    h ^= h >> 13;
    const T lo = min(x, (T)0.5), hi = max(x, (T)0.25);
    y = pow(hi, (T)2) + rsqrt(hi) + lo + (T)(h & 1u) + (T)min((ptrdiff_t)3, i);
    """
    x = np.linspace(0.1, 1.0, 5, dtype=np.float32)
    y = HostKernel(("T x", "T y", body, "t_spellings"))(x, np.empty_like(x))
    h = (np.arange(5, dtype=np.uint32) ^ np.uint32(0x85EBCA6B))
    h ^= h >> np.uint32(13)
    hi = np.maximum(x, np.float32(0.25))
    want = (hi ** np.float32(2) + np.float32(1) / np.sqrt(hi) + np.minimum(x, np.float32(0.5))
            + (h & 1).astype(np.float32) + np.minimum(3, np.arange(5)).astype(np.float32))
    np.testing.assert_allclose(y, want, rtol=1e-6)


def test_inputs_are_const_as_cupy_declares_them():
    with pytest.raises(CompileError, match="read-only|assignment of"):
        HostKernel(("T x", "T y", "x = 1; y = x;", "t_write_input"))(np.ones(3), np.empty(3))


def test_variants_are_compiled_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIALEX_HOST_KERNEL_CACHE", str(tmp_path))
    spec = ("T x", "T y", f"y = x + 1;  // {tmp_path}", "t_cached")  # a source no earlier test compiled
    HostKernel(spec)(np.ones(3), np.empty(3))
    HostKernel(spec)(np.ones(3), np.empty(3))
    assert len(list(tmp_path.glob("t_cached-*.so"))) == 1
    HostKernel(spec)(np.ones(3, dtype=np.float32), np.empty(3, dtype=np.float32))  # another variant
    assert len(list(tmp_path.glob("t_cached-*.so"))) == 2
    assert host_kernel.cache_dir() == str(tmp_path)
