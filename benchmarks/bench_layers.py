"""Each layer's reference (minialex/nn/) against its CPU kernel (minialex/kernels/cpu/), at AlexNet's
batch-128 shapes.

    OMP_NUM_THREADS=2 python benchmarks/bench_layers.py [--batch-size 128] [--repeat 3]

Prints forward+backward seconds (min of --repeat) for both, the reference run inside
``minialex.nn.reference()``, and the speed-up:
the before/after figure of each optimisation in docs/performance.md.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import contextlib  # noqa: E402

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = args.batch_size
    rng = np.random.default_rng(0)
    r = lambda *s: rng.standard_normal(s, dtype=np.float32)  # noqa: E731
    conv1 = Conv2d(3, 96, 11, stride=4, padding=2, rng=rng, input_grad=False)  # as in AlexNet
    cases = [
        ("conv1 (no dx)", conv1, r(n, 3, 224, 224)),
        ("conv2", Conv2d(96, 256, 5, padding=2, groups=2, rng=rng), r(n, 96, 27, 27)),
        ("conv3", Conv2d(256, 384, 3, padding=1, rng=rng), r(n, 256, 13, 13)),
        ("lrn1", LocalResponseNorm(groups=2), r(n, 96, 55, 55)),
        ("lrn2", LocalResponseNorm(groups=2), r(n, 256, 27, 27)),
        ("pool1", MaxPool2d(3, 2), r(n, 96, 55, 55)),
        ("relu1", ReLU(), r(n, 96, 55, 55)),
        ("fc6", Linear(9216, 4096, rng=rng), r(n, 9216)),
    ]
    print(f"{'layer':14s} {'reference':>9s} {'kernel':>9s} {'speed-up':>9s}   (forward + backward, batch {n})")
    for name, layer, x in cases:
        def step():
            layer.zero_grad()
            y = layer.forward(x)
            layer.backward(np.ones_like(y))
        out = []
        for use_reference in (True, False):
            with (reference() if use_reference else contextlib.nullcontext()):
                out.append(timed(step, args.repeat))
        print(f"{name:14s} {out[0]:9.3f} {out[1]:9.3f} {out[0] / out[1]:8.2f}x")
    params = [p for layer in (Linear(9216, 4096, rng=rng), Linear(4096, 4096, rng=rng)) for p in layer.parameters()]
    opt = SGD(params, lr=0.01)
    out = []
    for use_reference in (True, False):
        with (reference() if use_reference else contextlib.nullcontext()):
            out.append(timed(opt.step, args.repeat))
    print(f"{'sgd fc6+fc7':14s} {out[0]:9.3f} {out[1]:9.3f} {out[0] / out[1]:8.2f}x")


if __name__ == "__main__":
    main()
