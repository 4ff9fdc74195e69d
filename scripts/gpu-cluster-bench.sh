#!/usr/bin/env bash
# On the GPU machine (after scripts/gpu-prepare.sh here): layerpipe clusters of 1, 2 and 4
# worker processes sharing GPU 0, activations between them over CUDA IPC (and, for comparison,
# over gRPC through host memory; then again under MPS where the driver has it). Checks that
# greedy output is the same through 1 and 3 CUDA workers and 3 CPU workers (qwen3-tiny fixture), then times a
# random-weight Qwen3-8B: batch-1 decode (the per-hop cost is (t4 - t1) / 3) and 64 streams.
# Results in $OUT (or gpu-results/).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)  # scripts/ or .device/
cd "$here/.."
. "$here/gpu-cluster-lib.sh"  # $out, $B; cluster, serve, stop
port=7600

# 1. Greedy through 1 and 3 CUDA workers on the fixture.
for run in 1:cuda 3:cuda 3:cpu; do
  n=${run%%:*} kind=${run##*:}
  cluster /tmp/tiny$n.yaml $PWD/tests/fixtures/qwen3-tiny $n 10 "{max_batch: 4, max_context: 128, max_step_tokens: 128}"
  sed -i "s/cuda:0/$kind:0/" /tmp/tiny$n.yaml
  serve /tmp/tiny$n.yaml "$out/tiny_serve_${n}_$kind.log" || continue
  $B/layerpipe generate --endpoint 127.0.0.1:$port --prompt-ids 785,3974,13876,38835,34208 \
    --max-tokens 20 --ignore-eos --json | tail -n 1 | grep -o '"token_ids":[^]]*]' \
    | sed "s/^/qwen3-tiny greedy, $n $kind workers: /"
  stop
done

# 2. Qwen3-8B, random weights, 1 / 2 / 4 workers on the one GPU (CUDA IPC between them), and
# 4 workers over gRPC for comparison.
time $B/layerpipe init-model --preset qwen3-8b --out /tmp/q8 --seed 1 > "$out/init.log" 2>&1
bench_runs() {  # bench_runs TAG RUN... (RUN = workers:transport), each LP_CLUSTER_REPEATS times
  local tag=$1 run n transport r; shift
  for r in $(seq ${LP_CLUSTER_REPEATS:-1}); do for run in "$@"; do
    n=${run%%:*} transport=${run##*:}
    cluster /tmp/q8_$n.yaml /tmp/q8 $n $((72 / n)) "{max_batch: 64, max_context: 512, max_step_tokens: 2048}" $transport
    serve /tmp/q8_$n.yaml "$out/q8_serve_${n}_$transport${tag}_r$r.log" || { echo "serve $n failed"; continue; }
    [ $n = 4 ] && $B/layerpipe status --endpoint 127.0.0.1:$port | tail -n 5
    # The first request after start (time to first token), then 1 and 64 streams, then a
    # request like the first again.
    for c in first 1 64 later; do
      local streams=$c tokens=128
      case $c in first | later) streams=1 tokens=1 ;; esac
      $B/layerpipe load-test --endpoint 127.0.0.1:$port --concurrency $streams --prompt-len 32 \
        --max-tokens $tokens --json > "$out/q8_${n}w_${transport}${tag}_r${r}_c$c.json" 2>&1
      echo "8B, $n workers ($transport$tag), run $r, $c: $(cat "$out/q8_${n}w_${transport}${tag}_r${r}_c$c.json")"
    done
    $B/layerpipe generate --endpoint 127.0.0.1:$port --prompt-ids 1,2,3,4,5 --max-tokens 16 \
      --ignore-eos --json | tail -n 1 | grep -o '"token_ids":[^]]*]' | sed "s/^/8B greedy, $n workers ($transport$tag): /"
    stop
  done; done
}
# LP_CLUSTER_RUNS / LP_CLUSTER_MPS_RUNS pick other runs (to fit a device call's time).
bench_runs "" ${LP_CLUSTER_RUNS:-1:auto 2:auto 4:auto 4:grpc}

# 3. The same with NVIDIA's MPS daemon, where the driver has it: the worker processes share the
# GPU's SMs at once instead of taking turns in time slices.
if command -v nvidia-cuda-mps-control >/dev/null; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/lp-mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/lp-mps-log
  mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
  if nvidia-cuda-mps-control -d; then
    bench_runs "_mps" ${LP_CLUSTER_MPS_RUNS:-1:auto 4:auto}
    echo quit | nvidia-cuda-mps-control
  fi
  unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
fi

# 4. The table: decode time per token at batch 1, the cost of a hop ((t4 - t1) / 3, t1 from the
# same repeat), 64 streams' throughput against one worker's, and the time to first token
# (32-token prompt) of the first request after start and of one after the others; with several
# repeats, the median and [min, max] of each.
python3 - "$out" <<'PY'
import glob, json, os, re, statistics, sys
out = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None
repeats = sorted({int(m.group(1)) for f in glob.glob(os.path.join(out, "q8_*_r*_c*.json"))
                  if (m := re.search(r"_r(\d+)_c", f))})
def cell(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    text = format(statistics.median(values), fmt)
    return text if len(values) == 1 else f"{text} [{format(min(values), fmt)}, {format(max(values), fmt)}]"
print(f"{len(repeats)} repeat(s); median [min, max]")
print(f"{'run':<14}{'ms/token c=1':>24}{'hop ms':>26}{'tok/s c=64':>20}{'vs 1 worker':>22}"
      f"{'TTFT first ms':>20}{'TTFT later ms':>20}")
for tag in ("", "_mps"):
    for n, transport in ((1, "auto"), (2, "auto"), (4, "auto"), (4, "grpc")):
        rows = {k: [] for k in ("ms", "hop", "tps", "ratio", "first", "later")}
        for r in repeats:
            get = lambda w, t, c: load(f"q8_{w}w_{t}{tag}_r{r}_c{c}.json")
            c1, c64, one1, one64 = get(n, transport, 1), get(n, transport, 64), get(1, "auto", 1), get(1, "auto", 64)
            if not c1 or not c64:
                continue
            ms = 1000 / c1["stream_tokens_per_s"]
            rows["ms"].append(ms)
            rows["hop"].append((ms - 1000 / one1["stream_tokens_per_s"]) / (n - 1) if one1 and n > 1 else None)
            rows["tps"].append(c64["total_tokens_per_s"])
            rows["ratio"].append(c64["total_tokens_per_s"] / one64["total_tokens_per_s"] if one64 else None)
            for c in ("first", "later"):
                t = get(n, transport, c)
                rows[c].append(t["ttft_ms_median"] if t else None)
        if not rows["ms"]:
            continue
        print(f"{f'{n}w {transport}{tag}':<14}{cell(rows['ms'], '.2f'):>24}{cell(rows['hop'], '.3f'):>26}"
              f"{cell(rows['tps'], '.0f'):>20}{cell(rows['ratio'], '.2f'):>22}"
              f"{cell(rows['first'], '.1f'):>20}{cell(rows['later'], '.1f'):>20}")
PY
