"""One AlexNet training step (forward, loss, backward, SGD update): minialex vs PyTorch, for
any preset of minialex/models/config.py.

    python benchmarks/bench_train_step.py [--preset imagenet] [--batch-size N ...] [--threads 2]
                                          [--steps S] [--rounds R] [--no-torch] [--reference]
    python benchmarks/bench_train_step.py --preset all      # every preset, and a summary table
    python benchmarks/bench_train_step.py --preset all --no-torch --rounds 3 --baseline /tmp/base
                                          # this checkout against another one, alternating

The minialex step is the one the training script runs for that preset (minialex/train/trainer.py,
``Trainer.train_step``): ``AlexNet(preset=NAME)`` with its defaults (the images get no
gradient), SoftmaxCrossEntropy, ``zero_grad``, backward and the paper's SGD with momentum
0.9 and weight decay 5e-4 at the preset's learning rate, on the default implementations (the
CPU or CUDA kernels), with the training script's process setting for NumPy
(``runtime.retain_freed_memory``). Nothing is set only for the benchmark. ``--reference``
times the same step inside ``minialex.nn.reference()`` instead.

Without ``--batch-size`` a preset runs at the batch size its training recipe uses
(minialex/train/config.py: 128 for imagenet and cifar10, 64 for synthetic, 16 for tiny) and at 128.

Prints, per batch size, for minialex: images/s, GFLOP/s, the fraction of the GEMM rate
measured in the same run (sgemm at the network's own forward and backward GEMM shapes),
peak resident memory, and a per-layer table of forward and backward times. When torch is
importable it also runs the identical network in PyTorch, built from the same table (groups,
LRN with the same constants applied to each half of the channels, max-pool, dropout,
CrossEntropyLoss, SGD with momentum and weight decay), and prints its figures and the ratio.

Each measurement runs in its own subprocess so that peak RSS (ru_maxrss of the child) and
thread settings do not mix; the thread count is set through the environment before NumPy or
torch is imported. Timings are medians over the timed steps, after warm-up steps; without
``--steps`` each worker times enough steps to fill about ``--seconds`` (at least 3 steps).
With ``--rounds R`` the minialex and torch workers alternate R times and the medians are over
all their steps, so that a change in the machine's load hits both. The per-layer table comes
from separate steps whose layers are wrapped by timers (a few, after the timed ones), so the
wrappers' cost is not in the step time.
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
# a --baseline worker imports minialex from the other checkout (MINIALEX_BENCH_ROOT)
sys.path.insert(0, os.environ.get("MINIALEX_BENCH_ROOT", ROOT))

from minialex.models import alexnet_config  # noqa: E402
from minialex.models.architecture import POOL_KERNEL, POOL_STRIDE, gemm_shapes as table_gemm_shapes  # noqa: E402
from minialex.models.architecture import layers as table_layers  # noqa: E402

PRESETS = ("imagenet", "cifar10", "synthetic", "tiny")
MOMENTUM, WD = 0.9, 5e-4  # the training script's defaults
LAYER_STEPS = 3  # wrapped steps for the per-layer table


def recipe(preset):
    """(usual batch size, learning rate) of a preset's training recipe (minialex/train/config.py)."""
    from minialex.train.config import RECIPES, RECIPE_KEYS

    r = dict(zip(RECIPE_KEYS, RECIPES["paper" if preset == "imagenet" else preset]))
    return r["batch_size"], r["lr"]


def gemm_shapes(cfg, batch):
    """[(name, M, K, N, count)] of every GEMM in one training step, and the step's FLOPs."""
    shapes = table_gemm_shapes(cfg, batch)
    return shapes, sum(2 * m * k * n * cnt for _, m, k, n, cnt in shapes)


# ---------------------------------------------------------------------------------------
# workers (each runs in its own process)
# ---------------------------------------------------------------------------------------
def peak_rss_mib():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def timed_steps(step, steps, seconds):
    """Run step() ``steps`` times, or (steps=0) until about ``seconds`` have passed (at least 3);
    returns the list of times step() returned."""
    times = []
    t_end = time.perf_counter() + seconds
    while (len(times) < steps) if steps else (len(times) < 3 or time.perf_counter() < t_end):
        times.append(step())
    return times


