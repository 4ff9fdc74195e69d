#!/usr/bin/env bash
# On the GPU machine (after scripts/gpu-prepare.sh here): where a step's GPU time goes through 1
# and 4 CUDA workers sharing GPU 0 under MPS (random-weight Qwen3-8B, as gpu-cluster-bench.sh):
# every worker writes its GPU timeline (LP_GPU_TIMELINE), one stream then 64 streams of 64
# tokens, and tools/gpu_timeline.py splits each burst into hops, hand-over copies, stages and
# the gap between steps. Results in $OUT (or gpu-results/).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)  # scripts/ or .device/
cd "$here/.."
. "$here/gpu-cluster-lib.sh"  # $out, $B; cluster, serve, stop
port=7600
[ -d /tmp/q8 ] || $B/layerpipe init-model --preset qwen3-8b --out /tmp/q8 --seed 1 > "$out/init.log" 2>&1
export CUDA_MPS_PIPE_DIRECTORY=/tmp/lp-mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/lp-mps-log
mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
nvidia-cuda-mps-control -d || echo "no MPS: workers take turns on the GPU"
for n in 1 4; do
  rm -rf /tmp/timeline_$n && mkdir -p /tmp/timeline_$n
  cluster /tmp/q8_$n.yaml /tmp/q8 $n $((72 / n)) "{max_batch: 64, max_context: 512, max_step_tokens: 2048}"
  LP_GPU_TIMELINE=/tmp/timeline_$n serve /tmp/q8_$n.yaml "$out/timeline_serve_$n.log" || { echo "serve $n failed"; continue; }
  for c in 1 64; do
    $B/layerpipe load-test --endpoint 127.0.0.1:$port --concurrency $c --prompt-len 32 --max-tokens 64 \
      --json > /dev/null 2>&1
    sleep 0.5  # a pause between bursts: the merger cuts the timeline there
  done
  stop
  echo "== $n workers (bursts: 1 stream, then 64 streams)"
  python3 tools/gpu_timeline.py /tmp/timeline_$n
done
echo quit | nvidia-cuda-mps-control
