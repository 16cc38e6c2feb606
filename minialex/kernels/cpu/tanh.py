"""tanh on the CPU, fast: the pair of the reference (minialex/nn/functional/tanh.py, derived in
docs/layers/tanh-sigmoid.md) with the same signatures and bit-identical results, in cache-sized
pieces on all threads. The reference's backward, dout * (1 - y * y), makes three passes over
memory and two activation-sized temporaries; here each piece's three passes run in the piece of
the output, while it is in L2. Measured (benchmarks/bench_tanh.py, one thread, float32, median of
7, on the shared 2-core machine): backward on (128, 4096) 0.50 ms reference, 0.41 with out=
buffers, 0.35 here; on conv1's (128, 96, 55, 55) 104, 82 and 68 ms. The forward is one np.tanh,
already a vectorised C loop, and pieces gain nothing on one thread (53.6 ms reference, 53.3
here); they are there for the second thread of a compute-bound loop, which this shared machine
could not time reliably. Tested with every implementation in tests/ops/test_tanh.py.
"""

from collections import namedtuple

import numpy as np

from . import runtime

STEP = 1 << 16  # elements per piece: 256 KB of float32; a piece and its two inputs fit in L2

TanhCache = namedtuple("TanhCache", "y")
TanhCache.__doc__ = "As the reference's: the output y."


def pieces(fn, *arrays):
    """fn(*(a[p:q] for a in arrays)) over flat STEP-long pieces of same-shape arrays, on as many
    threads as a pass over them is worth (runtime.parallel_workers). Arrays that are not all
    C-contiguous (a column slice) get one call on the whole arrays."""
    if not all(a.flags.c_contiguous for a in arrays):
        fn(*arrays)
        return
    flat = [a.reshape(-1) for a in arrays]
    size = flat[0].size

    def work(start, stop, _t):
        for p, q in runtime.chunks(start * STEP, min(stop * STEP, size), STEP):
            fn(*(f[p:q] for f in flat))

    runtime.parallel(work, -(-size // STEP), passes=size)


def tanh_forward(x):
    """y = tanh(x) in a new array, as the reference."""
    y = np.empty_like(x)
    pieces(lambda a, o: np.tanh(a, out=o), x, y)
    return y, TanhCache(y)


def _backward(dout, y, dx):
    np.multiply(y, y, out=dx)  # y^2
    np.subtract(1, dx, out=dx)  # 1 - y^2
    np.multiply(dout, dx, out=dx)  # the reference's dout * (1 - y * y), in its order


def tanh_backward(dout, cache):
    """dx = dout * (1 - y^2) in a new array, as the reference."""
    dx = np.empty_like(dout)
    pieces(_backward, dout, cache.y, dx)
    return dx
