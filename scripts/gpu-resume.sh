#!/usr/bin/env bash
# On the GPU machine (after scripts/gpu-prepare.sh here): how long a resume takes. A random-
# weight Qwen3-8B over 3 worker processes sharing GPU 0 (CUDA IPC between them) serves 64
# streams of 1024-token prompts; the middle worker is killed mid-generation and started again
# after 2 s (as systemd would). The coordinator logs how long re-prefilling the paused streams
# took; next to it, the time to first token of the same 64 prompts sent fresh (the same prefill
# work, as a reference measured in the same run). Results in $OUT (or gpu-results/).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)  # scripts/ or .device/
cd "$here/.."
. "$here/gpu-cluster-lib.sh"  # $out, $B; cluster
port=7700

[ -d /tmp/q8 ] || $B/layerpipe init-model --preset qwen3-8b --out /tmp/q8 --seed 1 > "$out/init.log" 2>&1
cluster /tmp/resume.yaml /tmp/q8 3 24 "{max_batch: 64, max_context: 2048, max_step_tokens: 8192}"
pid=()  # the workers' processes
start_worker() { $B/layerpipe-worker /tmp/resume.yaml --name g$1 >> "$out/resume_g$1.log" 2>&1 & pid[$1]=$!; }
for i in 0 1 2; do start_worker $i; done
$B/layerpipe-coordinator /tmp/resume.yaml > "$out/resume_coordinator.log" 2>&1 &
coord=$!
for _ in $(seq 600); do
  grep -q "ready (SERVING)" "$out/resume_coordinator.log" && break
  sleep 0.5
done

load() {  # load MAX_TOKENS FILE
  $B/layerpipe load-test --endpoint 127.0.0.1:$port --concurrency 64 --prompt-len 1024 \
    --max-tokens $1 --json > "$2" 2>&1
}
load 1 "$out/resume_fresh_warmup.json"
load 1 "$out/resume_fresh.json"
echo "64 x 1024-token prompts sent fresh: $(tail -n 1 "$out/resume_fresh.json")"

load 600 "$out/resume_load.json" &
loader=$!
sleep 10
kill -9 ${pid[1]}
echo "killed g1 at $(date +%T.%N)"
sleep 2
start_worker 1
wait $loader
echo "64 streams, g1 killed mid-generation: $(tail -n 1 "$out/resume_load.json")"
grep -E "resumed|CUDA IPC|lost|did not" "$out/resume_coordinator.log" | tail -n 8
kill -INT $coord; wait $coord
kill -TERM "${pid[@]}"
wait
