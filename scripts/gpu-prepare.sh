#!/usr/bin/env bash
# On a machine without a GPU: build, then pack into .device/ what scripts/gpu-run.sh needs on
# the GPU machine (the binaries with their libraries, compressed to stay under the 64 MiB that
# travels; hf_baseline.py). .device/ must be git-ignored.
# LP_BASE="REV [REV...]" (e.g. HEAD, for an uncommitted change) also builds each REV's
# layerpipe-cuda in a worktree (build-base/, the same CUDA architectures): the first into
# .device/base-cuda.xz, the other side of scripts/gpu-change.sh's comparison, the next ones into
# base2-cuda.xz, base3-cuda.xz... (the sides of scripts/gpu-ab-bench.sh beside the bundle's).
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-.}  # the checkout that travels (default: this one)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build -j2 layerpipe layerpipe-cuda layerpipe-worker layerpipe-coordinator layerpipe_gpu_tests
dev=$root/.device
rm -rf "$dev/bundle" "$dev/bundle.tar.xz" "$dev/fixtures" "$dev/tokenizer.tar.xz" "$dev"/base*-cuda.xz
mkdir -p "$dev"
tools/device-bundle.sh "$dev/bundle" build/bin/layerpipe build/bin/layerpipe-cuda build/bin/layerpipe-worker \
  build/bin/layerpipe-coordinator build/bin/layerpipe_gpu_tests
tar cJf "$dev/bundle.tar.xz" -C "$dev" bundle && rm -rf "$dev/bundle"
# The fixtures travel with the working tree (tests/fixtures); gpu-run.sh finds them there.
# The real Qwen3 tokenizer, compressed, for the chat completion of gpu-int4-cluster.sh.
tar cJf "$dev/tokenizer.tar.xz" -C tests/fixtures/qwen3-tiny tokenizer.json tokenizer_config.json
cp tools/hf_baseline.py scripts/gpu-run.sh scripts/gpu-cluster-bench.sh scripts/gpu-resume.sh \
  scripts/gpu-int4-cluster.sh scripts/gpu-cluster-lib.sh scripts/gpu-timeline.sh scripts/gpu-kv-bench.sh \
  scripts/gpu-ab-bench.sh scripts/gpu-kernel-times.sh scripts/gpu-kernel-detail.sh scripts/gpu-kernel-source.sh scripts/gpu-change.sh scripts/gpu-gap.sh "$dev/"
n=0
for rev in ${LP_BASE:-}; do
  n=$((n + 1))
  rm -rf build-base/src && git worktree prune
  git worktree add --detach build-base/src "$rev" >/dev/null
  arch=$(sed -n 's/^LAYERPIPE_CUDA_ARCHITECTURES:STRING=//p' build/CMakeCache.txt)
  cmake -S build-base/src -B build-base/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
    ${arch:+-DLAYERPIPE_CUDA_ARCHITECTURES="$arch"} >/dev/null
  ninja -C build-base/build -j2 layerpipe-cuda
  xz -c build-base/build/bin/layerpipe-cuda > "$dev/base$([ $n -gt 1 ] && echo $n)-cuda.xz"
  git worktree remove --force build-base/src
done
du -sh "$dev"
