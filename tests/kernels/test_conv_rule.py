"""The size rules of the CPU kernels (minialex/kernels/cpu/): which chunking, and how many threads, a
layer of a given size gets. Each rule is stated in its kernel file and in docs/performance.md (round 7);
these tests check the rule itself on the shapes of every preset, never a timing."""

import numpy as np
import pytest

from minialex.kernels.cpu import conv as cpu_conv
from minialex.kernels.cpu import runtime
from minialex.models import alexnet_config, architecture
from minialex.nn import Conv2d

PRESETS = ("imagenet", "cifar10", "synthetic", "tiny")


def conv_layers(preset):
    """(name, Conv2d, input shape at batch 128) of every convolution of a preset's network, sizes
    from the table in minialex/models/architecture.py."""
    cfg = alexnet_config(preset)
    out = []
    for layer in architecture.layers(cfg):
        row = layer.row
        if row.kind == "conv":
            conv = Conv2d(layer.in_maps, row.width, row.kernel, stride=row.stride, padding=row.padding,
                          groups=layer.groups, init_std=0.0)
            out.append((row.name, conv, (128, layer.in_maps, layer.in_side, layer.in_side)))
    return out


@pytest.mark.parametrize("preset", PRESETS)
def test_conv_chunk_fits_the_cache_unless_the_gemm_would_be_too_narrow(preset):
    for name, layer, shape in conv_layers(preset):
        geo = cpu_conv.geometry(layer, shape, 4)
        per_sample = geo.c * geo.kh * geo.kw * geo.oh * geo.ow * 4
        pixels = geo.oh * geo.ow
        m = geo.chunk
        assert 1 <= m <= geo.n
        fits = m * per_sample <= cpu_conv.CACHE_BYTES
        wide_enough = m * pixels >= cpu_conv.GEMM_MIN_COLUMNS
        # a chunk fits in the cache, or it is the narrowest chunk whose GEMM is wide enough
        assert fits or (wide_enough and (m - 1) * pixels < cpu_conv.GEMM_MIN_COLUMNS), (preset, name, m)
        # and it is as large as both allow: one more sample would break the cache bound and
        # would not be needed for the GEMM's width (or the batch is used up)
        if m < geo.n:
            assert (m + 1) * per_sample > cpu_conv.CACHE_BYTES, (preset, name, m)


def test_conv_chunk_rule_on_constructed_sizes(monkeypatch):
    monkeypatch.setattr(cpu_conv, "CACHE_BYTES", 1000)
    monkeypatch.setattr(cpu_conv, "GEMM_MIN_COLUMNS", 100)
    assert cpu_conv.chunk_samples(64, 100, 50) == 10  # the cache bound: 10 x 100 bytes, 500 columns
    assert cpu_conv.chunk_samples(64, 400, 10) == 10  # the GEMM bound: 10 x 10 columns (cache: 2)
    assert cpu_conv.chunk_samples(64, 5000, 30) == 4  # neither fits: ceil(100 / 30) samples
    assert cpu_conv.chunk_samples(6, 10, 1) == 6  # never more than the batch
    assert cpu_conv.chunk_samples(64, 10**9, 10**6) == 1  # never less than one sample


@pytest.mark.parametrize("start, stop, most", [(0, 64, 62), (0, 64, 7), (5, 6, 3), (3, 130, 13), (0, 128, 128),
                                               (10, 10, 4), (0, 7, 1)])
def test_even_chunks_cover_the_range_in_fewest_equal_pieces(start, stop, most):
    pieces = list(runtime.even_chunks(start, stop, most))
    total = stop - start
    assert len(pieces) == (-(-total // most) if total else 0)
    flat = [i for a, b in pieces for i in range(a, b)]
    assert flat == list(range(start, stop))
    sizes = [b - a for a, b in pieces]
    if sizes:
        assert max(sizes) <= most and max(sizes) - min(sizes) <= 1
