// N concurrent streamed completions through the official openai client against layerpipe's
// HTTP API, timed as `layerpipe load-test` times the gRPC API (same prompt shape: P random
// token ids; T tokens each, ignore_eos), for comparing the two faces on one cluster.
// Usage: node load.mjs BASE_URL MODEL [N=64] [P=32] [T=128]
// Prints one JSON line: total_tokens_per_s, stream_tokens_per_s, ttft_ms_median / max, wall_s.
import OpenAI from "openai";

const [baseURL, model, n = "64", p = "32", t = "128"] = process.argv.slice(2);
const [streams, promptLen, maxTokens] = [Number(n), Number(p), Number(t)];
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 600000 });

async function one(i) {
  const prompt = Array.from({ length: promptLen }, (_, j) => (i * 7919 + j * 104729) % 150000);
  const start = performance.now();
  let first = null;
  let tokens = 0;
  const stream = await client.completions.create({
    model, prompt, max_tokens: maxTokens, ignore_eos: true, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  for await (const chunk of stream) {
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
    if (first === null && chunk.choices.length > 0) first = performance.now();
  }
  return { ttft: first - start, seconds: (performance.now() - start) / 1e3, tokens };
}

const t0 = performance.now();
const results = await Promise.all(Array.from({ length: streams }, (_, i) => one(i)));
const wall = (performance.now() - t0) / 1e3;
const ttfts = results.map((r) => r.ttft).sort((a, b) => a - b);
const total = results.reduce((s, r) => s + r.tokens, 0);
console.log(JSON.stringify({
  concurrency: streams, prompt_len: promptLen, max_tokens: maxTokens, wall_s: wall,
  total_tokens_per_s: total / wall,
  stream_tokens_per_s: results.reduce((s, r) => s + r.tokens / r.seconds, 0) / streams,
  ttft_ms_median: ttfts[Math.floor(ttfts.length / 2)], ttft_ms_max: ttfts[ttfts.length - 1],
}));
