"""Data-parallel training step of the paper's network on 1 and on N processes of this machine:
how much of the one-process speed each process keeps when the gradients are averaged.

    python benchmarks/bench_data_parallel.py [--preset imagenet] [--batch-size 64] [--steps 3]
                                             [--warmup 1] [--processes 1,2] [--rounds 2]
                                             [--diagnose] [--project] [--json PATH]
    python benchmarks/bench_data_parallel.py --project-only [--gpu-step-ms MS]   # the projection alone

What is measured. Every process runs ``Trainer.train_step`` (minialex/train/trainer.py), the
step the training script runs: for N > 1 that is ``Trainer.train_step`` (the one step path), with its exchange
of the batch counts, forward, loss, the loss gradient scaled by m/M, backward handing each
finished layer to ``DataParallel.grads_ready``, ``DataParallel.finish`` (the allreduce
engine of minialex/parallel/data_parallel.py: MPI_Allreduce in a communication thread on
NumPy) and the SGD update. The Trainer is built as the training script builds it (momentum
0.9, weight decay 5e-4, the preset's learning rate, parameters broadcast from process 0) and
is given random in-memory images and labels instead of a data loader: the loader's time is
not in these figures. AlexNet(preset), float32, the CPU kernels, one thread per process
(MINIALEX_NUM_THREADS, OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set to 1 in the
environment before NumPy is imported), runtime.retain_freed_memory() as the training script
does on NumPy. Every process takes the same batch, ``--batch-size`` images (what ``-b`` means
in the training script), so N processes do N times the work of one per step.

How. The script starts itself through ``mpiexec -n N`` for every N in ``--processes``, N = 1
included, so that the launcher is the same; with one process the world is ``Solo`` and no
gradient is exchanged: the baseline. With ``--rounds R`` the runs alternate R times (1, 2,
1, 2, ...) and the medians are over the steps of all rounds, so a change in the machine's
load falls on both. Step times are process 0's, after ``--warmup`` untimed steps (the other
processes wait for it in the step's first exchange, so their steps last as long). Per step,
for N > 1, ``DataParallel.last`` gives the seconds the allreduces ran, the part of those that
ran before backward ended, and the wait from the end of backward until every sum was in.

Printed: per N, the median step time, images per second in all, forward and backward
medians, and for N > 1 the allreduce figures and the scaling efficiency, speedup / N, which
with the same batch per process is t(1) / t(N), pooled and round by round. Then where the CPU
went (Linux): the seconds process 0's training thread was on a core per step and the CPU
seconds its communication thread used, and how many cores other programs kept busy during
each run (/proc/stat less this script's own children), since on a shared machine that moves
the ratios. Nothing is written unless ``--json PATH``. The default batch, 64 per process, is
the paper's batch of 128 on two processes; the whole run takes about a minute and a half on
two cores.

``--diagnose`` adds two runs that take the step apart: N processes each running the
one-process step at the same time, with no gradient exchange (what sharing the cores and the
memory costs), and N processes running only the allreduces of the step's buckets, with no
compute (what the exchange costs alone). ``--project`` prints the projection for GPUs of
docs/distributed.md: the step's compute from the network's FLOPs at a stated sustained rate,
the bucketed allreduce over stated links, and how much of it hides behind backward.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

THREAD_VARIABLES = ("MINIALEX_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
MODES = ("step", "compute", "allreduce")


# ---------------------------------------------------------------------------------------
# the worker: one process of ``mpiexec -n N``
# ---------------------------------------------------------------------------------------
def recipe_lr(preset):
    from minialex.train.config import RECIPE_KEYS, RECIPES

    return dict(zip(RECIPE_KEYS, RECIPES["paper" if preset == "imagenet" else preset]))["lr"]


class RandomBatches:
    """Stands in for the training loader: the benchmark calls ``train_step`` itself, so the
    Trainer never iterates this; it only has to be there (a Trainer without a training loader
    builds no data parallelism)."""

    def __init__(self, steps):
        self.steps = steps

    def __len__(self):
        return self.steps


def timed_method(obj, name, store):
    """Replace ``obj.name`` by a wrapper that appends each call's seconds to ``store``."""
    fn = getattr(obj, name)

    def timed(*a, **k):
        t0 = time.perf_counter()
        out = fn(*a, **k)
        store.append(time.perf_counter() - t0)
        return out

    object.__setattr__(obj, name, timed)


