#!/usr/bin/env bash
# On the GPU machine: a change against the build it changes, in one call (`LP_BASE=HEAD
# scripts/gpu-prepare.sh` packs both): the GPU tests (the cluster ones left out: they time
# nothing the change alters), `layerpipe bench` of both builds with rounds interleaved
# (gpu-ab-bench.sh), then the single products' probe. With `LP_BASE="REV REV2 ..."`, the
# bundle against each of them (base-cuda.xz = A, base2 = B..., the bundle last: up to six
# builds). Three files in $OUT (or gpu-results/): the suite's log, the summary, the probe.
#   gpu-change.sh [ROUNDS [BENCH_ARGS...]]
# default: 2 --preset qwen3-8b --batches 1,4,16,64 --prefill 32,2048
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)  # scripts/ or .device/
cd "$here/.."
. "$here/gpu-cluster-lib.sh"  # $out, $B, LD_LIBRARY_PATH, LP_FIXTURES; gpu_tests
rounds=${1:-2}
shift || true
[ $# -gt 0 ] || set -- --preset qwen3-8b --batches 1,4,16,64 --prefill 32,2048
[ -f .device/base-cuda.xz ] || { echo "no .device/base-cuda.xz: LP_BASE=REV scripts/gpu-prepare.sh makes it"; exit 1; }
sides=(A B C D E F)
n=0
for base in .device/base{,2,3,4,5}-cuda.xz; do
  [ -f "$base" ] || break
  xz -dc "$base" > "/tmp/side$n" && chmod +x "/tmp/side$n"
  export "LP_${sides[$n]}=/tmp/side$n"
  n=$((n + 1))
done
export "LP_${sides[$n]}=$B/layerpipe-cuda"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
gpu_tests '-*GpuCluster*'
"$here/gpu-ab-bench.sh" "$rounds" "$@"
timeout 120 "$B/layerpipe-cuda" bench --probe --preset qwen3-8b --batches 1 --decode 8 --prefill 0 \
  > "$out/probe.txt" 2>&1
grep -E "matmul|error" "$out/probe.txt"
