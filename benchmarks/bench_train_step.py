"""One AlexNet training step (forward, loss, backward, SGD update): minialex vs PyTorch.

    python benchmarks/bench_train_step.py --batch-size 128 --threads 2 [--steps 3] [--no-torch]
                                          [--gemm-split]

Prints, for minialex: images/s, GFLOP/s, the fraction of the GEMM rate measured
in the same run (sgemm at the network's own forward and backward GEMM shapes),
peak resident memory, and a per-layer table of forward and backward times.
When torch is importable it also runs the identical network in PyTorch (groups,
LRN with the same constants applied to each half of the channels, max-pool,
dropout, CrossEntropyLoss, SGD with momentum and weight decay) and prints its
figures and the ratio.

Each measurement runs in its own subprocess so that peak RSS (ru_maxrss of the
child) and thread settings do not mix; the thread count is set through the
environment before NumPy or torch is imported. Timings are the median of
``--steps`` steps after one warm-up step (min is printed too).

``--gemm-split`` (NumPy backend) also times every GEMM inside the convolutions'
fast paths and prints where the step goes: conv GEMMs (thread-seconds, their
rate per thread, and their share of the step's wall time), the fully connected
layers, and everything else (im2col/col2im, LRN, pooling, ReLU, dropout, loss,
SGD). The timer wraps ``np.matmul`` as minialex.nn.fast sees it, which costs
well under 1% of the step.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# (name, in_channels, out_channels, kernel, stride, padding, groups) of the paper's five convolutions
CONVS = [
    ("conv1", 3, 96, 11, 4, 2, 1),
    ("conv2", 96, 256, 5, 1, 2, 2),
    ("conv3", 256, 384, 3, 1, 1, 1),
    ("conv4", 384, 384, 3, 1, 1, 2),
    ("conv5", 384, 256, 3, 1, 1, 2),
]
FCS = [("fc6", 9216, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000)]
LRN = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)  # the paper's constants (alpha on the plain sum)
LR, MOMENTUM, WD = 0.01, 0.9, 5e-4


def gemm_shapes(batch, image=224):
    """[(name, M, K, N, count)] of every GEMM in one training step, and the step's FLOPs.

    Forward y = W @ cols, dW = dy @ cols^T, dcols = W^T @ dy for each conv group;
    the first layer needs no input gradient (PyTorch skips it too).
    """
    shapes, size = [], image
    for i, (name, c, f, k, s, p, g) in enumerate(CONVS):
        out = (size + 2 * p - k) // s + 1
        kk, fg, cols = c // g * k * k, f // g, batch * out * out
        shapes.append((name + " fwd", fg, kk, cols, g))
        shapes.append((name + " dW", fg, cols, kk, g))
        if i > 0:
            shapes.append((name + " dX", kk, fg, cols, g))
        size = out if name in ("conv3", "conv4") else (out - 3) // 2 + 1  # pools after 1, 2, 5
    for name, fin, fout in FCS:
        shapes.append((name + " fwd", batch, fin, fout, 1))
        shapes.append((name + " dW", fout, batch, fin, 1))
        shapes.append((name + " dX", batch, fout, fin, 1))
    flops = sum(2 * m * k * n * cnt for _, m, k, n, cnt in shapes)
    return shapes, flops


# ---------------------------------------------------------------------------------------
# workers (each runs in its own process)
# ---------------------------------------------------------------------------------------
def peak_rss_mib():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def worker_gemm(args):
    import numpy as np

    shapes, _ = gemm_shapes(args.batch_size)
    rng = np.random.default_rng(0)
    total_flops, total_time = 0.0, 0.0
    rows = []
    for name, m, k, n, cnt in shapes:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        c = np.empty((m, n), dtype=np.float32)
        np.matmul(a, b, out=c)  # warm-up
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(cnt):
                np.matmul(a, b, out=c)
            times.append(time.perf_counter() - t0)
        t = min(times)
        fl = 2.0 * m * k * n * cnt
        rows.append((name, m, k, n, cnt, fl / t / 1e9))
        total_flops += fl
        total_time += t
    return {"gflops": total_flops / total_time / 1e9, "seconds": total_time, "rows": rows}


def build_minialex(batch, seed=0):
    """minialex.models.AlexNet when it exists (default 1000 classes), else the same net from nn layers."""
    sys.path.insert(0, ROOT)
    import numpy as np

    from minialex import nn

    try:
        from minialex.models import AlexNet  # noqa: F401
    except Exception:
        AlexNet = None
    if AlexNet is not None:
        model = AlexNet()
        source = "minialex.models.AlexNet"
    else:
        rng = np.random.default_rng(seed)
        layers = []
        for name, c, f, k, s, p, g in CONVS:
            layers.append((name, nn.Conv2d(c, f, k, stride=s, padding=p, groups=g, rng=rng)))
            layers.append(("relu" + name[-1], nn.ReLU(inplace=True)))
            if name in ("conv1", "conv2"):
                layers.append(("norm" + name[-1], nn.LocalResponseNorm(**LRN, groups=2)))
            if name in ("conv1", "conv2", "conv5"):
                layers.append(("pool" + name[-1], nn.MaxPool2d(3, 2)))
        layers.append(("flatten", nn.Flatten()))
        for name, fin, fout in FCS:
            layers.append((name, nn.Linear(fin, fout, rng=rng)))
            if name != "fc8":
                layers.append(("relu" + name[-1], nn.ReLU(inplace=True)))
                layers.append(("drop" + name[-1], nn.Dropout(0.5)))
        model = nn.Sequential(*layers)
        source = "nn.Sequential of minialex.nn layers"
    first = getattr(model, "conv1", None)
    if first is not None and hasattr(first, "input_grad"):
        first.input_grad = False  # the image needs no gradient (PyTorch skips it too)
    return model, source


def worker_minialex(args):
    import numpy as np

    sys.path.insert(0, ROOT)
    from minialex import backend, nn
    from minialex.optim import SGD

    xp = backend.get_backend(args.backend)
    if args.backend == "numpy":
        from minialex.nn import fast
        fast.retain_freed_memory()  # what the training script does too; see fast.py
    model, source = build_minialex(args.batch_size)
    model.to(backend=xp, dtype=np.float32)
    model.train()
    loss_fn = nn.SoftmaxCrossEntropy()
    opt = SGD(model.named_parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    rng = np.random.default_rng(1)
    x = xp.asarray(rng.standard_normal((args.batch_size, 3, 224, 224), dtype=np.float32))
    y = xp.asarray(rng.integers(0, 1000, size=args.batch_size))

    layers = list(model) if hasattr(model, "__iter__") else [m for _, m in model._modules.items()]
    names = list(model._modules.keys())
    # time every layer by wrapping its forward and backward (a perf_counter call is ~100 ns)
    fwd_t = {n: [] for n in names}
    bwd_t = {n: [] for n in names}
    for name, layer in zip(names, layers):
        def wrap(fn, store, name=name):
            def timed(a):
                t0 = time.perf_counter()
                out = fn(a)
                backend.synchronize(xp)
                store[name].append(time.perf_counter() - t0)
                return out
            return timed
        object.__setattr__(layer, "forward", wrap(layer.forward, fwd_t))
        object.__setattr__(layer, "backward", wrap(layer.backward, bwd_t))

    def step():
        opt.zero_grad()
        t0 = time.perf_counter()
        out = model.forward(x)
        loss = loss_fn.forward(out, y)
        t1 = time.perf_counter()
        model.backward(loss_fn.backward())
        t2 = time.perf_counter()
        opt.step()
        backend.synchronize(xp)
        t3 = time.perf_counter()
        return t3 - t0, {"fwd+loss": t1 - t0, "bwd": t2 - t1, "sgd": t3 - t2}, float(loss)

    gemm_seconds = _time_fast_gemms() if args.gemm_split and args.backend == "numpy" else None
    step()  # warm-up: allocates the reused buffers
    for d in (fwd_t, bwd_t):
        for v in d.values():
            v.clear()
    if gemm_seconds is not None:
        gemm_seconds[0] = 0.0
    times, parts, losses = [], [], []
    for _ in range(args.steps):
        t, p, loss = step()
        times.append(t)
        parts.append(p)
        losses.append(loss)
    med = lambda v: float(np.median(v)) if v else 0.0  # noqa: E731
    table = [(n, med(fwd_t[n]), med(bwd_t[n])) for n in names]
    return {
        "source": source, "times": times, "loss": losses,
        "parts": {k: med([p[k] for p in parts]) for k in parts[0]},
        "layers": table, "peak_rss_mib": peak_rss_mib(),
        "conv_gemm_thread_s": None if gemm_seconds is None else gemm_seconds[0] / args.steps,
        "conv_gemm_workers": _gemm_workers() if args.backend == "numpy" else None,
    }


def _gemm_workers():
    from minialex.nn import fast

    return fast.gemm_workers()


def _time_fast_gemms():
    """Replace minialex.nn.fast's numpy with a proxy whose matmul adds its duration (summed
    over the worker threads) to the returned one-element list."""
    import threading

    import numpy as np

    from minialex.nn import fast

    total, lock, matmul = [0.0], threading.Lock(), np.matmul

    class TimedNumpy:
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def matmul(*a, **k):
            t0 = time.perf_counter()
            out = matmul(*a, **k)
            dt = time.perf_counter() - t0
            with lock:
                total[0] += dt
            return out

    fast.np = TimedNumpy()
    return total


def worker_torch(args):
    import torch
    import torch.nn as tnn

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    class HalvesLRN(tnn.Module):
        """The paper's LRN on each half of the channels separately (minialex's groups=2).

        PyTorch divides alpha by the window size, so alpha = size * 1e-4 here is the same layer.
        """

        def __init__(self):
            super().__init__()
            self.lrn = tnn.LocalResponseNorm(LRN["size"], alpha=LRN["size"] * LRN["alpha"],
                                             beta=LRN["beta"], k=LRN["k"])

        def forward(self, x):
            a, b = x.chunk(2, dim=1)
            return torch.cat([self.lrn(a), self.lrn(b)], dim=1)

    layers = []
    for name, c, f, k, s, p, g in CONVS:
        layers.append(tnn.Conv2d(c, f, k, stride=s, padding=p, groups=g))
        layers.append(tnn.ReLU(inplace=True))
        if name in ("conv1", "conv2"):
            layers.append(HalvesLRN())
        if name in ("conv1", "conv2", "conv5"):
            layers.append(tnn.MaxPool2d(3, 2))
    layers.append(tnn.Flatten())
    for name, fin, fout in FCS:
        layers.append(tnn.Linear(fin, fout))
        if name != "fc8":
            layers.append(tnn.ReLU(inplace=True))
            layers.append(tnn.Dropout(0.5))
    model = tnn.Sequential(*layers).train()
    loss_fn = tnn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    x = torch.randn(args.batch_size, 3, 224, 224)
    y = torch.randint(0, 1000, (args.batch_size,))

    def step():
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0, float(loss)

    step()
    times = [step()[0] for _ in range(args.steps)]
    return {"version": torch.__version__, "times": times, "peak_rss_mib": peak_rss_mib()}


WORKERS = {"gemm": worker_gemm, "minialex": worker_minialex, "torch": worker_torch}


def run_worker(kind, args):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind,
           "--batch-size", str(args.batch_size), "--threads", str(args.threads),
           "--steps", str(args.steps), "--backend", args.backend] + (["--gemm-split"] if args.gemm_split else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{kind} worker failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def torch_importable():
    try:
        import importlib.util

        return importlib.util.find_spec("torch") is not None
    except Exception:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    ap.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch even when it is importable")
    ap.add_argument("--json", action="store_true", help="also print all results as one JSON line")
    ap.add_argument("--gemm-split", action="store_true",
                    help="also time the conv GEMMs inside the step and print where the step goes")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return

    use_torch = not args.no_torch and torch_importable()
    b = args.batch_size
    _, step_flops = gemm_shapes(b)
    results = {"gemm": run_worker("gemm", args), "minialex": run_worker("minialex", args)}
    if use_torch:
        results["torch"] = run_worker("torch", args)

    import platform

    import numpy as np

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    gemm = results["gemm"]["gflops"]
    m = results["minialex"]
    t_m = float(np.median(m["times"]))
    print(f"AlexNet training step (forward, loss, backward, SGD), float32, batch {b}, 224x224, "
          f"{args.threads} threads, backend {args.backend}")
    print(f"CPU: {cpu}; numpy {np.__version__}; model: {m['source']}")
    print(f"step FLOPs: {step_flops / 1e9:.1f} GFLOP ({step_flops / b / 1e9:.2f} GFLOP per image; "
          f"GEMMs only, forward + dW + dX, conv1 without dX)")
    print(f"sgemm at the network's GEMM shapes, same run: {gemm:.1f} GFLOP/s "
          f"(ceiling {gemm * 1e9 * b / step_flops:.1f} img/s)")
    print()
    print(f"{'':10s} {'step s (median)':>16s} {'min s':>8s} {'img/s':>8s} {'GFLOP/s':>9s} "
          f"{'of GEMM':>8s} {'peak RSS':>10s}")

    def line(name, times, rss):
        med, lo = float(np.median(times)), min(times)
        gf = step_flops / med / 1e9
        print(f"{name:10s} {med:16.3f} {lo:8.3f} {b / med:8.2f} {gf:9.1f} {gf / gemm:8.1%} "
              f"{rss:7.0f} MiB")

    line("minialex", m["times"], m["peak_rss_mib"])
    if use_torch:
        t = results["torch"]
        line("torch " + t["version"], t["times"], t["peak_rss_mib"])
        t_t = float(np.median(t["times"]))
        print(f"\nminialex / PyTorch images per second: {t_t / t_m:.2f}x;  peak RSS "
              f"{m['peak_rss_mib']:.0f} vs {t['peak_rss_mib']:.0f} MiB")
    elif not args.no_torch:
        print("\n(torch is not importable: PyTorch figures skipped)")
    print(f"\nminialex step parts (median s): " + ", ".join(f"{k} {v:.3f}" for k, v in m["parts"].items()))
    print("\nper-layer times, minialex (median s over the timed steps):")
    print(f"  {'layer':10s} {'forward':>9s} {'backward':>9s} {'total':>9s}")
    for name, f, bk in m["layers"]:
        print(f"  {name:10s} {f:9.3f} {bk:9.3f} {f + bk:9.3f}")
    tf = sum(r[1] for r in m["layers"])
    tb = sum(r[2] for r in m["layers"])
    print(f"  {'sum':10s} {tf:9.3f} {tb:9.3f} {tf + tb:9.3f}")
    if m.get("conv_gemm_thread_s"):
        shapes, _ = gemm_shapes(b)
        conv_flops = sum(2.0 * mm * k * n * cnt for name, mm, k, n, cnt in shapes if name.startswith("conv"))
        busy = m["conv_gemm_thread_s"]
        workers = m["conv_gemm_workers"]  # GEMMs running at once (one single-threaded BLAS each)
        fc = sum(f + bk for name, f, bk in m["layers"] if name.startswith("fc"))
        conv_wall = busy / workers
        print(f"\nwhere the minialex step goes (--gemm-split; {t_m:.3f} s median step):")
        print(f"  conv GEMMs   {busy:6.3f} thread-s = {conv_wall:.3f} s on {workers} threads "
              f"({conv_flops / busy / 1e9:.0f} GFLOP/s per thread, {conv_flops / conv_wall / 1e9:.0f} in all)")
        print(f"  fc layers    {fc:6.3f} s (GEMMs and their bias adds, on BLAS's own threads)")
        print(f"  other        {t_m - conv_wall - fc:6.3f} s (im2col/col2im and transposes, LRN, pooling, "
              f"ReLU, dropout, loss, SGD)")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
