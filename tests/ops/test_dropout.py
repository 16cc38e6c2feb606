"""dropout: the pure pair ``minialex.nn.dropout.DROPOUT`` (its one implementation is the reference
of minialex/nn/functional/dropout.py) at a fixed MaskKey: finite differences (float64), inverted
scaling and expectation, backward with the forward's mask; its masks (minialex/nn/masks.py):
``dropout_mask``, ``MaskKey.draw``, blocks of a larger mask (columns, first_row), and the hash op
``HASH_MASK``, whose reference (masks.hash_mask on NumPy) and CUDA kernel
(minialex/kernels/cuda/dropout.py, on its NumPy twin inside twins() and on a GPU under the ``gpu``
marker) must give the same mask bit for bit; then the Dropout module: evaluation is the identity,
masks repeat from (seed, calls), the public dropout_mask is the layer's mask, bad p.

The mathematics (inverted dropout, its backward, why it matches the paper's test-time x0.5, and
masks from (seed, calls) for an exact resume) is derived in docs/layers/dropout.md.
"""

import numpy as np
import pytest

from minialex import backend
from minialex.gradcheck import check_layer, numerical_gradient, rel_error
from minialex.nn import Dropout, MaskKey, dropout_mask, reference
from minialex.nn import masks
from minialex.nn.dropout import DROPOUT
from minialex.nn.masks import HASH_MASK

from .conftest import implementations

DTYPES = [np.float64, np.float32]


# -- the pair, at a fixed key -----------------------------------------------------------------------
@pytest.mark.parametrize("impl", implementations(DROPOUT), indirect=True)
def test_backward_matches_finite_differences(impl, rng):
    """float64: the same key gives the same mask on every call, so the loss is a fixed linear map
    of x and the centred differences are exact up to rounding."""
    x = rng.standard_normal((4, 6))
    dout = rng.standard_normal(x.shape)
    key = MaskKey(3, 0)
    y, cache = impl.forward(x, 0.5, key)
    assert (y == 0).any() and (y != 0).any()  # some units dropped, some kept
    dx = impl.backward(dout, cache)
    numeric = numerical_gradient(lambda: (impl.forward(x, 0.5, key)[0] * dout).sum(), x)
    assert rel_error(dx, numeric) < 1e-6


@pytest.mark.parametrize("impl", implementations(DROPOUT), indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.5, 0.3])
def test_inverted_scaling_and_expectation(impl, dtype, p):
    """Kept units are scaled by 1/(1-p), so E[y] = x, as the paper's test-time scaling gives."""
    x = np.ones((200, 500), dtype=dtype)
    y, cache = impl.forward(x, p, MaskKey(0, 0))
    assert y.dtype == np.dtype(dtype)
    assert cache.mask.dtype == np.dtype(dtype)
    assert set(np.unique(y)) == {0.0, np.dtype(dtype).type(1.0 / (1.0 - p))}
    assert abs(y.mean() - 1.0) < 0.01
    assert abs((y == 0).mean() - p) < 0.01


@pytest.mark.parametrize("impl", implementations(DROPOUT), indirect=True)
def test_backward_uses_the_forward_mask(impl):
    x = np.arange(1.0, 101.0).reshape(10, 10)
    key = MaskKey(1, 0)
    y, cache = impl.forward(x, 0.3, key)
    dx = impl.backward(np.ones_like(x), cache)
    np.testing.assert_allclose(dx, y / x)
    np.testing.assert_array_equal(y, x * key.draw(x.shape, 0.3, x.dtype, np))


@pytest.mark.parametrize("impl", implementations(DROPOUT), indirect=True)
@pytest.mark.parametrize("key", [MaskKey(5, 2), MaskKey(5, 2, 3), MaskKey(5, 2, 1, (4, 12))],
                         ids=["plain", "first_row", "columns"])
def test_forward_multiplies_by_the_keys_mask(impl, key):
    """y = x * dropout_mask(seed, call, shape, p, ..., columns, first_row) of the key."""
    x = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32)
    y, _ = impl.forward(x, 0.4, key)
    want = dropout_mask(key.seed, key.call, x.shape, 0.4, np, np.float32, columns=key.columns,
                        first_row=key.first_row)
    np.testing.assert_array_equal(y, x * want)


# -- the masks --------------------------------------------------------------------------------------
def test_mask_key_draw_is_dropout_mask():
    key = MaskKey(7, 3)
    assert (key.first_row, key.columns) == (0, None)
    for dtype in DTYPES:
        np.testing.assert_array_equal(key.draw((9, 10), 0.5, dtype, np), dropout_mask(7, 3, (9, 10), 0.5, np, dtype))
        assert key.draw((9, 10), 0.5, dtype, np).dtype == dtype
    block = MaskKey(7, 3, first_row=2, columns=(5, 15))
    np.testing.assert_array_equal(block.draw((4, 10), 0.25, np.float32, np),
                                  dropout_mask(7, 3, (4, 10), 0.25, np, np.float32, columns=(5, 15), first_row=2))


