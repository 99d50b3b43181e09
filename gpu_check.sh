#!/usr/bin/env bash
# On a machine with a GPU: run what this repository could only check on a CPU, and write what it
# found to one file (default gpu_check_report.txt). Every step runs even if an earlier one fails;
# the report ends with each step's exit code.
#
#     bash gpu_check.sh [report-file]
set -uo pipefail
cd "$(dirname "$0")"
REPORT=$(realpath -m "${1:-gpu_check_report.txt}")
WORK=$(mktemp -d)
: > "$REPORT"
declare -a SUMMARY

step() {  # step NAME COMMAND...: run it, append its output and exit code to the report
  local name=$1
  shift
  echo "== $name: $*" | tee -a "$REPORT"
  "$@" >> "$REPORT" 2>&1
  local rc=$?
  echo "== $name: exit code $rc" | tee -a "$REPORT"
  SUMMARY+=("$name: $rc")
}

step environment python -c "import torch, sys; print(sys.version); print(torch.__version__, torch.version.cuda); \
[print(i, torch.cuda.get_device_name(i), torch.cuda.get_device_capability(i)) for i in range(torch.cuda.device_count())]"
step cuda-tests python -m pytest -q -rs tests/test_ops.py
step emulation-tests python -m pytest -q tests/test_emulation.py
step bench-ops python bench_ops.py
step bench-step python bench_step.py
step cifar-shaped-images python -c "import os, sys, torch, torchvision
for i in range(640):
    os.makedirs(f'$WORK/images/c{i % 10}', exist_ok=True)
    torchvision.utils.save_image(torch.rand(3, 32, 32), f'$WORK/images/c{i % 10}/{i}.png')"
step cifar-shaped-run python train.py --dataset folder --data-root "$WORK/images" --steps 200 --device cuda \
  --fused on --log-every 50 --sample-every 200 --ckpt-every 200 --out "$WORK/run"
step cifar-shaped-run-results cat "$WORK/run/metrics.csv" "$WORK/run/summary.json" "$WORK/run/config.json"
step cifar-shaped-run-compiled python train.py --dataset folder --data-root "$WORK/images" --steps 200 --device cuda \
  --fused on --compile --channels-last --log-every 50 --sample-every 200 --ckpt-every 200 --out "$WORK/run-compiled"
step cifar-shaped-run-compiled-results cat "$WORK/run-compiled/metrics.csv" "$WORK/run-compiled/summary.json"
if command -v compute-sanitizer > /dev/null; then
  for tool in memcheck racecheck; do
    step "sanitizer-$tool" compute-sanitizer --tool "$tool" --error-exitcode 1 \
      python -m pytest -q -x tests/test_ops.py -k "cuda_minkowski or cuda_penalty"
  done
else
  echo "== compute-sanitizer not found: memcheck and racecheck skipped" | tee -a "$REPORT"
fi
{ echo "== summary (exit codes; 0 = passed)"; printf '%s\n' "${SUMMARY[@]}"; } | tee -a "$REPORT"
rm -rf "$WORK"
