"""sgd_update: the paper's update rule, every implementation through one interface.

``sgd_update(weights, grads, velocities, lr, momentum, weight_decays)`` updates lists of
parameters in place, for each w with gradient g, velocity v and weight decay wd:

    v <- momentum v - wd lr w - lr g;   w <- w + v

Every implementation (the reference of minialex/optim/functional.py, the CPU kernel of
minialex/kernels/cpu/sgd.py, the CUDA kernel of minialex/kernels/cuda/sgd.py on its NumPy twin,
and on a GPU) in float32 and float64, against the rule worked by hand in float64, with and without
weight decay, on lists of several parameters of different shapes (one exempt from decay, velocities
not zero to start with), in place. The CPU kernel's blocks and threads, and the CUDA kernel on a
GPU, against the reference through the optimizer ``SGD``.

The rule, and how it differs from PyTorch's SGD, is explained in docs/optim.md.
"""

import numpy as np
import pytest

from minialex import backend
from minialex.kernels.cpu import sgd as cpu_sgd
from minialex.nn import Linear, reference
from minialex.optim import SGD
from minialex.optim.sgd import SGD_UPDATE

from .conftest import TOL, implementations

DTYPES = [np.float64, np.float32]
SHAPES = [(4, 6), (4,), (3, 2, 5), (1,), (70,)]


def by_hand(weights, grads, velocities, lr, momentum, weight_decays):
    """The rule, element by element in float64: (new weights, new velocities)."""
    new_w, new_v = [], []
    for w, g, v, wd in zip(weights, grads, velocities, weight_decays):
        w, g, v = (np.asarray(a, dtype=np.float64) for a in (w, g, v))
        v = momentum * v - wd * lr * w - lr * g
        new_w.append(w + v)
        new_v.append(v)
    return new_w, new_v


def update(impl, weights, grads, velocities, lr, momentum, weight_decays):
    """Run impl's sgd_update on its backend; (weights, velocities) afterwards, as NumPy. The arrays
    handed to it are checked to be updated in place: the same objects, holding the new values."""
    ws, gs, vs = impl.to(list(weights)), impl.to(list(grads)), impl.to(list(velocities))
    ids = [id(a) for a in ws + vs]
    impl.call(ws, gs, vs, lr, momentum, weight_decays)
    assert [id(a) for a in ws + vs] == ids  # the lists hold the arrays they held
    return [impl.get(a) for a in ws], [impl.get(a) for a in vs]


def parameters(rng, dtype, shapes=SHAPES):
    weights = [rng.standard_normal(s).astype(dtype) for s in shapes]
    velocities = [(0.1 * rng.standard_normal(s)).astype(dtype) for s in shapes]  # an earlier step's
    return weights, velocities


