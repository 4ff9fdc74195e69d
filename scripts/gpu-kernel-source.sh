#!/usr/bin/env bash
# On the GPU machine: where one kernel's warps wait, instruction by instruction. Nsight Compute's
# source counters (PC sampling of warp stalls, instructions executed) of the last launch of
# KERNEL_REGEX in a `layerpipe bench` run, as its SASS page in $OUT/sass_LABEL.csv (or
# gpu-results/), summed by tools/ncu_source_summary.py (by stall reason, by opcode, the top
# instructions) into $OUT/source_LABEL.txt, which it prints.
#   gpu-kernel-source.sh KERNEL_REGEX LABEL BENCH_ARGS...
# e.g. gpu-kernel-source.sh FlashAttnKernel prefill-2048 --preset qwen3-8b --batches 1 --prompt 16 --decode 2 --prefill 2048
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)  # scripts/ or .device/
cd "$here/.."
. "$here/gpu-cluster-lib.sh"  # $out, $B, $ncu, LD_LIBRARY_PATH
kernel=$1 label=$2; shift 2
# Its launches first (only that kernel is timed), to profile the last one.
n=$(timeout 200 "$ncu" --csv --metrics gpu__time_duration.sum --kernel-name "regex:$kernel" \
  "$B/layerpipe-cuda" bench "$@" 2> /dev/null | grep -c "gpu__time_duration")
[ "$n" -gt 0 ] || { echo "no launch of $kernel"; exit 1; }
rep=/tmp/source_$label
timeout 300 "$ncu" --kernel-name "regex:$kernel" --launch-skip $((n - 1)) --launch-count 1 \
  --section SourceCounters --section WarpStateStats --section SpeedOfLight -f -o "$rep" \
  "$B/layerpipe-cuda" bench "$@" > /dev/null 2>&1
"$ncu" -i "$rep.ncu-rep" --page source --print-source sass --csv > "$out/sass_$label.csv" 2>&1
python3 tools/ncu_source_summary.py "$out/sass_$label.csv" "$label launch $n of $n" \
  | tee "$out/source_$label.txt"
