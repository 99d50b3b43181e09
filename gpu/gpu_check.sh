#!/usr/bin/env bash
# What only a GPU can show, in one short command (what CI checks on the CPU is not repeated):
#   environment   GPU, driver, torch, CUDA, cuDNN, nvcc, optional packages
#   build         the fused ops built for this GPU; --fused on must give the CUDA backend
#   cuda-tests    tests/ops/test_ops.py and tests/training/test_train.py that need a GPU, and the build tests
#   edge-cases    gpu/gpu_check.py edge-cases: non-contiguous and empty inputs, two side streams,
#                 float16/bfloat16, autocast, a CUDA-graph capture of forward and backward, inductor
#   train-resume  a CIFAR-shaped run with an evaluation (FID with --fid-weights random where
#                 pytorch-fid's weights are not there: plumbing only, not a real FID), and the same
#                 run stopped halfway and resumed: weights, optimizer and CUDA RNG states to the bit
#   bench-step    bench/step.py on the GPU: plain, fused, channels_last, compile, reduce-overhead
#   throughput    steps/s of 1 and of 4 concurrent training runs sharing the GPU
#   memcheck, racecheck   compute-sanitizer on this repository's kernels only, where it runs
# Every step runs under `timeout`, with at most what is left of GPU_CHECK_BUDGET seconds (default
# 480: 8 minutes on an H200 machine, the build included; under --cpu the limits and the budget are
# GPU_CHECK_SLOW times those, default 6, for a CPU shared with other work). Everything goes to $OUT
# (default: a new folder under /tmp), at most 8 files, no folders:
#   report.txt      each step's status, exit code, seconds and limit, then the failed steps' log tails
#   junit.xml       the cuda-tests step's pytest results
#   bench_step.csv  the bench-step table;  throughput.csv  the throughput table
#   logs.tar.gz     every step's whole log and the runs' small files (config, metrics, eval, summary)
# The exit code is 0 when every step passed or was skipped (its reason in the report), 1 when one
# failed or ran out of time, 2 on bad usage.
#
#     bash gpu/gpu_check.sh                     # on the GPU machine
#     OUT=DIR bash gpu/gpu_check.sh --cpu       # the same steps on the CPU at smoke size (minutes)
#
# PYTHON (default python3) runs every Python step. pytorch-fid is not on every GPU machine: where
# it is missing, wheels in GPU_CHECK_WHEELS (default .whl/, e.g. `pip download --no-deps -d .whl
# pytorch-fid==0.3.0` here, carried along) are installed into a temporary folder first; without
# them the run trains without its evaluation, and the report says so.
set -uo pipefail
cd "$(dirname "$0")/.."  # the repository root: the checks run its scripts and modules
MODE=gpu
case "${1:-}" in
  "") ;;
  --cpu) MODE=cpu ;;
  *) echo "error: unknown argument ${1}; usage: [OUT=DIR] bash gpu/gpu_check.sh [--cpu]" >&2; exit 2 ;;
esac
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")}
if [ -e "$OUT" ] && [ ! -d "$OUT" ]; then
  echo "error: OUT=$OUT is a file, not a folder; name a new or empty folder" >&2
  exit 2
fi
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
  echo "error: OUT=$OUT is not empty; name a new or empty folder" >&2
  exit 2
fi
mkdir -p "$OUT" || { echo "error: cannot make OUT=$OUT" >&2; exit 2; }
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/logs" "$WORK/runs"
export PY=${PYTHON:-python3} MODE OUT WORK REPO=$PWD PYTHONUNBUFFERED=1
# a CPU, often shared with other work, runs the smoke-size steps with SLOW times the GPU's limits
SLOW=$([ "$MODE" = gpu ] && echo 1 || echo "${GPU_CHECK_SLOW:-6}")
BUDGET=${GPU_CHECK_BUDGET:-$((480 * SLOW))}
START=$SECONDS
RESERVE=15  # seconds kept for the report and the archive