def worker_gemm(args):
    import numpy as np

    shapes, _ = gemm_shapes(alexnet_config(args.preset), args.batch_size)
    rng = np.random.default_rng(0)
    total_flops, total_time = 0.0, 0.0
    rows = []
    for name, m, k, n, cnt in shapes:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        c = np.empty((m, n), dtype=np.float32)
        np.matmul(a, b, out=c)  # warm-up
        fl = 2.0 * m * k * n * cnt
        reps = max(1, int(2e8 // fl))  # small shapes: repeat so a timing is not all timer
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(reps * cnt):
                np.matmul(a, b, out=c)
            times.append((time.perf_counter() - t0) / reps)
        t = min(times)
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

    cfg = alexnet_config(args.preset)
    _, lr = recipe(args.preset)
    xp = backend.get_backend(args.backend)
    if args.backend == "numpy":
        runtime.retain_freed_memory()  # what the training script does for NumPy runs
    model = AlexNet(preset=args.preset).to(xp)
    model.train()
    loss_fn = nn.SoftmaxCrossEntropy()
    opt = SGD(list(model.named_parameters()), lr=lr, momentum=MOMENTUM, weight_decay=WD)
    rng = np.random.default_rng(1)
    shape = (args.batch_size, cfg.in_channels, cfg.input_size, cfg.input_size)
    x = xp.asarray(rng.standard_normal(shape, dtype=np.float32))
    y = xp.asarray(rng.integers(0, cfg.num_classes, size=args.batch_size))
    parts, losses = [], []

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
        parts.append({"fwd+loss": t1 - t0, "bwd": t2 - t1, "sgd": t3 - t2})
        losses.append(loss)
        return t3 - t0

    names = [name for name, _ in model.named_children()]
    fwd_t = {n: [] for n in names}
    bwd_t = {n: [] for n in names}

    def wrap_layers():
        # time every layer by wrapping its forward and backward (a perf_counter call is ~100 ns)
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

    with (nn.reference() if args.reference else contextlib.nullcontext()):
        for _ in range(args.warmup):
            step()  # warm-up: allocates the reused buffers
        parts.clear()
        times = timed_steps(step, args.steps, args.seconds)
        step_parts = list(parts)
        loss = float(losses[-1])  # read once, after the timing (on a GPU a read is a sync)
        wrap_layers()
        for _ in range(min(LAYER_STEPS, len(times))):
            step()
    med = lambda v: float(np.median(v)) if v else 0.0  # noqa: E731
    table = [(n, med(fwd_t[n]), med(bwd_t[n])) for n in names]
    return {
        "source": "minialex.models.AlexNet" + (" in nn.reference()" if args.reference else ""),
        "times": times, "loss": loss,
        "parts": {k: med([p[k] for p in step_parts]) for k in step_parts[0]},
        "layers": table, "peak_rss_mib": peak_rss_mib(),
    }


def torch_network(cfg):
    """The preset's network in PyTorch, from the same table as minialex's."""
    import torch
    import torch.nn as tnn

    class HalvesLRN(tnn.Module):
        """The paper's LRN on each half of the channels separately (minialex's groups=2).

        PyTorch divides alpha by the window size, so alpha = size * alpha here is the same layer.
        """

        def __init__(self):
            super().__init__()
            self.lrn = tnn.LocalResponseNorm(cfg.lrn_size, alpha=cfg.lrn_size * cfg.lrn_alpha,
                                             beta=cfg.lrn_beta, k=cfg.lrn_k)

        def forward(self, x):
            a, b = x.chunk(2, dim=1)
            return torch.cat([self.lrn(a), self.lrn(b)], dim=1)

    layers = []
    for layer in table_layers(cfg):
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
                           "dropout": lambda: tnn.Dropout(cfg.dropout)}[kind]())
    return tnn.Sequential(*layers)


