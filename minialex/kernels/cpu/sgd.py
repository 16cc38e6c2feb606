"""SGD on the CPU, fast: the paper's update of minialex/optim/sgd.py (docs/optim.md) in
cache-sized blocks on all threads, with no parameter-sized temporaries (the reference makes
two per parameter: fc6's weight alone is 151 MB). Tested in tests/kernels/test_cpu.py.
"""

import numpy as np

from . import runtime

BLOCK = 1 << 16


def step(params, velocities, lr, momentum, decay_of):
    """v <- momentum v - wd lr w - lr g;  w <- w + v, for every parameter, block by block."""
    jobs = []
    for p, v in zip(params, velocities):
        w, gr, vv = p.data.reshape(-1), p.grad.reshape(-1), v.reshape(-1)
        for a in range(0, w.size, BLOCK):
            jobs.append((w, gr, vv, a, min(a + BLOCK, w.size), decay_of(p)))

    def work(start, stop, _t):
        tmps = {}
        for w, gr, vv, a, b, wd in jobs[start:stop]:
            t = tmps.setdefault(w.dtype, np.empty(BLOCK, dtype=w.dtype))[:b - a]
            vb, wb = vv[a:b], w[a:b]
            vb *= momentum
            if wd:
                np.multiply(wb, wd * lr, out=t)
                vb -= t
            np.multiply(gr[a:b], lr, out=t)
            vb -= t
            wb += vb

    runtime.parallel(work, len(jobs), passes=6 * sum(p.data.size for p in params))