if [ "$MODE" = gpu ]; then
  export DEV=cuda BACKEND=fused-cpu+cuda N_IMAGES=640 SIZE="" STEPS=300 HALF=150 LOG=50 EVAL_N=500
  export TESTS_K="(cuda or self_check) and not spill"
  export BENCH="--archs dcgan --variants plain fused channels_last compile compile_reduce_overhead --rounds 5 --min-time 0.3"
  export TPUT="--steps 600 --log-every 100"
else
  export DEV=cpu BACKEND=fused-cpu N_IMAGES=64 SIZE="--width 8 --batch-size 16" STEPS=8 HALF=4 LOG=2 EVAL_N=32
  export TESTS_K="(cuda or self_check) and not spill and not sources_compile"
  export BENCH="--archs dcgan --variants plain fused --rounds 2 --min-time 0.1"
  export TPUT="--steps 12 --log-every 4 --width 8 --batch-size 16"
fi

WHEELS=${GPU_CHECK_WHEELS:-.whl}
if ! "$PY" -c "import pytorch_fid" 2>/dev/null && ls "$WHEELS"/pytorch_fid-*.whl > /dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --target "$WORK/site" "$WHEELS"/*.whl > "$WORK/logs/wheels.log" 2>&1 \
    && export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
if "$PY" -c "import pytorch_fid" 2>/dev/null; then
  export EVAL="--eval-at $STEPS --eval-n $EVAL_N --fid-weights random"
  EVAL_NOTE="evaluated with random Inception weights (plumbing, not a real FID)"
else
  export EVAL=""
  EVAL_NOTE="not evaluated: pytorch-fid is missing (see the top of gpu/gpu_check.sh)"
fi

# ----------------------------------------------------------------------------- the steps

step_environment() {
  { nvidia-smi 2>&1 || echo "nvidia-smi: not here"; } && "$PY" -m gpu.gpu_check environment
}

step_build() {
  "$PY" -m gpu.gpu_check backend --device "$DEV" --expect "$BACKEND"
}

step_cuda_tests() {
  "$PY" -m pytest -q -rs -p no:cacheprovider tests/ops/test_ops.py tests/training/test_train.py -k "$TESTS_K" --junitxml="$OUT/junit.xml"
}

step_edge_cases() {
  "$PY" -m gpu.gpu_check edge-cases --device "$DEV"
}

step_train_resume() {  # run from $WORK: the evaluation caches the real images' statistics under ./results
  set -e
  cd "$WORK"
  PYTHONPATH="$REPO" "$PY" -m gpu.gpu_check images "$WORK/images" --n "$N_IMAGES"
  local run=("$REPO/train.py" --dataset folder --data-root "$WORK/images" --device "$DEV" --fused on --deterministic $SIZE
             --log-every "$LOG" --sample-every "$STEPS" --ckpt-every "$STEPS")
  "$PY" "${run[@]}" --steps "$STEPS" $EVAL --out "$WORK/runs/straight"
  "$PY" "${run[@]}" --steps "$HALF" --out "$WORK/runs/resumed"
  "$PY" "${run[@]}" --steps "$STEPS" --resume --out "$WORK/runs/resumed"
  PYTHONPATH="$REPO" "$PY" -m gpu.gpu_check same-run "$WORK/runs/straight" "$WORK/runs/resumed"
}

step_bench_step() {
  "$PY" -m bench.step --devices "$DEV" $BENCH --csv "$OUT/bench_step.csv"
}

step_throughput() {
  [ -d "$WORK/images" ] || "$PY" -m gpu.gpu_check images "$WORK/images" --n "$N_IMAGES" || return 1
  "$PY" -m gpu.gpu_check throughput --csv "$OUT/throughput.csv" --work "$WORK/runs" -- --dataset folder \
    --data-root "$WORK/images" --device "$DEV" --fused on $TPUT --sample-every 100000 --ckpt-every 100000
}

export SANITIZER="compute-sanitizer --kernel-name kns=mink_gan --error-exitcode 1 --print-limit 20"
step_memcheck() {  # no caching allocator: each tensor its own allocation, so an overrun is seen
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 $SANITIZER --tool memcheck "$PY" -m gpu.gpu_check sanitizer-workload
}

step_racecheck() {
  $SANITIZER --tool racecheck "$PY" -m gpu.gpu_check sanitizer-workload
}
export -f step_environment step_build step_cuda_tests step_edge_cases step_train_resume step_bench_step \
  step_throughput step_memcheck step_racecheck

# ----------------------------------------------------------------------------- running them

ROWS=()
FAILED=()
run_step() {  # run_step NAME LIMIT_S: run step_NAME under timeout, log it, and record a report row
  local name=$1 limit=$(($2 * SLOW)) left=$((BUDGET - (SECONDS - START) - RESERVE))
  local log="$WORK/logs/$name.log" t0=$SECONDS rc status
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 10 ]; then
    ROWS+=("$(printf '%-14s %-8s %5s %8s %6s  %s' "$name" NO-TIME - 0 "$limit" "the budget of ${BUDGET} s is spent")")
    FAILED+=("$name")
    return
  fi
  echo "== $name (at most $limit s)" >&2
  timeout --kill-after=10 "$limit" bash -c "step_${name//-/_}" > "$log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124|137) status=TIMEOUT; FAILED+=("$name") ;;
    *) status=FAIL; FAILED+=("$name") ;;
  esac
  ROWS+=("$(printf '%-14s %-8s %5s %8s %6s  %s' "$name" "$status" "$rc" "$((SECONDS - t0))" "$limit" \
    "$(grep -v '^\s*$' "$log" | tail -n 1 | cut -c1-150)")")
  echo "== $name: $status (exit code $rc, $((SECONDS - t0)) s)" >&2
}

skip_step() {  # skip_step NAME REASON
  ROWS+=("$(printf '%-14s %-8s %5s %8s %6s  %s' "$1" skipped - 0 - "$2")")
}

run_step environment 60
run_step build 330
run_step cuda-tests 150
run_step edge-cases 150
run_step train-resume 180
run_step bench-step 240
run_step throughput 150
if [ "$MODE" = cpu ]; then
  skip_step memcheck "compute-sanitizer checks CUDA kernels: not on the CPU"
  skip_step racecheck "compute-sanitizer checks CUDA kernels: not on the CPU"
elif ! command -v compute-sanitizer > /dev/null; then
  skip_step memcheck "compute-sanitizer is not on the PATH"
  skip_step racecheck "compute-sanitizer is not on the PATH"
elif ! timeout 60 $SANITIZER "$PY" -c \
    "import torch; torch.ones(1, device='cuda').sum().item()" > "$WORK/logs/sanitizer-probe.log" 2>&1; then
  why="compute-sanitizer does not run here: $(grep -v '^\s*$' "$WORK/logs/sanitizer-probe.log" | tail -n 1 | cut -c1-120)"
  skip_step memcheck "$why"
  skip_step racecheck "$why"
else
  run_step memcheck 120
  run_step racecheck 120
fi

# ----------------------------------------------------------------------------- the report

for run in "$WORK"/runs/*/; do  # the runs' small files only (no checkpoints, no samples)
  [ -d "$run" ] && rm -rf "$run/checkpoints" "$run/samples" "$run/train.lock"
done
tar -czf "$OUT/logs.tar.gz" -C "$WORK" logs runs
{
  echo "gpu/gpu_check.sh --$MODE: $(date -u +%FT%TZ), $(hostname), commit $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"
  echo "budget ${BUDGET} s, used $((SECONDS - START)) s; training run: $EVAL_NOTE"
  echo
  printf '%-14s %-8s %5s %8s %6s  %s\n' step status exit seconds limit "last line of its log"
  printf '%s\n' "${ROWS[@]}"
  echo
  if [ ${#FAILED[@]} -eq 0 ]; then
    echo "result: every step passed or was skipped"
  else
    echo "result: ${#FAILED[@]} step(s) failed: ${FAILED[*]}"
    for name in "${FAILED[@]}"; do
      [ -f "$WORK/logs/$name.log" ] || continue
      echo
      echo "== the last 40 lines of $name's log"
      tail -n 40 "$WORK/logs/$name.log"
    done
  fi
} > "$OUT/report.txt"
cat "$OUT/report.txt" >&2
[ ${#FAILED[@]} -eq 0 ]
