#!/usr/bin/env bash
# The one script a GPU session runs (docs/gpu.md, "Running the GPU checks"):
#
#   OUT=/some/dir bash benchmarks/gpu_check.sh        (from anywhere; it runs in the repository root)
#
#   preflight     the backend's CuPy check (devices, then one tiny kernel compiled and run), versions
#   nosync_step   one training step (the trainer's own train_step, batch upload included) under
#                 cupyx.allow_synchronize(False), which raises on any host sync: the paper's net at
#                 batch 128 on one GPU, then the synthetic net with both columns on GPU 0
#   pytest_gpu    the GPU tests (pytest -m gpu): kernels against their twins and the references, ...
#   train_dev0    examples/train_imagenet.py --backend cupy --devices 0   (2 epochs, embedded data)
#   train_dev00   the same with --devices 0,0 (the paper's two columns, both on GPU 0)
#   bench_step    benchmarks/bench_train_step.py --backend cupy --batch-size 128: minialex, PyTorch
#                 (cuDNN, fp32 and tf32) and cuBLAS on this GPU
#
# Needs CuPy (pip install -e ".[cuda12]" or ".[cuda13]") and, for the benchmark's comparison, a CUDA
# build of PyTorch, already installed: the script installs nothing. Every step has its own time limit
# and the whole run a deadline (DEADLINE_S, default 470 s: under 8 minutes with the start-up); a step
# with too little time left is skipped, a failed one does not stop the others. One log per step in
# $OUT/<step>.log, training runs in $OUT/runs/, a summary in $OUT/summary.txt (also printed).
# Exit status: 0 when every step passed, 1 otherwise.
set -u

cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT/runs" || exit 1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# the embedded synthetic dataset is generated once, outside $OUT (only logs need to come back)
export MINIALEX_DATA="${MINIALEX_DATA:-${TMPDIR:-/tmp}/minialex_gpu_check_data}"
PY="${PYTHON:-python}"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
FAILED=0
START=$(date +%s)
DEADLINE=$(( START + ${DEADLINE_S:-470} ))

note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME LIMIT_SECONDS COMMAND...: run with a timeout (cut to the time left before the deadline),
# log to $OUT/NAME.log, record the outcome. A pytest step where no test passed counts as failed.
step() {
    local name=$1 limit=$2
    shift 2
    local log="$OUT/$name.log" t0 rc left
    t0=$(date +%s)
    left=$(( DEADLINE - t0 ))
    if [ "$left" -lt 15 ]; then
        note "$(printf '%-12s %-14s %4ss  %s' "$name" "SKIPPED" 0 "(only ${left}s left before the deadline)")"
        FAILED=1
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local first=${*%%$'\n'*}
    echo "=== $name (limit ${limit}s): $first$( [ "$first" = "$*" ] || echo ' ...')"
    timeout --kill-after=5 "$limit" "$@" > "$log" 2>&1
    rc=$?
    local dt=$(( $(date +%s) - t0 ))
    local what="ok"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then what="TIMEOUT"; FAILED=1
    elif [ "$rc" -ne 0 ]; then what="FAIL rc=$rc"; FAILED=1
    elif [ "${3:-}" = "pytest" ] && ! tail -n 1 "$log" | grep -qE '[0-9]+ passed'; then
        what="FAIL none ran"; FAILED=1
    fi
    note "$(printf '%-12s %-14s %4ss  %s' "$name" "$what" "$dt" "$log")"
    tail -n 3 "$log" | sed 's/^/    /' | tee -a "$SUMMARY"
}

# --- what the no-sync step runs (python -c) ---
read -r -d '' NOSYNC_PY <<'EOF'
import math
import sys

import numpy as np

from minialex import backend
from minialex.models import AlexNet
from minialex.train.trainer import Trainer

try:
    xp = backend.get_backend("cupy")  # the backend's check reads one result back: before the guarded steps
except backend.BackendError as exc:
    sys.exit(f"cupy backend unusable: {exc}")
import cupyx  # noqa: E402

