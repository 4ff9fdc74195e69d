#!/usr/bin/env bash
# The tests under gcc's sanitizers, each build in a folder of its own (CPU only):
#   asan: every unit and cluster test under AddressSanitizer (with LeakSanitizer) and
#         UndefinedBehaviorSanitizer, in build-asan (left out: the soak, whose memory bound means
#         nothing under ASan's quarantine, and the CLI's and deploy files' tests);
#   tsan: the coordinator and scheduler tests (scheduler_test, coordinator_unit_test,
#         grpc_pipeline_test) under ThreadSanitizer, in build-tsan, with only those built.
# Every process reports into one folder (the cluster tests' workers and coordinators too, which
# the tests kill), and any report fails the run, named and printed.
# Usage: scripts/sanitize.sh [asan|tsan|all]   (default: all); LP_JOBS=N for ninja and ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
jobs="${LP_JOBS:-$(nproc)}"
reports=$(mktemp -d /tmp/lp_sanitize.XXXXXX)
failed=()

configure() {  # configure DIR FLAGS
  cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLAYERPIPE_CUDA=OFF \
    -DCMAKE_C_FLAGS="$2" -DCMAKE_CXX_FLAGS="$2" -DCMAKE_EXE_LINKER_FLAGS="$2" \
    -DCMAKE_SHARED_LINKER_FLAGS="$2" >/dev/null
}

# Fails the run when the sanitizer of `name` wrote any report (files named PREFIX.PID).
check_reports() {  # check_reports NAME PREFIX...
  local name=$1 found=()
  shift
  for prefix in "$@"; do
    for f in "$prefix".*; do [ -s "$f" ] && found+=("$f"); done
  done
  if [ ${#found[@]} -gt 0 ]; then
    echo "sanitize: $name: ${#found[@]} reports:" >&2
    for f in "${found[@]}"; do
      echo "== $f" >&2
      head -n 60 "$f" >&2
    done
    failed+=("$name (reports)")
  fi
}

run_asan() {
  local f="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
  configure build-asan "$f"
  # Every test but the CLI's and Deploy's (no code of ours beyond what the others run), and the
  # programs the cluster tests start.
  ninja -C build-asan -j"$jobs" layerpipe layerpipe-worker layerpipe-coordinator \
    safetensors_test checkpoint_test model_test int4_test scheduler_test grpc_pipeline_test \
    coordinator_unit_test cluster_test resume_test http_api_test cluster_config_test \
    placement_test tokenizer_test stream_decoder_test chat_template_test sampling_test \
    health_test handover_test
  echo "sanitize: asan: ctest in build-asan"
  ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1" \
    LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0" \
    UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1" \
    ctest --test-dir build-asan -E 'NOT_BUILT|^soak$' --output-on-failure \
    -j"$jobs" --timeout 1800 || failed+=("asan (ctest)")
  check_reports asan "$reports/asan" "$reports/ubsan"
}

run_tsan() {
  configure build-tsan "-fsanitize=thread"
  ninja -C build-tsan -j"$jobs" scheduler_test coordinator_unit_test grpc_pipeline_test
  echo "sanitize: tsan: ctest in build-tsan (the coordinator and scheduler tests)"
  # OMP_NUM_THREADS=1: the in-process CPU workers' OpenMP (libgomp is not instrumented, so its
  # barriers would read as races) runs on the calling thread.
  OMP_NUM_THREADS=1 \
    TSAN_OPTIONS="log_path=$reports/tsan:suppressions=$PWD/scripts/tsan.supp:second_deadlock_stack=1:history_size=4" \
    ctest --test-dir build-tsan -E 'NOT_BUILT|^soak$' --output-on-failure -j"$jobs" --timeout 1800 ||
    failed+=("tsan (ctest)")
  check_reports tsan "$reports/tsan"
}

case "$what" in
  asan) run_asan ;;
  tsan) run_tsan ;;
  all) run_asan; run_tsan ;;
  *) echo "usage: scripts/sanitize.sh [asan|tsan|all]" >&2; exit 2 ;;
esac
if [ ${#failed[@]} -gt 0 ]; then
  echo "sanitize: FAIL: ${failed[*]} (reports kept in $reports)" >&2
  exit 1
fi
rm -rf "$reports"
echo "sanitize: $what clean"