def worker_torch(args):
    import torch
    import torch.nn as tnn

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = alexnet_config(args.preset)
    _, lr = recipe(args.preset)
    model = torch_network(cfg).train()
    loss_fn = tnn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=MOMENTUM, weight_decay=WD)
    x = torch.randn(args.batch_size, cfg.in_channels, cfg.input_size, cfg.input_size)
    y = torch.randint(0, cfg.num_classes, (args.batch_size,))

    def step():
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    for _ in range(args.warmup):
        step()
    times = timed_steps(step, args.steps, args.seconds)
    return {"version": torch.__version__, "times": times, "peak_rss_mib": peak_rss_mib()}


WORKERS = {"gemm": worker_gemm, "minialex": worker_minialex, "torch": worker_torch}


def run_worker(kind, args, batch, root=None):
    """One worker in its own process; ``root``: import minialex from that checkout (--baseline)."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    if root:
        env["MINIALEX_BENCH_ROOT"] = root
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--preset", args.preset,
           "--batch-size", str(batch), "--threads", str(args.threads), "--steps", str(args.steps),
           "--seconds", str(args.seconds), "--warmup", str(args.warmup),
           "--backend", args.backend] + (["--reference"] if args.reference else [])
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


def measure(args, batch, use_torch):
    """The GEMM reference, then minialex, the --baseline checkout's minialex and torch
    (alternating ``--rounds`` times)."""
    results = {"gemm": run_worker("gemm", args, batch)}
    runs = [("minialex", "minialex", None)]
    if args.baseline:
        runs.append(("baseline", "minialex", args.baseline))
    if use_torch:
        runs.append(("torch", "torch", None))
    for r in range(args.rounds):
        for key, kind, root in runs:
            got = run_worker(kind, args, batch, root)
            if key in results:  # pool the steps of every round; keep the first round's other figures
                results[key]["times"] += got["times"]
                results[key]["peak_rss_mib"] = max(results[key]["peak_rss_mib"], got["peak_rss_mib"])
            else:
                results[key] = got
    return results


def report(args, batch, results, use_torch):
    import platform

    import numpy as np

    cfg = alexnet_config(args.preset)
    _, step_flops = gemm_shapes(cfg, batch)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    gemm = results["gemm"]["gflops"]
    m = results["minialex"]
    t_m = float(np.median(m["times"]))
    s = cfg.input_size
    print(f"AlexNet training step (forward, loss, backward, SGD), preset {args.preset}, float32, batch {batch}, "
          f"{cfg.in_channels}x{s}x{s}, {args.threads} threads, backend {args.backend}")
    print(f"CPU: {cpu}; numpy {np.__version__}; model: {m['source']}; load average {os.getloadavg()[0]:.2f}")
    print(f"step FLOPs: {step_flops / 1e9:.2f} GFLOP ({step_flops / batch / 1e6:.1f} MFLOP per image; "
          f"GEMMs only, forward + dW + dX, conv1 without dX: the images need no gradient)")
    print(f"sgemm at the network's GEMM shapes, same run: {gemm:.1f} GFLOP/s "
          f"(ceiling {gemm * 1e9 * batch / step_flops:.1f} img/s)")
    print()
    print(f"{'':18s} {'step s (median)':>16s} {'min s':>8s} {'steps':>6s} {'img/s':>8s} {'GFLOP/s':>9s} "
          f"{'of GEMM':>8s} {'peak RSS':>10s}")

    def line(name, times, rss):
        med, lo = float(np.median(times)), min(times)
        gf = step_flops / med / 1e9
        print(f"{name:18s} {med:16.4f} {lo:8.4f} {len(times):6d} {batch / med:8.1f} {gf:9.1f} "
              f"{gf / gemm:8.1%} {rss:7.0f} MiB")

    line("minialex", m["times"], m["peak_rss_mib"])
    summary = {"preset": args.preset, "batch": batch, "minialex_s": t_m, "minialex_img_s": batch / t_m,
               "load": os.getloadavg()[0]}
    if "baseline" in results:
        b = results["baseline"]
        line("baseline", b["times"], b["peak_rss_mib"])
        t_b = float(np.median(b["times"]))
        print(f"\nbaseline: minialex from {args.baseline}; this / baseline step time: {t_m / t_b:.3f};  peak RSS "
              f"{m['peak_rss_mib']:.0f} vs {b['peak_rss_mib']:.0f} MiB")
        summary.update(baseline_s=t_b, baseline_rss=b["peak_rss_mib"], rss=m["peak_rss_mib"], vs_baseline=t_m / t_b)
    if use_torch:
        t = results["torch"]
        line("torch " + t["version"], t["times"], t["peak_rss_mib"])
        t_t = float(np.median(t["times"]))
        print(f"\nminialex / PyTorch images per second: {t_t / t_m:.2f}x;  peak RSS "
              f"{m['peak_rss_mib']:.0f} vs {t['peak_rss_mib']:.0f} MiB")
        summary.update(torch_s=t_t, torch_img_s=batch / t_t, ratio=t_t / t_m)
    elif not args.no_torch:
        print("\n(torch is not importable: PyTorch figures skipped)")
    print("\nminialex step parts (median s): " + ", ".join(f"{k} {v:.4f}" for k, v in m["parts"].items()))
    print("\nper-layer times, minialex (median s over the wrapped steps):")
    print(f"  {'layer':10s} {'forward':>9s} {'backward':>9s} {'total':>9s}")
    for name, f, bk in m["layers"]:
        print(f"  {name:10s} {f:9.4f} {bk:9.4f} {f + bk:9.4f}")
    tf = sum(r[1] for r in m["layers"])
    tb = sum(r[2] for r in m["layers"])
    print(f"  {'sum':10s} {tf:9.4f} {tb:9.4f} {tf + tb:9.4f}")
    print()
    return summary


# ---------------------------------------------------------------------------------------
# --backend cupy: minialex, PyTorch (cuDNN) and cuBLAS on the same GPU, in the same run
# ---------------------------------------------------------------------------------------
# Every figure comes from the GPU the workers run on (device 0; choose it with
# CUDA_VISIBLE_DEVICES). A timed step is queued whole and waited for once: one synchronisation
# per step, on an event recorded after its last launch; the parts and the per-layer table are
# read from CUDA events, the per-layer table in separate untimed steps. TF32 is off for
# minialex unless --tf32 (CuPy reads CUPY_TF32 when it is imported, so each setting is its own
# process); PyTorch runs once with TF32 off and once with it on, cudnn.benchmark on in both.
def set_cupy_tf32(on):
    """CuPy's TF32 switch for float32 GEMMs (cuBLAS); must be set before CuPy is imported."""
    os.environ["CUPY_TF32"] = "1" if on else "0"


