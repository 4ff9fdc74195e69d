// Token sampling on the last worker (see sampler.h).
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace lp {
namespace {

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A uniform draw in [0, 1) determined by (seed, position) alone.
double Uniform(uint64_t seed, int64_t position) {
  return double(SampleDraw(seed, position) >> 11) * 0x1.0p-53;
}

void ApplyRepetitionPenalty(std::span<const float> logits, float penalty,
                            std::span<const int32_t> history, std::vector<float>& x) {
  for (int32_t id : history) {
    if (id < 0 || size_t(id) >= x.size()) continue;
    float& l = x[size_t(id)];
    if (l != logits[size_t(id)]) continue;  // already penalized: once per distinct token
    l = l > 0 ? l / penalty : l * penalty;
  }
}

// Draws from softmax(x / temperature) restricted by top-k, top-p and min-p.
int32_t Draw(const std::vector<float>& x, const SamplingParams& p, double u, SamplerScratch* s) {
  const size_t n = x.size();
  const float top = *std::max_element(x.begin(), x.end());
  const bool filtered = (p.top_k > 0 && size_t(p.top_k) < n) || p.top_p < 1.0f || p.min_p > 0.0f;
  if (!filtered) {
    // Plain temperature: one pass in id order, no sorting.
    double total = 0.0;
    for (float l : x) total += std::exp(double(l - top) / p.temperature);
    double acc = 0.0, target = u * total;
    for (size_t i = 0; i < n; ++i) {
      acc += std::exp(double(x[i] - top) / p.temperature);
      if (target < acc) return int32_t(i);
    }
    return int32_t(n - 1);
  }
  // Candidates by logit (ties: lower id first), cut by top_k, then by probability mass.
  std::vector<int32_t>& idx = s->ids;
  idx.resize(n);
  std::iota(idx.begin(), idx.end(), 0);
  const size_t k = p.top_k > 0 ? std::min(n, size_t(p.top_k)) : n;
  auto by_logit = [&](int32_t a, int32_t b) { return x[a] != x[b] ? x[a] > x[b] : a < b; };
  std::partial_sort(idx.begin(), idx.begin() + std::ptrdiff_t(k), idx.end(), by_logit);
  std::vector<double>& probs = s->probs;
  probs.resize(k);
  double total = 0.0;
  for (size_t i = 0; i < k; ++i) total += probs[i] = std::exp(double(x[idx[i]] - top) / p.temperature);
  size_t keep = k;
  if (p.top_p < 1.0f) {
    double mass = 0.0;
    for (size_t i = 0; i < k; ++i) {
      mass += probs[i] / total;
      if (mass >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  if (p.min_p > 0.0f) {
    size_t m = 1;
    while (m < keep && probs[m] >= p.min_p * probs[0]) ++m;
    keep = m;
  }
  double kept = 0.0;
  for (size_t i = 0; i < keep; ++i) kept += probs[i];
  double acc = 0.0, target = u * kept;
  for (size_t i = 0; i < keep; ++i) {
    acc += probs[i];
    if (target < acc) return idx[i];
  }
  return idx[keep - 1];
}

}  // namespace

uint64_t SampleDraw(uint64_t seed, int64_t position) { return Mix(Mix(seed) ^ uint64_t(position)); }

Sample SampleToken(std::span<const float> logits, const SamplingParams& p,
                   std::span<const int32_t> history, int64_t position, SamplerScratch* s) {
  const size_t n = logits.size();
  Sample out;
  // Log-probabilities of the model's own distribution (before any processing).
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float l : logits) sum += std::exp(double(l - max_logit));
  const float log_z = max_logit + float(std::log(sum));

  std::vector<float>& x = s->logits;
  x.assign(logits.begin(), logits.end());
  if (p.repetition_penalty > 0.0f && p.repetition_penalty != 1.0f) {
    ApplyRepetitionPenalty(logits, p.repetition_penalty, history, x);
  }
  if (p.temperature <= 0.0f) {
    out.id = int32_t(std::max_element(x.begin(), x.end()) - x.begin());
  } else {
    out.id = Draw(x, p, Uniform(p.seed, position), s);
  }
  out.logprob = logits[size_t(out.id)] - log_z;
  if (p.logprobs > 0) {
    const size_t k = std::min(n, size_t(p.logprobs));
    std::vector<int32_t>& idx = s->ids;
    idx.resize(n);
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + std::ptrdiff_t(k), idx.end(), [&](int32_t a, int32_t b) {
      return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    });
    for (size_t i = 0; i < k; ++i) {
      out.top_ids.push_back(idx[i]);
      out.top_logprobs.push_back(logits[size_t(idx[i])] - log_z);
    }
  }
  return out;
}

}  // namespace lp
