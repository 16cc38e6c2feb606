"""The checks Tanh and Sigmoid share, written once: each is an elementwise layer whose pair keeps
its output ``y`` as the cache, with a CPU kernel cut in pieces over threads and fused CUDA kernels.
tests/ops/test_tanh.py and test_sigmoid.py call these with their own op, layer and inputs, and keep
the checks of their own math (the formula, its tails, its symmetry) to themselves."""

import numpy as np
import pytest

from minialex import backend
from minialex.gradcheck import check_layer
from minialex.nn import reference

from .conftest import TOL

SHAPES = [(1,), (5, 7), (3, 4, 5, 6)]


def check_pair_writes_over_nothing(impl, layout, dtype, inputs, want_y, want_dx):
    """forward and backward return new arrays and leave x and dout as they were, also when they are
    column slices of wider arrays (the other column untouched); ``want_y(x)``, ``want_dx(dout, x)``
    give the expected values in float64."""
    for shape in [(1,), (3, 4, 5, 6), (2, 30000)]:
        x0, dy = inputs(shape, dtype, seed=7)
        if layout == "contiguous":
            x, d, wide_x, wide_d = impl.to(x0.copy()), impl.to(dy.copy()), None, None
        else:
            wide_x, wide_d = impl.to(np.stack([x0, x0 - 5], -1)), impl.to(np.stack([dy, dy + 1], -1))
            x, d = wide_x[..., 0], wide_d[..., 0]
        with impl.context():
            y, cache = impl.pair.forward(x)
            dx = impl.pair.backward(d, cache)
        assert y is not x and dx is not d
        np.testing.assert_array_equal(impl.get(x), x0)
        np.testing.assert_array_equal(impl.get(d), dy)
        if wide_x is not None:
            np.testing.assert_array_equal(impl.get(wide_x[..., 1]), x0 - 5)
            np.testing.assert_array_equal(impl.get(wide_d[..., 1]), dy + 1)
        np.testing.assert_allclose(impl.get(y), want_y(x0), **TOL[np.dtype(dtype)])
        np.testing.assert_allclose(impl.get(dx), want_dx(dy, x0), **TOL[np.dtype(dtype)])


def check_cpu_kernel_equals_reference(op, name, dtype, inputs):
    """The CPU pair against the reference, bit for bit, on arrays from one element to 600K."""
    cpu, ref = op.pair("cpu"), op.pair("reference")
    assert cpu.by == f"kernels.cpu.{name}"
    for shape in SHAPES + [(2, 300001)]:
        x, dy = inputs(shape, dtype, seed=5)
        y_ref, cache_ref = ref.forward(x)
        y, cache = cpu.forward(x)
        np.testing.assert_array_equal(y, y_ref)
        dx = cpu.backward(dy, cache)
        assert dx is not dy and dx.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(dx, ref.backward(dy, cache_ref))


def check_cuda_pair_refuses_numpy(op):
    with pytest.raises(TypeError, match="takes CuPy arrays"):
        op.pair("cuda").forward(np.ones(3))
    with pytest.raises(TypeError, match="takes CuPy arrays"):
        op.pair("cuda").backward(np.ones(3), op.pair("reference").forward(np.ones(3))[1])


def check_module_gradient(layer_class, name, x, xp):
    """The layer's gradient against centred differences, with the reference and with the kernels."""
    layer = layer_class()
    kernel = f"kernels.cpu.{name}" if xp is np else f"kernels.cuda.{name}"
    for implementation, ran in (("reference", "reference"), ("kernels", kernel)):
        errors = check_layer(layer, x, implementation=implementation)
        assert errors.implementation == ran
        assert errors["x"] < 1e-6


def check_module_round_trip(layer_class, op, name, ref, rng, xp):
    """forward then backward through the module gives the pair's y and dx, writes over nothing,
    keeps float32, and says which implementation ran."""
    x0 = rng.standard_normal((3, 4, 5)).astype(np.float32)
    dy0 = rng.standard_normal((3, 4, 5)).astype(np.float32)
    x, dout = backend.to_backend(x0.copy(), xp), backend.to_backend(dy0.copy(), xp)
    layer = layer_class()
    with reference(ref):
        y = layer.forward(x)
        assert layer.saved_implementation() == ("reference" if ref else
                                                f"kernels.cpu.{name}" if xp is np else f"kernels.cuda.{name}")
        dx = layer.backward(dout)
    assert y.dtype == dx.dtype == np.float32 and y is not x and dx is not dout
    np.testing.assert_array_equal(backend.to_numpy(x), x0)
    np.testing.assert_array_equal(backend.to_numpy(dout), dy0)
    want_y, cache = op.pair("reference").forward(x0)
    np.testing.assert_allclose(backend.to_numpy(y), want_y, **TOL[np.dtype(np.float32)])
    np.testing.assert_allclose(backend.to_numpy(dx), op.pair("reference").backward(dy0, cache),
                               **TOL[np.dtype(np.float32)])
    assert layer.saved_implementation() is None and not list(layer.parameters())


def check_module_bad_input(layer_class):
    title = layer_class.__name__
    with pytest.raises(ValueError, match=f"{title}.*floating-point"):
        layer_class().forward(np.arange(3))
    with pytest.raises(ValueError, match=f"{title} expects an array"):
        layer_class().forward([1.0, -1.0])
    with pytest.raises(RuntimeError, match="without a forward"):
        layer_class().backward(np.ones(3))
    layer = layer_class()
    layer.forward(np.ones(3))
    layer.backward(np.ones(3))
    with pytest.raises(RuntimeError, match="without a forward"):
        layer.backward(np.ones(3))  # one backward per forward