def cupy_device_info(cp):
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"]
    free, total = cp.cuda.Device().mem_info
    return {"gpu": name.decode() if isinstance(name, bytes) else str(name),
            "sm": f"{props['major']}.{props['minor']}", "gpu_mem_mib": total / 2**20,
            "cupy": cp.__version__, "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
            "driver": cp.cuda.runtime.driverGetVersion()}


def worker_gemm_cupy(args):
    """cuBLAS (cupy.matmul) at the network's GEMM shapes, float32, timed with CUDA events."""
    set_cupy_tf32(args.tf32)
    import numpy as np

    from minialex import backend

    cp = backend.get_backend("cupy")
    shapes, _ = gemm_shapes(alexnet_config(args.preset), args.batch_size)
    rng = np.random.default_rng(0)
    start, end = cp.cuda.Event(), cp.cuda.Event()
    total_flops, total_time, rows = 0.0, 0.0, []
    for name, m, k, n, cnt in shapes:
        a = cp.asarray(rng.standard_normal((m, k), dtype=np.float32))
        b = cp.asarray(rng.standard_normal((k, n), dtype=np.float32))
        c = cp.empty((m, n), dtype=cp.float32)

        def timed(reps):
            start.record()
            for _ in range(reps):
                cp.matmul(a, b, out=c)
            end.record()
            end.synchronize()
            return cp.cuda.get_elapsed_time(start, end) / 1e3 / reps

        timed(2)  # warm-up: cuBLAS picks its kernel
        reps = int(min(200, max(3, 0.02 / max(timed(1), 1e-6))))  # about 20 ms of GPU time per timing
        t = min(timed(reps) for _ in range(3))
        fl = 2.0 * m * k * n * cnt
        rows.append((name, m, k, n, cnt, fl / (t * cnt) / 1e9))
        total_flops += fl
        total_time += t * cnt
    return {"gflops": total_flops / total_time / 1e9, "seconds": total_time, "rows": rows,
            "tf32": bool(args.tf32), **cupy_device_info(cp)}


