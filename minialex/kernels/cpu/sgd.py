"""sgd_update on the CPU, fast: the reference of minialex/optim/functional.py (docs/optim.md)
with the same signature, over all parameters in cache-sized blocks on all threads, with no
parameter-sized temporaries (the reference makes two per parameter: fc6's weight alone is
151 MB). Tested with every implementation in tests/ops/test_sgd.py.
"""

import numpy as np

from . import runtime

BLOCK = 1 << 16


def sgd_update(weights, grads, velocities, lr, momentum, weight_decays):
    """v <- momentum v - wd lr w - lr g;  w <- w + v, for every parameter, block by block."""
    jobs = []
    for w, g, v, wd in zip(weights, grads, velocities, weight_decays):
        if not (w.flags.c_contiguous and g.flags.c_contiguous and v.flags.c_contiguous):
            # reshape(-1) of a window of a wider array is a copy, and the update would be lost:
            # such a parameter gets the reference's whole-array operations instead
            v *= momentum
            if wd:
                v -= (wd * lr) * w
            v -= lr * g
            w += v
            continue
        fw, fg, fv = w.reshape(-1), g.reshape(-1), v.reshape(-1)
        for a in range(0, fw.size, BLOCK):
            jobs.append((fw, fg, fv, a, min(a + BLOCK, fw.size), wd))

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

    runtime.parallel(work, len(jobs), passes=6 * sum(w.size for w in weights))
