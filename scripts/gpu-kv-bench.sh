#!/usr/bin/env bash
# On the GPU machine (after scripts/gpu-prepare.sh here): the paged KV cache's figures. Results
# in $OUT (or gpu-results/); one summary, kv-summary.txt.
#   gpu-kv-bench.sh decode  Qwen3-8B decode ms/step at batch 1 and 64 (1000-token prompts):
#                           the contiguous cache's build ($LP_OLD_BIN: layerpipe-cuda built at
#                           58f8b69, the commit before paging) next to this one, each sequence's
#                           blocks in one run and scattered over the pool, blocks of 16 and 32;
#                           $LP_KV_ROUNDS times (default 2), interleaved.
#   gpu-kv-bench.sh serve   One worker serving a random-weight Qwen3-8B. Capacity at
#                           max_context 32768 with 40 GiB of KV cache: 8 sequences when every
#                           one reserves max_context (the old rule), 284 of 1k tokens in blocks,
#                           each served at once (tokens/s). Then the time to first token of a
#                           2080-token prompt whose first 2048 tokens are cached, against cold.
#   gpu-kv-bench.sh suffix  Qwen3-8B prefill steps: 32 tokens after 2048 cached positions,
#                           against 32, 2048 and 2080 from position 0 (`bench --prefill-after`).
#   gpu-kv-bench.sh kernels Those 32-token steps' GPU time by kernel (ncu; tools/ncu_step_times.py).
#   gpu-kv-bench.sh all     decode, suffix and serve (to fit one device call: LP_KV_ROUNDS=1, and LP_KV_RUNS / LP_KV_BEFORE=0
#                           to leave out decode runs / the 8-sequence serving run).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)  # scripts/ or .device/
cd "$here/.."
. "$here/gpu-cluster-lib.sh"  # $out, $B; cluster, serve, stop
port=7600
sum=$out/kv-summary.txt

decode() {
  local args="--preset qwen3-8b --batches 1,64 --prompt 1000 --decode 64 --prefill 0 --json"
  local r name bin extra
  for r in $(seq ${LP_KV_ROUNDS:-2}); do
    for run in ${LP_KV_RUNS:-old new new-scatter new-scatter-32}; do
      bin=$B/layerpipe extra=""
      case $run in
        old) [ -n "${LP_OLD_BIN:-}" ] || continue; bin=$LP_OLD_BIN ;;
        new-scatter) extra="--scatter-kv" ;;
        new-scatter-32) extra="--scatter-kv --kv-block-tokens 32" ;;
      esac
      timeout 150 $bin bench $args $extra > "$out/kv_decode_${run}_r$r.json" 2> /dev/null
      python3 tools/bench_summary.py "$out/kv_decode_${run}_r$r.json" "$run run $r" >> "$sum"
    done
  done
}

suffix() {  # one prefill step of a prompt's 32-token suffix after 2048 cached positions, and cold
  local args="--preset qwen3-8b --batches 1 --prompt 16 --decode 8 --json"
  $B/layerpipe bench $args --prefill 32,2048,2080 > "$out/kv_prefill_cold.json" 2> /dev/null
  $B/layerpipe bench $args --prefill 32 --prefill-after 2048 > "$out/kv_prefill_after.json" 2> /dev/null
  python3 tools/bench_summary.py "$out/kv_prefill_cold.json" "prefill from position 0" >> "$sum"
  python3 tools/bench_summary.py "$out/kv_prefill_after.json" "prefill after 2048 cached" >> "$sum"
}

suffix_kernels() {  # the GPU time of those 32-token steps by kernel (Nsight Compute)
  local after
  for after in 0 2048; do
    bash "$here/gpu-kernel-times.sh" "32-token-step-after-$after" --preset qwen3-8b --batches 1 \
      --prompt 16 --decode 2 --prefill 32 --prefill-after $after >> "$sum" 2>&1
  done
}

load() {  # load TAG ARGS...: one load-test, its JSON line into the summary
  local tag=$1; shift
  $B/layerpipe load-test --endpoint 127.0.0.1:$port --json "$@" > "$out/kv_$tag.json" 2>&1
  echo "$tag: $(tail -n 1 "$out/kv_$tag.json")" >> "$sum"
}

kv_status() { $B/layerpipe status --endpoint 127.0.0.1:$port | grep -E "KV cache|requests" >> "$sum"; }

serve_runs() {
  $B/layerpipe init-model --preset qwen3-8b --out /tmp/q8 --seed 1 > "$out/kv_init.log" 2>&1
  # 40 GiB of bf16 KV cache for Qwen3-8B (36 layers x 8 KV heads x 128 x 2 x 2 bytes = 144 KiB a
  # token): 291,271 tokens. Reserving max_context 32768 per sequence: 8 sequences. In blocks of
  # 16 tokens: 18,204 blocks, 284 sequences of 1024 tokens.
  cluster /tmp/q8_ttft.yaml /tmp/q8 1 72 "{max_batch: 16, max_context: 4096, max_step_tokens: 2048}"
  if serve /tmp/q8_ttft.yaml "$out/kv_serve_ttft.log"; then
    load warm_up --prompt-len 64 --max-tokens 1 --seed 9
    load ttft_cold --prompt-len 2080 --shared-prefix 2048 --max-tokens 1 --seed 1
    for s in 2 3 4; do load ttft_cached_$s --prompt-len 2080 --shared-prefix 2048 --max-tokens 1 --seed $s; done
    load ttft_nothing_shared --prompt-len 2080 --max-tokens 1 --seed 5
    kv_status
    stop
  fi
  cluster /tmp/q8_before.yaml /tmp/q8 1 72 "{max_batch: 8, max_context: 32768, max_step_tokens: 2048, kv_blocks: 16384}"
  if [ "${LP_KV_BEFORE:-1}" = 1 ] && serve /tmp/q8_before.yaml "$out/kv_serve_before.log"; then
    echo "before: 8 sequences reserve 8 x 32768 tokens" >> "$sum"
    load before_c8 --concurrency 8 --prompt-len 1000 --max-tokens 24
    stop
  fi
  cluster /tmp/q8_after.yaml /tmp/q8 1 72 "{max_batch: 284, max_context: 32768, max_step_tokens: 2048, kv_blocks: 18204}"
  if serve /tmp/q8_after.yaml "$out/kv_serve_after.log"; then
    load after_c284 --concurrency 284 --prompt-len 1000 --max-tokens 24
    kv_status
    stop
  fi
}

case ${1:-decode} in
  decode) decode ;;
  serve) serve_runs ;;
  suffix) suffix ;;
  kernels) suffix_kernels ;;
  all) decode; suffix; serve_runs ;;
esac
cat "$sum"