def worker_minialex_cupy(args):
    """The training step of worker_minialex on CuPy, one synchronisation per timed step."""
    set_cupy_tf32(args.tf32)
    import numpy as np

    from minialex import backend, nn
    from minialex.models import AlexNet
    from minialex.optim import SGD

    cp = backend.get_backend("cupy")  # BackendError, in one line, where CuPy cannot run a kernel
    cfg = alexnet_config(args.preset)
    _, lr = recipe(args.preset)
    model = AlexNet(preset=args.preset).to(cp)
    model.train()
    loss_fn = nn.SoftmaxCrossEntropy()
    opt = SGD(list(model.named_parameters()), lr=lr, momentum=MOMENTUM, weight_decay=WD)
    rng = np.random.default_rng(1)
    shape = (args.batch_size, cfg.in_channels, cfg.input_size, cfg.input_size)
    x = cp.asarray(rng.standard_normal(shape, dtype=np.float32))  # resident, as torch's: no upload timed
    y = cp.asarray(rng.integers(0, cfg.num_classes, size=args.batch_size))
    ev = [cp.cuda.Event() for _ in range(4)]
    gpu, queued, parts = [], [], []

    def step():
        # the order of Trainer.train_step: forward, loss, zero_grad, backward, SGD
        t0 = time.perf_counter()
        ev[0].record()
        out = model.forward(x)
        loss_fn.forward(out, y)
        ev[1].record()
        opt.zero_grad()
        model.backward(loss_fn.backward())
        ev[2].record()
        opt.step()
        ev[3].record()
        queued.append(time.perf_counter() - t0)  # host time to queue the step
        ev[3].synchronize()  # the step's one synchronisation
        t = time.perf_counter() - t0
        ms = cp.cuda.get_elapsed_time
        gpu.append(ms(ev[0], ev[3]) / 1e3)
        parts.append({"fwd+loss": ms(ev[0], ev[1]) / 1e3, "bwd": ms(ev[1], ev[2]) / 1e3,
                      "sgd": ms(ev[2], ev[3]) / 1e3})
        return t

    names = [name for name, _ in model.named_children()]
    marks = {"forward": {n: [] for n in names}, "backward": {n: [] for n in names}}

    def wrap_layers():
        # for the per-layer table only: an event pair around each layer call, read after the step
        for name, layer in model.named_children():
            def wrap(fn, store, name=name):
                def timed(*a, **k):
                    e0, e1 = cp.cuda.Event(), cp.cuda.Event()
                    e0.record()
                    out = fn(*a, **k)
                    e1.record()
                    store[name].append((e0, e1))
                    return out
                return timed
            object.__setattr__(layer, "forward", wrap(layer.forward, marks["forward"]))
            object.__setattr__(layer, "backward", wrap(layer.backward, marks["backward"]))

    with (nn.reference() if args.reference else contextlib.nullcontext()):
        for _ in range(args.warmup):
            step()  # warm-up: compiles the kernels, fills the memory pool
        gpu.clear()
        queued.clear()
        parts.clear()
        times = timed_steps(step, args.steps, args.seconds)
        timed_gpu, timed_queued, timed_parts = list(gpu), list(queued), list(parts)
        loss = float(loss_fn.forward(model.forward(x), y))
        wrap_layers()
        for _ in range(min(LAYER_STEPS, len(times))):
            step()
    cp.cuda.get_current_stream().synchronize()
    med = lambda v: float(np.median(v)) if v else 0.0  # noqa: E731
    ms = cp.cuda.get_elapsed_time
    layer_s = {d: {n: med([ms(a, b) / 1e3 for a, b in marks[d][n]]) for n in names} for d in marks}
    pool = cp.get_default_memory_pool()
    return {
        "source": "minialex.models.AlexNet" + (" in nn.reference()" if args.reference else ""),
        "times": times, "gpu_times": timed_gpu, "queued": med(timed_queued), "loss": loss,
        "parts": {k: med([p[k] for p in timed_parts]) for k in timed_parts[0]},
        "layers": [(n, layer_s["forward"][n], layer_s["backward"][n]) for n in names],
        "peak_device_mib": pool.total_bytes() / 2**20, "tf32": bool(args.tf32),
        "peak_rss_mib": peak_rss_mib(), **cupy_device_info(cp),
    }


