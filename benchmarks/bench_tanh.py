"""Do CPU kernels for tanh and sigmoid pay? Each reference pair (minialex/nn/functional/tanh.py,
sigmoid.py) against its CPU kernel (minialex/kernels/cpu/tanh.py, sigmoid.py), and each backward
also as the same expression with out= buffers (one new array, no temporaries), at two AlexNet-sized
float32 shapes: an fc layer's (128, 4096) and conv1's output (128, 96, 55, 55). Every variant is
first checked to give the reference's numbers bit for bit.

    MINIALEX_NUM_THREADS=1 python benchmarks/bench_tanh.py [--repeat 7] [--small]

Prints the median milliseconds of each (the kernels on MINIALEX_NUM_THREADS threads; with 1, the
variants differ in memory traffic and loops, not in parallelism). The figures are those of the
kernels' docstrings and of docs/layers/tanh-sigmoid.md, "On the CPU and the GPU".
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from minialex.kernels.cpu import runtime  # noqa: E402
from minialex.kernels.cpu import sigmoid as cpu_sigmoid  # noqa: E402
from minialex.kernels.cpu import tanh as cpu_tanh  # noqa: E402
from minialex.nn import functional as F  # noqa: E402


def buffered_tanh_backward(dout, y):
    """The reference's dout * (1 - y * y) with out= buffers: one new array, no temporaries."""
    dx = np.multiply(y, y)
    np.subtract(1, dx, out=dx)
    return np.multiply(dout, dx, out=dx)


def buffered_sigmoid_backward(dout, y):
    """The reference's dout * (y * (1 - y)) with out= buffers."""
    dx = np.subtract(1, y)
    np.multiply(y, dx, out=dx)
    return np.multiply(dout, dx, out=dx)


def median_ms(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--small", action="store_true", help="the (128, 4096) shape only")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    shapes = [(128, 4096)] + ([] if args.small else [(128, 96, 55, 55)])
    for shape in shapes:
        x = rng.standard_normal(shape, dtype=np.float32)
        dout = rng.standard_normal(shape, dtype=np.float32)
        y = np.tanh(x)
        s = F.sigmoid_forward(x)[0]
        tanh_cache, sigmoid_cache = F.TanhCache(y), F.SigmoidCache(s)
        for ref, fast in ((F.tanh_forward(x)[0], cpu_tanh.tanh_forward(x)[0]),
                          (F.sigmoid_forward(x)[0], cpu_sigmoid.sigmoid_forward(x)[0]),
                          (F.tanh_backward(dout, tanh_cache), cpu_tanh.tanh_backward(dout, tanh_cache)),
                          (F.tanh_backward(dout, tanh_cache), buffered_tanh_backward(dout, y)),
                          (F.sigmoid_backward(dout, sigmoid_cache), cpu_sigmoid.sigmoid_backward(dout, sigmoid_cache)),
                          (F.sigmoid_backward(dout, sigmoid_cache), buffered_sigmoid_backward(dout, s))):
            assert np.array_equal(ref, fast)  # the same numbers, bit for bit
        rows = [("tanh forward, reference", lambda: F.tanh_forward(x)),
                ("tanh forward, kernel", lambda: cpu_tanh.tanh_forward(x)),
                ("tanh backward, reference", lambda: F.tanh_backward(dout, tanh_cache)),
                ("tanh backward, out= buffers", lambda: buffered_tanh_backward(dout, y)),
                ("tanh backward, kernel", lambda: cpu_tanh.tanh_backward(dout, tanh_cache)),
                ("sigmoid forward, reference", lambda: F.sigmoid_forward(x)),
                ("sigmoid forward, kernel", lambda: cpu_sigmoid.sigmoid_forward(x)),
                ("sigmoid backward, reference", lambda: F.sigmoid_backward(dout, sigmoid_cache)),
                ("sigmoid backward, out= buffers", lambda: buffered_sigmoid_backward(dout, s)),
                ("sigmoid backward, kernel", lambda: cpu_sigmoid.sigmoid_backward(dout, sigmoid_cache))]
        print(f"{shape} float32, {x.size / 1e6:.2f}M elements, {runtime.threads()} thread(s), "
              f"median of {args.repeat} (ms):")
        for name, fn in rows:
            print(f"  {name:30s} {median_ms(fn, args.repeat):9.2f}")


if __name__ == "__main__":
    main()
