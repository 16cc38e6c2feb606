"""One AlexNet training step (forward, loss, backward, SGD update): minialex vs PyTorch.

    python benchmarks/bench_train_step.py --batch-size 128 --threads 2 [--steps 3] [--no-torch]

The minialex step is the one examples/train_imagenet.py runs (minialex/train/trainer.py,
``Trainer.train_step``): the paper's ``AlexNet()`` with its defaults (the images get no
gradient), SoftmaxCrossEntropy, ``zero_grad``, backward and the paper's SGD with momentum
0.9 and weight decay 5e-4, on the default implementations (the CPU or CUDA kernels), with
the training script's process setting for NumPy (``runtime.retain_freed_memory``).
``--reference`` times the same step inside ``minialex.nn.reference()`` instead.

Prints, for minialex: images/s, GFLOP/s, the fraction of the GEMM rate measured
in the same run (sgemm at the network's own forward and backward GEMM shapes),
peak resident memory, and a per-layer table of forward and backward times.
When torch is importable it also runs the identical network in PyTorch (groups,
LRN with the same constants applied to each half of the channels, max-pool,
dropout, CrossEntropyLoss, SGD with momentum and weight decay) and prints its
figures and the ratio. Every size comes from the table in minialex/models/architecture.py.

Each measurement runs in its own subprocess so that peak RSS (ru_maxrss of the
child) and thread settings do not mix; the thread count is set through the
environment before NumPy or torch is imported. Timings are the median of
``--steps`` steps after one warm-up step (min is printed too).
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from minialex.models import alexnet_config  # noqa: E402
from minialex.models.architecture import POOL_KERNEL, POOL_STRIDE, gemm_shapes as table_gemm_shapes  # noqa: E402
from minialex.models.architecture import layers as table_layers  # noqa: E402

CFG = alexnet_config("imagenet")
LR, MOMENTUM, WD = 0.01, 0.9, 5e-4  # the training script's defaults for ImageNet


def gemm_shapes(batch):
    """[(name, M, K, N, count)] of every GEMM in one training step, and the step's FLOPs."""
    shapes = table_gemm_shapes(CFG, batch)
    return shapes, sum(2 * m * k * n * cnt for _, m, k, n, cnt in shapes)


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