def worker_torch_cuda(args):
    """The same network and step in PyTorch on the GPU: cuDNN, float32, TF32 as --tf32 says."""
    import torch
    import torch.nn as tnn

    if not torch.cuda.is_available():
        return {"error": f"torch {torch.__version__} has no CUDA GPU here (a CPU-only build, or no driver)"}
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = bool(args.tf32)
    torch.backends.cudnn.allow_tf32 = bool(args.tf32)
    torch.manual_seed(0)
    dev = torch.device("cuda", 0)
    cfg = alexnet_config(args.preset)
    _, lr = recipe(args.preset)
    model = torch_network(cfg).to(dev).train()
    loss_fn = tnn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=MOMENTUM, weight_decay=WD)
    x = torch.randn(args.batch_size, cfg.in_channels, cfg.input_size, cfg.input_size, device=dev)
    y = torch.randint(0, cfg.num_classes, (args.batch_size,), device=dev)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    gpu = []

    def step():
        t0 = time.perf_counter()
        start.record()
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        end.record()
        end.synchronize()  # the step's one synchronisation
        gpu.append(start.elapsed_time(end) / 1e3)
        return time.perf_counter() - t0

    torch.cuda.reset_peak_memory_stats(dev)
    for _ in range(max(args.warmup, 3)):  # cudnn.benchmark tries its algorithms in the first steps
        step()
    gpu.clear()
    times = timed_steps(step, args.steps, args.seconds)
    return {"version": torch.__version__, "cudnn": torch.backends.cudnn.version(), "tf32": bool(args.tf32),
            "gpu": torch.cuda.get_device_name(dev), "times": times, "gpu_times": list(gpu),
            "peak_device_mib": torch.cuda.max_memory_allocated(dev) / 2**20,
            "reserved_device_mib": torch.cuda.max_memory_reserved(dev) / 2**20}


WORKERS.update({"gemm_cupy": worker_gemm_cupy, "minialex_cupy": worker_minialex_cupy,
                "torch_cuda": worker_torch_cuda})