def worker(args):
    import numpy as np

    from minialex.kernels.cpu import runtime
    from minialex.models import AlexNet, alexnet_config
    from minialex.parallel.data_parallel import DataParallel, make_engine
    from minialex.parallel.world import Solo, world as make_world
    from minialex.train.trainer import Trainer

    runtime.retain_freed_memory()  # what the training script does for NumPy runs
    world = make_world()  # Solo under mpiexec -n 1: the single-process step
    cfg = alexnet_config(args.preset)
    model = AlexNet(preset=args.preset, seed=0).to(np)
    classes = [str(k) for k in range(cfg.num_classes)]
    out_dir = os.path.join(tempfile.gettempdir(), "minialex-bench-data-parallel-unused")  # never written
    result = {"rank": world.rank, "size": world.size, "mode": args.worker}

    if args.worker == "allreduce":  # the step's buckets, reduced with nothing else running
        engine, _ = make_engine(world, np, [None])
        dp = DataParallel(model, world, engine)
        times = []
        for i in range(args.warmup + args.steps):
            world.barrier()
            t0 = time.perf_counter()
            dp.begin_step()
            dp.finish()  # starts every bucket, waits for the sums
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        dp.close()
        result.update(times=times, buckets=[b.flat.nbytes for b in dp.order])
        return gather(world, result)

    trainer_world = Solo() if args.worker == "compute" else world
    trainer = Trainer(model, RandomBatches(args.steps), None, classes=classes, output_dir=out_dir,
                      lr=recipe_lr(args.preset), momentum=0.9, weight_decay=5e-4, progress=False,
                      world=trainer_world)
    rng = np.random.default_rng(100 + world.rank)
    shape = (args.batch_size, cfg.in_channels, cfg.input_size, cfg.input_size)
    images = rng.standard_normal(shape, dtype=np.float32)
    labels = rng.integers(0, cfg.num_classes, size=args.batch_size)
    fwd, bwd = [], []
    timed_method(model, "forward", fwd)
    timed_method(model, "backward", bwd)
    times, parts, cpu = [], [], []
    dp = trainer.data_parallel
    comm_thread = getattr(dp.engine, "thread", None) if dp is not None else None
    for i in range(args.warmup + args.steps):
        if args.worker == "compute":
            world.barrier()  # the N one-process steps run side by side
        if i == args.warmup:
            comm_cpu0 = thread_cpu_seconds(comm_thread)
        c0, t0 = time.thread_time(), time.perf_counter()
        loss, _ = trainer.train_step(images, labels)
        t, c = time.perf_counter() - t0, time.thread_time() - c0
        if i >= args.warmup:
            times.append(t)
            cpu.append(c)
            if dp is not None:
                parts.append(dict(dp.last))
    comm_cpu = (thread_cpu_seconds(comm_thread) - comm_cpu0) / args.steps if comm_thread is not None else 0.0
    if not np.isfinite(float(loss)):
        raise SystemExit(f"process {world.rank}: the loss is {float(loss)}")
    n = args.warmup
    result.update(times=times, forward=fwd[n:], backward=bwd[n:], parts=parts, loss=float(loss), main_cpu=cpu,
                  comm_cpu_per_step=comm_cpu)
    if dp is not None:
        trainer.check_weights_equal()  # raises unless every process holds the same weights
        result.update(weights_equal=True, buckets=[b.flat.nbytes for b in dp.order],
                      engine=type(dp.engine).__name__)
        dp.close()
    return gather(world, result)


