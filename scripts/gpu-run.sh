#!/usr/bin/env bash
# On the GPU machine, from the checkout root that holds .device/ (scripts/gpu-prepare.sh):
# the GPU tests, a CUDA greedy run through 3 slices, then Hugging Face's baseline (decode, prefill
# of 2048 and 8192 tokens, copy bandwidth) and our benchmark of the same in the same run. Results
# in $OUT (or gpu-results/).
here=$(cd "$(dirname "$0")" && pwd)  # scripts/ or .device/
cd "$here/.."
. "$here/gpu-cluster-lib.sh"  # $out, $B, LD_LIBRARY_PATH, LP_FIXTURES; gpu_tests
gpu_tests
$B/layerpipe greedy --backend cuda --model $LP_FIXTURES/qwen3-tiny \
  --prompt-ids 785,3974,13876,38835 --slices 3 --max-tokens 8 2>&1 | tail -3
PYTHONUNBUFFERED=1 timeout 240 python3 .device/hf_baseline.py qwen3-0.6b,qwen3-8b \
  > "$out/hf.jsonl" 2> "$out/hf.err"; echo "hf_baseline rc=$?"
# Two runs, so that an 80 GB card holds each one's KV cache (a run sizes it for its largest batch
# at its longest context): decode and 2048-token prefill; then 8192 tokens and the long context.
timeout 200 $B/layerpipe bench --preset qwen3-0.6b,qwen3-8b --hf-baseline "$out/hf.jsonl" \
  --json-out "$out/bench.json" 2>&1 | tee "$out/bench.txt"
timeout 200 $B/layerpipe bench --preset qwen3-0.6b,qwen3-8b --hf-baseline "$out/hf.jsonl" \
  --batches 1 --prefill 8192 --long-context 8192 --json-out "$out/bench_long.json" 2>&1 |
  tee "$out/bench_long.txt"