def run_gpu_worker(kind, args, batch, tf32):
    """One GPU worker in its own process (CuPy's TF32 mode is fixed at import); its JSON result."""
    env = dict(os.environ, CUPY_TF32="1" if tf32 else "0")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--preset", args.preset,
           "--batch-size", str(batch), "--steps", str(args.steps), "--seconds", str(args.seconds),
           "--warmup", str(args.warmup), "--backend", "cupy"]
    cmd += (["--tf32"] if tf32 else []) + (["--reference"] if args.reference else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        last = (proc.stderr.strip().splitlines() or [""])[-1]  # a BackendError says what to install
        raise SystemExit(f"{kind} worker failed (exit {proc.returncode}): {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_cupy(args, batch, use_torch):
    """cuBLAS at both math modes, then minialex and torch (fp32, tf32), alternating --rounds times."""
    results = {"gemm": run_gpu_worker("gemm_cupy", args, batch, False),
               "gemm_tf32": run_gpu_worker("gemm_cupy", args, batch, True)}
    runs = [("minialex", "minialex_cupy", args.tf32)]
    if use_torch:
        runs += [("torch", "torch_cuda", False), ("torch_tf32", "torch_cuda", True)]
    for _ in range(args.rounds):
        for key, kind, tf32 in runs:
            got = run_gpu_worker(kind, args, batch, tf32)
            if key in results and "times" in got:  # pool the steps of every round
                for field in ("times", "gpu_times"):
                    results[key][field] += got[field]
                results[key]["peak_device_mib"] = max(results[key]["peak_device_mib"], got["peak_device_mib"])
            else:
                results[key] = got
    return results


def report_cupy(args, batch, results, use_torch):
    import numpy as np

    cfg = alexnet_config(args.preset)
    _, step_flops = gemm_shapes(cfg, batch)
    m = results["minialex"]
    gemm = results["gemm_tf32" if m["tf32"] else "gemm"]["gflops"]
    s = cfg.input_size
    print(f"AlexNet training step (forward, loss, backward, SGD) on the GPU, preset {args.preset}, float32, "
          f"batch {batch}, {cfg.in_channels}x{s}x{s}")
    print(f"GPU: {m['gpu']} (sm {m['sm']}, {m['gpu_mem_mib']:.0f} MiB); CuPy {m['cupy']}, CUDA runtime "
          f"{m['cuda_runtime']}, driver {m['driver']}; model: {m['source']}; minialex TF32 "
          f"{'on (--tf32)' if m['tf32'] else 'off'}")
    print(f"step FLOPs: {step_flops / 1e9:.2f} GFLOP (GEMMs only, forward + dW + dX, conv1 without dX)")
    for key, label in (("gemm", "fp32"), ("gemm_tf32", "tf32")):
        g = results[key]["gflops"]
        print(f"cuBLAS (cupy.matmul) at the network's GEMM shapes, {label}: {g:.0f} GFLOP/s "
              f"(ceiling {g * 1e9 * batch / step_flops:.0f} img/s)")
    print("each timed step is queued whole and synchronised once; GPU ms from CUDA events around it\n")
    print(f"{'':22s} {'step s (median)':>16s} {'min s':>8s} {'GPU s':>8s} {'steps':>6s} {'img/s':>8s} "
          f"{'GFLOP/s':>9s} {'of GEMM':>8s} {'peak dev mem':>13s}")

    def line(name, r, ceiling):
        med = float(np.median(r["times"]))
        gf = step_flops / med / 1e9
        print(f"{name:22s} {med:16.5f} {min(r['times']):8.5f} {float(np.median(r['gpu_times'])):8.5f} "
              f"{len(r['times']):6d} {batch / med:8.1f} {gf:9.0f} {gf / ceiling:8.1%} "
              f"{r['peak_device_mib']:9.0f} MiB")
        return med

    t_m = line("minialex" + (" (tf32)" if m["tf32"] else ""), m, gemm)
    summary = {"preset": args.preset, "batch": batch, "minialex_s": t_m, "minialex_img_s": batch / t_m,
               "load": os.getloadavg()[0], "gpu": m["gpu"]}
    torch_rows = [(k, results[k]) for k in ("torch", "torch_tf32") if k in results]
    for key, t in torch_rows:
        if "error" in t:
            print(f"{key:22s} skipped: {t['error']}")
            continue
        label = f"torch {t['version']} {'tf32' if t['tf32'] else 'fp32'}"
        t_t = line(label, t, results["gemm_tf32" if t["tf32"] else "gemm"]["gflops"])
        summary[f"{key}_s"] = t_t
        summary[f"{key}_img_s"] = batch / t_t
    if "torch_s" in summary:
        summary["torch_img_s"], summary["ratio"] = batch / summary["torch_s"], summary["torch_s"] / t_m
        tt = torch_rows[0][1]
        print(f"\ncuDNN {tt['cudnn']}, cudnn.benchmark on; torch peak is max_memory_allocated (reserved "
              f"{tt['reserved_device_mib']:.0f} MiB), minialex's the CuPy memory pool's bytes held")
        print(f"minialex / PyTorch fp32 images per second: {summary['ratio']:.2f}x", end="")
        if "torch_tf32_s" in summary:
            print(f";  / PyTorch tf32: {summary['torch_tf32_s'] / t_m:.2f}x", end="")
        print()
    elif not use_torch and not args.no_torch:
        print("\n(torch is not importable: PyTorch figures skipped)")
    print(f"\nminialex host time to queue one step (median): {m['queued']:.5f} s "
          f"({m['queued'] / t_m:.0%} of the step)")
    print("minialex step parts, GPU time (median s): " + ", ".join(f"{k} {v:.5f}" for k, v in m["parts"].items()))
    print("\nper-layer GPU times, minialex (median s over separate untimed steps, CUDA events):")
    print(f"  {'layer':10s} {'forward':>9s} {'backward':>9s} {'total':>9s}")
    for name, f, bk in m["layers"]:
        print(f"  {name:10s} {f:9.5f} {bk:9.5f} {f + bk:9.5f}")
    tf = sum(r[1] for r in m["layers"])
    tb = sum(r[2] for r in m["layers"])
    print(f"  {'sum':10s} {tf:9.5f} {tb:9.5f} {tf + tb:9.5f}")
    print("\ncuBLAS per GEMM shape (GFLOP/s, fp32 / tf32):")
    for (name, mm, kk, nn_, cnt, g), (_, _, _, _, _, g32) in zip(results["gemm"]["rows"], results["gemm_tf32"]["rows"]):
        print(f"  {name:12s} {mm:6d} x {kk:6d} x {nn_:6d} (x{cnt}) {g:9.0f} {g32:9.0f}")
    print()
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="imagenet", choices=PRESETS + ("paper", "all"),
                    help="the network (minialex/models/config.py); 'all' runs every preset (default imagenet)")
    ap.add_argument("--batch-size", type=int, nargs="+",
                    help="batch sizes to time (default: the preset's training batch size, and 128)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=0,
                    help="timed steps per worker (default 0: as many as fill --seconds, at least 3)")
    ap.add_argument("--seconds", type=float, default=4.0, help="timed seconds per worker when --steps is 0")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    ap.add_argument("--rounds", type=int, default=1, help="minialex/torch alternations per batch size")
    ap.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch even when it is importable")
    ap.add_argument("--json", action="store_true", help="also print all results as one JSON line")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also time the minialex of another checkout in DIR (say, git worktree add DIR REV), "
                         "alternating with this one, and print the ratio (NumPy only)")
    ap.add_argument("--reference", action="store_true",
                    help="time minialex's readable reference implementations (nn.reference()) instead")
    ap.add_argument("--tf32", action="store_true",
                    help="--backend cupy: let minialex's float32 GEMMs use TF32 (CUPY_TF32=1; default off)")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.preset == "paper":
        args.preset = "imagenet"

    if args.worker:
        args.batch_size = args.batch_size[0]
        print(json.dumps(WORKERS[args.worker](args)))
        return

    use_torch = not args.no_torch and torch_importable()
    presets = PRESETS if args.preset == "all" else (args.preset,)
    summaries, everything = [], {}
    for preset in presets:
        args.preset = preset
        batches = args.batch_size or list(dict.fromkeys([recipe(preset)[0], 128]))
        for batch in batches:
            on_gpu = args.backend == "cupy"
            results = (measure_cupy if on_gpu else measure)(args, batch, use_torch)
            everything[f"{preset}/{batch}"] = results
            summaries.append((report_cupy if on_gpu else report)(args, batch, results, use_torch))
    if len(summaries) > 1:
        print(f"summary ({args.threads} threads; img/s from the median step):")
        print(f"  {'preset':10s} {'batch':>5s} {'minialex':>10s} {'torch':>10s} {'ratio':>7s} {'load':>6s}"
              + (f" {'step s':>8s} {'baseline':>8s} {'/base':>6s} {'RSS MiB':>8s} {'base':>6s}" if args.baseline else ""))
        for s in summaries:
            tor = f"{s['torch_img_s']:10.1f}" if "torch_img_s" in s else f"{'-':>10s}"
            rat = f"{s['ratio']:6.2f}x" if "ratio" in s else f"{'-':>7s}"
            base = (f" {s['minialex_s']:8.4f} {s['baseline_s']:8.4f} {s['vs_baseline']:6.3f} {s['rss']:8.0f} "
                    f"{s['baseline_rss']:6.0f}") if "baseline_s" in s else ""
            print(f"  {s['preset']:10s} {s['batch']:5d} {s['minialex_img_s']:10.1f} {tor} {rat} {s['load']:6.2f}{base}")
    if args.json:
        print(json.dumps({"summary": summaries, "results": everything}))


if __name__ == "__main__":
    main()