def thread_cpu_seconds(thread):
    """CPU seconds a thread of this process has used so far (Linux, /proc), 0 without one."""
    if thread is None or not os.path.exists(f"/proc/self/task/{thread.native_id}/stat"):
        return 0.0
    with open(f"/proc/self/task/{thread.native_id}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def gather(world, result):
    """Every process's result on process 0 (None elsewhere)."""
    everyone = world.allgather(result)
    return everyone if world.is_root else None


# ---------------------------------------------------------------------------------------
# the launcher
# ---------------------------------------------------------------------------------------
def find_mpiexec():
    """(path, flags for -n N's processes, the MPI's name) of the launcher next to this Python
    (the [mpi] extra's), else the first one on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    exe = here if os.path.exists(here) else (shutil.which("mpiexec") or shutil.which("mpirun"))
    if exe is None:
        raise SystemExit('no mpiexec found: pip install -e ".[mpi]" (mpi4py and MPICH from the package index)')
    probe = subprocess.run([exe, "--version"], capture_output=True, text=True)
    text = probe.stdout + probe.stderr
    if "Open MPI" in text or "OpenRTE" in text or "open-mpi" in text:
        # Open MPI refuses root without the first flag, and more processes than cores without the second
        flags = ["--allow-run-as-root", "--oversubscribe"]
        for var in THREAD_VARIABLES:
            flags += ["-x", var]
        return exe, flags, "Open MPI"
    return exe, [], ("MPICH" if "HYDRA" in text or "MPICH" in text else "MPI")


def run_workers(args, launcher, n, mode):
    exe, flags, _ = launcher
    env = dict(os.environ)
    for var in THREAD_VARIABLES:
        env[var] = "1"  # before NumPy is imported in the workers
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        cmd = [exe] + flags + ["-n", str(n), sys.executable, os.path.abspath(__file__), "--worker", mode,
                               "--worker-out", out, "--preset", args.preset, "--batch-size", str(args.batch_size),
                               "--steps", str(args.steps), "--warmup", str(args.warmup)]
        busy0, ours0, t0 = machine_busy_seconds(), children_cpu_seconds(), time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        others = machine_busy_seconds() - busy0 - (children_cpu_seconds() - ours0)
        if proc.returncode != 0 or not os.path.exists(out):
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            raise SystemExit(f"mpiexec -n {n} ({mode}) failed with exit code {proc.returncode}")
        with open(out) as f:
            ranks = json.load(f)
    return {"ranks": ranks, "wall_s": wall, "load": os.getloadavg()[0], "others_cores": max(0.0, others) / wall}


def machine_busy_seconds():
    """CPU seconds all cores of the machine have been busy since boot (/proc/stat; 0 off Linux)."""
    if not os.path.exists("/proc/stat"):
        return 0.0
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle and iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds():
    """CPU seconds of this script's finished children (mpiexec and the processes it started)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def pooled(runs, key, rank=0):
    values = []
    for r in runs:
        values += r["ranks"][rank][key]
    return values


def med(values):
    return statistics.median(values) if values else float("nan")


def summarise(runs, n, batch):
    """The figures of one N over all its rounds (process 0's steps, pooled)."""
    times = pooled(runs, "times")
    t = med(times)
    s = {"processes": n, "batch_per_process": batch, "global_batch": n * batch, "step_s": t,
         "step_min_s": min(times), "step_max_s": max(times), "steps": len(times), "images_per_s": n * batch / t,
         "forward_s": med(pooled(runs, "forward")), "backward_s": med(pooled(runs, "backward")),
         "main_cpu_s": med(pooled(runs, "main_cpu")),
         "comm_cpu_per_step_s": med([r["ranks"][0]["comm_cpu_per_step"] for r in runs]),
         "round_step_s": [med(r["ranks"][0]["times"]) for r in runs],
         "rank_step_s": [med(pooled(runs, "times", r)) for r in range(n)],
         "load": [r["load"] for r in runs], "others_cores": [r["others_cores"] for r in runs],
         "wall_s": [r["wall_s"] for r in runs]}
    parts = pooled(runs, "parts")
    if parts:
        for key in ("allreduce_s", "overlapped_s", "wait_s"):
            s[key] = med([p[key] for p in parts])
        s["overlapped_share"] = med([p["overlapped_s"] / p["allreduce_s"] if p["allreduce_s"] else 0.0
                                     for p in parts])
        s["weights_equal"] = all(r["ranks"][0].get("weights_equal") for r in runs)
        s["engine"] = runs[0]["ranks"][0].get("engine")
        s["bucket_mb"] = [b / 1e6 for b in runs[0]["ranks"][0]["buckets"]]
    return s


def label(s):
    return f"{s['processes']} process{'es' if s['processes'] > 1 else ''}"


def print_table(args, summaries, flavour):
    import numpy as np

    from minialex.models import alexnet_config

    cfg = alexnet_config(args.preset)
    cpu = "?"
    if os.path.exists("/proc/cpuinfo"):
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                    if line.startswith("model name")), "?")
    print(f"Data-parallel training step, preset {args.preset} ({cfg.num_parameters():,} parameters, "
          f"{cfg.input_size}x{cfg.input_size} input), float32, NumPy CPU kernels, 1 thread per process, "
          f"batch {args.batch_size} per process")
    print(f"CPU: {cpu}, {os.cpu_count()} cores; numpy {np.__version__}; launcher: {flavour} mpiexec; "
          f"{args.steps} timed steps after {args.warmup} warm-up, x {args.rounds} rounds")
    base = summaries[0]
    print()
    print(f"{'processes':>9s} {'global batch':>12s} {'step s':>7s} {'min-max s':>11s} {'img/s':>6s} "
          f"{'speedup':>7s} {'effic.':>6s} {'fwd s':>6s} {'bwd s':>6s} {'allreduce s':>11s} "
          f"{'overlapped s':>14s} {'wait s':>6s}")
    for s in summaries:
        speed = s["images_per_s"] / base["images_per_s"]
        s["speedup"], s["efficiency"] = speed, speed / s["processes"]
        s["round_efficiency"] = [a / b for a, b in zip(base["round_step_s"], s["round_step_s"])]
        if "allreduce_s" in s:
            ar = f"{s['allreduce_s']:11.3f}"
            ov = f"{s['overlapped_s']:6.3f} ({100 * s['overlapped_share']:3.0f}%)"
            wt = f"{s['wait_s']:6.3f}"
        else:
            ar, ov, wt = f"{'-':>11s}", f"{'-':>14s}", f"{'-':>6s}"
        print(f"{s['processes']:9d} {s['global_batch']:12d} {s['step_s']:7.3f} "
              f"{s['step_min_s']:5.2f}-{s['step_max_s']:5.2f} {s['images_per_s']:6.2f} {speed:7.2f} "
              f"{s['efficiency']:6.2f} {s['forward_s']:6.3f} {s['backward_s']:6.3f} {ar} {ov} {wt}")
    print()
    print("median step per round (s): " + "; ".join(
        f"{label(s)} " + ", ".join(f"{t:.3f}" for t in s["round_step_s"]) for s in summaries))
    for s in summaries[1:]:
        print(f"efficiency of {s['processes']} processes round by round, t(1) / t({s['processes']}): "
              + ", ".join(f"{e:.2f}" for e in s["round_efficiency"]))
    for s in summaries:
        extra = ""
        if s["processes"] > 1:
            need = s["main_cpu_s"] + s["comm_cpu_per_step_s"]
            extra = (f"; its communication thread used {s['comm_cpu_per_step_s']:.3f} s of CPU per step: "
                     f"{need:.3f} s of CPU per process per step in all, "
                     f"{need / s['step_s'] * s['processes'] / (os.cpu_count() or 1):.0%} of the machine")
        print(f"{label(s)}: process 0's training thread was on a "
              f"core {s['main_cpu_s']:.3f} s of its {s['step_s']:.3f} s step ({s['main_cpu_s'] / s['step_s']:.0%})"
              + extra)
    for s in summaries[1:]:
        if "bucket_mb" in s:
            print(f"{s['processes']} processes: engine {s['engine']}, buckets in the order they start: "
                  + ", ".join(f"{mb:.1f}" for mb in s["bucket_mb"]) + " MB; weights equal on every process "
                  f"after the steps: {'yes' if s['weights_equal'] else 'NO'}; median step per process: "
                  + ", ".join(f"{t:.3f}" for t in s["rank_step_s"]) + " s")
    others = "; ".join(f"{label(s)} " + ", ".join(f"{x:.2f}" for x in s["others_cores"]) for s in summaries)
    loads = "; ".join(", ".join(f"{x:.2f}" for x in s["load"]) for s in summaries)
    print(f"other programs on the machine during each run, cores busy on average: {others}; "
          f"load average (1 min) after each run: {loads}")
    print("allreduce s: seconds the allreduces ran in a step (waiting for the slower process included); "
          "overlapped: the part of them before backward ended; wait s: from the end of backward until every "
          "sum was in")


