#!/usr/bin/env bash
# On the GPU machine: where the last step of a `layerpipe bench` run spends its GPU time, by
# kernel (Nsight Compute times every kernel alone, caches flushed: small kernels read longer
# than in a real run; tools/ncu_step_times.py sums the last step's). Appends to
# $OUT/kernel-times.txt (or gpu-results/).
#   gpu-kernel-times.sh LABEL BENCH_ARGS...
# e.g. gpu-kernel-times.sh prefill-2048 --preset qwen3-8b --batches 1 --prompt 16 --decode 2 --prefill 2048
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)  # scripts/ or .device/
cd "$here/.."
. "$here/gpu-cluster-lib.sh"  # $out, $B, $ncu, LD_LIBRARY_PATH
label=$1; shift
timeout 300 "$ncu" --csv --metrics gpu__time_duration.sum "$B/layerpipe-cuda" bench "$@" --json \
  > "$out/ncu_$label.csv" 2>&1
python3 tools/ncu_step_times.py "$out/ncu_$label.csv" "$label" | tee -a "$out/kernel-times.txt"
