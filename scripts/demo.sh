#!/usr/bin/env bash
# Installs what is missing, builds, writes the random-weight demo model (once), checks it and
# runs greedy generation through three in-process slices.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
model=demo-model
if [ ! -f "$model/config.json" ]; then
  build/bin/layerpipe init-model --preset demo --out "$model" --seed 1
fi
build/bin/layerpipe check-model "$model"
echo
echo "Greedy generation through 3 slices (random weights: the ids are noise, the speed is real):"
build/bin/layerpipe greedy --model "$model" --slices 3 --prompt-ids 9707,11,1879,0 --max-tokens 32