def print_diagnosis(args, base, diag):
    print()
    print("Where the time goes (medians, s):")
    for n, d in sorted(diag.items()):
        comp, ar = d.get("compute"), d.get("allreduce")
        if comp:
            c = summarise(comp, n, args.batch_size)
            print(f"  {n} processes side by side, one-process step each, no exchange: step {c['step_s']:.3f} "
                  f"(fwd {c['forward_s']:.3f}, bwd {c['backward_s']:.3f}) vs alone {base['step_s']:.3f} "
                  f"(fwd {base['forward_s']:.3f}, bwd {base['backward_s']:.3f}): x{c['step_s'] / base['step_s']:.3f}; "
                  f"per process " + ", ".join(f"{t:.3f}" for t in c["rank_step_s"]))
            d["compute_summary"] = c
        if ar:
            times = pooled(ar, "times")
            total = sum(ar[0]["ranks"][0]["buckets"])
            print(f"  {n} processes, the step's allreduces alone ({total / 1e6:.0f} MB in "
                  f"{len(ar[0]['ranks'][0]['buckets'])} buckets), no compute: {med(times):.3f} s "
                  f"(min {min(times):.3f}), {total / med(times) / 1e9:.2f} GB/s of gradient")
            d["allreduce_s"] = med(times)


# ---------------------------------------------------------------------------------------
# the projection for GPUs (docs/distributed.md, "Projection for GPUs")
# ---------------------------------------------------------------------------------------
# Assumptions, all stated in the printout. The H200's (and H100 SXM's) data sheet: 67 TFLOP/s
# FP32 without tensor cores, 495 TFLOP/s TF32 on tensor cores (dense). minialex's CUDA path
# runs float32 GEMMs with TF32 off unless CUPY_TF32=1. NVLink 4: 900 GB/s per GPU in both
# directions together, 450 GB/s each way.
GPU_CASES = (("FP32, 50% of 67 TFLOP/s", 33.5e12), ("TF32, 25% of 495 TFLOP/s", 124e12))
NVLINK_BPS, NVLINK_FRACTION = 450e9, 0.8  # per GPU, per direction; what NCCL's ring gets of it
NET_FRACTION = 0.9  # of the network's line rate
HBM_BPS = 3.0e12  # achieved memory bandwidth for the SGD update (H200: 4.8 TB/s peak)
LATENCY_S = {"nvlink": 20e-6, "net": 50e-6}  # per bucket allreduce, whatever its size
SYSTEMS = (("8 GPUs, 1 node, NVLink", 1, 8, None),
           ("4 nodes x 8, 100 Gb/s", 4, 8, 12.5e9), ("4 nodes x 8, 400 Gb/s", 4, 8, 50e9),
           ("16 nodes x 8, 100 Gb/s", 16, 8, 12.5e9), ("16 nodes x 8, 400 Gb/s", 16, 8, 50e9),
           ("16 nodes x 8, 8x400 Gb/s", 16, 8, 400e9))  # the last: one 400 Gb/s NIC per GPU


