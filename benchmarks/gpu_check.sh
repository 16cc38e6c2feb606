#!/usr/bin/env bash
# One-shot GPU check for minialex: kernel tests, the suite on CuPy, two short trainings, one benchmark.
#
#   OUT=/some/dir bash benchmarks/gpu_check.sh        (run from the repository root)
#
# Needs CuPy (and PyTorch for the benchmark's comparison) already installed; installs nothing.
# Every step has its own timeout and the script goes on after a failure; the whole run stays under
# about 9 minutes (sum of the step limits: 8 min 50 s). Logs go to $OUT/*.log, a summary to
# $OUT/summary.txt (also printed at the end). Exit status: 0 when every step passed, 1 otherwise.
set -u

cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
FAILED=0
START=$(date +%s)

note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME LIMIT_SECONDS COMMAND...: run with a timeout, log to $OUT/NAME.log, record the outcome
step() {
    local name=$1 limit=$2
    shift 2
    local log="$OUT/$name.log" t0 rc
    t0=$(date +%s)
    echo "=== $name (limit ${limit}s): $*"
    timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
    rc=$?
    local dt=$(( $(date +%s) - t0 ))
    local what="ok"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then what="TIMEOUT"; FAILED=1
    elif [ "$rc" -ne 0 ]; then what="FAIL rc=$rc"; FAILED=1; fi
    note "$(printf '%-14s %-12s %4ss  %s' "$name" "$what" "$dt" "$log")"
    tail -n 3 "$log" | sed 's/^/    /' | tee -a "$SUMMARY"
}

note "minialex gpu_check  $(date -u '+%Y-%m-%d %H:%M:%S UTC')  git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -n 2
  "$PY" -c 'import numpy, cupy; print("numpy", numpy.__version__, "cupy", cupy.__version__, "cuda runtime", cupy.cuda.runtime.runtimeGetVersion())' 2>&1 | tail -n 1
} | sed 's/^/  /' | tee -a "$SUMMARY"
"$PY" -c 'from minialex import backend; raise SystemExit(0 if backend.cupy_available() else 1)' \
    || note "WARNING: CuPy cannot reach a GPU here; the gpu tests will be skipped and the cupy runs fail"

# (a) the GPU tests (kernels vs twins vs layers, layers on CuPy), then the whole suite with both backends
step pytest_gpu    150 "$PY" -m pytest -m gpu -rs -q tests
step pytest_all    120 "$PY" -m pytest -rs -q tests

# (b) short trainings on the embedded synthetic data: both columns on one GPU, then one column
step train_devs00   90 "$PY" examples/train_imagenet.py --backend cupy --devices 0,0 --epochs 2 \
                       --output-dir "$OUT/run00" --no-progress
step train_dev0     90 "$PY" examples/train_imagenet.py --backend cupy --devices 0 --epochs 2 \
                       --output-dir "$OUT/run0" --no-progress

# (c) one training step at the paper's batch size
step bench_step     80 "$PY" benchmarks/bench_train_step.py --backend cupy --batch-size 128

note ""
note "throughput lines (img/s):"
for name in train_devs00 train_dev0 bench_step; do
    grep -iE 'img/s|images/s|images per s' "$OUT/$name.log" 2>/dev/null | tail -n 4 | sed "s/^/  $name: /" | tee -a "$SUMMARY"
done
note ""
note "pytest tallies:"
for name in pytest_gpu pytest_all; do
    grep -E '[0-9]+ (passed|failed|errors?|skipped|deselected)' "$OUT/$name.log" 2>/dev/null | tail -n 1 | sed "s/^/  $name: /" | tee -a "$SUMMARY"
done
note ""
note "total $(( $(date +%s) - START ))s; $( [ "$FAILED" -eq 0 ] && echo 'all steps passed' || echo 'SOME STEPS FAILED (see logs above)')"
exit "$FAILED"