@pytest.mark.parametrize("impl", implementations(SGD_UPDATE), indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_update_by_hand(impl, dtype, weight_decay, rng):
    """Three steps on five parameters (the second, a bias, exempt from weight decay; the last, 70
    elements); each step's weights and velocities against the rule by hand applied to the previous
    step's values, with the tolerance of the dtype."""
    weights, velocities = parameters(rng, dtype)
    decays = [weight_decay, 0.0, weight_decay, weight_decay, weight_decay]
    lr, momentum = 0.1, 0.9
    for _ in range(3):
        grads = [rng.standard_normal(w.shape).astype(dtype) for w in weights]
        want_w, want_v = by_hand(weights, grads, velocities, lr, momentum, decays)
        if impl.name == "cuda":
            weights, velocities = update(impl, weights, grads, velocities, lr, momentum, decays)
        else:
            before = [w.copy() for w in weights]
            ids = [id(a) for a in weights + velocities]
            got_w, got_v = update(impl, weights, grads, velocities, lr, momentum, decays)
            assert [id(a) for a in got_w + got_v] == ids  # in place: NumPy arrays are the very ones
            assert all(not np.array_equal(w, b) for w, b in zip(weights, before))
        for got, want in zip(weights + velocities, want_w + want_v):
            assert got.dtype == np.dtype(dtype)  # float32 stays float32
            np.testing.assert_allclose(got, want, **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("impl", implementations(SGD_UPDATE), indirect=True)
def test_weight_decay_is_per_parameter(impl):
    """lr = 1, momentum 0, g = 0: w <- w - wd w, each parameter with its own wd, 0 leaves it alone."""
    weights = [np.ones((2, 3)), np.ones(3), np.ones(4)]
    velocities = [np.zeros_like(w) for w in weights]
    grads = [np.zeros_like(w) for w in weights]
    got_w, got_v = update(impl, weights, grads, velocities, 1.0, 0.0, [0.1, 0.0, 0.5])
    for got, want in zip(got_w, [0.9, 1.0, 0.5]):
        np.testing.assert_allclose(got, want, rtol=1e-15)
    for got, want in zip(got_v, [-0.1, 0.0, -0.5]):
        np.testing.assert_allclose(got, want, rtol=1e-15)


@pytest.mark.parametrize("impl", implementations(SGD_UPDATE), indirect=True)
def test_one_and_two_steps_by_hand(impl):
    """The numbers of tests/optim/test_sgd.py, worked by hand, through each implementation."""
    w, v = [np.array([1.0, -2.0])], [np.zeros(2)]
    w, v = update(impl, w, [np.array([0.5, 0.25])], v, 0.1, 0.9, [0.01])
    # v1 = 0.9*0 - 0.01*0.1*w0 - 0.1*g = [-0.001 - 0.05, 0.002 - 0.025] = [-0.051, -0.023]
    np.testing.assert_allclose(v[0], [-0.051, -0.023], rtol=1e-13)
    np.testing.assert_allclose(w[0], [0.949, -2.023], rtol=1e-13)
    w, v = update(impl, [w[0].copy()], [np.array([-1.0, 0.0])], [v[0].copy()], 0.1, 0.9, [0.01])
    # v2 = 0.9*v1 - 0.001*w1 - 0.1*g = [-0.0459 - 0.000949 + 0.1, -0.0207 + 0.002023 - 0]
    v2 = [-0.0459 - 0.000949 + 0.1, -0.0207 + 0.002023]
    np.testing.assert_allclose(v[0], v2, rtol=1e-12)
    np.testing.assert_allclose(w[0], [0.949 + v2[0], -2.023 + v2[1]], rtol=1e-12)


@pytest.mark.parametrize("impl", implementations(SGD_UPDATE), indirect=True)
def test_parameters_of_both_dtypes_in_one_call(impl, rng):
    """A list may mix float32 and float64 parameters: each is updated in its own dtype."""
    weights = [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(9),
               rng.standard_normal(2).astype(np.float32)]
    velocities = [np.full_like(w, 0.5) for w in weights]
    grads = [rng.standard_normal(w.shape).astype(w.dtype) for w in weights]
    decays = [0.01, 0.01, 0.0]
    want_w, want_v = by_hand(weights, grads, velocities, 0.05, 0.9, decays)
    got_w, got_v = update(impl, weights, grads, velocities, 0.05, 0.9, decays)
    for got, want, w in zip(got_w + got_v, want_w + want_v, weights + weights):
        assert got.dtype == w.dtype
        np.testing.assert_allclose(got, want, **TOL[w.dtype])


@pytest.mark.parametrize("impl", implementations(SGD_UPDATE), indirect=True)
def test_update_windows_of_wider_arrays(impl, rng):
    """Weights and velocities that are windows of wider arrays (not one strided run) are updated
    in place, and nothing outside the windows moves."""
    big_w, big_v = rng.standard_normal((5, 8)), rng.standard_normal((5, 8))
    w0, v0 = big_w.copy(), big_v.copy()
    w, v = big_w[1:4, 2:6], big_v[1:4, 2:6]
    g = rng.standard_normal(w.shape)
    want_w, want_v = by_hand([w], [g], [v], 0.1, 0.9, [0.01])
    if impl.name == "cuda":
        got_w, got_v = update(impl, [w], [g], [v], 0.1, 0.9, [0.01])
        np.testing.assert_allclose(got_w[0], want_w[0], **TOL[w.dtype])
        np.testing.assert_allclose(got_v[0], want_v[0], **TOL[w.dtype])
        return
    impl.call([w], [g], [v], 0.1, 0.9, [0.01])
    np.testing.assert_allclose(w, want_w[0], **TOL[w.dtype])
    np.testing.assert_allclose(v, want_v[0], **TOL[w.dtype])
    outside = np.ones(big_w.shape, bool)
    outside[1:4, 2:6] = False
    np.testing.assert_array_equal(big_w[outside], w0[outside])
    np.testing.assert_array_equal(big_v[outside], v0[outside])


# -- the CPU kernel's blocks and threads ------------------------------------------------------
def both_paths(run):
    """run() inside reference(), then with the kernels; returns both results."""
    with reference():
        ref = run()
    got = run()
    return ref, got


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decay_biases", [True, False])
def test_cpu_blocks_and_threads_equal_the_reference(dtype, decay_biases, threads, monkeypatch):
    """Through the optimizer: three steps of SGD on a Linear layer, the CPU kernel (its parameters
    in blocks of 5, so they span several blocks, the last partial, over 1-3 threads) against the
    reference."""
    monkeypatch.setattr(cpu_sgd, "BLOCK", 5)  # parameters span several blocks, the last partial

    def run():
        r = np.random.default_rng(8)
        layer = Linear(6, 4, init_std=1.0, rng=r, dtype=dtype)
        opt = SGD(layer.named_parameters(), lr=0.1, momentum=0.9, weight_decay=0.01,
                  decay_biases=decay_biases)
        for _ in range(3):
            for p in layer.parameters():
                p.grad[...] = r.standard_normal(p.shape)
            opt.step()
        return [layer.weight.data, layer.bias.data] + opt.velocities

    ref, got = both_paths(run)
    assert len(ref) == len(got) == 4
    for r, g in zip(ref, got):
        assert g.dtype == r.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g, r, **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block", [5, 7, 1 << 16])
def test_cpu_blocks_by_hand(dtype, block, threads, monkeypatch, rng):
    """The CPU kernel directly, blocks that cut the parameters unevenly, against the rule by hand."""
    monkeypatch.setattr(cpu_sgd, "BLOCK", block)
    assert SGD_UPDATE.pick(np.zeros(1, dtype)).by == "kernels.cpu.sgd"
    weights, velocities = parameters(rng, dtype)
    grads = [rng.standard_normal(w.shape).astype(dtype) for w in weights]
    decays = [0.01, 0.0, 0.02, 0.01, 0.03]
    want_w, want_v = by_hand(weights, grads, velocities, 0.02, 0.8, decays)
    cpu_sgd.sgd_update(weights, grads, velocities, 0.02, 0.8, decays)
    for got, want in zip(weights + velocities, want_w + want_v):
        np.testing.assert_allclose(got, want, **TOL[np.dtype(dtype)])


# -- the CUDA kernel on a GPU, through the optimizer --------------------------------------------
def _tol(dtype):
    # the GPU may fuse multiply-adds: close, not always bit-equal
    return dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_kernel_equals_the_reference(rng, dtype):
    cp = backend.get_backend("cupy")
    results = []
    for ref in (True, False):
        layer = Linear(6, 4, init_std=1.0, rng=np.random.default_rng(8), dtype=dtype).to(cp)
        opt = SGD(layer.named_parameters(), lr=0.1, momentum=0.9, weight_decay=0.01, decay_biases=False)
        r = np.random.default_rng(9)
        with reference(ref):
            assert SGD_UPDATE.pick(layer.weight.data).by == ("reference" if ref else "kernels.cuda.sgd")
            for _ in range(3):
                for prm in layer.parameters():
                    prm.grad[...] = cp.asarray(r.standard_normal(prm.shape))
                opt.step()
        results.append([cp.asnumpy(a) for a in [layer.weight.data, layer.bias.data] + opt.velocities])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, **_tol(dtype))