def step_model(preset, batch):
    """Per image FLOPs of forward and of backward, layer by layer in backward order, and the
    buckets (bytes, the layer after whose backward each is complete) of DataParallel's plan."""
    from minialex.models import AlexNet, alexnet_config
    from minialex.models.architecture import gemm_shapes
    from minialex.parallel.data_parallel import plan_buckets

    cfg = alexnet_config(preset)
    fwd, bwd = {}, {}
    for name, m, k, n, count in gemm_shapes(cfg, 1):
        layer, what = name.split()
        table = fwd if what == "fwd" else bwd
        table[layer] = table.get(layer, 0) + 2 * m * k * n * count
    order = list(reversed(list(fwd)))  # backward order: fc8 first
    model = AlexNet(preset=preset)
    _, buckets = plan_buckets(list(model.named_parameters()))
    rank = {layer: i for i, layer in enumerate(order)}
    plan = [(b.elements * 4, max(b.layers, key=rank.get)) for b in buckets]
    return cfg, fwd, [(layer, bwd[layer]) for layer in order], plan


def allreduce_seconds(nbytes, nodes, gpus, net_bps):
    """A ring allreduce of ``nbytes`` over ``gpus`` GPUs of one node (NVLink), or the hierarchical
    one over ``nodes`` nodes: reduce-scatter in the node, ring between the nodes on each GPU's
    1/gpus share (the node's link carries 2(K-1)/K of the bytes), all-gather in the node."""
    nv = NVLINK_BPS * NVLINK_FRACTION
    inside = 2 * (gpus - 1) / gpus * nbytes / nv + LATENCY_S["nvlink"]
    if nodes == 1:
        return inside
    return inside + 2 * (nodes - 1) / nodes * nbytes / (net_bps * NET_FRACTION) + LATENCY_S["net"]


