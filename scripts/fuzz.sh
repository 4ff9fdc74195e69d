#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input (fuzz/): builds the fuzz targets with clang, libFuzzer,
# ASan and UBSan into build-fuzz/, then runs each for SECONDS (default 60) on a copy of its
# corpus. A crash (or timeout, or out-of-memory) is copied into fuzz/corpus/<target>/ under
# libFuzzer's name (crash-<sha1>, ...), where CTest's fuzz_replay_<target> replays it from then
# on; fix the code, and commit the file with the fix. Exits 1 when anything was found.
#   scripts/fuzz.sh [SECONDS] [TARGET...]    e.g. scripts/fuzz.sh 120 safetensors tokenizer
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
all=(safetensors safetensors_index model_config cluster_config tokenizer chat_template
  worker_step request_validation)
targets=("${@:-${all[@]}}")

# Instrumented code everywhere we compile; only the targets link libFuzzer's main
# (fuzz/CMakeLists.txt). System libraries (gRPC, yaml-cpp, ...) stay uninstrumented.
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
flags+=" -fno-omit-frame-pointer"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLAYERPIPE_CUDA=OFF \
  -DLAYERPIPE_FUZZ=ON -DBUILD_TESTING=OFF -DCMAKE_C_COMPILER=clang-14 \
  -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
ninja -C build-fuzz "${targets[@]/%/_fuzz}"

export OMP_NUM_THREADS=1  # the CPU backend's threads only slow a fuzzer down
export ASAN_OPTIONS=abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
found=0
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  mkdir "$work/corpus" "$work/found"
  cp fuzz/corpus/"$t"/* "$work/corpus/"
  echo "fuzz: $t for ${seconds}s"
  build-fuzz/bin/"${t}"_fuzz "$work/corpus" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="$work/found/" -print_final_stats=1 \
    >"$work/log" 2>&1 || true
  grep -E '^stat::number_of_executed_units|^#[0-9]+ +DONE' "$work/log" | tail -2 || true
  # Slow units are reported, not kept: the first one carries a target's start-up.
  for f in "$work"/found/{crash,timeout,oom,leak}-*; do
    [ -e "$f" ] || continue
    cp "$f" fuzz/corpus/"$t"/
    found=1
    echo "fuzz: $t: FOUND $(basename "$f") -> fuzz/corpus/$t/ (log: $work/log)"
    grep -m3 -E 'ERROR|runtime error|SUMMARY' "$work/log" | sed 's/^/  /' || true
  done
done
exit $found
