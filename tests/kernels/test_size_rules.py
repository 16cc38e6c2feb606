"""The size rules of the CPU kernels (minialex/kernels/cpu/): which chunking, and how many threads, a
layer of a given size gets. Each rule is stated in its kernel file and in docs/performance.md (round 7);
these tests check the rule itself on the shapes of every preset, never a timing."""

import numpy as np
import pytest

from minialex.kernels.cpu import conv as cpu_conv
from minialex.kernels.cpu import lrn as cpu_lrn
from minialex.kernels.cpu import runtime
from minialex.models import alexnet_config, architecture
from minialex.nn import Conv2d, LocalResponseNorm, MaxPool2d, ReLU

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
        geo = cpu_conv.geometry(shape, layer.kernel_size, layer.stride, layer.padding, 4)
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


def test_gemm_split_gives_each_thread_enough_work(monkeypatch):
    monkeypatch.setenv("MINIALEX_NUM_THREADS", "4")
    if runtime.blas() is None:  # no way to make BLAS single-threaded: the calling thread does it all
        assert runtime.gemm_split(100, 1e12) == 1
        return
    each = runtime.GEMM_MIN_FLOPS
    assert runtime.gemm_split(100, 0.5 * each) == 1  # under one share: the calling thread alone
    assert runtime.gemm_split(100, 2.5 * each) == 2  # two full shares
    assert runtime.gemm_split(100, 100 * each) == 4  # never more than the threads
    assert runtime.gemm_split(3, 100 * each) == 3  # nor than the pieces to share out


@pytest.mark.parametrize("preset, split", [("imagenet", {"fc6", "fc7", "fc8"}), ("cifar10", {"fc6", "fc7"}),
                                           ("synthetic", set()), ("tiny", set())])
def test_fully_connected_layers_split_only_where_the_work_pays(preset, split, monkeypatch):
    """At batch 128 on two threads: the paper's fc6-fc8 (1-10 GFLOP a product) and cifar10's fc6 and
    fc7 (67-75 MFLOP) share their products out; cifar10's fc8 and the synthetic and tiny presets'
    fully connected layers (under 17 MFLOP) run on the calling thread."""
    monkeypatch.setenv("MINIALEX_NUM_THREADS", "2")
    if runtime.blas() is None:
        pytest.skip("NumPy does not use the OpenBLAS whose threads the kernels control")
    got = set()
    for layer in architecture.layers(alexnet_config(preset)):
        if layer.row.kind == "linear":
            flops = 2.0 * 128 * layer.in_maps * layer.row.width
            if runtime.gemm_split(layer.row.width, flops) > 1:
                got.add(layer.row.name)
    assert got == split