def project(preset="imagenet", batch=128, flops_per_s=33.5e12, systems=SYSTEMS):
    """Rows of the projection: compute, communication, hidden part, step time, efficiency."""
    cfg, fwd, bwd, plan = step_model(preset, batch)
    t_fwd = batch * sum(fwd.values()) / flops_per_s
    done, t = {}, t_fwd
    for layer, fl in bwd:  # the moment each layer's backward ends
        t += batch * fl / flops_per_s
        done[layer] = t
    t_bwd_end = t
    t_sgd = 5 * 4 * cfg.num_parameters() / HBM_BPS  # read w, g, v; write w, v
    alone = t_bwd_end + t_sgd
    rows = []
    for label, nodes, gpus, net in systems:
        free, comm = 0.0, 0.0  # one communication stream: buckets one after another
        for nbytes, last_layer in plan:
            c = allreduce_seconds(nbytes, nodes, gpus, net)
            comm += c
            free = max(free, done[last_layer]) + c
        exposed = max(0.0, free - t_bwd_end)
        step = t_bwd_end + exposed + t_sgd
        rows.append({"system": label, "gpus": nodes * gpus, "compute_s": alone, "comm_s": comm,
                     "hidden_s": comm - exposed, "step_s": step, "efficiency": alone / step,
                     "images_per_s": nodes * gpus * batch / step})
    return {"forward_s": t_fwd, "backward_s": t_bwd_end - t_fwd, "sgd_s": t_sgd, "rows": rows,
            "gradient_bytes": sum(b for b, _ in plan), "buckets": plan}


def owt_bytes(preset, batch, k):
    """Bytes each of ``k`` GPUs receives per step under Krizhevsky's 2014 scheme ("one weird
    trick"): the convolutions data-parallel (their gradients ring-allreduced), fc6-fc8
    model-parallel (each GPU holds 1/k of their neurons and computes them for all k * batch
    images). Forward: all-gather of pool5 (9216 floats per image), fc6's and fc7's outputs;
    an all-to-all of the logits, so that each GPU has its own images' 1000 scores; backward
    sends the gradients of the same tensors the other way. Returns (activations, conv gradients)."""
    from minialex.models import alexnet_config

    cfg = alexnet_config(preset)
    table = {r["name"]: r for r in cfg.layer_table()}
    gathered = cfg.fc6_inputs + table["fc6"]["output"][0] + table["fc7"]["output"][0]
    per_step = (k - 1) * batch * gathered + (k - 1) / k * batch * cfg.num_classes
    conv = sum(r["params"] for name, r in table.items() if name.startswith("conv"))
    return 2 * 4 * per_step, 2 * (k - 1) / k * 4 * conv


