#!/usr/bin/env bash
# On the GPU machine: `layerpipe bench` of two builds of layerpipe-cuda (or up to six, with LP_C
# to LP_F) in the same call, rounds interleaved, so that a change is measured against what it
# changes. One summary line per run (tools/bench_summary.py) in $OUT/ab-summary.txt (or
# gpu-results/); the runs' reports in /tmp/ab-json.
#   LP_A=BIN LP_B=BIN [LP_C=BIN ... LP_F=BIN] gpu-ab-bench.sh ROUNDS BENCH_ARGS...
# (the xz builds of `LP_BASE="REV..." scripts/gpu-prepare.sh`, unpacked), e.g.
# LP_A=/tmp/base LP_B=.device/bundle/bin/layerpipe-cuda gpu-ab-bench.sh 2 --preset qwen3-8b
#      --batches 1,8 --prefill 7,9
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)  # scripts/ or .device/
cd "$here/.."
. "$here/gpu-cluster-lib.sh"  # $out, $B, LD_LIBRARY_PATH
rounds=$1; shift
sum=$out/ab-summary.txt
json=/tmp/ab-json  # each run's whole report, kept out of $OUT (at most 8 files come back)
mkdir -p "$json"
for r in $(seq "$rounds"); do
  for side in A B C D E F; do
    bin=LP_$side
    [ -n "${!bin:-}" ] || continue
    timeout 200 "${!bin}" bench "$@" --json > "$json/ab_${side}_r$r.json" 2> /dev/null
    python3 tools/bench_summary.py "$json/ab_${side}_r$r.json" "$side run $r" >> "$sum"
  done
done
cat "$sum"
