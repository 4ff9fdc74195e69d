#!/usr/bin/env bash
# On the GPU machine (after scripts/gpu-prepare.sh here): the design brief's case, Qwen2-72B in
# GPTQ Int4 (random weights of the published Int4 shape, preset qwen2-72b-gptq) served by four
# CUDA workers that share GPU 0, each with max_memory 24GiB, device_map layered (20/21/21/18
# layers), CUDA IPC between them; and by one worker for comparison. Shows the plan, streams a
# chat completion, checks that greedy ids through 4 workers equal those through 1, and runs
# load-test at 1 and 64 streams, without and with MPS. Results in $OUT (or gpu-results/): the
# summary (also on stdout) in q72_summary.txt, plans and logs in q72_logs.txt.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)  # scripts/ or .device/
cd "$here/.."
. "$here/gpu-cluster-lib.sh"  # $out, $B; cluster, serve, stop
work=/tmp/q72-work  # per-run files; only the summary and the logs go to $out (8 files come back)
mkdir -p $work
exec > >(tee "$out/q72_summary.txt") 2>&1
port=7700
model=/tmp/q72

tok=.device/tokenizer
mkdir -p $tok && tar xJf .device/tokenizer.tar.xz -C $tok 2>/dev/null
[ -f $tok/tokenizer.json ] && tok_flag="--tokenizer $tok" || tok_flag=""
/usr/bin/time -f "init-model: %e s" $B/layerpipe init-model --preset qwen2-72b-gptq --out $model \
  --seed 1 $tok_flag > $work/init.log 2>&1
tail -n 2 $work/init.log
df -h /tmp | tail -n 1

runs() {  # runs TAG WORKERS...
  local tag=$1 n; shift
  for n in "$@"; do
    cluster /tmp/q72_$n.yaml $model $n $((n == 1 ? 120 : 24)) \
      "{max_batch: 64, max_context: 1024, max_step_tokens: 2048}" auto layered
    [ -n "$tag" ] || $B/layerpipe plan /tmp/q72_$n.yaml >> "$out/q72_logs.txt" 2>&1
    local t0=$SECONDS
    serve /tmp/q72_$n.yaml $work/serve_${n}w$tag.log || { echo "serve $n failed"; continue; }
    echo "72B Int4, $n workers$tag: serving after $((SECONDS - t0)) s"
    if [ -z "$tag" ]; then
      [ $n = 4 ] && $B/layerpipe status --endpoint 127.0.0.1:$port | tail -n 6
      [ -n "$tok_flag" ] && $B/layerpipe generate --endpoint 127.0.0.1:$port --chat "Hello" \
        --max-tokens 12 --temperature 0 > $work/chat_${n}w.txt 2>&1
      echo "chat through $n workers (rc $?): $(head -c 300 $work/chat_${n}w.txt | tr '\n' ' ')"
      $B/layerpipe generate --endpoint 127.0.0.1:$port --prompt-ids 1,2,3,4,5,6,7,8 \
        --max-tokens 24 --ignore-eos --json | tail -n 1 | grep -o '"token_ids":[^]]*]' \
        | tee $work/greedy_${n}w.txt | sed "s/^/72B greedy, $n workers: /"
    fi
    for c in 1 64; do
      $B/layerpipe load-test --endpoint 127.0.0.1:$port --concurrency $c --prompt-len 32 \
        --max-tokens 128 --json > $work/${n}w${tag}_c$c.json 2>&1
      echo "72B Int4, $n workers$tag, $c streams: $(tail -n 1 $work/${n}w${tag}_c$c.json)"
    done
    stop
    { echo "== serve log, $n workers$tag"; tail -n 40 $work/serve_${n}w$tag.log; } >> "$out/q72_logs.txt"
  done
}
runs "" 1 4
if [ -s $work/greedy_1w.txt ] && cmp -s $work/greedy_1w.txt $work/greedy_4w.txt; then
  echo "greedy ids through 4 workers EQUAL those through 1"
else
  echo "greedy ids DIFFER (or missing)"
fi

if command -v nvidia-cuda-mps-control >/dev/null; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/lp-mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/lp-mps-log
  mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
  if nvidia-cuda-mps-control -d; then
    runs "_mps" 4
    echo quit | nvidia-cuda-mps-control
  fi
fi
rm -rf $model $work