def worker_minialex(args):
    import numpy as np

    from minialex import backend, nn
    from minialex.kernels.cpu import runtime
    from minialex.models import AlexNet
    from minialex.optim import SGD

    xp = backend.get_backend(args.backend)
    if args.backend == "numpy":
        runtime.retain_freed_memory()  # what the training script does for NumPy runs
    model = AlexNet().to(xp)
    model.train()
    loss_fn = nn.SoftmaxCrossEntropy()
    opt = SGD(list(model.named_parameters()), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    rng = np.random.default_rng(1)
    x = xp.asarray(rng.standard_normal((args.batch_size, 3, CFG.input_size, CFG.input_size), dtype=np.float32))
    y = xp.asarray(rng.integers(0, CFG.num_classes, size=args.batch_size))

    names = [name for name, _ in model.named_children()]
    # time every layer by wrapping its forward and backward (a perf_counter call is ~100 ns)
    fwd_t = {n: [] for n in names}
    bwd_t = {n: [] for n in names}
    for name, layer in model.named_children():
        def wrap(fn, store, name=name):
            def timed(*a, **k):
                t0 = time.perf_counter()
                out = fn(*a, **k)
                backend.synchronize(xp)
                store[name].append(time.perf_counter() - t0)
                return out
            return timed
        object.__setattr__(layer, "forward", wrap(layer.forward, fwd_t))
        object.__setattr__(layer, "backward", wrap(layer.backward, bwd_t))

    def step():
        # the order of Trainer.train_step: forward, loss, zero_grad, backward, SGD
        t0 = time.perf_counter()
        out = model.forward(x)
        loss = loss_fn.forward(out, y)
        t1 = time.perf_counter()
        opt.zero_grad()
        model.backward(loss_fn.backward())
        t2 = time.perf_counter()
        opt.step()
        backend.synchronize(xp)
        t3 = time.perf_counter()
        return t3 - t0, {"fwd+loss": t1 - t0, "bwd": t2 - t1, "sgd": t3 - t2}, float(loss)

    with (nn.reference() if args.reference else contextlib.nullcontext()):
        step()  # warm-up: allocates the reused buffers
        for d in (fwd_t, bwd_t):
            for v in d.values():
                v.clear()
        times, parts, losses = [], [], []
        for _ in range(args.steps):
            t, p, loss = step()
            times.append(t)
            parts.append(p)
            losses.append(loss)
    med = lambda v: float(np.median(v)) if v else 0.0  # noqa: E731
    table = [(n, med(fwd_t[n]), med(bwd_t[n])) for n in names]
    return {
        "source": "minialex.models.AlexNet" + (" in nn.reference()" if args.reference else ""),
        "times": times, "loss": losses,
        "parts": {k: med([p[k] for p in parts]) for k in parts[0]},
        "layers": table, "peak_rss_mib": peak_rss_mib(),
    }


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
            self.lrn = tnn.LocalResponseNorm(CFG.lrn_size, alpha=CFG.lrn_size * CFG.lrn_alpha,
                                             beta=CFG.lrn_beta, k=CFG.lrn_k)

        def forward(self, x):
            a, b = x.chunk(2, dim=1)
            return torch.cat([self.lrn(a), self.lrn(b)], dim=1)

    layers = []
    for layer in table_layers(CFG):  # the same table as minialex's network
        row = layer.row
        if layer.flatten_before:
            layers.append(tnn.Flatten())
        if row.kind == "conv":
            layers.append(tnn.Conv2d(layer.in_maps, row.width, row.kernel, stride=row.stride,
                                     padding=row.padding, groups=layer.groups))
        else:
            layers.append(tnn.Linear(layer.in_maps, row.width))
        for kind, _ in layer.followers:
            layers.append({"relu": lambda: tnn.ReLU(inplace=True), "lrn": HalvesLRN,
                           "pool": lambda: tnn.MaxPool2d(POOL_KERNEL, POOL_STRIDE),
                           "dropout": lambda: tnn.Dropout(CFG.dropout)}[kind]())
    model = tnn.Sequential(*layers).train()
    loss_fn = tnn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    x = torch.randn(args.batch_size, 3, CFG.input_size, CFG.input_size)
    y = torch.randint(0, CFG.num_classes, (args.batch_size,))

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
           "--steps", str(args.steps), "--backend", args.backend] + (["--reference"] if args.reference else [])
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
    ap.add_argument("--reference", action="store_true",
                    help="time minialex's readable reference implementations (nn.reference()) instead")
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
    print(f"AlexNet training step (forward, loss, backward, SGD), float32, batch {b}, {CFG.input_size}x{CFG.input_size}, "
          f"{args.threads} threads, backend {args.backend}")
    print(f"CPU: {cpu}; numpy {np.__version__}; model: {m['source']}")
    print(f"step FLOPs: {step_flops / 1e9:.1f} GFLOP ({step_flops / b / 1e9:.2f} GFLOP per image; "
          f"GEMMs only, forward + dW + dX, conv1 without dX: the images need no gradient)")
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
    print("\nminialex step parts (median s): " + ", ".join(f"{k} {v:.3f}" for k, v in m["parts"].items()))
    print("\nper-layer times, minialex (median s over the timed steps):")
    print(f"  {'layer':10s} {'forward':>9s} {'backward':>9s} {'total':>9s}")
    for name, f, bk in m["layers"]:
        print(f"  {name:10s} {f:9.3f} {bk:9.3f} {f + bk:9.3f}")
    tf = sum(r[1] for r in m["layers"])
    tb = sum(r[2] for r in m["layers"])
    print(f"  {'sum':10s} {tf:9.3f} {tb:9.3f} {tf + tb:9.3f}")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