def lrn_shapes(preset):
    """(C, P) of each LRN of a preset's network (after conv1 and conv2)."""
    return [(layer.row.width, layer.out_side ** 2) for layer in architecture.layers(alexnet_config(preset))
            if any(kind == "lrn" for kind, _ in layer.followers)]


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("batch", [1, 16, 128])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_lrn_blocks_are_whole_samples_filling_the_block_size(preset, batch, threads):
    for c, p in lrn_shapes(preset):
        sample = c * p * 4
        per, step = cpu_lrn._blocks(batch, c, p, 4)
        assert sample <= cpu_lrn.RUN_BYTES and step == p  # every preset's LRN is cut into whole samples
        assert per == max(1, min(batch, cpu_lrn.BLOCK_BYTES // sample))  # as many as fit, at least one
        shares = [(batch * t // threads, batch * (t + 1) // threads) for t in range(threads)]  # runtime.parallel
        blocks = [blk for a, b in shares for blk in cpu_lrn._thread_blocks(a, b, per, step, p)]
        assert [i for i0, i1, _, _ in blocks for i in range(i0, i1)] == list(range(batch))
        assert all((p0, p1) == (0, p) for _, _, p0, p1 in blocks)
        for a, b in shares:  # a thread's blocks are equal and as few as hold its share
            sizes = [i1 - i0 for i0, i1, _, _ in cpu_lrn._thread_blocks(a, b, per, step, p)]
            assert len(sizes) == (-(-(b - a) // per) if b > a else 0)
            assert not sizes or (max(sizes) <= per and max(sizes) - min(sizes) <= 1)


def test_lrn_cuts_only_a_sample_above_run_bytes_into_runs_of_positions():
    c, p = 64, (cpu_lrn.RUN_BYTES // (64 * 4)) * 3 + 5  # a sample of 3 runs and a bit
    per, step = cpu_lrn._blocks(2, c, p, 4)
    assert per == 1 and step == cpu_lrn.RUN_BYTES // (c * 4)
    blocks = cpu_lrn._thread_blocks(0, 2, per, step, p)
    assert [(i0, p0) for i0, _, p0, _ in blocks] == [(i, a) for i in range(2) for a in range(0, p, step)]
    assert blocks[-1][3] == p


def test_parallel_workers_give_each_thread_enough_passes(monkeypatch):
    monkeypatch.setenv("MINIALEX_NUM_THREADS", "4")
    each = runtime.PARALLEL_MIN_PASSES
    assert runtime.parallel_workers(100) == 4  # no cost given: every thread
    assert runtime.parallel_workers(100, passes=0.9 * each) == 1
    assert runtime.parallel_workers(100, passes=3.5 * each) == 3
    assert runtime.parallel_workers(100, passes=100 * each) == 4
    assert runtime.parallel_workers(2, passes=100 * each) == 2  # never more than the items
    assert runtime.parallel_workers(100, passes=100 * each, workers=1) == 1
    seen = []
    runtime.parallel(lambda a, b, t: seen.append((a, b, t)), 10, passes=0.5 * each)
    assert seen == [(0, 10, 0)]  # on the calling thread, in one call


def followers_of_convs(preset, batch):
    """(name, layer, input) for the ReLU, LRN and max-pool after each conv of a preset, at a batch size."""
    cfg = alexnet_config(preset)
    rng = np.random.default_rng(0)
    out = []
    for layer in architecture.layers(cfg):
        if layer.row.kind != "conv":
            continue
        shape = (batch, layer.row.width, layer.out_side, layer.out_side)
        x = rng.standard_normal(shape, dtype=np.float32)
        for kind, name in layer.followers:
            if kind == "relu":
                out.append((name, ReLU(), x))
            elif kind == "lrn":
                out.append((name, LocalResponseNorm(cfg.lrn_size, cfg.lrn_alpha, cfg.lrn_beta, cfg.lrn_k, groups=2), x))
            elif kind == "pool":
                out.append((name, MaxPool2d(architecture.POOL_KERNEL, architecture.POOL_STRIDE), x))
    return out


@pytest.mark.parametrize("preset, batch, threaded", [
    ("tiny", 16, set()),
    ("synthetic", 64, {"lrn1", "pool1", "lrn2", "pool2", "pool5"}),
    ("cifar10", 128, {"relu1", "lrn1", "pool1", "lrn2", "pool2", "pool5"})])
def test_elementwise_kernels_thread_where_the_work_pays(preset, batch, threaded, monkeypatch):
    """On two threads, which ReLU, LRN and max-pool kernels hand their backward to the second thread
    (a forward never uses more threads than its backward): the tiny preset's at batch 16 never do;
    at the small presets' batch sizes the LRNs and pools do, and the ReLUs over at least 2M elements
    (cifar10's relu1, 3.1M; not its relu2, 1.8M, nor synthetic's relu1 at batch 64, 1.2M)."""
    monkeypatch.setenv("MINIALEX_NUM_THREADS", "2")
    calls = []
    real = runtime.parallel_workers

    def spy(n_items, passes=None, workers=None):
        got = real(n_items, passes, workers)
        calls.append(got)
        return got

    monkeypatch.setattr(runtime, "parallel_workers", spy)
    got = set()
    for name, layer, x in followers_of_convs(preset, batch):
        calls.clear()
        y = layer.forward(x)
        forward_workers = list(calls)
        calls.clear()
        layer.backward(np.ones_like(y))
        assert len(forward_workers) == len(calls) == 1, name
        assert forward_workers[0] <= calls[0], name  # a backward makes at least its forward's passes
        if calls[0] == 2:
            got.add(name)
    assert got == threaded
