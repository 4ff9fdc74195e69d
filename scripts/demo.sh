#!/usr/bin/env bash
# The main job, in one command: installs what is missing, builds, writes the random-weight demo
# model (once, with the real Qwen3 tokenizer), brings up `layerpipe serve` with three CPU
# workers (deploy/demo-cpu.yaml), streams a chat completion through them (gRPC, then the
# OpenAI-compatible HTTP API with curl), and stops it.
# The weights are random: the text is noise; the path it takes and the speed are real.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
model=demo-model
if [ ! -f "$model/tokenizer.json" ]; then
  tokenizer=$(scripts/fetch_tokenizer.sh)
  build/bin/layerpipe init-model --preset demo --out "$model" --seed 1 --tokenizer "$tokenizer" --force
fi
build/bin/layerpipe check-model "$model"
build/bin/layerpipe plan deploy/demo-cpu.yaml

log=$(mktemp)
build/bin/layerpipe serve deploy/demo-cpu.yaml >"$log" 2>&1 &
serve=$!
trap 'kill -INT $serve 2>/dev/null; wait $serve 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  grep -q "serving on" "$log" && break
  kill -0 $serve 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
grep "serving on" "$log" || { cat "$log"; exit 1; }
echo
echo "== layerpipe generate --chat (random weights: expect noise) =="
build/bin/layerpipe generate --endpoint 127.0.0.1:7100 --chat "Write a haiku about GPUs." \
  --max-tokens 48 --temperature 0.7 --seed 1
echo
echo "== the same through the OpenAI-compatible HTTP API, streamed (curl) =="
curl_line=$(grep -m1 '^  curl -sN' "$log" | sed 's/^ *//')
echo "\$ $curl_line"
events=$(eval "$curl_line")
printf '%s\n' "$events" | grep -v '^$' | sed -n '1,3p;$p'  # the first events and [DONE]
echo
echo "== the cluster =="
build/bin/layerpipe status --endpoint 127.0.0.1:7100