@pytest.mark.parametrize("shape, columns, first_row", [((5, 6), (6, 12), 0), ((5, 6), (6, 12), 4),
                                                       ((5, 6), (0, 12), 3), ((2, 3, 4), (4, 8), 1),
                                                       ((3, 5), None, 2)])
def test_blocks_are_blocks_of_the_full_mask(shape, columns, first_row):
    """columns=(start, full_width) and first_row give exactly that block of the full mask (rows are
    the leading dimensions flattened): the two-column network's halves and a data-parallel
    process's samples draw the single-device network's mask."""
    width = shape[-1]
    start, full_width = columns if columns is not None else (0, width)
    rows = int(np.prod(shape[:-1]))
    full = dropout_mask(11, 4, (first_row + rows, full_width), 0.5)
    want = full[first_row:, start:start + width].reshape(shape)
    got = dropout_mask(11, 4, shape, 0.5, columns=columns, first_row=first_row)
    np.testing.assert_array_equal(got, want)
    assert (got == 0).any() and (got != 0).any()


def test_mask_is_the_murmur_finaliser_of_the_index():
    """Element i of the mask of (seed, call) is kept when the top 24 bits of
    fmix32(fmix32(i ^ k1) + k2) clear round(p * 2^24): the hash written out in Python integers."""
    def fmix32(h):
        h ^= h >> 16
        h = (h * 0x85EBCA6B) & 0xFFFFFFFF
        h ^= h >> 13
        h = (h * 0xC2B2AE35) & 0xFFFFFFFF
        return h ^ (h >> 16)

    seed, call, p = 11, 7, 0.3
    k1, k2 = (int(k) for k in masks.mask_keys(seed, call))
    thresh = round(p * (1 << 24))
    want = np.array([(fmix32((fmix32(i ^ k1) + k2) & 0xFFFFFFFF) >> 8) >= thresh for i in range(70)])
    got = dropout_mask(seed, call, (7, 10), p, np, np.float64)
    np.testing.assert_array_equal(got.reshape(-1), want / (1.0 - p))


def test_dropout_mask_repeats_from_seed_and_call():
    a = dropout_mask(3, 5, (20, 30), 0.5)
    np.testing.assert_array_equal(dropout_mask(3, 5, (20, 30), 0.5), a)
    assert not np.array_equal(dropout_mask(3, 6, (20, 30), 0.5), a)  # the call matters
    assert not np.array_equal(dropout_mask(4, 5, (20, 30), 0.5), a)  # the seed matters
    assert dropout_mask(3, 5, (20, 30), 0.5).dtype == np.float32  # the default dtype


# (shape, p, columns, first_row); the last case's rows start at index 2^32 - 8 of the full mask
# and wrap around (the index is taken modulo 2^32 on every implementation)
HASH_CASES = [((128, 4096), 0.5, None, 0), ((7, 10), 0.3, None, 0), ((5, 6), 0.5, (6, 12), 0),
              ((3,), 0.9, None, 0), ((5, 6), 0.5, (6, 12), 4), ((4, 3, 5), 0.2, None, 2),
              ((3, 8), 0.5, None, (1 << 29) - 1)]


@pytest.mark.parametrize("impl", implementations(HASH_MASK), indirect=True)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", HASH_CASES, ids=lambda c: f"{c[0]}-p{c[1]}-cols{c[2]}-row{c[3]}")
def test_hash_mask_implementations_agree_bit_for_bit(impl, dtype, case):
    """The same mask from every implementation of the hash (the reference on NumPy, the CUDA
    kernel's twin, the kernel on a GPU), with the arguments dropout_mask computes; and it is
    dropout_mask's mask."""
    shape, p, columns, first_row = case
    k1, k2 = masks.mask_keys(11, 7)
    width = shape[-1]
    start, full_width = columns if columns is not None else (0, width)
    start = (first_row * full_width + start) % (1 << 32)
    args = (k1, k2, masks.keep_threshold(p), shape, start, full_width, 1.0 / (1.0 - p))
    want = masks.hash_mask(*args, np, dtype)
    np.testing.assert_array_equal(want, dropout_mask(11, 7, shape, p, np, dtype, columns=columns, first_row=first_row))
    got = impl.get(impl.call(*args, impl.xp, dtype))
    assert got.dtype == np.dtype(dtype) and got.shape == tuple(shape)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("impl", implementations(HASH_MASK), indirect=True)
def test_hash_mask_threshold_is_inclusive(impl):
    """An element whose 24-bit hash equals the threshold is kept (>=), one above it dropped: p
    chosen so that the threshold is exactly element 5's hash, on every implementation."""
    k1, k2 = masks.mask_keys(11, 7)
    index = np.arange(8, dtype=np.uint32)
    h = [int(v) for v in masks._fmix32(masks._fmix32(index ^ k1) + k2) >> np.uint32(8)]  # each element's 24 bits
    for thresh, kept in ((h[5], True), (h[5] + 1, False)):
        p = thresh / (1 << 24)
        assert masks.keep_threshold(p) == thresh
        got = impl.get(impl.call(k1, k2, thresh, (8,), 0, 8, 2.0, impl.xp, np.float32))
        assert got[5] == (2.0 if kept else 0.0)
        np.testing.assert_array_equal(got, np.where(np.array(h) >= thresh, 2.0, 0.0))