if not hasattr(cupyx, "allow_synchronize"):
    sys.exit(f"this CuPy ({xp.__version__}) has no cupyx.allow_synchronize")
rng = np.random.default_rng(0)
failed = 0
for preset, devices, batch in (("imagenet", (0,), 128), ("synthetic", (0, 0), 64)):
    model = AlexNet(10, preset=preset, devices=devices if len(devices) == 2 else None)
    if len(devices) == 2:
        model.to(xp)
    else:
        model.to(xp, device_id=devices[0])
    trainer = Trainer(model, None, None, classes=[str(c) for c in range(10)], output_dir=".", xp=xp,
                      device_id=devices[0], lr=0.01, progress=False)
    size = model.cfg.input_size
    images = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    labels = rng.integers(0, 10, size=batch)
    trainer.train_step(images, labels)  # warm-up: kernels compiled, buffers allocated
    xp.cuda.Device(devices[0]).synchronize()
    what = f"one training step of the {preset} net, batch {batch}, devices {','.join(map(str, devices))}"
    try:
        with cupyx.allow_synchronize(False):
            loss, _ = trainer.train_step(images, labels)
    except Exception as exc:
        print(f"FAIL: {what} synchronises with the host: {type(exc).__name__}: {exc}")
        failed += 1
        continue
    value = float(loss)  # outside the guarded step
    print(f"{'ok' if math.isfinite(value) else 'FAIL'}: {what} ran under cupyx.allow_synchronize(False) "
          f"(loss {value:.4f})")
    failed += not math.isfinite(value)
sys.exit(1 if failed else 0)
EOF

note "minialex gpu_check  $(date -u '+%Y-%m-%d %H:%M:%S UTC')  git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (uncommitted changes)')"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -n 2
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available())' 2>&1 | tail -n 1
} | sed 's/^/  /' | tee -a "$SUMMARY"

step preflight    40 "$PY" -c 'from minialex import backend
reason = backend.cupy_unavailable_reason()
if reason:
    raise SystemExit("cupy backend unusable: " + reason)
import cupy
print("cupy", cupy.__version__, "cuda runtime", cupy.cuda.runtime.runtimeGetVersion(), "driver",
      cupy.cuda.runtime.driverGetVersion(), "devices", cupy.cuda.runtime.getDeviceCount(),
      "- the backend check compiled and ran a kernel")'
step nosync_step  60 "$PY" -c "$NOSYNC_PY"
step pytest_gpu  130 "$PY" -m pytest -m gpu -rs -q tests
step train_dev0   60 "$PY" examples/train_imagenet.py --backend cupy --devices 0 --epochs 2 \
                     --output-dir "$OUT/runs/dev0" --overwrite --no-progress
step train_dev00  60 "$PY" examples/train_imagenet.py --backend cupy --devices 0,0 --epochs 2 \
                     --output-dir "$OUT/runs/dev00" --overwrite --no-progress
step bench_step  150 "$PY" benchmarks/bench_train_step.py --backend cupy --batch-size 128 --seconds 3 --warmup 3

note ""
note "throughput lines:"
for name in train_dev0 train_dev00; do
    grep -E 'img/s' "$OUT/$name.log" 2>/dev/null | tail -n 2 | sed "s/^/  $name: /" | tee -a "$SUMMARY"
done
grep -E '^(minialex|torch) .*MiB|images per second' "$OUT/bench_step.log" 2>/dev/null | sed 's/^/  bench: /' | tee -a "$SUMMARY"
note ""
note "pytest tally:"
grep -E '[0-9]+ (passed|failed|errors?|skipped|deselected)' "$OUT/pytest_gpu.log" 2>/dev/null | tail -n 1 \
    | sed 's/^/  pytest_gpu: /' | tee -a "$SUMMARY"
note ""
note "total $(( $(date +%s) - START ))s; $( [ "$FAILED" -eq 0 ] && echo 'all steps passed' || echo 'SOME STEPS FAILED (see the logs above)')"
exit "$FAILED"