def print_projection(preset, batch, tflops=None, step_ms=None):
    """The tables; ``tflops`` (a sustained rate) or ``step_ms`` (a measured one-GPU step at this
    batch, without communication) replace the two assumed GPU rates."""
    from minialex.models import alexnet_config

    cfg = alexnet_config(preset)
    _, fwd, bwd, plan = step_model(preset, batch)
    per_image = sum(fwd.values()) + sum(f for _, f in bwd)
    cases = GPU_CASES
    if tflops:
        cases = ((f"given as {tflops:g} TFLOP/s", tflops * 1e12),)
    if step_ms:
        rate = batch * per_image / (step_ms / 1e3 - 5 * 4 * cfg.num_parameters() / HBM_BPS)  # less the update
        cases = ((f"from a measured {step_ms:g} ms step at batch {batch}", rate),)
    print()
    print(f"Projection for GPUs (no GPU measured here; every rate below is an assumption): preset {preset}, "
          f"{cfg.num_parameters():,} parameters, {sum(b for b, _ in plan) / 1e6:.1f} MB of float32 gradients per "
          f"step in {len(plan)} buckets, {per_image / 1e9:.2f} GFLOP per image per training step, batch {batch} "
          "per GPU")
    print(f"links: NVLink {NVLINK_BPS / 1e9:.0f} GB/s per GPU each way at {NVLINK_FRACTION:.0%}; networks at "
          f"{NET_FRACTION:.0%} of line rate, per node; {LATENCY_S['nvlink'] * 1e6:.0f}/{LATENCY_S['net'] * 1e6:.0f} "
          f"us per bucket in/between nodes; SGD update at {HBM_BPS / 1e12:.1f} TB/s")
    for what, rate in cases:
        p = project(preset, batch, rate)
        print(f"\ncompute {what} = {rate / 1e12:.1f} TFLOP/s sustained: forward {1e3 * p['forward_s']:.1f} ms, "
              f"backward {1e3 * p['backward_s']:.1f} ms, SGD {1e3 * p['sgd_s']:.1f} ms")
        print(f"  {'system':24s} {'compute ms':>10s} {'comm ms':>8s} {'hidden ms':>9s} {'step ms':>8s} "
              f"{'effic.':>6s} {'img/s':>8s}")
        for r in p["rows"]:
            print(f"  {r['system']:24s} {1e3 * r['compute_s']:10.1f} {1e3 * r['comm_s']:8.1f} "
                  f"{1e3 * r['hidden_s']:9.1f} {1e3 * r['step_s']:8.1f} {r['efficiency']:6.2f} "
                  f"{r['images_per_s']:8.0f}")
    grads = sum(b for b, _ in plan)
    print(f"\nbytes each GPU receives per step, batch {batch} per GPU: data parallel (ring allreduce of every "
          "gradient) vs convolutions data-parallel and fc6-fc8 model-parallel (Krizhevsky 2014)")
    print(f"  {'GPUs in the group':>17s} {'data parallel MB':>16s} {'2014 scheme MB':>14s} {'(activations':>12s} "
          f"{'+ conv grads)':>13s}")
    for k in (2, 4, 8, 16, 32, 128):
        act, conv = owt_bytes(preset, batch, k)
        print(f"  {k:17d} {2 * (k - 1) / k * grads / 1e6:16.1f} {(act + conv) / 1e6:14.1f} {act / 1e6:12.1f} "
              f"{conv / 1e6:13.1f}")


# ---------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="imagenet", help="the network (minialex/models/config.py; default imagenet)")
    ap.add_argument("--batch-size", type=int, default=64,
                    help="images per process per step (default 64: on 2 processes the paper's batch of 128)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per run (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    ap.add_argument("--processes", default="1,2", help="process counts, comma-separated, 1 first (default 1,2)")
    ap.add_argument("--rounds", type=int, default=2, help="alternations of the process counts (default 2)")
    ap.add_argument("--diagnose", action="store_true",
                    help="also: N one-process steps side by side without exchange, and the allreduces alone")
    ap.add_argument("--project", action="store_true", help="also print the projection for GPUs")
    ap.add_argument("--project-only", action="store_true", help="print the projection for GPUs and stop")
    ap.add_argument("--project-batch", type=int, default=128, help="batch per GPU of the projection (default 128)")
    ap.add_argument("--gpu-tflops", type=float,
                    help="projection: one sustained GPU rate in TFLOP/s instead of the two assumed")
    ap.add_argument("--gpu-step-ms", type=float,
                    help="projection: a measured one-GPU training step at --project-batch, in ms (for example from "
                         "bench_train_step.py --backend cupy), instead of the assumed rates")
    ap.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    ap.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.preset == "paper":
        args.preset = "imagenet"

    if args.worker:
        ranks = worker(args)
        if ranks is not None:
            with open(args.worker_out, "w") as f:
                json.dump(ranks, f)
        return
    if args.project_only:
        print_projection(args.preset, args.project_batch, args.gpu_tflops, args.gpu_step_ms)
        return

    counts = [int(x) for x in args.processes.split(",")]
    if counts[0] != 1:
        raise SystemExit("--processes must start with 1: the one-process run is the baseline")
    launcher = find_mpiexec()
    runs = {n: [] for n in counts}
    for _ in range(args.rounds):
        for n in counts:
            runs[n].append(run_workers(args, launcher, n, "step"))
    summaries = [summarise(runs[n], n, args.batch_size) for n in counts]
    print_table(args, summaries, launcher[2])
    diag = {}
    if args.diagnose:
        for n in counts[1:]:
            diag[n] = {"compute": [run_workers(args, launcher, n, "compute") for _ in range(args.rounds)],
                       "allreduce": [run_workers(args, launcher, n, "allreduce")]}
        print_diagnosis(args, summaries[0], diag)
    if args.project:
        print_projection(args.preset, args.project_batch, args.gpu_tflops, args.gpu_step_ms)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summaries": summaries, "runs": runs, "diagnosis": diag}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
