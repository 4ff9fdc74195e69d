#!/usr/bin/env bash
# On the GPU machine: Nsight Compute's analysis (speed of light, occupancy, warp stalls, memory and
# compute workload) of the last launch of one kernel in a `layerpipe bench` run, e.g. the flash
# attention of a prefill's last layer. Run gpu-kernel-times.sh with the same LABEL and arguments
# first: its CSV tells how many launches of the kernel to skip. Writes $OUT/detail_LABEL.txt (or
# gpu-results/) and prints its tables.
#   gpu-kernel-detail.sh KERNEL_REGEX LABEL BENCH_ARGS...
# e.g. gpu-kernel-detail.sh FlashAttnKernel prefill-2048 --preset qwen3-8b --batches 1 --prompt 16 --decode 2 --prefill 2048
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)  # scripts/ or .device/
cd "$here/.."
. "$here/gpu-cluster-lib.sh"  # $out, $B, $ncu, LD_LIBRARY_PATH
kernel=$1 label=$2; shift 2
csv=$out/ncu_$label.csv
[ -f "$csv" ] || { echo "no $csv: run gpu-kernel-times.sh $label first"; exit 1; }
n=$(grep -c "$kernel" "$csv")
[ "$n" -gt 0 ] || { echo "no launch of $kernel in $csv"; exit 1; }
timeout 300 "$ncu" --kernel-name "regex:$kernel" --launch-skip $((n - 1)) --launch-count 1 \
  --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
  --section SchedulerStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
  "$B/layerpipe-cuda" bench "$@" > "$out/detail_$label.txt" 2>&1
grep -v -E '^==PROF==|^\{' "$out/detail_$label.txt" | sed -n '/Section:/,$p'
