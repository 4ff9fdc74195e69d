#!/usr/bin/env bash
# On the GPU machine (after scripts/gpu-prepare.sh here): the host time between decode steps of
# a cluster of one CUDA worker, with decode ahead (the cluster file's decode_ahead) on and off,
# in alternating order round by round. A step's own time is `layerpipe bench`'s (same model,
# batch, prompt); the cluster's time per step comes from the coordinator's request log,
# (total_ms - ttft_ms) / (completion_tokens - 1): the one request of a burst of one stream, the
# median of a burst of 64. Summary in $OUT/gap.txt (or gpu-results/).
#   gpu-gap.sh [ROUNDS [PRESETS]]   default: 2 qwen3-0.6b,qwen3-8b
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)  # scripts/ or .device/
cd "$here/.."
. "$here/gpu-cluster-lib.sh"  # $out, $B; cluster, serve, stop
port=7600
rounds=${1:-2}
presets=${2:-qwen3-0.6b,qwen3-8b}
sum=$out/gap.txt
timeout 300 $B/layerpipe bench --preset "$presets" --batches 1,64 --prompt 32 --decode 256 \
  --prefill 0 --json > "$out/gap_bench.json" 2> "$out/gap_bench.err"
python3 tools/bench_summary.py "$out/gap_bench.json" "bench (the step alone)" | tee -a "$sum"
for preset in ${presets//,/ }; do
  [ -d /tmp/$preset ] || $B/layerpipe init-model --preset $preset --out /tmp/$preset --seed 1 \
    > /tmp/init_$preset.log 2>&1
  for r in $(seq "$rounds"); do
    order="true false"
    [ $((r % 2)) = 0 ] && order="false true"
    for ahead in $order; do
      cluster /tmp/gap.yaml /tmp/$preset 1 72 "{max_batch: 64, max_context: 512, max_step_tokens: 2048}"
      echo "decode_ahead: $ahead" >> /tmp/gap.yaml
      if ! serve /tmp/gap.yaml /tmp/gap_serve.log; then
        echo "$preset decode_ahead=$ahead round $r: serve failed" | tee -a "$sum"
        tail -5 /tmp/gap_serve.log
        kill $serve_pid 2>/dev/null; wait $serve_pid 2>/dev/null
        continue
      fi
      for c in 1 64; do
        $B/layerpipe load-test --endpoint 127.0.0.1:$port --concurrency $c --prompt-len 32 \
          --max-tokens 256 --json > /dev/null 2>&1
      done
      stop
      python3 - /tmp/gap_serve.log "$preset decode_ahead=$ahead round $r" <<'PY' | tee -a "$sum"
import re, statistics, sys
path, label = sys.argv[1:]
ms = []
for line in open(path):
    m = re.search(r"completion_tokens=(\d+) ttft_ms=([\d.]+) total_ms=([\d.]+)", line)
    if m and int(m[1]) > 1:
        ms.append((float(m[3]) - float(m[2])) / (int(m[1]) - 1))
if len(ms) < 65:
    print(f"{label}: {len(ms)} requests in the log, 65 expected")
else:
    print(f"{label}: one stream {ms[0]:.3f} ms a step, 64 streams {statistics.median(ms[1:65]):.3f}")
PY
    done
  done
done
