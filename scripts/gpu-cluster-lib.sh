# Shared by the GPU machine's scripts (gpu-run.sh, gpu-change.sh, the cluster ones...), sourced
# from the checkout's root: sets $out (the results folder, $OUT or gpu-results/), $B (the
# bundle's bin folder, unpacked if needed), $ncu (Nsight Compute's command) and LP_FIXTURES (they
# travel with the working tree);
# runs the GPU test suite; writes a cluster file of N workers on GPU 0, and starts and stops
# `layerpipe serve`. The cluster functions need $port (the coordinator's; workers take the next
# ones).
out=${OUT:-gpu-results}
mkdir -p "$out"
[ -d .device/bundle ] || tar xJf .device/bundle.tar.xz -C .device
export LD_LIBRARY_PATH=$PWD/.device/bundle/lib:/usr/local/cuda/lib64
B=$PWD/.device/bundle/bin
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
export LP_FIXTURES=${LP_FIXTURES:-$PWD/tests/fixtures}

gpu_tests() {  # gpu_tests [GTEST_FILTER]: the suite's log in $out/gpu_tests.log, its outcome printed
  # (LP_BIN_DIR: the cluster tests start the bundle's programs.)
  LP_BIN_DIR=$B timeout 300 "$B/layerpipe_gpu_tests" ${1:+--gtest_filter="$1"} > "$out/gpu_tests.log" 2>&1
  echo "gpu tests rc=$?" | tee -a "$out/gpu_tests.log"
  grep -E "^\[  FAILED|Failure|PASSED" "$out/gpu_tests.log" | head -30
}

cluster() {  # cluster FILE MODEL N BUDGET_GIB LIMITS [TRANSPORT] [DEVICE_MAP]
  local file=$1 model=$2 n=$3 budget=$4 limits=$5 transport=${6:-auto} map=${7:-balanced} i
  {
    echo "model: {path: $model}"
    echo "transport: $transport"
    echo "device_map: $map"
    echo "coordinator: {listen: \"127.0.0.1:$port\"}"
    echo "max_memory: {$(for ((i = 0; i < n; i++)); do printf 'g%d: %dGiB, ' $i $budget; done | sed 's/, $//')}"
    echo "workers:"
    for ((i = 0; i < n; i++)); do echo "  - {name: g$i, device: \"cuda:0\", address: \"127.0.0.1:$((port + 1 + i))\"}"; done
    echo "limits: $limits"
  } > "$file"
}

serve() {  # serve FILE LOG: starts `layerpipe serve`, waits until it serves (7.5 minutes at most)
  $B/layerpipe serve "$1" > "$2" 2>&1 &
  serve_pid=$!
  for _ in $(seq 900); do
    grep -q "serving on" "$2" && return 0
    kill -0 $serve_pid 2>/dev/null || { tail -20 "$2"; return 1; }
    sleep 0.5
  done
  return 1
}

stop() { kill -INT $serve_pid; wait $serve_pid 2>/dev/null; }
