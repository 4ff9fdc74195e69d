// Token sampling on the last worker (see sampler.h).
#include "worker/sampler.h"

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
  return double(Mix(Mix(seed) ^ uint64_t(position)) >> 11) * 0x1.0p-53;
}

}  // namespace

Sample SampleToken(std::span<const float> logits, const SamplingParams& p,
                   std::span<const int32_t> history, int64_t position,
                   std::vector<float>* scratch, std::vector<int32_t>* index_scratch) {
  const size_t n = logits.size();
  Sample out;
  // Log-probabilities of the model's own distribution (before any processing).
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float l : logits) sum += std::exp(double(l - max_logit));
  const float log_z = max_logit + float(std::log(sum));

  std::vector<float>& x = *scratch;
  x.assign(logits.begin(), logits.end());
  if (p.repetition_penalty > 0.0f && p.repetition_penalty != 1.0f) {
    for (int32_t id : history) {
      if (id < 0 || size_t(id) >= n) continue;
      float& l = x[size_t(id)];
      // Applied once per distinct token: a penalized logit changes sign never, so mark it by
      // comparing with the original.
      if (l != logits[size_t(id)]) continue;
      l = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
    }
  }

  std::vector<int32_t>& idx = *index_scratch;
  if (p.temperature <= 0.0f) {
    out.id = int32_t(std::max_element(x.begin(), x.end()) - x.begin());
  } else {
    // Candidates sorted by logit (ties: lower id first), cut by top_k, then by probability.
    idx.resize(n);
    std::iota(idx.begin(), idx.end(), 0);
    const size_t k = p.top_k > 0 ? std::min(n, size_t(p.top_k)) : n;
    auto by_logit = [&](int32_t a, int32_t b) { return x[a] != x[b] ? x[a] > x[b] : a < b; };
    if (k < n) {
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), by_logit);
    } else {
      std::sort(idx.begin(), idx.end(), by_logit);
    }
    idx.resize(k);
    const float top = x[idx[0]];
    std::vector<double> probs(k);
    double total = 0.0;
    for (size_t i = 0; i < k; ++i) {
      probs[i] = std::exp(double(x[idx[i]] - top) / p.temperature);
      total += probs[i];
    }
    size_t keep = k;
    if (p.top_p > 0.0f && p.top_p < 1.0f) {
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
    const double u = Uniform(p.seed, position) * kept;
    double acc = 0.0;
    out.id = idx[keep - 1];
    for (size_t i = 0; i < keep; ++i) {
      acc += probs[i];
      if (u < acc) {
        out.id = idx[i];
        break;
      }
    }
  }
  out.logprob = logits[size_t(out.id)] - log_z;
  if (p.logprobs > 0) {
    const size_t k = std::min(n, size_t(p.logprobs));
    idx.resize(n);
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
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