def test_hash_mask_wraps_at_two_to_the_32():
    """A block whose rows run past index 2^32 - 1 continues at index 0 of the full mask."""
    wrapped = dropout_mask(2, 1, (3, 8), 0.5, first_row=(1 << 29) - 1)
    np.testing.assert_array_equal(wrapped[1:], dropout_mask(2, 1, (2, 8), 0.5))


def test_cuda_hash_refuses_numpy_outside_twins():
    k1, k2 = masks.mask_keys(0, 0)
    with pytest.raises(TypeError, match="takes CuPy arrays"):
        HASH_MASK.pair("cuda").forward(k1, k2, 0, (2, 2), 0, 2, 2.0, np, np.float32)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, p, columns", [((128, 4096), 0.5, None), ((7, 10), 0.3, None),
                                               ((5, 6), 0.5, (6, 12)), ((3,), 0.9, None)])
def test_dropout_mask_kernel_is_the_reference_bit_for_bit(dtype, shape, p, columns):
    """The same mask on a GPU as on the CPU: a resumed run replays it on any device."""
    cp = backend.get_backend("cupy")
    want = dropout_mask(11, 7, shape, p, np, dtype, columns=columns)
    got = dropout_mask(11, 7, shape, p, cp, dtype, columns=columns)  # the kernel
    with reference():
        ref_gpu = dropout_mask(11, 7, shape, p, cp, dtype, columns=columns)  # the reference's xp ops on CuPy
    np.testing.assert_array_equal(cp.asnumpy(got), want)
    np.testing.assert_array_equal(cp.asnumpy(ref_gpu), want)


# -- the Dropout module ------------------------------------------------------------------------------
def test_module_gradient_matches_finite_differences(rng, xp):
    layer = Dropout(0.5, seed=3)
    x = backend.to_backend(rng.standard_normal((4, 6)), xp)
    for implementation in ("reference", "kernels"):  # dropout has no kernel: the reference runs
        errors = check_layer(layer, x, implementation=implementation)
        assert errors.implementation == "reference"
        assert errors["x"] < 1e-6


def test_module_inverted_scaling_and_expectation():
    layer = Dropout(0.5, seed=0)
    x = np.ones((200, 500), dtype=np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    assert set(np.unique(y)) == {0.0, 2.0}  # kept units are scaled by 1/(1-p)
    assert abs(y.mean() - 1.0) < 0.01  # so E[y] = x, as the paper's test-time x0.5 gives
    assert abs((y == 0).mean() - 0.5) < 0.01
    assert layer.backward(np.ones_like(y)).dtype == np.float32


def test_module_backward_uses_the_forward_mask():
    layer = Dropout(0.3, seed=1)
    x = np.arange(1.0, 101.0).reshape(10, 10)
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_allclose(dx, y / x)


def test_eval_is_identity():
    layer = Dropout(0.5).eval()
    x = np.ones((3, 3))
    assert layer.forward(x) is x
    assert layer.backward(x) is x
    with pytest.raises(RuntimeError, match="without a forward"):
        layer.backward(x)  # one backward per forward, in evaluation too
    assert layer.calls == 0  # evaluation draws no mask
    zero = Dropout(0.0)  # p = 0 is the identity while training too
    assert zero.forward(x) is x and zero.backward(x) is x and zero.calls == 0


def test_public_mask_is_the_layers_mask():
    """dropout_mask(seed, call, ...) is what the layer's forward number ``call`` multiplies by:
    the two-column network draws its masks through it."""
    layer = Dropout(0.4, seed=11)
    x = np.ones((5, 6), dtype=np.float32)
    layer.forward(x)
    second = layer.forward(x)
    np.testing.assert_array_equal(second, dropout_mask(11, 1, (5, 6), 0.4, np, np.float32))
    assert dropout_mask(11, 1, (5, 6), 0.4).dtype == np.float32
    assert layer.calls == 2


def test_module_first_row_draws_those_rows_of_the_mask():
    """A data-parallel process holding samples 3.. of the global batch draws their rows."""
    layer = Dropout(0.5, seed=4)
    layer.first_row = 3
    x = np.ones((2, 6), dtype=np.float32)
    np.testing.assert_array_equal(layer.forward(x), dropout_mask(4, 0, (5, 6), 0.5)[3:])


def test_masks_repeat_from_seed_and_calls():
    a, b = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    x = np.ones((8, 8))
    first, second = a.forward(x), a.forward(x)
    assert not np.array_equal(first, second)  # a new mask each call
    b.calls = 1  # a layer resumed after one call draws what the original drew second
    np.testing.assert_array_equal(b.forward(x), second)
    assert not np.array_equal(Dropout(0.5, seed=8).forward(x), first)  # the seed matters


def test_bad_p():
    with pytest.raises(ValueError, match="p must be in"):
        Dropout(1.0)
    with pytest.raises(ValueError, match="p must be in"):
        Dropout(-0.1)


def test_module_bad_input():
    with pytest.raises(ValueError, match="Dropout.*floating-point"):
        Dropout(0.5).forward(np.ones((2, 2), dtype=np.int32))
