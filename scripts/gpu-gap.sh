#!/usr/bin/env bash
# On the GPU machine (after scripts/gpu-prepare.sh here): the host time between decode steps of
# a cluster of one CUDA worker, with decode ahead (the cluster file's decode_ahead) on and off,
# rounds interleaved. A step's own time is `layerpipe bench`'s (same model, batch, prompt); the
# cluster's time per step is a load test's, 1000 / a stream's tokens per second after its first
# token (the mean over streams), with one stream and with 64. Results in $OUT (or gpu-results/).
#   gpu-gap.sh [ROUNDS [PRESETS]]   default: 2 qwen3-0.6b,qwen3-8b
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)  # scripts/ or .device/
cd "$here/.."
. "$here/gpu-cluster-lib.sh"  # $out, $B; cluster, serve, stop
port=7600
rounds=${1:-2}
presets=${2:-qwen3-0.6b,qwen3-8b}
timeout 300 $B/layerpipe bench --preset "$presets" --batches 1,64 --prompt 32 --decode 256 \
  --prefill 0 --json > "$out/gap_bench.json" 2> "$out/gap_bench.err"
python3 tools/bench_summary.py "$out/gap_bench.json" "bench (the step alone)"
for preset in ${presets//,/ }; do
  [ -d /tmp/$preset ] || $B/layerpipe init-model --preset $preset --out /tmp/$preset --seed 1 \
    > /tmp/init_$preset.log 2>&1
  for r in $(seq "$rounds"); do
    for ahead in true false; do
      cluster /tmp/gap.yaml /tmp/$preset 1 72 "{max_batch: 64, max_context: 512, max_step_tokens: 2048}"
      echo "decode_ahead: $ahead" >> /tmp/gap.yaml
      serve /tmp/gap.yaml /tmp/gap_serve.log || { echo "serve failed"; tail -5 /tmp/gap_serve.log; continue; }
      for c in 1 64; do
        $B/layerpipe load-test --endpoint 127.0.0.1:$port --concurrency $c --prompt-len 32 \
          --max-tokens 256 --json > /tmp/gap_load.json 2> /dev/null
        python3 - /tmp/gap_load.json "$preset" "$ahead" "$r" "$c" <<'EOF'
import json, sys
path, preset, ahead, r, c = sys.argv[1:]
j = json.load(open(path))
step_ms = 1000 / j["stream_tokens_per_s"]
print(f"{preset} decode_ahead={ahead} round {r}, {c} streams: {step_ms:.3f} ms a step "
      f"(tokens/s {j['total_tokens_per_s']:.1f}, ttft median {j['ttft_ms_median']:.1f} ms)")
EOF
      done
      stop
    done
  done
done
