// Host token selection (see sampling.h).
#include "engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/random.h"
#include "engine/sample_steps.h"

namespace lp {
namespace {

int64_t ArgMax(const float* l, int64_t vocab) {
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i) {
    if (l[i] > l[best]) best = i;
  }
  return best;
}

// The drawn token (temperature > 0) of a row whose largest logit is m: the thresholds of top-k,
// top-p and min-p, then the prefix-sum draw in id order.
int64_t Draw(const float* l, int64_t vocab, float m, const SampleInput& in, SampleScratch* s) {
  const SamplingParams& p = in.params;
  // Threshold of top-k: the k-th largest value (ties at it stay in).
  float lo = -INFINITY;
  if (p.top_k > 0 && p.top_k < vocab) {
    std::vector<float>& v = s->values;
    v.assign(l, l + vocab);
    std::nth_element(v.begin(), v.begin() + (p.top_k - 1), v.end(), std::greater<float>());
    lo = v[size_t(p.top_k - 1)];
  }
  const float inv_t = 1.0f / p.temperature;
  auto weight = [&](int64_t i) { return std::exp((l[i] - m) * inv_t); };
  if (p.top_p < 1.0f) {
    std::vector<int32_t>& cand = s->ids;
    cand.clear();
    float total = 0.0f;
    for (int64_t i = 0; i < vocab; ++i) {
      if (l[i] >= lo) {
        cand.push_back(int32_t(i));
        total += weight(i);
      }
    }
    // One fixed order (ties: lower id first), whatever the sort does with equal keys.
    std::sort(cand.begin(), cand.end(),
              [&](int32_t a, int32_t b) { return l[a] != l[b] ? l[a] > l[b] : a < b; });
    float acc = 0.0f;
    for (int32_t i : cand) {
      acc += weight(i);
      if (acc >= p.top_p * total) {
        lo = l[i];
        break;
      }
    }
  }
  // min-p is relative to the most likely token, which every cut keeps: its threshold combines.
  if (p.min_p > 0.0f) lo = std::max(lo, MinPLogit(m, p.temperature, std::log(p.min_p)));
  float mass = 0.0f;
  for (int64_t i = 0; i < vocab; ++i) mass += l[i] >= lo ? weight(i) : 0.0f;
  const float target = SampleUniform(p.seed, in.position) * mass;
  float acc = 0.0f;
  int64_t pick = -1;
  for (int64_t i = 0; i < vocab; ++i) {
    if (l[i] < lo) continue;
    acc += weight(i);
    pick = i;
    if (acc > target) break;
  }
  return pick;
}

}  // namespace

SampleResult SampleRow(const float* raw, int64_t vocab, const SampleInput& in, SampleScratch* s) {
  const SamplingParams& p = in.params;
  SampleResult r;
  // Log-probabilities are of the model's own distribution, before any processing.
  int64_t best = ArgMax(raw, vocab);
  const float raw_max = raw[best];
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(raw[i]) - raw_max);
  const float lse = raw_max + float(std::log(sum));
  const int64_t n_top = std::min<int64_t>(std::clamp(p.logprobs, 0, kMaxLogprobs), vocab);
  if (n_top > 0) {
    std::vector<int32_t>& idx = s->ids;
    idx.resize(size_t(vocab));
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + n_top, idx.end(), [&](int32_t a, int32_t b) {
      return raw[a] != raw[b] ? raw[a] > raw[b] : a < b;
    });
    for (int64_t i = 0; i < n_top; ++i) {
      r.top.push_back({idx[size_t(i)], raw[idx[size_t(i)]] - lse});
    }
  }
  const float* l = raw;
  if (PenaltyIsOn(p.repetition_penalty) && !in.seen.empty()) {
    s->logits.assign(raw, raw + vocab);
    for (int32_t id : in.seen) {
      if (id < 0 || id >= vocab) continue;
      s->logits[size_t(id)] = PenalizedLogit(raw[id], p.repetition_penalty);  // repeats: once
    }
    l = s->logits.data();
    best = ArgMax(l, vocab);
  }
  // No token passes the cuts when the logits are NaN (a worker's input is not to be trusted):
  // then the greedy choice, never an id outside the row.
  const int64_t drawn = p.temperature > 0.0f ? Draw(l, vocab, l[best], in, s) : best;
  r.id = int32_t(drawn >= 0 ? drawn : best);
  r.logprob = raw[r.id] - lse;
  return r;
}

}  // namespace lp
