"""Each layer's reference (minialex/nn/) against its CPU kernel (minialex/kernels/cpu/), at the
shapes of a preset's network (minialex/models/config.py; the paper's by default).

    OMP_NUM_THREADS=2 python benchmarks/bench_layers.py [--preset imagenet] [--batch-size 128] [--repeat 3]

Prints forward+backward seconds (min of --repeat) for both, the reference run inside
``minialex.nn.reference()``, and the speed-up: the before/after figure of each optimisation in
docs/performance.md. Every shape comes from the table in minialex/models/architecture.py.
"""

import argparse
import contextlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from minialex.models import alexnet_config  # noqa: E402
from minialex.models.architecture import POOL_KERNEL, POOL_STRIDE, IMAGE, layers as table_layers  # noqa: E402
from minialex.nn import Conv2d, Linear, LocalResponseNorm, MaxPool2d, ReLU, reference  # noqa: E402
from minialex.optim import SGD  # noqa: E402


def timed(fn, repeat):
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cases(cfg, n, rng):
    """(name, layer, input) for every conv, its LRN and pool, conv1's ReLU, and fc6, at batch n."""
    r = lambda *s: rng.standard_normal(s, dtype=np.float32)  # noqa: E731
    out = []
    for layer in table_layers(cfg):
        row = layer.row
        if row.kind == "conv":
            conv = Conv2d(layer.in_maps, row.width, row.kernel, stride=row.stride, padding=row.padding,
                          groups=layer.groups, rng=rng, input_grad=row.reads != IMAGE)  # as in AlexNet
            out.append((row.name + (" (no dx)" if row.reads == IMAGE else ""), conv,
                        r(n, layer.in_maps, layer.in_side, layer.in_side)))
            y_shape = (n, row.width, layer.out_side, layer.out_side)
            for kind, name in layer.followers:
                if kind == "relu" and row.name == "conv1":
                    out.append((name, ReLU(), r(*y_shape)))
                elif kind == "lrn":
                    out.append((name, LocalResponseNorm(cfg.lrn_size, cfg.lrn_alpha, cfg.lrn_beta, cfg.lrn_k,
                                                        groups=2), r(*y_shape)))
                elif kind == "pool":
                    out.append((name, MaxPool2d(POOL_KERNEL, POOL_STRIDE), r(*y_shape)))
        elif row.name == "fc6":
            out.append((row.name, Linear(layer.in_maps, row.width, rng=rng), r(n, layer.in_maps)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="imagenet", help="imagenet (default), cifar10, synthetic or tiny")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cfg = alexnet_config(args.preset)
    n = args.batch_size
    rng = np.random.default_rng(0)
    print(f"{'layer':14s} {'reference':>9s} {'kernel':>9s} {'speed-up':>9s}   "
          f"(forward + backward, preset {args.preset}, batch {n})")
    for name, layer, x in cases(cfg, n, rng):
        def step():
            layer.zero_grad()
            y = layer.forward(x)
            layer.backward(np.ones_like(y))
        out = []
        for use_reference in (True, False):
            with (reference() if use_reference else contextlib.nullcontext()):
                out.append(timed(step, args.repeat))
        print(f"{name:14s} {out[0]:9.4f} {out[1]:9.4f} {out[0] / out[1]:8.2f}x")
    fc = [lay for lay in table_layers(cfg) if lay.row.kind == "linear"][:2]  # fc6 and fc7
    params = [p for lay in fc for p in Linear(lay.in_maps, lay.row.width, rng=rng).parameters()]
    opt = SGD(params, lr=0.01)
    out = []
    for use_reference in (True, False):
        with (reference() if use_reference else contextlib.nullcontext()):
            out.append(timed(opt.step, args.repeat))
    print(f"{'sgd fc6+fc7':14s} {out[0]:9.4f} {out[1]:9.4f} {out[0] / out[1]:8.2f}x")


if __name__ == "__main__":
    main()
